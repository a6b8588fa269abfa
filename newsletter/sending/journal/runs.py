"""The runs of a send: each time a send, a dry run, a resolution or an abandonment touched it.

A run records the audience it was for (list, tags, where, provider), the
fingerprint of what went out, and a note (an override, say). ``--resume``
repeats the latest send run's audience; ``status`` lists them all. Each run
has a ``uid``, unique across journals, which the sent record in issue.md names
(``sending/sent_record.py``).

Several senders may share one send (a PostgreSQL journal): the process that
starts it records the send run (audience, fingerprint, and, once it begins
delivering, ``ready`` and ``delivery``); each worker that joins records a run
of its own of kind ``worker`` (``joined``: the send run), under which it
records what it sent, while it takes the send run's recipients.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from ...providers.base import Status
from .basics import new_journal_id
from .database import sender_lock_name

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .core import JournalCore

DIED = "the send stopped while this recipient's request was under way; it may have arrived"
WORKER = "worker"  # the kind of a run that joined another's send


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
    ready: float | None = None  # a send run: when it began delivering (workers may join from then on)
    delivery: dict[str, Any] | None = None  # a send run: what shapes each request beyond the fingerprint (--at...)
    joined: int | None = None  # a worker's run: the send run it joined


class RunLog:
    """The ``runs`` table for one send."""

    def __init__(self, journal: JournalCore):
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
            journal.own_run = journal.run
            journal.run_uid = uid
            journal.flight.announce()
            journal.flight.recover(db)
        return journal.run

    def join(self, send_run: RunRecord, fingerprint: str, parts: Mapping[str, str]) -> int:
        """Join ``send_run`` as a worker: record a run of kind ``worker`` for what this process sends (its
        outcomes are settled under it) while it takes ``send_run``'s recipients; settle what dead senders
        left in flight."""
        journal = self.journal
        audience = send_run.audience
        uid = new_journal_id()[:16]
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(send_run.started))
        with journal.transaction() as db:
            journal.own_run = db.insert(
                "INSERT INTO runs (send, started, pid, kind, provider, tags, filters, fingerprint, parts, "
                "allow_changed, note, uid, joined_after, readers, joined) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (journal.send, time.time(), os.getpid(), WORKER, audience.provider, json.dumps(list(audience.tags)),
                 json.dumps([list(p) for p in audience.where]), fingerprint, json.dumps(dict(parts)),
                 int(send_run.allow_changed), f"joined the send started {when} (pid {os.getpid()})", uid,
                 audience.joined_after or None, audience.readers or None, send_run.id))
            journal.run = send_run.id
            journal.run_uid = uid
            journal.flight.announce()
            journal.flight.recover(db)
        return journal.own_run

    def mark_ready(self, delivery: Mapping[str, Any]) -> None:
        """This send run begins delivering: workers may join it from now on, and send as ``delivery`` says."""
        journal = self.journal
        with journal.transaction() as db:
            db.execute("UPDATE runs SET ready=?, delivery=? WHERE id=?",
                       (time.time(), json.dumps(dict(delivery)), journal.run))

    def senders_alive(self) -> list[tuple[str, int]]:
        """(kind, pid) of the runs of this send, other than this process's, whose sender is still running
        (it holds its lock: ``JournalDB.hold``); none on SQLite, where one process sends."""
        journal = self.journal
        db = journal.db
        if db.dialect != "postgresql":
            return []
        rows = db.execute("SELECT kind, pid, uid FROM runs WHERE send=? AND kind IN ('send', ?) AND finished IS NULL "
                          "AND uid IS NOT NULL AND uid <> ? ORDER BY id", (journal.send, WORKER, journal.run_uid)
                          ).fetchall()
        return [(str(kind), int(pid)) for kind, pid, uid in rows if db.held_elsewhere(sender_lock_name(uid))]

    def finish(self) -> None:
        journal = self.journal
        with journal.transaction() as db:
            db.execute("UPDATE runs SET finished=? WHERE id=?", (time.time(), journal.own_run or journal.run))

    def count(self, kinds: Iterable[str] = ("send",)) -> int:
        """How many runs of this send of the given kinds there are (``len(history())`` without reading what
        each settled: a pass over the send's recipients per run)."""
        journal = self.journal
        kinds = tuple(kinds)
        marks = ",".join("?" * len(kinds))
        return int(journal.db.execute(f"SELECT COUNT(*) FROM runs WHERE send=? AND kind IN ({marks})",
                                      (journal.send, *kinds)).fetchone()[0])

    def history(self, kinds: Iterable[str] = ("send",)) -> list[RunRecord]:
        """Every run of this send of the given kinds, oldest first, with what each settled."""
        journal = self.journal
        kinds = tuple(kinds)
        marks = ",".join("?" * len(kinds))
        rows = journal.db.execute(
            "SELECT id, kind, started, provider, tags, filters, fingerprint, parts, allow_changed, note, uid, "
            f"finished, joined_after, readers, ready, delivery, joined FROM runs WHERE send=? AND kind IN ({marks}) "
            "ORDER BY id", (journal.send, *kinds)).fetchall()
        records = []
        for (number, kind, started, provider, tags, filters, fingerprint, parts, allow, note, uid, finished,
             joined_after, readers, ready, delivery, joined) in rows:
            # a send run's counts include what the workers that joined it settled
            counts = dict(journal.db.execute(
                "SELECT status, COUNT(*) FROM deliveries WHERE settled_run=? OR settled_run IN "
                "(SELECT id FROM runs WHERE joined=?) GROUP BY status", (number, number)).fetchall()
                          ) if kind != "dry run" else {}
            audience = Audience(provider or "", tuple(json.loads(tags or "[]")),
                                tuple((str(k), str(v)) for k, v in json.loads(filters or "[]")), joined_after or "",
                                int(readers or 0))
            records.append(RunRecord(int(number), kind, float(started), audience, fingerprint or "",
                                     json.loads(parts or "{}"), bool(allow), note or "", counts, uid or "", finished,
                                     ready, json.loads(delivery) if delivery else None, joined))
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
