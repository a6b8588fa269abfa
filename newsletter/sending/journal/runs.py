"""The runs of a send: each time a send, a dry run, a resolution or an abandonment touched it.

A run records the audience it was for (list, tags, where, provider), the
fingerprint of what went out, and a note (an override, say). ``--resume``
repeats the latest send run's audience; ``status`` lists them all. Each run
has a ``uid``, unique across journals, which the sent record in issue.md names
(``sending/sent_record.py``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, NamedTuple

from ...providers.base import Status
from .database import new_journal_id

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .journal import Journal

DIED = "the send stopped while this recipient's request was under way; it may have arrived"


class Audience(NamedTuple):
    """Who a run was for and how it went out: what ``--resume`` repeats."""

    provider: str
    tags: tuple[str, ...]
    where: tuple[tuple[str, str], ...]
    # ``--journal-lost``: only readers who joined after this moment (ISO 8601, UTC); "" for everyone
    joined_after: str = ""
    # only the readers of this recorded audience (``audiences.py``: those due for a sequence step); 0: everyone
    readers: int = 0


class RunRecord(NamedTuple):
    """One run of a send as ``status`` shows it."""

    id: int
    kind: str  # send | dry run | resolve | abandon
    started: float
    audience: Audience
    fingerprint: str
    parts: dict[str, str]
    allow_changed: bool
    note: str
    counts: dict[str, int]
    uid: str = ""
    finished: float | None = None


class RunLog:
    """The ``runs`` table for one send."""

    def __init__(self, journal: Journal):
        self.journal = journal

    def start(self, audience: Audience | None = None, fingerprint: str = "", parts: Mapping[str, str] | None = None,
              *, kind: str = "send", allow_changed: bool = False, note: str = "") -> int:
        """Record a new run (its audience, provider and fingerprint) and settle what a dead run left in
        flight as unknown."""
        journal = self.journal
        audience = audience or Audience("", (), ())
        uid = new_journal_id()[:16]
        with journal.transaction() as db:
            journal.run = db.insert(
                "INSERT INTO runs (send, started, pid, kind, provider, tags, filters, fingerprint, parts, "
                "allow_changed, note, uid, joined_after, readers) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (journal.send, time.time(), os.getpid(), kind, audience.provider, json.dumps(list(audience.tags)),
                 json.dumps([list(p) for p in audience.where]), fingerprint, json.dumps(dict(parts or {})),
                 int(allow_changed), note, uid, audience.joined_after or None, audience.readers or None))
            journal.flight.recover(db)
        journal.run_uid = uid
        return journal.run

    def finish(self) -> None:
        journal = self.journal
        with journal.transaction() as db:
            db.execute("UPDATE runs SET finished=? WHERE id=?", (time.time(), journal.run))

    def history(self, kinds: Iterable[str] = ("send",)) -> list[RunRecord]:
        """Every run of this send of the given kinds, oldest first, with what each settled."""
        journal = self.journal
        kinds = tuple(kinds)
        marks = ",".join("?" * len(kinds))
        rows = journal.db.execute(
            "SELECT id, kind, started, provider, tags, filters, fingerprint, parts, allow_changed, note, uid, finished, "
            f"joined_after, readers FROM runs WHERE send=? AND kind IN ({marks}) ORDER BY id",
            (journal.send, *kinds)).fetchall()
        records = []
        for (number, kind, started, provider, tags, filters, fingerprint, parts, allow, note, uid, finished,
             joined_after, readers) in rows:
            counts = dict(journal.db.execute("SELECT status, COUNT(*) FROM deliveries WHERE settled_run=? "
                                             "GROUP BY status", (number,)).fetchall()) if kind != "dry run" else {}
            audience = Audience(provider or "", tuple(json.loads(tags or "[]")),
                                tuple((str(k), str(v)) for k, v in json.loads(filters or "[]")), joined_after or "",
                                int(readers or 0))
            records.append(RunRecord(int(number), kind, float(started), audience, fingerprint or "",
                                     json.loads(parts or "{}"), bool(allow), note or "", counts, uid or "", finished))
        return records

    def unfinished(self) -> RunRecord | None:
        """The latest send run, if recipients it selected are still to go (and it was not abandoned)."""
        runs = self.history(("send", "abandon"))
        if not runs or runs[-1].kind != "send":
            return None
        latest = runs[-1]
        return latest if self.left(latest.id) else None

    def left(self, run: int) -> int:
        """How many recipients ``run`` selected are still pending (or held back by stages and caps)."""
        journal = self.journal
        return int(journal.db.execute(
            "SELECT COUNT(*) FROM deliveries WHERE send=? AND run=? AND status IN (?, ?, ?)",
            (journal.send, run, str(Status.PENDING), str(Status.HELD), str(Status.WAITING))).fetchone()[0])

    def is_fresh(self) -> bool:
        """Nobody of this issue and list is in the journal yet (its first run is being prepared)."""
        journal = self.journal
        return journal.db.execute("SELECT 1 FROM deliveries WHERE send=? LIMIT 1", (journal.send,)).fetchone() is None

    def holds_uid(self, uid: str) -> bool:
        """Whether this journal recorded the run ``uid`` (of any issue and list): the sent record's check."""
        return self.journal.db.execute("SELECT 1 FROM runs WHERE uid=?", (uid,)).fetchone() is not None
