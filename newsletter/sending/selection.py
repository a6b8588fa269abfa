"""Selecting a large list while its first batches go out.

A send used to select every recipient into the journal before its first
request: for a million recipients, seconds in which nothing is sent and the
second core and the provider wait. For a *fresh* send (nobody of this issue
and list in the journal yet) of a large list that the writer confirmed
beforehand (``--yes``), the selection instead goes on in steps between the
send loop's batches and while it waits for answers.

What stays as it was:

- every recipient is in the journal, as pending, before any request can
  carry them, and the loop only ever takes recipients from the journal;
- the run and the steps selected before its first request are one provisional
  transaction (``Journal.begin_run``), committed just before that request: a
  send stopped before it leaves nothing, and the steps after it commit on their
  own, as before;
- the list is read once, in order, and wholly checked first (``select_rows``
  reads every row for suppressed addresses and unreadable rows before it
  yields the first): a bad row stops the send at file:line before anything
  is sent;
- a send that stops part way selects the rest before it exits, sending
  nothing (``engine._select_the_rest``), so its counts cover the whole list;
  a crash (kill -9) leaves part of the list selected, and the next run
  selects the whole list again, as a resume always does, so nobody is
  skipped and nobody already sent is sent again.

Not for a resume, a retry, a dry run, a test send, a staged or paced send,
or a send whose question (``Send ... to N recipients?``) needs the count
first: those select everything, then start.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator
from itertools import islice
from pathlib import Path

from ..config import Settings
from . import journal as jn
from .modes import SendMode
from .pacing_run import is_paced
from .stage_rules import stages_of

STEP = 5_000  # most recipients selected per step: a few milliseconds, between two batches of the loop
BATCHES_A_STEP = 5  # a step selects about five batches' worth, so the selection keeps ahead of the loop


class PendingSelection:
    """The rest of a fresh send's list, selected into the journal a step at a time.

    The list is read with its duplicates (``select_rows(dedupe=False)``) and the journal keeps
    each address's first row (``Journal.select(first_wins=True)``): the send being fresh, a key
    already in the journal can only be an earlier row of the same list. Holding every address
    in memory to drop them as they are read would be about 100 MB more for a million, at the
    very time the body workers are running too.
    """

    def __init__(self, journal: jn.Journal, rows: Generator[tuple[str, str, str, str], None, None],
                 skipped: Counter[str],
                 batch_size: int):
        self.journal = journal
        self.rows = rows
        self.skipped = skipped  # the plan's count of rows left out, by reason: duplicates are added here
        self.step = max(1, min(STEP, BATCHES_A_STEP * batch_size))
        self.selected = 0  # recipients selected so far (each new, so each pending: the send is fresh)
        self.done = False

    def advance(self) -> int:
        """Select the next step of the list; how many recipients it added (0 once the list is done)."""
        while not self.done:
            chunk = list(islice(self.rows, self.step))
            if not chunk:
                self.close()
                break
            repeats = self.journal.recipients.select(chunk, first_wins=True)
            if repeats:
                self.skipped["duplicate"] += repeats
            if len(chunk) > repeats:
                self.selected += len(chunk) - repeats
                return len(chunk) - repeats
        return 0

    def close(self) -> None:
        """Stop reading the list (its file is closed); what was selected stays in the journal."""
        self.done = True
        self.rows.close()


def may_select_while_sending(settings: Settings, journal: jn.Journal, list_path: Path, *, confirmed: bool,
                             mode: SendMode, retrying: bool, stages: str | None) -> bool:
    """Whether this send's selection may go on while its first batches go out (see the module docstring)."""
    if not confirmed or not mode.delivers or retrying or is_paced(settings):  # a dry run samples in list order
        return False
    if stages_of(settings.send, stages) != (1.0,):
        return False
    threshold = settings.send.parallel_from
    if threshold <= 0 or not _has_lines(list_path, threshold + 1):
        return False  # a small list is selected in a moment: no reason to do it differently
    return journal.runs.is_fresh()


def _has_lines(path: Path, count: int, chunk: int = 1 << 20) -> bool:
    """Whether the file has at least ``count`` lines, reading no further than it takes to tell."""
    seen = 0
    with open(path, "rb") as data:
        while seen < count:
            block = data.read(chunk)
            if not block:
                return False
            seen += block.count(b"\n")
    return True
