"""Pacing a send: ``[send] max_per_hour``, ``[send.domains]`` caps and ``[send] warmup``, from the journal.

``run_paced`` asks ``pacing_rules.plan_now`` how many of each recipient domain may go
now, given the timestamps of every message this journal records as sent in
the last day (all issues and lists: a mailbox provider judges the sender, not
the issue). The rest are set aside as ``waiting`` (``holds``), the send loop
delivers what may go, and then the send waits in place for the next slot
and asks again.

A paced send keeps running until everyone is sent, however long the caps make
it (the caps exist to spread it out). Ctrl-C stops it after the requests under
way, and ``--resume`` continues it later with the same caps, because they are
counted from the journal's timestamps, not from this process's memory.

Several senders sharing a send (a PostgreSQL journal) keep to the caps together:
each decision (``decide``) is taken under one lock for the whole journal, and
counts as used what is sent (or unknown: it may have gone) in the window and
what any sender has claimed or in flight right now; claims take the same lock
shared (``journal/leased.py``), so a decision never sees half of one. A decision
re-decides every pending and waiting row of the send, so whoever decides last
leaves exactly the room that is left pending, whichever sender then claims it.

The clock is injected (``PacingClock``): the system's for a send, and in the tests one that lets an
hour pass at once, so the caps are watched at work at their real size.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Protocol

from ..config import Settings
from ..errors import NewsletterError
from . import holds
from . import journal as jn
from .pacing_rules import DAY, PacingDecision, PacingLimits, domain_of, plan_now, warmup_order


class PacingClock(Protocol):
    """The time pacing decides by and waits on: the system's, or one a test moves on at once."""

    def now(self) -> float:
        """Unix seconds, as the journal's timestamps are."""

    def wait_until(self, moment: float, should_stop: Callable[[], bool]) -> bool:
        """Return at ``moment`` (True), or as soon as ``should_stop()`` says so (False)."""


class SystemClock:
    def now(self) -> float:
        return time.time()

    def wait_until(self, moment: float, should_stop: Callable[[], bool]) -> bool:
        while time.time() < moment:
            if should_stop():
                return False
            time.sleep(min(0.2, max(0.0, moment - time.time())))
        return True


SYSTEM_CLOCK = SystemClock()


def is_paced(settings: Settings) -> bool:
    send = settings.send
    return bool(send.max_per_hour or send.domains or send.warmup)


def warmup_ranks(settings: Settings, list_name: str) -> dict[str, int]:
    """Subscriber key -> place in the warm-up order (most recently active first, as ``doctor --warmup``
    prints it); empty when the list cannot be read (the send then goes in list order)."""
    from ..lists import iter_subscribers

    try:
        ordered = warmup_order(iter_subscribers(settings.list_path(list_name), statuses=("subscribed",)))
    except NewsletterError:
        return {}
    return {sub.key: place for place, sub in enumerate(ordered)}


def run_paced(settings: Settings, journal: jn.Journal, deliver: Callable[[], bool], *,
              should_stop: Callable[[], bool], say: Callable[[str], None] = lambda _: None,
              clock: PacingClock = SYSTEM_CLOCK) -> bool:
    """Deliver everything pending within the caps, waiting for each next slot; False if told to stop."""
    if not is_paced(settings):
        return deliver()
    rank = warmup_ranks(settings, journal.list) if settings.send.warmup else {}
    shared = journal.db.dialect == "postgresql"  # other senders may share this send
    try:
        while True:
            decided = decide(settings, journal, rank, clock=clock)
            if decided is None:
                return True
            decision, waiting = decided
            if decision.total and not deliver():
                return False
            if decision.next_slot_at is None:
                return True  # nothing was held back: the loop has settled everyone it could
            wake = decision.next_slot_at
            if waiting:
                say(f"Pacing ([send] caps): {waiting} recipients wait for the next slot, in "
                    f"{max(0.0, wake - clock.now()) / 60:.1f} minutes (Ctrl-C stops; --resume continues)")
            if not clock.wait_until(wake, should_stop):
                return False
    finally:
        if not shared:  # shared, the waiting rows stay set aside for the others: the next decision frees them
            holds.release(journal, (holds.WAITING,))


def decide(settings: Settings, journal: jn.Journal, rank: Mapping[str, int] | None = None, *,
           clock: PacingClock = SYSTEM_CLOCK) -> tuple[PacingDecision, int] | None:
    """One pacing decision for this send, taken under the journal's pacing lock: every waiting row back to
    pending, then as many as the caps leave room for stay pending and the rest wait. Returns the decision and
    how many wait, or None when nothing is pending."""
    with journal.transaction() as db:
        db.serialize(jn.PACING_LOCK)
        now = clock.now()
        db.execute("UPDATE deliveries SET status='pending', updated=? WHERE send=? AND status=?",
                   (now, journal.send, str(holds.WAITING)))
        rows = db.execute(
            "SELECT id, email, key FROM deliveries WHERE send=? AND run=? AND status='pending' AND attempts < ? "
            "ORDER BY id", (journal.send, journal.run, settings.send.max_attempts)).fetchall()
        if rank:  # warming up: the most recently active subscribers first
            rows.sort(key=lambda row: rank.get(row[2], len(rank)))
        pending = [(row_id, email) for row_id, email, _ in rows]
        if not pending:
            return None
        # Used: sent, or unknown (it may have gone), in the window; and what any sender holds now.
        history = [(t, email) for t, email in db.execute(
            "SELECT updated, email FROM deliveries WHERE status IN ('sent', 'unknown') AND updated > ?",
            (now - DAY,)).fetchall()]
        history += [(now, email) for (email,) in db.execute(
            "SELECT email FROM deliveries WHERE status='in_flight'").fetchall()]
        first = db.execute("SELECT MIN(updated) FROM deliveries WHERE status='sent'").fetchone()[0]
        limits = PacingLimits.from_settings(settings.send, first_send_at=first if first else None, now=now)
        decision = plan_now(history, Counter(domain_of(email) for _, email in pending), limits, now)
        room = dict(decision.allowed)
        waiting = []
        for row_id, email in pending:
            domain = domain_of(email)
            if room.get(domain, 0) > 0:
                room[domain] -= 1
            else:
                waiting.append(row_id)
        if waiting:
            db.execute(f"UPDATE deliveries SET status=? WHERE status='pending' AND id IN {db.id_set}",
                       (str(holds.WAITING), db.ids(waiting)))
    return decision, len(waiting)
