"""The send loop: batches out, answers back, a small grey zone, and back-off instead of giving up.

One thread (this loop's) touches the journal. A batch is committed as in flight
just before its request starts, and each outcome is committed as soon as the
provider reports it (SMTP: recipient by recipient; SendGrid: the request at once).
Requests run in threads and report through one queue of events.

How much is at risk at once (the grey zone, whose outcome a crash would leave
unknown) is kept small:

- requests start one at a time and grow by one after each success, up to
  ``[send] concurrency``, the provider's limit and ``[send] max_in_flight`` recipients;
- a timeout, 429 or 5xx halves the number of concurrent requests and honours
  Retry-After; a request unanswered past its timeout stops new ones, and after a
  timeout nothing carrying mail starts until a probe (a request that delivers
  nothing) is answered, so a slow provider costs at most the requests already out;
- the send pauses, resumably, only after ``[send] outage_seconds`` without one
  accepted request, not after a count of fast failures.
"""

from __future__ import annotations

import gc
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import BrokenExecutor, Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

from ..errors import NewsletterError
from ..providers.base import (
    DEFERRED,
    Accepted,
    FAILED,
    SENT,
    OutcomeUnknownError,
    Payload,
    Provider,
    RejectedError,
    TransientError,
    request_labels,
)
from ..compose.unsubscribe import UnsubscribeLinks
from . import journal as jn
from .plan import SendPlan
from .report import SendReport
from .workers import BodyContext, BodyWorkers, recipients_of


class StopFlag:
    """Set by the first Ctrl-C: finish the requests under way, then stop."""

    requested = False


Progress = Callable[[SendReport], None]


@dataclass
class _Request:
    """A request under way: its rows (in flight), those not yet reported, and when it started."""

    number: int
    rows: list[jn.Row]
    payload: Payload
    started: float
    open: dict[str, jn.Row] = field(default_factory=dict)  # key -> row, until the provider reports it
    built_by_worker: bool = False
    journaled: threading.Event = field(default_factory=threading.Event)  # the last chunk is on record
    abandoned: bool = False  # the loop is leaving: deliver nothing more

class Loop:
    """Deliver every pending recipient of a plan through a provider; see the module docstring."""

    def __init__(self, plan: SendPlan, provider: Provider, report: SendReport, *, progress: Progress | None = None,
                 stop: StopFlag | None = None, clock: Callable[[], float] = time.monotonic):
        self.plan = plan
        self.provider = provider
        self.report = report
        self.progress = progress
        self.stop = stop or StopFlag()
        self.clock = clock
        self.settings = plan.settings.send
        caps = provider.capabilities
        self.size = max(1, min(self.settings.batch_size, caps.max_batch, self.settings.max_in_flight))
        self.max_requests = max(1, min(self.settings.concurrency, caps.max_concurrency,
                                       self.settings.max_in_flight // self.size))
        self.limit = 1  # concurrent requests allowed now: one, growing after each success
        self.hold_until = 0.0  # no request starts before this (Retry-After)
        self.probing = False  # after a timeout: nothing carrying mail starts until a probe is answered
        self.probe_timeout = provider.timeout
        self.probe_running = False
        self.transient_streak = 0
        self.last_accepted = clock()
        self.last_failure = ""
        self.numbers = 0
        self.fatal: BaseException | None = None
        self.events: queue.SimpleQueue = queue.SimpleQueue()
        self.links = UnsubscribeLinks(plan.settings, plan.list_name, plan.secret, plan.provider_name)
        self.split: list[list[jn.Row]] = []  # halves of a refused batch, sent before the rest
        self.late_events: list = []  # answers that arrived while idling

    @property
    def journal(self) -> jn.Journal:
        return self.plan.journal

    # -- deciding ----------------------------------------------------------------------------------

    def outage(self) -> bool:
        """No request accepted for ``outage_seconds`` while failing: pause rather than keep trying."""
        return bool(self.last_failure) and self.clock() - self.last_accepted >= self.settings.outage_seconds

    def may_continue(self) -> bool:
        return not (self.stop.requested or self.fatal or self.outage())

    def slots(self, posting: dict[int, _Request]) -> int:
        """How many requests carrying mail may start now."""
        now = self.clock()
        if not self.may_continue() or self.probing or now < self.hold_until:
            return 0
        if any(now - r.started > self.provider.timeout for r in posting.values()):
            return 0  # one is unanswered past its timeout: the provider may be struggling
        return max(0, self.limit - len(posting))

    def succeeded(self) -> None:
        self.last_accepted = self.clock()
        self.last_failure = ""
        self.transient_streak = 0
        self.limit = min(self.max_requests, self.limit + 1)

    def struggled(self, reason: str, retry_after: float | None = None) -> float:
        """A 429, 5xx or refused connection: halve the concurrency, wait; returns the wait."""
        self.last_failure = reason
        self.transient_streak += 1
        self.limit = max(1, self.limit // 2)
        delay = retry_after if retry_after is not None else self.backoff(self.transient_streak)
        self.hold_until = max(self.hold_until, self.clock() + delay)
        return delay

    def backoff(self, attempt: int) -> float:
        doublings = min(max(0, attempt - 1), 40)  # 2 ** 1024 is no float: a long outage's 1,025th retry crashed
        ceiling = min(self.settings.max_backoff_seconds, self.settings.backoff_seconds * 2 ** doublings)
        return ceiling * random.uniform(0.5, 1.0)  # jitter: many senders must not retry in step

    # -- the loop ----------------------------------------------------------------------------------

    def run(self) -> None:
        posting: dict[int, _Request] = {}
        encoding: dict[Future, list[jn.Row]] = {}
        built: list[tuple[list[jn.Row], Payload]] = []
        cursor = 0
        bodies = self.body_workers()
        self.report.body_workers = bodies.processes if bodies else 0
        pool = ThreadPoolExecutor(max_workers=self.max_requests + 1, thread_name_prefix="send")
        abandoned = False
        try:
            while True:
                self.journal.flight.renew()  # a shared journal: this sender's leases, and dead senders' batches
                while built and self.slots(posting):
                    rows, payload = built.pop(0)
                    self.launch(pool, posting, rows, payload, by_worker=True)
                while self.room(posting, encoding, built, bodies):
                    rows = self.split.pop(0) if self.split else self.take(cursor)
                    if not rows and cursor and not encoding and not built:
                        cursor = 0  # back to the start of the queue, for retries
                        rows = self.take(cursor)
                    if not rows:
                        break
                    cursor = max(cursor, rows[-1].id)
                    if bodies is not None and bodies.ready:
                        try:
                            future = bodies.submit(rows)
                        except BrokenExecutor as err:
                            self.worker_failed(err)
                            break
                        encoding[future] = rows
                        future.add_done_callback(lambda f: self.events.put(("encoded", f)))
                    else:
                        self.prepare_and_launch(pool, posting, rows)
                if self.probing and not posting and not self.probe_running and self.may_continue() \
                        and self.clock() >= self.hold_until:
                    self.probe_running = True
                    timeout = self.probe_timeout
                    pool.submit(self.run_probe, timeout)
                if not posting and not encoding and not self.probe_running:
                    if not self.may_continue():
                        break
                    wake = self.next_wake(built)
                    if wake is None:
                        break
                    self.idle(wake)
                    continue
                answered = self.handle(self.next_event(), posting, encoding, built)
                while True:  # everything else already waiting, before deciding again
                    try:
                        event = self.events.get_nowait()
                    except queue.Empty:
                        break
                    answered = self.handle(event, posting, encoding, built) or answered
                if self.progress and answered:
                    self.progress(self.report)
        except KeyboardInterrupt:
            abandoned = True
            self.abandon(encoding, posting)
            raise
        finally:
            for request in posting.values():  # leaving (an error, Ctrl-C): no request goes on to deliver more
                request.abandoned = True
                request.journaled.set()
            pool.shutdown(wait=not abandoned, cancel_futures=True)
            if bodies is not None:
                bodies.close()
                self.plan.bodies = None
            self.give_back()
        if self.fatal:
            raise self.fatal
        if self.stop.requested:
            self.report.interrupted = True
        elif self.outage():
            self.report.paused = (f"no request was accepted for {self.settings.outage_seconds:g} s; last: "
                                  f"{self.last_failure}")

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
        if selection is not None and not selection.done:
            self.selected(selection.advance())
        rows = self.journal.flight.next_pending(self.size, self.settings.max_attempts, cursor)
        while selection is not None and len(rows) < self.size and self.selected(selection.advance()):
            rows = self.journal.flight.next_pending(self.size, self.settings.max_attempts, cursor)
        return rows

    def selected(self, count: int) -> int:
        """``count`` more recipients selected while sending: each is new and pending (the send is fresh)."""
        self.report.selected += count
        self.report.to_send += count
        return count

    def room(self, posting, encoding, built, bodies: BodyWorkers | None) -> bool:
        """Whether to take another batch from the journal now."""
        if not self.may_continue():
            return False
        if bodies is None or not bodies.ready:
            return self.slots(posting) > 0
        return len(encoding) + len(built) <= bodies.processes and not self.probing

    def next_wake(self, built) -> float | None:
        """When there may be something to do again (a retry's time, a hold's end, a probe), or None: done."""
        times = []
        retry_at = self.journal.flight.next_retry_time(self.settings.max_attempts)
        if retry_at is not None:
            times.append(self.clock() + max(0.0, retry_at - time.time()))
        if built or self.probing or self.split:
            times.append(max(self.hold_until, self.clock()))
        if not times:
            return None
        return max(min(times), self.hold_until if (self.probing or built) else 0.0)

    def idle(self, until: float) -> None:
        """Wait (waking for Ctrl-C and the outage limit) until ``until`` on the loop's clock."""
        while not self.stop.requested and self.clock() < until and not self.outage():
            self.journal.flight.renew()
            try:
                event = self.events.get(timeout=min(0.2, max(0.0, until - self.clock())))
            except queue.Empty:
                continue
            self.late_events.append(event)

    def next_event(self) -> Any:
        """The next answer, or None after a moment (so a hold's end or a timeout is noticed). While
        the list is still being selected, waiting is selecting: a step whenever no answer is in."""
        if self.late_events:
            return self.late_events.pop(0)
        selection = self.plan.selection
        until = self.clock() + 0.1
        while selection is not None and not selection.done and self.may_continue():
            try:
                return self.events.get_nowait()
            except queue.Empty:
                self.selected(selection.advance())
            if self.clock() >= until:
                return None  # as after a wait: time to look at holds and timeouts again
        try:
            return self.events.get(timeout=0.1)
        except queue.Empty:
            return None

    # -- starting requests -------------------------------------------------------------------------

    def prepare_and_launch(self, pool, posting, rows: list[jn.Row]) -> None:
        """Make the recipients and the payload here; a recipient whose data is unsafe fails here alone."""
        recipients, refused = recipients_of(rows, self.links, self.plan.readers)
        sendable = self.refuse(rows, refused)
        if not sendable:
            return
        try:
            payload = self.provider.encode(self.plan.message, recipients)
        except RejectedError as err:
            self.rejected(sendable, err)
            return
        except NewsletterError as err:
            self.fatal = self.fatal or err
            return
        except Exception as err:  # noqa: BLE001 - a bug while building the request: none of it was sent
            self.fatal = self.fatal or NewsletterError(
                f"could not build the request for {len(sendable)} recipients ({type(err).__name__}: {err}); "
                "nothing in it was sent", hint="report this as a bug; the send resumes where it stopped")
            return
        self.launch(pool, posting, sendable, payload)

    def launch(self, pool, posting, rows: list[jn.Row], payload: Payload, by_worker: bool = False) -> None:
        """Commit the rows as in flight, then start their request (refused keys fail alone first)."""
        if payload.refused:
            by_key = {row.key: row for row in rows}
            failed = [(by_key[k], jn.FAILED, "", reason) for k, reason in payload.refused if k in by_key]
            self.settle(failed)
            self.report.failed.extend((row.email, reason) for row, _, _, reason in failed)
            refused = {k for k, _ in payload.refused}
            rows = [row for row in rows if row.key not in refused]
        if not rows or not payload.keys:
            return
        self.numbers += 1
        ordered = jn.SEQUENTIAL if self.provider.capabilities.sequential else ""
        label = f"{self.journal.own_run or self.journal.run}-{self.numbers}{ordered}"  # unique among the senders
        label = self.journal.flight.mark_in_flight([row.id for row in rows], label)
        if not label:
            return  # no longer this sender's (its lease ran out and another settled them): not sent from here
        payload = payload._replace(labels=request_labels(self.journal.run_uid, label))  # the provider's own record
        request = _Request(self.numbers, rows, payload, self.clock(), {row.key: row for row in rows}, by_worker)
        posting[request.number] = request
        pool.submit(self.post, request)

    def post(self, request: _Request) -> None:
        """In a request thread: deliver, handing each chunk of outcomes to the loop as it arrives, and
        going on only once the loop has journaled it (a crash then leaves the least unknown)."""
        outcomes = self.provider.deliver(request.payload)
        try:
            for chunk in outcomes:
                self.events.put(("chunk", request, chunk))
                while not request.journaled.wait(0.1) and not request.abandoned:
                    pass
                request.journaled.clear()
                if request.abandoned:
                    outcomes.close()  # stop before the next recipient
                    break
        except BaseException as err:  # noqa: BLE001 - the loop decides what it means
            self.events.put(("done", request, err))
            return
        self.events.put(("done", request, None))

    def run_probe(self, timeout: float) -> None:
        try:
            self.provider.probe(timeout)
        except BaseException as err:  # noqa: BLE001
            self.events.put(("probe", err))
            return
        self.events.put(("probe", None))

    # -- answers -----------------------------------------------------------------------------------

    def handle(self, event, posting, encoding, built) -> bool:
        """Act on one event; True when a request finished (worth a progress line)."""
        if event is None:
            return False
        kind = event[0]
        if kind == "chunk":
            _, request, chunk = event
            try:
                self.record(request, chunk)
            finally:
                request.journaled.set()
        elif kind == "done":
            _, request, error = event
            posting.pop(request.number, None)
            self.finished(request, error)
            return True
        elif kind == "encoded":
            future = event[1]
            rows = encoding.pop(future, None)
            if rows is not None:
                ready = self.encoded(rows, future)
                if ready:
                    built.append(ready)
        elif kind == "probe":
            self.probe_running = False
            error = event[1]
            if error is None:
                self.probing = False
                self.limit = 1
                self.probe_timeout = self.provider.timeout
            else:
                self.last_failure = str(error)
                self.probe_timeout = min(self.probe_timeout * 2, max(self.provider.timeout,
                                                                     self.settings.outage_seconds))
                self.hold_until = self.clock() + self.backoff(2)
        return False

    def record(self, request: _Request, chunk) -> None:
        """Commit what the provider said about these recipients, at once: the accepted ones of one
        answer (a whole SendGrid batch) in one statement, the others each by its outcome."""
        opened = request.open
        if isinstance(chunk, Accepted):  # everyone in it accepted: no outcome to look at one by one
            pop = opened.pop
            ids = [row.id for row in map(pop, chunk.keys, repeat(None)) if row is not None]
            self.journal.flight.settle_groups({(jn.SENT, chunk.message_id or "", ""): ids})
            self.report.sent += len(ids)
            self.last_accepted = self.clock()
            return
        accepted: dict[str, list[int]] = {}  # message id -> rows
        outcomes = []
        for delivery in chunk:
            row = opened.pop(delivery.key, None)
            if row is None:
                continue
            status = delivery.status
            if status == SENT:
                message_id = delivery.message_id or ""
                ids = accepted.get(message_id)
                if ids is None:
                    ids = accepted[message_id] = []
                ids.append(row.id)
            elif status == FAILED:
                outcomes.append((row, jn.FAILED, "", delivery.reason or ""))
                self.report.failed.append((row.email, delivery.reason))
            elif status == DEFERRED:
                attempt = row.attempts + 1
                self.journal.flight.release([row.id], delivery.reason,
                                     retry_at=time.time() + self.backoff(attempt))
                self.last_failure = delivery.reason
            else:
                outcomes.append((row, jn.UNKNOWN, delivery.message_id or "", delivery.reason or ""))
                self.report.unknown.append((row.email, delivery.reason))
        groups: dict[tuple[str, str, str], list[int]] = {(jn.SENT, m, ""): ids for m, ids in accepted.items()}
        for row, status, message_id, reason in outcomes:
            groups.setdefault((status, message_id, reason), []).append(row.id)
        self.journal.flight.settle_groups(groups)
        self.report.sent += sum(len(ids) for ids in accepted.values())
        if accepted or any(status == jn.FAILED for _, status, _, _ in outcomes):
            self.last_accepted = self.clock()

    def settle(self, outcomes) -> None:
        groups: dict[tuple[str, str, str], list[int]] = {}
        for row, status, message_id, reason in outcomes:
            groups.setdefault((status, message_id, reason), []).append(row.id)
        self.journal.flight.settle_groups(groups)

    def finished(self, request: _Request, error: BaseException | None) -> None:
        """The request is over: decide about the recipients the provider did not report."""
        rows = list(request.open.values())
        request.open.clear()
        if error is None:
            self.report.batches += 1
            if request.built_by_worker:
                self.report.worker_batches += 1
            self.succeeded()
            if rows:
                self.settle([(row, jn.UNKNOWN, "", "the provider did not report this recipient") for row in rows])
                self.report.unknown.extend((row.email, "not reported by the provider") for row in rows)
            return
        ids = [row.id for row in rows]
        if isinstance(error, TransientError):
            self.report.retries += 1
            delay = self.struggled(str(error), error.retry_after)
            if ids:  # nothing was delivered: the same rows go again after the wait, not counted as an attempt
                self.journal.flight.release(ids, str(error), retry_at=time.time() + delay, count_attempt=False)
        elif isinstance(error, OutcomeUnknownError):
            self.settle([(row, jn.UNKNOWN, "", str(error)) for row in rows])
            self.report.unknown.extend((row.email, str(error)) for row in rows)
            self.last_failure = str(error)
            self.limit = 1
            self.probing = True  # nothing more carrying mail until the provider answers a probe
        elif isinstance(error, RejectedError):
            self.report.batches += 1
            self.rejected(rows, error)
        elif isinstance(error, KeyboardInterrupt):
            self.settle([(row, jn.UNKNOWN, "", "interrupted while this request was under way") for row in rows])
            self.report.unknown.extend((row.email, "interrupted mid-request") for row in rows)
        elif isinstance(error, NewsletterError):
            # A refusal of the whole send (credentials, sender, TLS...): nothing of these was delivered.
            if ids:
                self.journal.flight.release(ids, f"not sent: {error}", count_attempt=False)
            self.fatal = self.fatal or error
        else:
            # A bug, not an answer: part of the request may have gone out. Never resend it blindly.
            reason = f"the send failed while delivering this request ({type(error).__name__}: {error})"
            self.settle([(row, jn.UNKNOWN, "", reason) for row in rows])
            self.report.unknown.extend((row.email, reason) for row in rows)
            self.fatal = self.fatal or error

    def rejected(self, rows: list[jn.Row], err: RejectedError) -> None:
        """A refused request delivered nothing: fail the recipients it names, send the rest again.

        The provider names the culprit as ``personalizations.N...``; an error about the
        request as a whole would fail for everyone, so the send stops. Without any field
        to go by, the batch is split in halves.
        """
        if not rows:
            return
        ids = [row.id for row in rows]
        fields = [f for _, f in err.errors if f]
        named = sorted({int(f.split(".")[1]) for f in fields
                        if f.startswith("personalizations.") and f.split(".")[1].isdigit()})
        if fields and not named:
            self.journal.flight.release(ids, f"not sent: {err}", count_attempt=False)
            self.fatal = self.fatal or err
            return
        if len(rows) == 1 or (named and all(i < len(rows) for i in named)):
            culprits = [rows[i] for i in named] if len(rows) > 1 else rows
            self.settle([(row, jn.FAILED, "", str(err)) for row in culprits])
            self.report.failed.extend((row.email, str(err)) for row in culprits)
            culprit_ids = {row.id for row in culprits}
            others = [row for row in rows if row.id not in culprit_ids]
            if others:
                self.journal.flight.release([row.id for row in others], "", count_attempt=False, keep=True)
                self.split.append(others)
            return
        self.journal.flight.release(ids, "", count_attempt=False, keep=True)  # sent again at once, in halves
        half = len(rows) // 2
        self.split.extend([rows[:half], rows[half:]])

    def refuse(self, rows: list[jn.Row], refused) -> list[jn.Row]:
        """Fail the rows at the refused positions (unsafe data, alone); the others, to be sent."""
        if not refused:
            return rows
        reasons = dict(refused)
        self.settle([(rows[i], jn.FAILED, "", reason) for i, reason in refused])
        self.report.failed.extend((rows[i].email, reason) for i, reason in refused)
        return [row for i, row in enumerate(rows) if i not in reasons]

    # -- worker processes --------------------------------------------------------------------------

    def body_workers(self) -> BodyWorkers | None:
        """Worker processes that encode payloads, for a large send (not a dry run: it samples in order)."""
        plan = self.plan
        threshold = self.settings.parallel_from
        large = self.report.to_send >= threshold or plan.selection is not None  # selected while sending: large
        if not plan.mode.delivers or threshold <= 0 or not large:
            if plan.bodies is not None:
                plan.bodies.close()  # the list looked large, but few of its recipients are still to go
                plan.bodies = None
            return None
        encode = self.provider.encode  # a module-level function: it pickles by name
        if plan.bodies is not None and plan.bodies.context.encode is encode:
            return plan.bodies
        if plan.bodies is not None:  # started for another encoder than this provider's
            plan.bodies.close()
        plan.bodies = BodyWorkers(BodyContext(plan.settings, plan.list_name, plan.secret, plan.provider_name,
                                              plan.message, encode, plan.readers))
        return plan.bodies

    def encoded(self, rows: list[jn.Row], future: Future):
        error = future.exception()
        if error is not None:
            if isinstance(error, RejectedError):
                self.rejected(rows, error)
            elif isinstance(error, NewsletterError):
                self.fatal = self.fatal or error
            else:
                self.worker_failed(error)
            return None
        if not self.may_continue():
            return None  # stopping or paused: these rows were never in flight and stay pending
        payload, refused = future.result()
        sendable = self.refuse(rows, refused)
        return (sendable, payload) if sendable and payload is not None else None

    def worker_failed(self, error: BaseException) -> None:
        if self.stop.requested:
            return
        self.fatal = self.fatal or NewsletterError(
            f"a worker process failed while building a request ({error}); nothing in that batch was sent",
            hint="run the send again to resume; [send] parallel_from = 0 in newsletter.toml builds every "
                 "request in the sending process")

    # -- a second Ctrl-C ---------------------------------------------------------------------------

    def abandon(self, encoding, posting: dict[int, _Request]) -> None:
        """Record what is known and leave: only recipients whose request is under way become unknown."""
        for future in encoding:
            future.cancel()
        while True:  # outcomes already reported are recorded as they went
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                break
            if event[0] == "chunk":
                event[1].abandoned = True
                self.record(event[1], event[2])
                event[1].journaled.set()
        for request in posting.values():
            request.abandoned = True
            rows = list(request.open.values())
            if rows and self.provider.capabilities.sequential:  # only the first can have been under way
                self.journal.flight.release([row.id for row in rows[1:]], "", count_attempt=False)
                rows = rows[:1]
            self.settle([(row, jn.UNKNOWN, "", "interrupted while this request was under way") for row in rows])
            self.report.unknown.extend((row.email, "interrupted mid-request") for row in rows)
        self.report.interrupted = True


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
