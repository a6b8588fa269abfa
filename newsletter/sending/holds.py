"""Holding recipients back: the journal side of a staged send and of pacing.

A staged send and pacing both need the send loop to deliver only part of what
is pending now. Rather than teach the loop about stages or domains, the rows
that must wait are moved out of ``pending`` into a status of their own (the
loop only ever takes ``pending`` rows) and moved back when their turn comes:

- ``held``: in a later stage of a staged send (``newsletter status`` shows them);
- ``waiting``: over a pacing cap for now.

Both are released to ``pending`` at the start of every live run
(``release_before_run``), so a crash, a halt or Ctrl-C never strands anyone: the
next run selects them as usual and the stages and caps are applied afresh.

The ``stages`` table keeps each stage's record (when it was sent, what came
back, the verdict), so a halted or crashed stage resumes where it stopped and
``status`` shows each stage's figures.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..providers.base import Status
from . import journal as jn

HELD = Status.HELD  # a later stage's recipient
WAITING = Status.WAITING  # over a pacing cap for now


@dataclass(frozen=True)
class StageRecord:
    number: int
    share: float
    size: int
    started: float | None
    finished: float | None
    judged: float | None
    sent: int
    hard_bounces: int
    soft_bounces: int
    blocks: int
    complaints: int
    verdict: str  # "" (not judged yet) | healthy | halted | resumed / abandoned (a halt the writer overrode) | last
    summary: str

    def line(self) -> str:
        """One line of ``newsletter status``."""
        state = {"": "not judged yet", "last": "last stage"}.get(self.verdict, self.verdict)
        figures = (f"{self.sent} sent, {self.hard_bounces} hard bounces, {self.soft_bounces} soft, "
                   f"{self.blocks} blocks, {self.complaints} complaints") if self.judged else f"{self.sent} sent"
        return f"stage {self.number} ({self.share * 100:g}%, {self.size} recipients): {state}; {figures}"


def release(journal: jn.Journal, statuses: Iterable[str] = (HELD, WAITING)) -> int:
    """Every held (and waiting) row of this send back to pending."""
    statuses = [str(s) for s in statuses]
    marks = ",".join("?" * len(statuses))
    with journal.transaction() as db:
        return int(db.execute(f"UPDATE deliveries SET status='pending', updated=? WHERE send=? AND status IN ({marks})",
                              (time.time(), journal.send, *statuses)).rowcount)


def set_status(journal: jn.Journal, ids: list[int], status: str, only_from: str) -> int:
    """Move rows ``ids`` that are in ``only_from`` to ``status`` (pending <-> held / waiting)."""
    if not ids:
        return 0
    with journal.transaction() as db:
        return int(db.execute(f"UPDATE deliveries SET status=? WHERE status=? AND id IN {db.id_set}",
                              (str(status), str(only_from), db.ids(ids))).rowcount)


def run_rows(journal: jn.Journal) -> list[tuple[int, str, str, str]]:
    """(id, key, email, status) of every row this run selected."""
    rows = journal.db.execute("SELECT id, key, email, status FROM deliveries WHERE send=? AND run=? ORDER BY id",
                              (journal.send, journal.run)).fetchall()
    return [(int(i), str(k), str(e), str(s)) for i, k, e, s in rows]


def stage_records(journal: jn.Journal) -> list[StageRecord]:
    rows = journal.db.execute(
        "SELECT number, share, size, started, finished, judged, sent, hard_bounces, soft_bounces, "
        "blocks, complaints, verdict, summary FROM stages WHERE send=? ORDER BY number", (journal.send,)).fetchall()
    return [StageRecord(*row) for row in rows]


def record_plan(journal: jn.Journal, shares: tuple[float, ...], sizes: list[int]) -> None:
    """The stages of this send (kept when already recorded: a resume repeats them), with today's sizes."""
    with journal.transaction() as db:
        for number, (share, size) in enumerate(zip(shares, sizes, strict=True), start=1):
            db.execute("INSERT INTO stages (send, number, share, size) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT (send, number) DO UPDATE SET size=excluded.size",
                       (journal.send, number, share, size))


def update_stage(journal: jn.Journal, number: int, **values: Any) -> None:
    columns = ", ".join(f"{name}=?" for name in values)
    with journal.transaction() as db:
        db.execute(f"UPDATE stages SET {columns} WHERE send=? AND number=?", (*values.values(), journal.send, number))


def abandon_halt(journal: jn.Journal) -> None:
    """``resolve --abandon`` of a halted staged send: its held rows go back to pending (so the abandon
    counts them) and the halt no longer refuses a new send."""
    release(journal)
    with journal.transaction() as db:
        db.execute("UPDATE stages SET verdict='abandoned' WHERE send=? AND verdict='halted'", (journal.send,))


def halted_stage(journal: jn.Journal) -> StageRecord | None:
    """The stage this staged send halted at, if its last verdict is a halt."""
    judged = [r for r in stage_records(journal) if r.verdict]
    return judged[-1] if judged and judged[-1].verdict == "halted" else None
