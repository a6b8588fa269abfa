"""What each part of a ``Journal`` (runs, recipients, flight, view) is given: the journal's core, as a
``Protocol``, and the row the send loop reads back.

The parts depend on this, not on ``journal.py``, which builds them: so ``journal.py`` imports its parts and
no part imports it back.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import NamedTuple, Protocol

from .database import JournalDB


class Row(NamedTuple):
    """A recipient waiting to be sent, as the send loop reads it back (a tuple: made per recipient)."""

    id: int
    key: str
    email: str
    name: str
    fields: str  # the other columns the issue uses, as the journal holds them: a JSON object ("" for none)
    attempts: int


class FlightRecovery(Protocol):
    """What a run's start asks of the flight part: say this sender is alive, settle what dead ones left."""

    def announce(self) -> None: ...

    def recover(self, db: JournalDB) -> None: ...


class JournalCore(Protocol):
    """One (issue, list) pair in a journal database, and the run this process records under."""

    db: JournalDB
    send: int  # the row naming the (issue, list) pair (-1: none yet)
    run: int  # the send run whose recipients this process sends
    own_run: int  # the run this process records what it settled under: ``run``, or its worker run
    run_uid: str  # this process's run's id across journals

    @property
    def flight(self) -> FlightRecovery: ...

    def transaction(self, durable: bool = True) -> AbstractContextManager[JournalDB]: ...

    def commit_run(self) -> None: ...
