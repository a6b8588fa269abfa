"""How hard the send loop may press a provider now: the pure half of riding out provider trouble.

No I/O and no threads: the loop tells a ``Throttle`` what happened (a request
accepted, a timeout, an HTTP error, a probe's answer) and asks it how many
requests may be out, when the next may start, how long each may take, and
whether the send should pause. Time comes from an injected clock, so every
decision here can be tested without waiting.

The rules (``docs/sending.md``, "Provider trouble"):

- concurrency starts at one request and grows by one after each accepted one, up
  to ``[send] concurrency``, the provider's limit and ``[send] max_in_flight``;
- a timeout (the answer never came: the request may have been delivered) makes
  the provider's timeout for the next request twice as long, up to
  ``TIMEOUT_GROWTH`` times the configured one (never beyond ``outage_seconds``),
  allows one request out until one is answered, and starts nothing carrying mail
  until a probe gets an answer; any HTTP answer to the probe, even 404 or 500,
  proves the provider reachable. An answer that comes in under half the grown
  timeout halves it again, back towards the configured one;
- an HTTP 429 or 5xx (nothing was delivered) halves the concurrency, though never
  below two requests where two are allowed, and holds new requests for its
  ``Retry-After``, or else a back-off that doubles from ``[send] backoff_seconds``
  up to ``[send] max_backoff_seconds`` (seconds, not minutes);
- the send pauses only once ``[send] outage_seconds`` have passed without one
  accepted request while there was trouble, and the pause says what was seen.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..config import SendSettings
from ..providers.base import Capabilities

TIMEOUT_GROWTH = 8  # after timeouts, a request may wait up to this many times the configured timeout


@dataclass
class Trouble:
    """What went wrong since the last accepted request, for the pause's message."""

    timeouts: int = 0  # requests carrying mail whose answer never came (their recipients are unknown)
    silent_probes: int = 0  # probes that got no answer (no HTTP status at all)
    unreachable: int = 0  # attempts that reached nobody (connection refused, no route)
    answers: Counter[int] = field(default_factory=Counter)  # HTTP status -> failed answers with it
    last: str = ""  # the latest failure, as the provider described it
    last_at: float = 0.0  # its wall-clock time

    def __bool__(self) -> bool:
        return bool(self.timeouts or self.silent_probes or self.unreachable or self.answers)

    def note(self, reason: str, now: float) -> None:
        self.last, self.last_at = reason, now

    def describe(self) -> str:
        """``12 timeouts, 30 answers HTTP 500; last at 01:02:03 UTC: <what the provider said>``."""
        parts = []
        if self.timeouts:
            parts.append(f"{self.timeouts} timeout{'s' * (self.timeouts != 1)}")
        if self.silent_probes:
            parts.append(f"{self.silent_probes} probe{'s' * (self.silent_probes != 1)} without an answer")
        if self.unreachable:
            parts.append(f"{self.unreachable} attempt{'s' * (self.unreachable != 1)} that reached no server")
        for status, count in sorted(self.answers.items()):
            parts.append(f"{count} answer{'s' * (count != 1)} HTTP {status}")
        when = dt.datetime.fromtimestamp(self.last_at, dt.UTC).strftime("%H:%M:%S UTC")
        return f"{', '.join(parts) or 'no answer'}; last at {when}: {self.last}"


class Throttle:
    """Concurrency, holds, the request timeout and the outage clock of one send loop; see the module docstring."""

    def __init__(self, settings: SendSettings, capabilities: Capabilities, timeout: float, *,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time):
        self.settings = settings
        self.clock = clock
        self.wall = wall
        self.size = max(1, min(settings.batch_size, capabilities.max_batch, settings.max_in_flight))
        self.max_requests = max(1, min(settings.concurrency, capabilities.max_concurrency,
                                       settings.max_in_flight // self.size))
        self.base_timeout = timeout
        self.timeout = timeout  # what the next request (mail or probe) may take
        self.ceiling = max(timeout, min(TIMEOUT_GROWTH * timeout, settings.outage_seconds))
        self.limit = 1  # requests carrying mail allowed out at once now
        self.hold_until = 0.0  # nothing starts before this (Retry-After, back-off)
        self.probing = False  # after a timeout: nothing carrying mail starts until a probe is answered
        self.probe_running = False
        self.streak = 0  # failed tries since the last accepted request (the back-off's exponent)
        self.last_accepted = clock()
        self.trouble = Trouble()

    # -- asking --

    def slots(self, out: Iterable[tuple[float, float]]) -> int:
        """How many requests carrying mail may start now, given those out as (started, timeout)."""
        now = self.clock()
        if self.probing or now < self.hold_until:
            return 0
        count = 0
        for started, timeout in out:
            if now - started > timeout:
                return 0  # one is unanswered past its timeout: the provider may be struggling
            count += 1
        return max(0, self.limit - count)

    def may_probe(self) -> bool:
        return self.probing and not self.probe_running and self.clock() >= self.hold_until

    def outage(self) -> bool:
        """``outage_seconds`` without one accepted request, with trouble seen: pause rather than keep trying."""
        return bool(self.trouble) and self.clock() - self.last_accepted >= self.settings.outage_seconds

    def outage_at(self) -> float | None:
        """When ``outage`` turns true if nothing is accepted before (None: no trouble, no outage coming)."""
        return self.last_accepted + self.settings.outage_seconds if self.trouble else None

    def pause_message(self) -> str:
        return (f"no request was accepted for {self.settings.outage_seconds:g} s; seen since the last accepted "
                f"one: {self.trouble.describe()}")

    def backoff(self, attempt: int) -> float:
        """The wait before try ``attempt + 1``: doubling from ``backoff_seconds``, capped, with jitter."""
        doublings = min(max(0, attempt - 1), 40)  # 2 ** 1024 is no float: a long outage's 1,025th retry crashed
        ceiling = min(self.settings.max_backoff_seconds, self.settings.backoff_seconds * 2.0 ** doublings)
        return ceiling * random.uniform(0.5, 1.0)  # jitter: many senders must not retry in step

    # -- telling --

    def accepted(self) -> None:
        """The provider accepted something (a whole request, or one SMTP recipient): it works."""
        self.last_accepted = self.clock()
        self.trouble = Trouble()
        self.streak = 0

    def answered(self, elapsed: float) -> None:
        """A request carrying mail was answered after ``elapsed`` seconds: one more may be out at once,
        and an answer well inside a grown timeout brings the timeout back towards the configured one."""
        self.accepted()
        self.probing = False
        self.limit = min(self.max_requests, self.limit + 1)
        if elapsed < self.timeout / 2:
            self.timeout = max(self.base_timeout, self.timeout / 2)

    def failed(self, reason: str, status: int | None, retry_after: float | None) -> float:
        """An answer refusing for now (HTTP ``status`` 429 or 5xx), or an attempt that reached no server
        (``status`` None); nothing was delivered. Returns how long to hold new requests."""
        if status is None:
            self.trouble.unreachable += 1
            floor = 1
        else:
            self.trouble.answers[status] += 1
            floor = min(2, self.max_requests)  # a retry carries no risk of a duplicate: not one at a time
        self.trouble.note(reason, self.wall())
        self.streak += 1
        self.limit = max(floor, self.limit // 2)
        delay = retry_after if retry_after is not None else self.backoff(self.streak)
        self.hold_until = max(self.hold_until, self.clock() + delay)
        return delay

    def timed_out(self, reason: str, timeout: float) -> None:
        """A request given ``timeout`` seconds got no answer: it may have been delivered. Wait longer for
        the next, one at a time, once a probe shows the provider answers."""
        self.trouble.timeouts += 1
        self.trouble.note(reason, self.wall())
        self.limit = 1
        self.probing = True
        self._grow(timeout)

    def probe_started(self) -> float:
        """A probe goes out now; returns its timeout."""
        self.probe_running = True
        return self.timeout

    def probed(self, reason: str | None, status: int | None, timeout: float) -> None:
        """The probe's outcome: ``reason`` None, or any HTTP ``status`` (404, 401, 500...), means the provider
        answered and is reachable; otherwise no answer came within ``timeout``."""
        self.probe_running = False
        if reason is None or status is not None:
            self.probing = False  # one request carrying mail next (limit is 1), with the grown timeout
            if reason is not None and status is not None:
                self.trouble.note(f"the probe was answered HTTP {status}: {reason}", self.wall())
            return
        self.trouble.silent_probes += 1
        self.trouble.note(f"the probe got no answer: {reason}", self.wall())
        self.streak += 1
        self._grow(timeout)
        self.hold_until = max(self.hold_until, self.clock() + self.backoff(self.streak))

    def _grow(self, timeout: float) -> None:
        if timeout >= self.timeout:  # not again for each request that was out with the old timeout
            self.timeout = min(self.ceiling, self.timeout * 2)
