"""Requests under way: the threads that make them and the one queue their news comes back through.

The send loop is the only thread that touches the journal. Each request runs in
a thread of its own and reports through an ``Inbox`` of events: a chunk of
outcomes (the thread then waits until the loop has journaled it, so a crash
leaves the least unknown), the request's end, a probe's answer, a body built by
a worker process, or a wake-up (Ctrl-C). The loop blocks on the inbox, never on
a timer, so it hears of each of these the moment it happens.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..providers.base import Accepted, Delivery, Payload, Provider, ProviderError
from . import journal as jn


@dataclass(eq=False)
class Request:
    """A request under way: its rows (in flight), those not yet reported, when it started, how long it may take."""

    number: int
    rows: list[jn.Row]
    payload: Payload[Any]
    started: float
    timeout: float
    open: dict[str, jn.Row] = field(default_factory=dict)  # key -> row, until the provider reports it
    built_by_worker: bool = False
    journaled: threading.Event = field(default_factory=threading.Event)  # the last chunk is on record
    abandoned: bool = False  # the loop is leaving: deliver nothing more

    def leave(self) -> None:
        """The loop is leaving: the thread delivers nothing more and stops waiting for the journal."""
        self.abandoned = True
        self.journaled.set()


@dataclass(frozen=True)
class Chunk:
    """Outcomes of some of a request's recipients, to journal before the request goes on."""

    request: Request
    outcomes: Accepted | list[Delivery]


@dataclass(frozen=True)
class Done:
    """A request is over: ``error`` None when the provider answered it, else what went wrong."""

    request: Request
    error: BaseException | None


@dataclass(frozen=True)
class Probed:
    """A probe's outcome: ``error`` None when answered; ``status`` the HTTP status of an error answer."""

    error: BaseException | None
    timeout: float

    @property
    def status(self) -> int | None:
        return self.error.status if isinstance(self.error, ProviderError) else None


@dataclass(frozen=True)
class Built:
    """A body worker finished (or failed) building a request: ``future`` holds its ``Encoded``."""

    future: Future[Any]


@dataclass(frozen=True)
class Wake:
    """Nothing happened but the loop should look again (the first Ctrl-C)."""


Event = Chunk | Done | Probed | Built | Wake


class Inbox:
    """The events for the loop, from any thread (a signal handler too: ``SimpleQueue.put`` is reentrant)."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._early: list[Event] = []  # taken while idling, handled next

    def put(self, event: Event) -> None:
        self._queue.put(event)

    def keep(self, event: Event) -> None:
        """Hold an event taken while idling for the next ``get``."""
        self._early.append(event)

    def get(self, timeout: float) -> Event | None:
        """The next event, waiting at most ``timeout`` seconds (0: not at all); None if none came."""
        if self._early:
            return self._early.pop(0)
        try:
            return self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
        except queue.Empty:
            return None

    def drain(self) -> Iterator[Event]:
        """Every event already waiting, without waiting for more."""
        while (event := self.get(0)) is not None:
            yield event


class RequestThreads:
    """Threads making the requests and probes, reporting to ``inbox``."""

    def __init__(self, provider: Provider[Any], inbox: Inbox, threads: int):
        self.provider = provider
        self.inbox = inbox
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="send")

    def start(self, request: Request) -> None:
        # The provider reads its timeout as the request starts; while it is grown after a timeout,
        # one request is out at a time, so no request started earlier reads the new value.
        self.provider.timeout = request.timeout
        self._pool.submit(self._post, request)

    def probe(self, timeout: float) -> None:
        self._pool.submit(self._probe, timeout)

    def close(self, *, wait: bool) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=True)

    def _post(self, request: Request) -> None:
        """Deliver, handing each chunk of outcomes to the loop as it arrives, and going on only once the
        loop has journaled it."""
        outcomes = self.provider.deliver(request.payload)
        try:
            for chunk in outcomes:
                self.inbox.put(Chunk(request, chunk))
                request.journaled.wait()
                request.journaled.clear()
                if request.abandoned:
                    if isinstance(outcomes, Generator):
                        outcomes.close()  # stop before the next recipient
                    break
        except BaseException as err:  # noqa: BLE001 - the loop decides what it means
            self.inbox.put(Done(request, err))
            return
        self.inbox.put(Done(request, None))

    def _probe(self, timeout: float) -> None:
        try:
            self.provider.probe(timeout)
        except BaseException as err:  # noqa: BLE001 - the loop decides what it means
            self.inbox.put(Probed(err, timeout))
            return
        self.inbox.put(Probed(None, timeout))
