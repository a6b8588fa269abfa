"""Abuse limits on sign-ups: a honeypot, per-client and per-address rate limits, a daily mail cap.

Rate limits are sliding windows kept in memory (per instance: a burst is
stopped where it lands). The daily cap on confirmation mails counts the
store's ``subscribed`` events, so it holds across restarts and instances,
and nobody can make the service mail one address more than a few times a day.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import deque

from ..config import ServeSettings
from .store import SUBSCRIBED, EventStore, now_utc, stamp

HONEYPOT_FIELD = "website"  # hidden from people (and labelled "leave empty"); bots fill it in


class SlidingWindow:
    """At most ``limit`` hits per key in any ``seconds``; forgets keys that go quiet."""

    def __init__(self, limit: int, seconds: float, clock=time.monotonic):
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
        self._per_address = SlidingWindow(settings.requests_per_address, settings.rate_window_seconds)
        self._per_day = settings.confirmations_per_day
        self._store = store

    def too_many(self, client: str, list_name: str, key: str) -> bool:
        """True when this client or this address has asked too often (the request is then refused, 429)."""
        return not (self._per_client.allow(client) and self._per_address.allow(f"{list_name}\n{key}"))

    def mails_left_today(self, list_name: str, key: str) -> bool:
        since = stamp(now_utc() - dt.timedelta(days=1))
        return self._store.count_since(list_name, key, SUBSCRIBED, since) < self._per_day
