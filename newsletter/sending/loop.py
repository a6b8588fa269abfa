"""The send loop: batches out, answers back, a small grey zone, and riding out provider trouble.

One thread (this loop's) touches the journal. A batch is committed as in flight
just before its request starts, and each outcome is committed as soon as the
provider reports it (SMTP: recipient by recipient; SendGrid: the request at once).
The pieces, each with one job:

- ``throttle.Throttle`` decides how many requests may be out, when the next may
  start, how long each may take and when to pause (pure, on an injected clock);
- ``posting`` runs the requests and probes in threads, reporting through one inbox;
- ``outcomes.Outcomes`` journals what the provider said and what it means;
- ``bodies.Bodies`` hands large sends' batches to worker processes and survives their death.

This module takes batches from the journal, starts their requests, and waits on
the inbox for news: never on a timer, only until the next moment something is
due (a hold's end, a request's timeout, a retry, the outage limit).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ..compose.unsubscribe import UnsubscribeLinks
from ..errors import NewsletterError
from ..providers import registry
from ..providers.base import Payload, Provider, RejectedError, request_labels
from . import journal as jn
from .bodies import Bodies
from .outcomes import Outcomes
from .plan import SendPlan
from .posting import Built, Chunk, Done, Event, Inbox, Probed, Request, RequestThreads, Wake
from .report import SendReport
from .throttle import Throttle
from .workers import recipients_of

HEARTBEAT = 1.0  # the longest wait without news: a shared journal's lease is renewed on this beat


class StopFlag:
    """Set by the first Ctrl-C: finish the requests under way, then stop. Setting it wakes the loop."""

    def __init__(self) -> None:
        self._requested = False
        self.wake: Callable[[], None] | None = None

    @property
    def requested(self) -> bool:
        return self._requested

    @requested.setter
    def requested(self, value: bool) -> None:
        self._requested = value
        if value and self.wake is not None:
            self.wake()


Progress = Callable[[SendReport], None]


class Loop:
    """Deliver every pending recipient of a plan through a provider; see the module docstring."""

    def __init__(self, plan: SendPlan, provider: Provider[Any], report: SendReport, *, progress: Progress | None = None,
                 stop: StopFlag | None = None, clock: Callable[[], float] = time.monotonic):
        self.plan = plan
        self.provider = provider
        self.report = report
        self.progress = progress
        self.stop = stop or StopFlag()
        self.clock = clock
        self.settings = plan.settings.send
        self.throttle = Throttle(self.settings, provider.capabilities, provider.timeout, clock=clock)
        self.outcomes = Outcomes(plan.journal, report, self.throttle, max_attempts=self.settings.max_attempts,
                                 sequential=provider.capabilities.sequential)
        self.inbox = Inbox()
        self.links = UnsubscribeLinks(plan.settings, plan.list_name, plan.secret,
                                    registry.kind_or_none(plan.provider_name))
        self.numbers = 0
        self.posting: dict[int, Request] = {}

    @property
    def journal(self) -> jn.Journal:
        return self.plan.journal

    def may_continue(self) -> bool:
        return not (self.stop.requested or self.outcomes.fatal or self.throttle.outage())

    # -- the loop ----------------------------------------------------------------------------------

    def run(self) -> None:
        bodies = Bodies(self.plan, self.provider, self.report, self.inbox, self.outcomes)
        threads = RequestThreads(self.provider, self.inbox, self.throttle.max_requests + 1)
        self.stop.wake = lambda: self.inbox.put(Wake())
        base_timeout = self.provider.timeout
        abandoned = False
        try:
            self.deliver(bodies, threads)
        except KeyboardInterrupt:
            abandoned = True
            bodies.cancel()
            self.outcomes.abandon(self.posting.values(),
                                  [event for event in self.inbox.drain() if isinstance(event, Chunk)])
            raise
        finally:
            self.stop.wake = None
            for request in self.posting.values():  # leaving (an error, Ctrl-C): no request goes on to deliver more
                request.leave()
            threads.close(wait=not abandoned)
            self.provider.timeout = base_timeout
            bodies.close()
            self.give_back()
        if self.outcomes.fatal:
            raise self.outcomes.fatal
        if self.stop.requested:
            self.report.interrupted = True
        elif self.throttle.outage():
            self.report.paused = self.throttle.pause_message()

    def deliver(self, bodies: Bodies, threads: RequestThreads) -> None:
        cursor = 0
        throttle = self.throttle
        while True:
            self.journal.flight.renew()  # a shared journal: this sender's leases, and dead senders' batches
            while bodies.built and self.slots():
                rows, payload = bodies.built.pop(0)
                self.launch(threads, rows, payload, by_worker=True)
            cursor = self.fill(cursor, bodies, threads)
            if not self.posting and throttle.may_probe() and self.may_continue():
                threads.probe(throttle.probe_started())
            if not self.posting and not bodies.busy and not throttle.probe_running:
                if not self.may_continue():
                    return
                wake = self.next_wake(bodies)
                if wake is None:
                    return
                self.idle(wake)
                continue
            answered = self.handle(self.next_event(), bodies)
            for event in self.inbox.drain():  # everything else already waiting, before deciding again
                answered = self.handle(event, bodies) or answered
            if self.progress and answered:
                self.progress(self.report)

    def fill(self, cursor: int, bodies: Bodies, threads: RequestThreads) -> int:
        """Take batches from the journal while there is room, to build here or in a worker; the new cursor."""
        split = self.outcomes.split
        while self.room(bodies):
            rows = split.pop(0) if split else self.take(cursor)
            if not rows and cursor and not bodies.busy and not bodies.built:
                cursor = 0  # back to the start of the queue, for retries
                rows = self.take(cursor)
            if not rows:
                break
            cursor = max(cursor, rows[-1].id)
            if not (bodies.ready and bodies.submit(rows)):
                self.prepare_and_launch(threads, rows)
        return cursor

    def slots(self) -> int:
        if not self.may_continue():
            return 0
        return self.throttle.slots((r.started, r.timeout) for r in self.posting.values())

    def room(self, bodies: Bodies) -> bool:
        """Whether to take another batch from the journal now."""
        if not self.may_continue():
            return False
        if not bodies.ready:
            return self.slots() > 0
        return bodies.room() and not self.throttle.probing

    def give_back(self) -> None:
        """Rows this sender took but never requested go back to the queue (a shared journal: for the other
        senders); if the journal cannot be written now, the next sender to look settles them."""
        try:
            self.journal.flight.give_back()
        except NewsletterError:
            pass

    def take(self, cursor: int) -> list[jn.Row]:
        """The next batch from the journal; while the list is still being selected, a step of it first
        (so the selection keeps ahead of the loop), and more until there is a batch or the list is done."""
        selection = self.plan.selection
        size, attempts = self.throttle.size, self.settings.max_attempts
        if selection is not None and not selection.done:
            self.selected(selection.advance())
        rows = self.journal.flight.next_pending(size, attempts, cursor)
        while selection is not None and len(rows) < size and self.selected(selection.advance()):
            rows = self.journal.flight.next_pending(size, attempts, cursor)
        return rows

    def selected(self, count: int) -> int:
        """``count`` more recipients selected while sending: each is new and pending (the send is fresh)."""
        self.report.selected += count
        self.report.to_send += count
        return count

    # -- waiting -----------------------------------------------------------------------------------

    def next_wake(self, bodies: Bodies) -> float | None:
        """When there may be something to do again (a retry's time, a hold's end, a probe), or None: done."""
        throttle = self.throttle
        times = []
        retry_at = self.journal.flight.next_retry_time(self.settings.max_attempts)
        if retry_at is not None:
            times.append(self.clock() + max(0.0, retry_at - time.time()))
        if bodies.built or throttle.probing or self.outcomes.split:
            times.append(max(throttle.hold_until, self.clock()))
        if not times:
            return None
        return max(min(times), throttle.hold_until if (throttle.probing or bodies.built) else 0.0)

    def idle(self, until: float) -> None:
        """Wait, with nothing under way, until ``until`` on the loop's clock (or Ctrl-C, or the outage limit)."""
        outage_at = self.throttle.outage_at()
        if outage_at is not None:
            until = min(until, outage_at)
        while not self.stop.requested and self.clock() < until:
            self.journal.flight.renew()
            event = self.inbox.get(min(HEARTBEAT, until - self.clock()))
            if event is not None and not isinstance(event, Wake):
                self.inbox.keep(event)
                return

    def next_event(self) -> Event | None:
        """The next news, or None once something may be due (a hold's end, a request past its timeout).
        While the list is still being selected, waiting is selecting: a step whenever no news is in."""
        now = self.clock()
        until = now + HEARTBEAT
        for due in (*(r.started + r.timeout for r in self.posting.values()), self.throttle.hold_until):
            if due > now:  # (a request past its timeout is already known to be: its thread says when it ends)
                until = min(until, due)
        selection = self.plan.selection
        while selection is not None and not selection.done and self.may_continue():
            event = self.inbox.get(0)
            if event is not None:
                return event
            self.selected(selection.advance())
            if self.clock() >= until:
                return None
        return self.inbox.get(max(0.001, until - self.clock()))

    # -- starting requests -------------------------------------------------------------------------

    def prepare_and_launch(self, threads: RequestThreads, rows: list[jn.Row]) -> None:
        """Make the recipients and the payload here; a recipient whose data is unsafe fails here alone."""
        recipients, refused = recipients_of(rows, self.links, self.plan.readers)
        sendable = self.outcomes.refuse(rows, refused)
        if not sendable:
            return
        try:
            payload = self.provider.encode(self.plan.message, recipients)
        except RejectedError as err:
            self.outcomes.rejected(sendable, err)
            return
        except NewsletterError as err:
            self.outcomes.stop_with(err)
            return
        except Exception as err:  # noqa: BLE001 - a bug while building the request: none of it was sent
            self.outcomes.stop_with(NewsletterError(
                f"could not build the request for {len(sendable)} recipients ({type(err).__name__}: {err}); "
                "nothing in it was sent", hint="report this as a bug; the send resumes where it stopped"))
            return
        self.launch(threads, sendable, payload)

    def launch(self, threads: RequestThreads, rows: list[jn.Row], payload: Payload[Any],
               by_worker: bool = False) -> None:
        """Commit the rows as in flight, then start their request (refused keys fail alone first)."""
        rows = self.outcomes.refuse_keys(rows, payload.refused)
        if not rows or not payload.keys:
            return
        self.numbers += 1
        ordered = jn.SEQUENTIAL if self.provider.capabilities.sequential else ""
        label = f"{self.journal.own_run or self.journal.run}-{self.numbers}{ordered}"  # unique among the senders
        label = self.journal.flight.mark_in_flight([row.id for row in rows], label)
        if not label:
            return  # no longer this sender's (its lease ran out and another settled them): not sent from here
        payload = payload._replace(labels=request_labels(self.journal.run_uid, label))  # the provider's own record
        request = Request(self.numbers, rows, payload, self.clock(), self.throttle.timeout,
                          {row.key: row for row in rows}, by_worker)
        self.posting[request.number] = request
        threads.start(request)

    # -- news --------------------------------------------------------------------------------------

    def handle(self, event: Event | None, bodies: Bodies) -> bool:
        """Act on one event; True when a request finished (worth a progress line)."""
        if isinstance(event, Chunk):
            try:
                self.outcomes.record(event.request, event.outcomes)
            finally:
                event.request.journaled.set()
        elif isinstance(event, Done):
            self.posting.pop(event.request.number, None)
            self.outcomes.finished(event.request, event.error, self.clock() - event.request.started)
            return True
        elif isinstance(event, Built):
            bodies.collect(event.future, self.may_continue())
        elif isinstance(event, Probed):
            self.throttle.probed(None if event.error is None else str(event.error), event.status, event.timeout)
        return False


@contextmanager
def few_collections() -> Iterator[None]:
    """Collect garbage rarely while the send loop runs.

    The loop makes a few short-lived objects per recipient and keeps them until
    their batch is settled; with the default thresholds Python's cycle collector
    ran every few hundred recipients and re-walked everything loaded (templates,
    lxml, the HTTP stack). What exists before the loop is frozen for its duration
    and young objects are examined every 50,000 allocations instead of 700.
    """
    threshold = gc.get_threshold()
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    gc.set_threshold(50_000, *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        if freeze:
            gc.unfreeze()
