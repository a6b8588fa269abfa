"""Telling a reader's click from a program's, with the request's address and user agent used and forgotten.

A click on ``/c/<token>`` is counted as a reader's only if it is

- not a HEAD request, and not a prefetch (``Sec-Purpose: prefetch``, ``Purpose: prefetch``,
  ``X-Purpose: preview``, ``X-Moz: prefetch``): link previews and browsers warming a page;
- not within ``[stats] human_after_seconds`` of when the copy was sent (the token says when):
  the mail filters that fetch every link as a message arrives;
- not from a client that also followed this reader's hidden honeypot link, which no person
  sees, before or after (within ``HONEYPOT_WINDOW``).

The last rule needs to know which requests came from one client. ``ScannerMemory`` keeps, in
memory only and for the window, a keyed hash of the client's address and user agent under a
key made at start and never written anywhere; the store receives the verdict alone. So no
address and no user agent is ever stored, and after a restart not even the hashes exist.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

HONEYPOT_WINDOW = 600.0  # seconds: a scanner fetches a message's links in one burst
MEMORY_LIMIT = 100_000  # (client, reader) pairs remembered at most; the oldest go first
PREFETCH_HEADERS = (("sec-purpose", "prefetch"), ("purpose", "prefetch"), ("x-purpose", "preview"),
                    ("x-moz", "prefetch"))

HEAD, PREFETCH, TOO_SOON, HONEYPOT_HIT = "head", "prefetch", "too soon", "honeypot"


def request_reason(method: str, headers: Mapping[str, str], now: float, sent_at: float,
                   human_after: float) -> str:
    """Why a request is not a reader's by its own look ("" when it may be): HEAD, prefetch, too soon."""
    if method == "HEAD":
        return HEAD
    for name, word in PREFETCH_HEADERS:
        if word in headers.get(name, "").lower():
            return PREFETCH
    if now - sent_at < human_after:
        return TOO_SOON
    return ""


@dataclass
class _Seen:
    at: float
    honeypot: bool = False
    clicks: list[int] = field(default_factory=list)  # ids of the clicks recorded from this client for this reader


class ScannerMemory:
    """Which client followed which reader's honeypot link lately (in memory, one process)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, window: float = HONEYPOT_WINDOW,
                 limit: int = MEMORY_LIMIT):
        self._key = os.urandom(32)  # never written: the hashes mean nothing after a restart
        self._clock = clock
        self._window = window
        self._limit = limit
        self._seen: OrderedDict[tuple[bytes, str], _Seen] = OrderedDict()

    def client(self, address: str, user_agent: str) -> bytes:
        """A keyed hash of the client, for this process's memory only."""
        return hashlib.blake2b(f"{address}\n{user_agent}".encode("utf-8", "replace"), key=self._key,
                               digest_size=16).digest()

    def _entry(self, client: bytes, reader: str) -> _Seen:
        now = self._clock()
        while self._seen:  # forget what is older than the window, and the oldest over the limit
            oldest = next(iter(self._seen.values()))
            if now - oldest.at <= self._window and len(self._seen) < self._limit:
                break
            self._seen.popitem(last=False)
        entry = self._seen.pop((client, reader), None)
        if entry is None or now - entry.at > self._window:
            entry = _Seen(now)
        entry.at = now
        self._seen[(client, reader)] = entry
        return entry

    def caught(self, client: bytes, reader: str) -> bool:
        """Whether this client followed this reader's honeypot link within the window."""
        entry = self._seen.get((client, reader))
        return entry is not None and entry.honeypot and self._clock() - entry.at <= self._window

    def clicked(self, client: bytes, reader: str, click_id: int) -> None:
        self._entry(client, reader).clicks.append(click_id)

    def honeypot(self, client: bytes, reader: str) -> list[int]:
        """Note the honeypot hit; the ids of the clicks this client made for this reader before it."""
        entry = self._entry(client, reader)
        entry.honeypot = True
        earlier, entry.clicks = entry.clicks, []
        return earlier
