"""``newsletter resolve``: the grey zone settled a batch at a time, in the journal.

A request whose answer never came leaves its recipients *unknown*, grouped by the
batch label the journal gave the request (``unknown_batches``). ``settle_from_evidence``
settles on its own every batch the provider reported on (``evidence.judge``) and
leaves the others, each with what is known of it, for the writer to answer for
(``settle_batches``: ``--as sent|resend``, for all of them or the ``--batch`` named).

SMTP requests need no evidence: the journal records each recipient's answer before
the next is tried, so at most the one message under way is unknown.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..config import Settings
from ..errors import NewsletterError, display_path
from ..lists import check_list_name
from . import holds
from . import journal as jn
from .before_send import refuse_while_shared
from .evidence import BatchEvidence, Judged, UnknownBatch, judge
from .identity import load
from .plan import describe_audience
from .report import recipients

RESOLUTIONS = {"sent": jn.SENT, "resend": jn.PENDING}


@dataclass(frozen=True)
class Settlement:
    """What ``settle_from_evidence`` did: the batches it settled as sent, and those left to ask about."""

    settled: list[Judged]
    asked: list[Judged]

    @property
    def settled_recipients(self) -> int:
        return sum(j.batch.recipients for j in self.settled)

    @property
    def asked_recipients(self) -> int:
        return sum(j.batch.recipients for j in self.asked)


# -- the journal -----------------------------------------------------------------------------------------


@contextmanager
def _send_journal(settings: Settings, issue_dir: Path, list_name: str) -> Iterator[jn.Journal]:
    """The journal of the send of ``issue_dir`` to ``list_name``, held exclusively (no sender is running)."""
    check_list_name(list_name)
    issue, _ = load(issue_dir, record_id=False)
    key = issue.id or issue.name
    location = jn.location_of(settings)
    if list_name not in jn.lists_of(location, key):
        raise NewsletterError(f"{display_path(issue_dir)} has not been sent to list '{list_name}'")
    database = jn.open_database(location)
    try:
        with database.exclusive(key, list_name, issue.name):
            yield jn.Journal(database, key, list_name, folder=issue.name)
    finally:
        database.close()


def unknown_batches(journal: jn.Journal) -> list[UnknownBatch]:
    """The send's unknown recipients by the request that carried them, oldest request first."""
    db = journal.db
    found = []
    for label, count in db.execute("SELECT COALESCE(batch, ''), COUNT(*) FROM deliveries WHERE send=? AND "
                                   "status='unknown' GROUP BY COALESCE(batch, '')", (journal.send,)).fetchall():
        row = db.execute("SELECT b.started, r.uid FROM batches b JOIN runs r ON r.id = b.run "
                         "WHERE b.send=? AND b.label=? ORDER BY b.id DESC LIMIT 1", (journal.send, label)).fetchone()
        started, uid = row if row else (None, "")
        found.append(UnknownBatch(str(label), str(uid or ""), str(label).endswith(jn.SEQUENTIAL), int(count),
                                  float(started) if started is not None else None))
    return sorted(found, key=lambda b: (b.started is None, b.started or 0.0, b.label))


def _left_in_flight(journal: jn.Journal) -> bool:
    """Whether the send has unknown recipients, or requests a dead run left in flight (unknown once a run starts)."""
    return journal.db.execute(
        "SELECT 1 FROM deliveries WHERE send=? AND status IN ('unknown', 'in_flight') UNION ALL "
        "SELECT 1 FROM batches WHERE send=? AND state='in_flight' LIMIT 1",
        (journal.send, journal.send)).fetchone() is not None


def _settle(journal: jn.Journal, labels: Collection[str], status: str, reason: str) -> int:
    """Settle the unknown recipients of these batches as ``status`` under the current run; how many."""
    settled = 0
    now = time.time()
    with journal.transaction() as db:
        for label in labels:
            if status == jn.PENDING:  # to be resent by the next --resume, afresh
                sql = ("UPDATE deliveries SET status='pending', reason=NULL, attempts=0, batch=NULL, settled_run=?, "
                       "updated=? WHERE send=? AND status='unknown' AND COALESCE(batch, '')=?")
                arguments: tuple[object, ...] = (journal.run, now, journal.send, label)
            else:
                sql = ("UPDATE deliveries SET status=?, reason=?, settled_run=?, updated=? WHERE send=? AND "
                       "status='unknown' AND COALESCE(batch, '')=?")
                arguments = (str(status), reason, journal.run, now, journal.send, label)
            settled += db.execute(sql, arguments).rowcount
    return settled


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}es"


def _note(journal: jn.Journal, note: str) -> None:
    with journal.transaction() as db:
        db.execute("UPDATE runs SET note=? WHERE id=?", (note, journal.run))


def settle_from_evidence(settings: Settings, issue_dir: Path, list_name: str,
                         evidence: BatchEvidence | None) -> Settlement:
    """Settle as sent every unknown batch of the send the provider reported on; the others are left to ask.

    What a dead run left in flight becomes unknown first (as a resume would make it), so a killed send can
    be resolved at once. Recorded as a run (``status`` shows it) only when something was unknown.
    """
    with _send_journal(settings, issue_dir, list_name) as journal:
        if not _left_in_flight(journal):
            return Settlement([], [])
        journal.runs.start(kind="resolve", note="looked for the provider's events about the unknown recipients")
        batches = unknown_batches(journal)
        reports = {run: evidence.reports_of(run) if evidence is not None else None
                   for run in {b.run for b in batches if b.run and not b.sequential}}
        judged = [judge(batch, reports.get(batch.run)) for batch in batches]
        settled = [j for j in judged if j.accepted]
        count = _settle(journal, [j.batch.label for j in settled], jn.SENT, "sent: the provider reported it")
        asked = [j for j in judged if not j.accepted]
        _note(journal, f"{recipients(count)} in {_plural(len(settled), 'batch')} settled as sent from the provider's "
                       f"events; {recipients(sum(j.batch.recipients for j in asked))} still unknown")
        return Settlement(settled, asked)


def settle_batches(settings: Settings, issue_dir: Path, list_name: str, labels: Collection[str],
                   resolution: str) -> int:
    """Settle the unknown recipients of the batches ``labels`` as the writer says: ``sent`` (they got it)
    or ``resend`` (pending: the next ``--resume`` sends them). Recorded as a run; returns how many."""
    if resolution not in RESOLUTIONS:
        raise NewsletterError(f"--as must be one of {', '.join(RESOLUTIONS)}, not {resolution!r}")
    with _send_journal(settings, issue_dir, list_name) as journal:
        known = {b.label for b in unknown_batches(journal)}
        chosen = [label for label in labels if label in known]
        if not chosen:
            return 0
        journal.runs.start(kind="resolve", note=f"resolving {_plural(len(chosen), 'batch')} as {resolution}")
        count = _settle(journal, chosen, RESOLUTIONS[resolution], f"resolved as {resolution} by the writer")
        _note(journal, f"{recipients(count)} with an unknown delivery resolved as {resolution}"
                       + (f" ({_plural(len(chosen), 'batch')})" if len(chosen) > 1 else ""))
        return count


def abandon(settings: Settings, issue_dir: Path, list_name: str) -> int:
    """Abandon the unfinished send of ``issue_dir`` to ``list_name``: what it has not sent stays unsent, and
    a halted staged send's held recipients count as unsent; recorded as a run. Returns how many."""
    with _send_journal(settings, issue_dir, list_name) as journal:
        refuse_while_shared(journal, issue_dir)
        holds.abandon_halt(journal)
        unfinished = journal.runs.unfinished()
        if unfinished is None:
            return 0
        left = journal.runs.left(unfinished.id)
        journal.runs.start(unfinished.audience, kind="abandon",
                           note=f"abandoned the send {describe_audience(list_name, unfinished.audience)}, "
                                f"{recipients(left)} unsent")
        return left


__all__ = ["RESOLUTIONS", "Settlement", "abandon", "settle_batches", "settle_from_evidence", "unknown_batches"]
