"""Senders sharing a send through the PostgreSQL journal: claims, leases, and what a dead sender leaves.

Two senders here are two ``Journal`` handles on two connections to the same journal, as two machines
would have. A lease runs out on an injected clock, never by waiting.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from journal_fixtures import PASSWORD_ENV, fresh_schema_url

from newsletter.sending import journal as jn
from newsletter.sending.journal.leased import LEASE_SECONDS, LeasedFlight

SENDGRID = jn.Audience("sendgrid", (), ())


class Clock:
    """A clock a test moves by hand."""

    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def location(postgres_url: str) -> jn.Location:
    return jn.Location("postgresql", url=fresh_schema_url(postgres_url), password_env=PASSWORD_ENV)


def _starter(location: jn.Location, rows: int = 20) -> jn.Journal:
    """The process that starts the send: its run, and ``rows`` recipients selected."""
    journal = jn.Journal.open(location, "issue-id", "list")
    journal.runs.start(SENDGRID, "fp", {})
    journal.recipients.select((f"r{i}@example.com", f"r{i}@example.com", f"R {i}", {}) for i in range(rows))
    journal.runs.mark_ready({})
    return journal


def _worker(location: jn.Location, clock: Clock) -> jn.Journal:
    """Another sender joining the starter's run, its leases on ``clock``."""
    journal = jn.Journal.open(location, "issue-id", "list")
    journal.flight = LeasedFlight(journal, clock=clock)
    [run] = journal.runs.history()
    journal.runs.join(run, "fp", {})
    return journal


def _statuses(location: jn.Location) -> dict[str, str]:
    db = jn.open_database(location, read_only=True)
    try:
        return {str(e): str(s) for e, s in db.execute("SELECT email, status FROM deliveries ORDER BY id").fetchall()}
    finally:
        db.close()


@pytest.fixture
def clocks() -> Iterator[tuple[Clock, Clock]]:
    yield Clock(), Clock()


def test_two_senders_never_take_the_same_recipient(location: jn.Location, clocks) -> None:
    first = _starter(location)
    first.flight = LeasedFlight(first, clock=clocks[0])
    second = _worker(location, clocks[1])
    a, b = first.flight.next_pending(8, 3), second.flight.next_pending(8, 3)
    c = first.flight.next_pending(8, 3)
    ids = [r.id for r in a + b + c]
    assert len(ids) == 20 and len(set(ids)) == 20  # everyone once, nobody twice
    assert second.flight.next_pending(8, 3) == []  # nothing left to claim
    # Each sender's claims are its own: they read as in flight to everyone.
    assert first.view.counts()[jn.IN_FLIGHT] == 20
    second.flight.give_back()  # the loop ended without requesting them: back to the queue for the others
    assert {r.id for r in first.flight.next_pending(20, 3)} == {r.id for r in b}
    first.close()
    second.close()


def test_a_lease_that_runs_out_frees_a_silent_senders_batches(location: jn.Location, clocks) -> None:
    """A machine that vanished keeps its database session (and its lock): its lease decides. Its batch under
    way becomes unknown; the batch it had claimed but not requested goes back to the queue; and the silent
    sender, should it wake, can no longer send the batch it lost."""
    clock_a, clock_b = clocks
    starter = _starter(location)
    silent = _worker(location, clock_a)
    under_way = silent.flight.next_pending(5, 3)
    assert silent.flight.mark_in_flight([r.id for r in under_way], "w-1")
    claimed = silent.flight.next_pending(5, 3)  # taken, its request not started yet
    other = _worker(location, clock_b)

    clock_b.now += LEASE_SECONDS - 1  # within the lease: the silent sender's session is alive, nothing moves
    assert other.flight.sweep() == 0
    clock_b.now += 2  # past it
    assert other.flight.sweep() == 10
    status = _statuses(location)
    assert [status[r.email] for r in under_way] == ["unknown"] * 5  # may have been mailed: resolve settles them
    assert [status[r.email] for r in claimed] == ["pending"] * 5  # no request was made for them
    retaken = other.flight.next_pending(20, 3)
    assert {r.id for r in claimed} <= {r.id for r in retaken}

    # The silent sender wakes: its claimed batch is no longer its own, so its request does not go.
    assert not silent.flight.mark_in_flight([r.id for r in claimed], "w-2")
    # Its request under way was answered after all: that is recorded (better than unknown).
    silent.flight.settle_groups({(jn.SENT, "m-1", ""): [r.id for r in under_way]})
    status = _statuses(location)
    assert [status[r.email] for r in under_way] == ["sent"] * 5
    assert [status[r.email] for r in claimed] == ["in_flight"] * 5  # the other sender's now
    for journal in (starter, silent, other):
        journal.close()


def test_a_dead_senders_batches_are_settled_at_once_without_waiting_for_the_lease(location: jn.Location,
                                                                                  clocks) -> None:
    """kill -9: the server drops the dead process's session and its lock; the next look settles its batches,
    although their lease has long to run."""
    clock_a, clock_b = clocks
    starter = _starter(location)
    dead = _worker(location, clock_a)
    under_way = dead.flight.next_pending(4, 3)
    dead.flight.mark_in_flight([r.id for r in under_way], "w-1" + jn.SEQUENTIAL)  # one by one (SMTP)
    dead.flight.settle_groups({(jn.SENT, "", ""): [under_way[0].id]})
    claimed = dead.flight.next_pending(4, 3)
    dead.db.close()  # the process dies: its connection closes without another word
    other = _worker(location, clock_b)  # joining settles what the dead left, at once (clock unchanged)
    status = _statuses(location)
    # Of a sequential request, only the first unanswered recipient can have been under way.
    assert [status[r.email] for r in under_way] == ["sent", "unknown", "pending", "pending"]
    assert [status[r.email] for r in claimed] == ["pending"] * 4
    # A sender that is alive keeps its batches: the starter's claim is untouched by the other's look.
    mine = starter.flight.next_pending(3, 3)
    other.flight.sweep()
    assert [_statuses(location)[r.email] for r in mine] == ["in_flight"] * 3
    starter.close()
    other.close()


def test_a_sender_renews_its_lease_as_it_goes(location: jn.Location, clocks) -> None:
    clock_a, clock_b = clocks
    starter = _starter(location)
    busy = _worker(location, clock_a)
    rows = busy.flight.next_pending(5, 3)
    busy.flight.mark_in_flight([r.id for r in rows], "w-1")
    other = _worker(location, clock_b)
    for _ in range(5):  # a long request: the busy sender's loop renews while it waits for the answer
        clock_a.now += LEASE_SECONDS / 2
        clock_b.now += LEASE_SECONDS / 2
        busy.flight.renew()
        assert other.flight.sweep() == 0
    assert [_statuses(location)[r.email] for r in rows] == ["in_flight"] * 5
    for journal in (starter, busy, other):
        journal.close()
