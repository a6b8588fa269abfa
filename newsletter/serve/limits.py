"""Abuse limits on sign-ups: a honeypot, per-client and per-mailbox rate limits, a daily mail cap.

Rate limits are sliding windows kept in memory (per instance: a burst is
stopped where it lands). The daily cap on confirmation mails counts the mails
the provider accepted, recorded in the store, so it holds across restarts and
instances; a mail that failed counts for nothing, so a provider outage does not
lock a reader out for a day. Limits are per mailbox, not per address as typed:
``reader+1@`` and ``Reader+2@`` reach the same inbox, so nobody can make the
service mail one inbox more than a few times a day.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import deque
from collections.abc import Callable

from ..config import ServeSettings
from .store import EventStore, now_utc, stamp

HONEYPOT_FIELD = "website"  # hidden from people (and labelled "leave empty"); bots fill it in
# Domains whose mailboxes ignore dots in the local part (r.e.a.d.e.r@gmail.com is reader@gmail.com).
DOTLESS_DOMAINS = frozenset({"gmail.com", "googlemail.com"})


def mailbox_key(key: str) -> str:
    """The inbox an address (its list key, already lowercased) reaches, for limits and caps.

    Sub-addressing is dropped (``reader+news@example.com`` reaches ``reader@example.com``, RFC 5233's
    common form), and for Gmail the dots of the local part too. Only limits use this: the list keeps the
    address the reader gave.
    """
    local, at, domain = key.lower().rpartition("@")
    if not at or not local:
        return key.lower()
    base = local.split("+", 1)[0] or local  # "+tag@" alone is an address of its own, not an empty mailbox
    if domain in DOTLESS_DOMAINS:
        base = base.replace(".", "") or base
        domain = "gmail.com"
    return f"{base}@{domain}"


class SlidingWindow:
    """At most ``limit`` hits per key in any ``seconds``; forgets keys that go quiet."""

    def __init__(self, limit: int, seconds: float, clock: Callable[[], float] = time.monotonic):
        self.limit, self.seconds, self._clock = limit, seconds, clock
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        """Count a hit for ``key``; False (and not counted) when it is over the limit."""
        now = self._clock()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.seconds:
                hits.popleft()
            if len(hits) >= self.limit:
                return False
            hits.append(now)
            if len(self._hits) > 100_000:  # bound memory under a flood of distinct keys
                self._hits = {k: v for k, v in self._hits.items() if v and v[-1] > now - self.seconds}
            return True


class SignUpLimits:
    """Every check a subscribe POST passes before a confirmation mail goes out."""

    def __init__(self, settings: ServeSettings, store: EventStore):
        self._per_client = SlidingWindow(settings.requests_per_ip, settings.rate_window_seconds)
        self._per_mailbox = SlidingWindow(settings.requests_per_address, settings.rate_window_seconds)
        self._per_day = settings.confirmations_per_day
        self._store = store

    def too_many(self, client: str, mailbox: str) -> bool:
        """True when this client or this mailbox has asked too often (the request is then refused, 429)."""
        return not (self._per_client.allow(client) and self._per_mailbox.allow(mailbox))

    def mails_left_today(self, mailbox: str) -> bool:
        """Whether fewer than ``confirmations_per_day`` confirmation mails reached ``mailbox`` in 24 hours."""
        since = stamp(now_utc() - dt.timedelta(days=1))
        return self._store.confirmations_since(mailbox, since) < self._per_day
