"""The journal of one issue sent to one list: who is to be sent, who was, and each run that did it.

It is the only record of outcomes: a run's report is read back from it at the
end. An issue is known by its stable id (``id:`` in issue.md's front matter),
not its folder's name, so a renamed or copied folder is the same issue and a
different issue in a folder of the same name is not.

A ``Journal`` is a handle on one (issue, list) pair in a journal database
(``database.py``: SQLite or PostgreSQL) with one part per job:

- ``runs`` (``runs.py``): each run's audience, provider and fingerprint; dead runs' batches recovered;
- ``recipients`` (``recipients.py``): the selection into the journal, requeues, resolutions;
- ``flight``: the send loop's side, batches in flight and their outcomes: ``flight.py`` for a SQLite
  journal (one sender), ``leased.py`` for PostgreSQL (batches claimed with a lease, so several
  senders may share the send);
- ``view`` (``reading.py``): counts, problems and outcomes, for reports and ``status``.

A run is recorded once it sends: a live send opens its journal ``provisional``,
and the run, its selection and its holds are one transaction, committed just
before the first request goes out (``commit_run``, from ``flight.mark_in_flight``)
or rolled back (``discard_run``): a send refused, declined or with nobody to
send to leaves nothing behind.

State follows what actually happened: a request's rows are on record as in
flight *before* the request, and a recipient becomes ``sent`` only *after* the
provider accepted them. Rows found in flight when a run starts belong to a run
that died mid-request: their outcome is unknown, and they are never resent
unless the writer asks (``--retry-unknown``, ``resolve``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

from .database import JournalDB, memory_database, open_database
from .flight import InFlight
from .leased import LeasedFlight
from .location import Location
from .reading import JournalView
from .recipients import Recipients
from .runs import RunLog


class Journal:
    """The journal of one issue (its id) sent to one list, in the database ``db`` (which may hold many)."""

    def __init__(self, db: JournalDB, issue: str, list_name: str, *, create: bool = True, folder: str = "",
                 provisional: bool = False):
        self.db = db
        self.issue = issue
        self.list = list_name
        self.folder = folder
        self.run = 0  # the id of the send run whose recipients this process sends (``runs.start`` or ``runs.join``)
        self.own_run = 0  # the run this process records what it settled under: ``run``, or its worker run
        self.run_uid = ""  # this process's run's id across journals (the sent record names it; a sender's lock)
        self.provisional = False  # see ``begin_run``
        self._when_committed: list[Callable[[], None]] = []
        self.send = -1
        if provisional:
            self.begin_run()
        else:
            with db.transaction(durable=create) if create else _nothing():
                self.send = self._send_id(create)
        self.runs = RunLog(self)
        self.recipients = Recipients(self)
        self.flight: InFlight = LeasedFlight(self) if db.dialect == "postgresql" else InFlight(self)
        self.view = JournalView(self)

    def _send_id(self, create: bool) -> int:
        """The row naming this (issue, list) pair; every delivery row refers to it (-1: none yet, read-only).

        A journal from before issues had ids knows the issue by its folder name: the first
        issue with that folder name to be sent adopts that record (it gets the id), once.
        """
        db = self.db
        row = db.execute("SELECT id FROM sends WHERE issue=? AND list=?", (self.issue, self.list)).fetchone()
        if row:
            return int(row[0])
        if not create:
            return -1
        if self.folder:
            legacy = db.execute("SELECT id FROM sends WHERE issue=? AND list=? AND folder IS NULL",
                                (self.folder, self.list)).fetchone()
            if legacy:
                db.execute("UPDATE sends SET issue=?, folder=? WHERE id=?", (self.issue, self.folder, legacy[0]))
                return int(legacy[0])
        # Several senders sharing a PostgreSQL journal may start the same send at once: one row wins.
        db.execute("INSERT INTO sends (issue, list, folder) VALUES (?, ?, ?) ON CONFLICT (issue, list) DO NOTHING",
                   (self.issue, self.list, self.folder))
        return int(db.execute("SELECT id FROM sends WHERE issue=? AND list=?", (self.issue, self.list)).fetchone()[0])

    # -- opening ---------------------------------------------------------------------------------

    @classmethod
    def open(cls, location: Location, issue: str, list_name: str, folder: str = "") -> Journal:
        """Open (creating) the journal at ``location`` for ``issue`` and ``list_name``."""
        return cls(open_database(location), issue, list_name, folder=folder)

    @classmethod
    def scratch_copy(cls, location: Location | None, issue: str, list_name: str, folder: str = "") -> Journal:
        """An in-memory copy of this send's records at ``location`` (or an empty journal), for a run that must
        leave the real journal untouched (a dry run, a test send)."""
        from .copy import copy_send

        memory = memory_database()
        if location is not None and location.may_exist():
            source = open_database(location, read_only=True)
            try:
                copy_send(source, memory, issue, list_name, folder)
            finally:
                source.close()
        return cls(memory, issue, list_name, folder=folder)

    @classmethod
    def read_only(cls, location: Location, issue: str, list_name: str) -> Journal:
        """The journal at ``location`` opened for reading in place (``status``): no copy, no write."""
        return cls(open_database(location, read_only=True), issue, list_name, create=False)

    def close(self) -> None:
        self.discard_run()
        self.db.close()

    # -- a run is recorded once it sends ----------------------------------------------------------

    def begin_run(self) -> None:
        """Start preparing a run provisionally: everything written from here (this send's row, the run, its
        selection, its holds) is one transaction, committed by ``commit_run`` just before the run's first
        request goes out, or rolled back by ``discard_run``, so that a send refused, declined or with nobody to
        send to leaves nothing behind. The writes inside are savepoints of it (``JournalDB.transaction``)."""
        if self.provisional:
            return
        self.db.begin()
        self.provisional = True
        try:
            with self.db.transaction():
                self.send = self._send_id(True)
        except BaseException:
            self.discard_run()
            raise

    def when_committed(self, action: Callable[[], None]) -> None:
        """Do ``action`` once the provisional run is committed (the sent record in issue.md names it)."""
        self._when_committed.append(action)

    def commit_run(self) -> None:
        """Record the provisional run for good (durably, before the request it precedes), then do what
        waited for it; nothing when the run is not provisional (any later batch, a resume's worker)."""
        if not self.provisional:
            return
        try:
            self.db.commit()
        except BaseException:  # not committed (a full disk): rolled back, so there is no run
            self._forget_run()
            raise
        self.provisional = False
        actions, self._when_committed = self._when_committed, []
        for action in actions:
            action()

    def discard_run(self) -> None:
        """Roll back the provisional run: the journal is as it was before it (no run, no selection)."""
        if not self.provisional:
            return
        self._forget_run()
        self.db.rollback(quietly=True)  # a connection that failed has nothing of it either

    def _forget_run(self) -> None:
        self.provisional = False
        self._when_committed = []
        self.run, self.own_run, self.run_uid = 0, 0, ""

    def transaction(self, durable: bool = True) -> AbstractContextManager[JournalDB]:
        """One transaction on the journal (``JournalDB.transaction``)."""
        return self.db.transaction(durable)


@contextmanager
def _nothing() -> Iterator[None]:
    yield
