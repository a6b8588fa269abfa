"""Send an issue to a list: exactly once per recipient, resumable, identical for every provider.

The sequence is the same for a live send and a dry run:

1. build the issue once and run every preflight check (a live send refuses errors);
2. select the list's recipients into the journal (``prepare``);
3. take pending recipients in batches: mark them in flight (committed), hand
   the batch to the provider, record what it says happened (``execute``).

Providers only translate. Retries, back-off, splitting a refused batch,
pausing after repeated failures and Ctrl-C handling all live here.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import gc
import json
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import (
    FIRST_COMPLETED,
    BrokenExecutor,
    Future,
    ThreadPoolExecutor,
    wait,
)
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, NamedTuple

from . import journal as jn
from .build import BuiltIssue, build, make_message
from .checks import CheckContext, Finding, format_finding, has_errors, run_checks_on
from .config import Settings
from .content import load_issue, require_complete
from .errors import NewsletterError, SendFailed, display_path
from .message import refuse_line_breaks
from .personalize import merge_values
from .providers.base import (
    DEFERRED,
    FAILED,
    SENT,
    Message,
    OutcomeUnknownError,
    Provider,
    Recipient,
    RejectedError,
    TransientError,
)
from .lists import list_columns, require_list, select_recipients
from .unsubscribe import (
    UnsubscribeLinks,
    read_secret,
    unsubscribe_url,
    uses_sendgrid_group,
)
from .workers import BodyContext, BodyWorkers, recipients_of


@dataclass
class SendOptions:
    """What the writer asked for on the command line."""

    list_name: str
    provider: str = ""  # "" = newsletter.toml's provider
    tags: tuple[str, ...] = ()
    where: Mapping[str, str] = field(default_factory=dict)
    dry_run: bool = False
    send_at: dt.datetime | None = None
    sandbox: bool = False
    retry_unknown: bool = False
    retry_failed: bool = False
    samples: int = 3
    out_dir: Path | None = None


@dataclass
class SendReport:
    """What a send did, for the closing summary, ``report.json`` and the exit code."""

    issue: str
    list_name: str
    provider: str
    dry_run: bool
    selected: int = 0  # subscribed, valid, de-duplicated recipients matching the filters
    to_send: int = 0  # of those, not settled by an earlier run
    skipped: Counter = field(default_factory=Counter)
    sent: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    unknown: list[tuple[str, str]] = field(default_factory=list)
    deferred: list[tuple[str, str]] = field(default_factory=list)
    batches: int = 0
    retries: int = 0
    paused: str = ""
    interrupted: bool = False
    html_bytes: int = 0
    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0
    samples: list[str] = field(default_factory=list)
    scheduled_for: str = ""
    body_workers: int = 0  # worker processes started to build request bodies (a large send), else 0
    worker_batches: int = 0  # batches whose body one of them built (the first go out while they start)

    @property
    def ok(self) -> bool:
        return not (self.failed or self.unknown or self.deferred or self.paused or self.interrupted)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["skipped"] = dict(self.skipped)
        data["findings"] = [f.to_dict() for f in self.findings]
        data["failed"] = [{"email": e, "reason": r} for e, r in self.failed]
        data["unknown"] = [{"email": e, "reason": r} for e, r in self.unknown]
        data["deferred"] = [{"email": e, "reason": r} for e, r in self.deferred]
        return data

    def summary(self) -> str:
        verb = "would send" if self.dry_run else "sent"
        skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items()) if n) or "none"
        parts = [f"{'Dry run: ' if self.dry_run else ''}{verb} {self.sent} of {self.to_send}",
                 f"skipped {skipped}"]
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        if self.unknown:
            parts.append(f"{len(self.unknown)} unknown")
        if self.deferred:
            parts.append(f"{len(self.deferred)} deferred")
        parts.append(f"{self.batches} batch{'es' * (self.batches != 1)} in {self.seconds:.1f} s")
        if self.body_workers:
            parts.append(f"{self.worker_batches} of them built by {self.body_workers} worker processes")
        return "; ".join(parts)


@dataclass
class SendPlan:
    """A send ready to go: the issue built and checked, the recipients selected into the journal."""

    settings: Settings
    options: SendOptions
    built: BuiltIssue
    message: Message
    journal: jn.Journal
    report: SendReport
    provider_name: str
    secret: bytes | None
    bodies: BodyWorkers | None = None  # started while the recipients were selected, for a large send

    def close(self) -> None:
        self.journal.close()
        if self.bodies is not None:
            self.bodies.close()


class StopFlag:
    """Set by the first Ctrl-C: finish the batch in flight, then stop."""

    requested = False


Progress = Callable[[SendReport], None]


# -- preparing --------------------------------------------------------------------------------------


def outbox_dir(settings: Settings, issue_name: str) -> Path:
    return settings.root / "outbox" / issue_name


def _check_schedule(send_at: dt.datetime | None, provider: str) -> None:
    if send_at is None:
        return
    if provider != "sendgrid":
        raise NewsletterError(f"--at needs a provider that schedules delivery; {provider} sends at once",
                              hint="use --provider sendgrid, or run the send later from cron or at(1)")
    if send_at <= dt.datetime.now(dt.timezone.utc):
        raise NewsletterError(f"--at {send_at.isoformat()} is in the past", hint="give a future time")
    from .providers.sendgrid import check_send_at

    check_send_at(send_at)  # SendGrid's 72-hour limit


def used_columns(built: BuiltIssue) -> tuple[str, ...]:
    """The subscriber columns the issue's merge fields read: all a recipient's copy needs of their row."""
    return tuple(sorted({f.name.split(".", 1)[1] for f in built.fields if f.name.startswith("subscriber.")}))


def _needs_secret(settings: Settings, provider: str) -> bool:
    return bool(settings.unsubscribe_url) and not uses_sendgrid_group(settings, provider)


def prepare(settings: Settings, issue_dir: Path, options: SendOptions) -> SendPlan:
    """Build and check the issue, and select the list's recipients into the journal."""
    provider = options.provider or settings.provider
    _check_schedule(options.send_at, provider)
    list_path = require_list(settings.list_path(options.list_name))
    issue = load_issue(Path(issue_dir))
    require_complete(issue)
    built = build(settings, issue, list_columns(list_path))
    findings = run_checks_on(CheckContext(settings, issue, built))
    if has_errors(findings) and not options.dry_run:
        listing = "\n".join(format_finding(f) for f in findings if f.severity == "error")
        raise SendFailed(f"refusing to send: the preflight checks found errors\n{listing}",
                         hint=f"fix them, then run: newsletter check {display_path(issue_dir)}")
    secret = read_secret(settings, required=not options.dry_run and _needs_secret(settings, provider))
    report = SendReport(issue=issue.name, list_name=options.list_name, provider=provider, dry_run=options.dry_run,
                        findings=findings, html_bytes=len(built.html.encode("utf-8")),
                        scheduled_for=options.send_at.isoformat() if options.send_at else "")
    message = make_message(settings, built, options.list_name, provider, send_at=options.send_at,
                           sandbox=options.sandbox)
    journal_path = settings.journal_path
    journal = (jn.Journal.scratch_copy(journal_path, issue.name, options.list_name) if options.dry_run
               else jn.Journal.open(journal_path, issue.name, options.list_name))
    bodies = None
    try:
        bodies = _early_body_workers(settings, options, provider, list_path, message, secret)
        journal.start_run()

        def on_skip(email: str, reason: str, line: int) -> None:
            report.skipped[reason] += 1

        selection = select_recipients(list_path, tags=options.tags, where=options.where, on_skip=on_skip)
        extra = [c for c in used_columns(built) if c not in ("email", "name")]  # email and name have columns
        refresh = (jn.PENDING, *([jn.UNKNOWN] if options.retry_unknown else []),
                   *([jn.FAILED] if options.retry_failed else []))
        journal.select(((s.key, s.email, s.name, {c: s.fields.get(c, "") for c in extra}) for s in selection),
                       refresh=refresh)
        if options.retry_unknown:
            journal.requeue(jn.UNKNOWN)
        if options.retry_failed:
            journal.requeue(jn.FAILED)
        counts = journal.selected_status_counts()
    except BaseException:
        journal.close()
        if bodies is not None:
            bodies.close()
        raise
    report.selected = sum(counts.values())
    report.to_send = counts[jn.PENDING]
    for status, reason in ((jn.SENT, "already sent"), (jn.FAILED, "failed before"),
                           (jn.UNKNOWN, "unknown before")):
        if counts[status]:
            report.skipped[reason] += counts[status]
    return SendPlan(settings, options, built, message, journal, report, provider, secret, bodies)


def _early_body_workers(settings: Settings, options: SendOptions, provider: str, list_path: Path,
                        message: Message, secret: bytes | None) -> BodyWorkers | None:
    """Body workers for what looks like a large SendGrid send, started now so they are ready when the
    first batch is: they take a fraction of a second to start, and selecting the recipients takes
    longer. The list's line count is only an upper bound: if fewer recipients turn out to be
    pending, ``_Batches`` (or ``SendPlan.close``, when there is nothing to send) stops them unused."""
    threshold = settings.send.parallel_from
    if options.dry_run or provider != "sendgrid" or threshold <= 0 or not _has_lines(list_path, threshold + 1):
        return None
    from .providers.sendgrid import encode_payload

    try:
        return BodyWorkers(BodyContext(settings, options.list_name, secret, provider, message, encode_payload))
    except NewsletterError:
        return None  # only a guess that they are needed: if they are, the send tries again and says why not


def _has_lines(path: Path, count: int, chunk: int = 1 << 20) -> bool:
    """Whether the file has at least ``count`` lines, reading no further than it takes to tell."""
    seen = 0
    with open(path, "rb") as data:
        while seen < count:
            block = data.read(chunk)
            if not block:
                return False
            seen += block.count(b"\n")
    return True


# -- executing --------------------------------------------------------------------------------------


class _Batch(NamedTuple):
    """Rows committed as in flight, with what their request carries: recipients, or a body a worker built."""

    rows: list[jn.Row]
    recipients: list[Recipient] | None
    body: bytes | None


class _Batches:
    """The send loop: batches go out (several at once where the provider allows), results come back.

    Only this loop's thread touches the journal: a batch is marked in flight
    before its request is handed to a request thread, and settled when the
    thread's result (or exception) comes back. In a large send, a batch's
    rows first go to a body worker process (workers.py) while still pending;
    the batch is marked in flight only once its body is back and a request
    thread is free to carry it.
    """

    def __init__(self, plan: SendPlan, provider: Provider, progress: Progress | None, stop: StopFlag,
                 sleep: Callable[[float], None]):
        self.plan = plan
        self.provider = provider
        self.progress = progress
        self.stop = stop
        self.sleep = sleep
        self.send = plan.settings.send
        self.consecutive_failures = 0
        self.last_failure = ""
        self.batch_number = 0
        self.fatal: BaseException | None = None
        self.links = UnsubscribeLinks(plan.settings, plan.options.list_name, plan.secret, plan.provider_name)

    @property
    def report(self) -> SendReport:
        return self.plan.report

    @property
    def journal(self) -> jn.Journal:
        return self.plan.journal

    def should_pause(self) -> bool:
        return self.consecutive_failures >= self.send.max_consecutive_failures

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return max(0.0, retry_after)
        ceiling = min(self.send.max_backoff_seconds, self.send.backoff_seconds * 2 ** max(0, attempt - 1))
        return ceiling * random.uniform(0.5, 1.0)  # jitter: many senders must not retry in step

    def failure(self, reason: str, count: int = 1) -> None:
        self.consecutive_failures += count
        self.last_failure = reason

    def may_start(self) -> bool:
        return not (self.stop.requested or self.should_pause() or self.fatal)

    @staticmethod
    def room(posting: int, bodies_taken: int, requests: int, bodies: BodyWorkers | None) -> bool:
        """Whether to take another batch from the journal.

        Prepared here, a batch goes straight to a request: up to ``requests`` of them. With
        workers, up to one body per worker is being built or waiting for a request, plus one
        more, so a request that comes free rarely waits for a body. Until the workers have
        started, batches are prepared here, so the send does not wait for them either.
        """
        if bodies is None or not bodies.ready:
            return posting < requests
        return bodies_taken <= bodies.processes

    def body_workers(self) -> BodyWorkers | None:
        """Worker processes for request bodies: for a large send, through a provider that takes bodies
        (the plan's, started while it selected the recipients, when it has them)."""
        plan = self.plan
        threshold = self.send.parallel_from
        if not hasattr(self.provider, "send_encoded") or threshold <= 0 or self.report.to_send < threshold:
            if plan.bodies is not None:
                plan.bodies.close()  # the list looked large, but few of its recipients are still to go
                plan.bodies = None
            return None
        if plan.bodies is not None and plan.bodies.context.encode is self.provider.encode_batch:
            return plan.bodies
        if plan.bodies is not None:  # started for another provider's bodies than this one builds
            plan.bodies.close()
        plan.bodies = BodyWorkers(BodyContext(plan.settings, plan.options.list_name, plan.secret,
                                              plan.provider_name, plan.message, self.provider.encode_batch))
        return plan.bodies

    def run(self) -> None:
        size = min(self.send.batch_size, self.provider.max_batch)
        requests = max(1, min(self.send.concurrency, getattr(self.provider, "max_concurrency", 1)))
        posting: dict[Future, _Batch] = {}  # requests under way (at most ``requests``); their rows are in flight
        encoding: dict[Future, list[jn.Row]] = {}  # bodies being built by workers; their rows are still pending
        built: list[tuple[list[jn.Row], bytes]] = []  # bodies back, waiting for a free request; rows still pending
        cursor = 0  # the last journal row taken: the queue is read forward, then again from the start
        bodies = self.body_workers()
        self.report.body_workers = bodies.processes if bodies else 0
        try:
            with ThreadPoolExecutor(max_workers=requests, thread_name_prefix="send") as pool:
                try:
                    while True:
                        while built and len(posting) < requests and self.may_start():
                            rows, body = built.pop(0)
                            batch = self.in_flight(rows, body=body)  # committed just before its request starts
                            posting[pool.submit(self.post, batch)] = batch
                        while self.may_start() and self.room(len(posting), len(encoding) + len(built), requests,
                                                             bodies):
                            # Back to the start of the queue (for retries) only once no taken row is still pending.
                            rows = self.journal.next_pending(size, self.send.max_attempts, cursor)
                            if not rows and cursor and not encoding and not built:
                                cursor = 0
                                rows = self.journal.next_pending(size, self.send.max_attempts, cursor)
                            if not rows:
                                break
                            cursor = rows[-1].id
                            if bodies and bodies.ready:
                                try:
                                    encoding[bodies.submit(rows)] = rows
                                except BrokenExecutor as err:  # a worker died: the pool takes no more work
                                    self.worker_failed(err)
                                    break
                            else:
                                batch = self.start(rows)
                                if batch:
                                    posting[pool.submit(self.post, batch)] = batch
                        if not posting and not encoding:
                            built.clear()  # stopping, paused or failed: never in flight, these rows stay pending
                            retry_at = (self.journal.next_retry_time(self.send.max_attempts)
                                        if self.may_start() else None)
                            if retry_at is None:
                                break
                            self.wait(retry_at - time.time())
                            continue
                        done, _ = wait([*posting, *encoding], return_when=FIRST_COMPLETED)
                        answered = False
                        for future in done:
                            if future in encoding:
                                body = self.encoded(encoding.pop(future), future)
                                if body:
                                    built.append(body)
                            else:
                                self.answered(posting.pop(future), future)
                                answered = True
                        if self.progress and answered:
                            self.progress(self.report)
                except KeyboardInterrupt:
                    self.abandon(encoding, posting)
                    raise
        finally:
            if bodies:
                bodies.close()
                self.plan.bodies = None
        if self.fatal:
            raise self.fatal
        if self.stop.requested:
            self.report.interrupted = True
        elif self.should_pause():
            self.report.paused = (f"paused after {self.consecutive_failures} failures in a row; last: "
                                  f"{self.last_failure}")

    def answered(self, batch: _Batch, future: Future) -> None:
        """A request came back: record it, counting the batches whose body a worker built."""
        if self.finish(batch.rows, future) and batch.body is not None:
            self.report.worker_batches += 1

    def abandon(self, encoding: dict[Future, list[jn.Row]], posting: dict[Future, _Batch]) -> None:
        """A second Ctrl-C: record what is known of each batch and leave; only a request under way is unknown."""
        for future in encoding:
            future.cancel()  # nothing sent; the rows are still pending
        for future, batch in posting.items():
            # Still waiting for a request thread (it never started), or refused (nothing was delivered,
            # and splitting it would mean new requests): back to pending, for the next run.
            if future.cancel() or (future.done() and isinstance(future.exception(), RejectedError)):
                self.journal.release([row.id for row in batch.rows], "", count_attempt=False)
            elif future.done():  # answered before the interrupt: record it as it went
                self.answered(batch, future)
            else:
                self.journal.settle([(row.id, jn.UNKNOWN, "", "interrupted while this batch was being "
                                      "delivered") for row in batch.rows])
                self.report.unknown.extend((row.email, "interrupted mid-batch") for row in batch.rows)
        self.report.interrupted = True

    def wait(self, seconds: float) -> None:
        deadline = time.time() + max(0.0, seconds)
        while not self.stop.requested and time.time() < deadline:
            self.sleep(min(0.2, deadline - time.time()))

    def refuse(self, rows: Sequence[jn.Row], refused: Sequence[tuple[int, str]]) -> list[jn.Row]:
        """Fail the rows at the refused positions (unsafe data, alone); the others, to be sent."""
        if not refused:
            return list(rows)
        reasons = dict(refused)
        self.journal.settle([(rows[i].id, jn.FAILED, "", reason) for i, reason in refused])
        self.report.failed.extend((rows[i].email, reason) for i, reason in refused)
        return [row for i, row in enumerate(rows) if i not in reasons]

    def in_flight(self, rows: list[jn.Row], recipients: list[Recipient] | None = None,
                  body: bytes | None = None) -> _Batch:
        """Commit that these rows' request is about to be made: from here on they are never resent blindly."""
        self.batch_number += 1
        self.journal.mark_in_flight([row.id for row in rows], f"{self.journal.run}-{self.batch_number}")
        return _Batch(rows, recipients, body)

    def start(self, rows: list[jn.Row]) -> _Batch | None:
        """Prepare a batch here and commit it as in flight; a recipient whose data is unsafe fails here alone."""
        recipients, refused = recipients_of(rows, self.links)
        sendable = self.refuse(rows, refused)
        return self.in_flight(sendable, recipients=recipients) if sendable else None

    def encoded(self, rows: list[jn.Row], future: Future) -> tuple[list[jn.Row], bytes] | None:
        """A worker built this batch's body: fail the rows it refused, and return the rest with the body
        (still pending: they go in flight when a request is free), unless the send is stopping,
        pausing or failing."""
        error = future.exception()
        if error is not None:
            if isinstance(error, NewsletterError):  # the issue or settings, not the worker: say so as such
                self.fatal = self.fatal or error
            else:
                self.worker_failed(error)
            return None
        if not self.may_start():
            return None  # stopping or paused: these rows were never in flight and stay pending
        body, refused = future.result()
        sendable = self.refuse(rows, refused)
        return (sendable, body) if sendable and body is not None else None

    def worker_failed(self, error: BaseException) -> None:
        """A body worker failed or died: stop starting batches (none of its rows was in flight)."""
        if self.stop.requested:
            return  # Ctrl-C is stopping the send anyway
        self.fatal = self.fatal or NewsletterError(
            f"a worker process failed while building a request body ({error}); nothing in that batch was sent",
            hint="run the send again to resume; [send] parallel_from = 0 in newsletter.toml builds every "
                 "body in the sending process")

    def post(self, batch: _Batch) -> list:
        """The request itself (in a thread): a body built by a worker, or the recipients built here."""
        if batch.body is not None:
            return self.provider.send_encoded(self.plan.message, batch.body, [row.key for row in batch.rows])
        return self.provider.send_batch(self.plan.message, batch.recipients)

    def deliver(self, rows: list[jn.Row]) -> None:
        """Send one batch and wait for it (used to retry the parts of a refused batch)."""
        if self.fatal:
            return
        batch = self.start(rows)
        if not batch:
            return
        future: Future = Future()
        try:
            future.set_result(self.post(batch))
        except BaseException as err:  # noqa: BLE001 - handed to finish(), which decides
            future.set_exception(err)
        self.finish(batch.rows, future)

    def finish(self, rows: list[jn.Row], future: Future) -> bool:
        """Record what the provider said about a batch (never raises for a provider fault; sets ``fatal``).

        True when the provider answered the batch (a ``batches`` count in the report); False when
        it is to be tried again, its outcome is unknown, or the send stops on it.
        """
        ids = [row.id for row in rows]
        error = future.exception()
        if error is None:
            self.report.batches += 1
            self.record(rows, future.result())
            return True
        elif isinstance(error, TransientError):
            attempt = max(row.attempts for row in rows) + 1
            delay = self.backoff(attempt, error.retry_after)
            self.journal.release(ids, str(error), retry_at=time.time() + delay)
            self.report.retries += 1
            self.failure(str(error))
            self.report.deferred.extend((row.email, str(error)) for row in rows
                                        if row.attempts + 1 >= self.send.max_attempts)
        elif isinstance(error, OutcomeUnknownError):
            self.journal.settle([(i, jn.UNKNOWN, "", str(error)) for i in ids])
            self.report.unknown.extend((row.email, str(error)) for row in rows)
            self.failure(str(error))  # one lost answer, however many recipients it carried
        elif isinstance(error, RejectedError):
            self.report.batches += 1
            try:
                self.rejected(rows, error)
            except NewsletterError as err:
                self.fatal = self.fatal or err
            return True
        elif isinstance(error, KeyboardInterrupt):
            self.journal.settle([(i, jn.UNKNOWN, "", "interrupted while this batch was being delivered")
                                 for i in ids])
            self.report.unknown.extend((row.email, "interrupted mid-batch") for row in rows)
            raise error
        elif isinstance(error, NewsletterError):
            # A provider's answer that refuses the whole send (credentials, sender, TLS...): nothing was delivered.
            self.journal.release(ids, f"not sent: {error}", count_attempt=False)
            self.fatal = self.fatal or error
        else:
            # A bug, not an answer: part of the batch may have gone out. Never resend it blindly.
            reason = f"the send failed while delivering this batch ({type(error).__name__}: {error})"
            self.journal.settle([(i, jn.UNKNOWN, "", reason) for i in ids])
            self.report.unknown.extend((row.email, reason) for row in rows)
            self.fatal = self.fatal or error
        return False

    def rejected(self, rows: list[jn.Row], err: RejectedError) -> None:
        """A refused batch delivered nothing: fail the recipients it names, resend the rest.

        SendGrid names the culprit as ``personalizations.N...``; an error about the
        request as a whole (from, content, categories) would fail for everyone, so the
        send stops. Without any field to go by, the batch is split in halves.
        """
        ids = [row.id for row in rows]
        fields = [f for _, f in err.errors if f]
        named = sorted({int(f.split(".")[1]) for f in fields
                        if f.startswith("personalizations.") and f.split(".")[1].isdigit()})
        if fields and not named:
            self.journal.release(ids, f"not sent: {err}", count_attempt=False)
            raise err
        if len(rows) == 1 or (named and all(i < len(rows) for i in named)):
            culprits = [rows[i] for i in named] if len(rows) > 1 else rows
            self.journal.settle([(row.id, jn.FAILED, "", str(err)) for row in culprits])
            for row in culprits:
                self.report.failed.append((row.email, str(err)))
                self.failure(str(err))
            culprit_ids = {row.id for row in culprits}
            others = [row.id for row in rows if row.id not in culprit_ids]
            if others:
                self.journal.release(others, "", count_attempt=False)  # resent with the next batch
            return
        self.journal.release(ids, "", count_attempt=False)
        half = len(rows) // 2
        for part in (rows[:half], rows[half:]):
            if self.fatal or self.should_pause():
                break
            self.deliver(part)

    def record(self, rows: list[jn.Row], deliveries) -> None:
        """Write what the provider said about each recipient, in order (a success resets the failure count)."""
        by_key = {d.key: d for d in deliveries}
        settled: dict[tuple[str, str, str], list[int]] = {}  # (status, message id, reason) -> row ids
        report = self.report
        for row in rows:
            outcome = by_key.get(row.key)
            if outcome is None:
                settled.setdefault((jn.UNKNOWN, "", "the provider did not report this recipient"), []).append(row.id)
                report.unknown.append((row.email, "not reported by the provider"))
            elif outcome.status == SENT:
                settled.setdefault((jn.SENT, outcome.message_id or "", ""), []).append(row.id)
                report.sent += 1
                self.consecutive_failures = 0
            elif outcome.status == FAILED:
                settled.setdefault((jn.FAILED, "", outcome.reason or ""), []).append(row.id)
                report.failed.append((row.email, outcome.reason))
                self.failure(outcome.reason)
            elif outcome.status == DEFERRED:
                attempt = row.attempts + 1  # per row: a batch can mix rows with different attempt counts
                self.journal.release([row.id], outcome.reason, retry_at=time.time() + self.backoff(attempt, None))
                if attempt >= self.send.max_attempts:
                    report.deferred.append((row.email, outcome.reason))
                self.failure(outcome.reason)
            else:
                settled.setdefault((jn.UNKNOWN, "", outcome.reason or ""), []).append(row.id)
                report.unknown.append((row.email, outcome.reason))
                self.failure(outcome.reason)
        self.journal.settle_groups(settled)


def execute(plan: SendPlan, provider: Provider, *, progress: Progress | None = None, stop: StopFlag | None = None,
            sleep: Callable[[float], None] = time.sleep) -> SendReport:
    """Deliver every pending recipient of the plan through ``provider``; returns the report."""
    started = time.monotonic()
    loop = _Batches(plan, provider, progress, stop or StopFlag(), sleep)
    provider.open()
    try:
        with _few_collections():
            loop.run()
    finally:
        provider.close()
        plan.report.seconds = time.monotonic() - started
    return plan.report


@contextmanager
def _few_collections() -> Iterator[None]:
    """Collect garbage rarely while the send loop runs.

    The loop makes a few short-lived objects per recipient and keeps them until
    their batch is settled; with the default thresholds Python's cycle collector
    ran every few hundred recipients and kept re-walking everything the process
    had loaded (templates, lxml, the HTTP stack). What exists before the loop is
    set aside for its duration (``gc.freeze``, unless someone froze it already)
    and young objects are examined every 50,000 allocations instead of 700.
    Reference counting still frees everything at once; only cycles wait, and
    there are few.
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


# -- one send at a time, and the provider to use ----------------------------------------------------------


@contextmanager
def exclusive(settings: Settings, issue_name: str, list_name: str) -> Iterator[None]:
    """Hold the lock for sending ``issue_name`` to ``list_name``; refuse if another process holds it."""
    folder = settings.journal_path.parent / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{issue_name}--{list_name}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "another process"
            raise NewsletterError(f"another send of {issue_name} to list '{list_name}' is running ({holder})",
                                  hint="wait for it to finish, or stop that process; a killed send leaves "
                                       "no lock behind") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, started {dt.datetime.now().isoformat(timespec='seconds')}".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock; the kernel does the same if the process dies


def open_provider(settings: Settings, plan: SendPlan | None, name: str, *, dry_run: bool = False,
                  out_dir: Path | None = None, samples: int = 3) -> Provider:
    """The provider ``name`` configured from settings (secrets from the environment), or the dry run."""
    if dry_run:
        from .providers.dryrun import DryRunProvider

        builder = None
        max_batch = settings.send.batch_size
        if name == "sendgrid":
            from .providers.sendgrid import encode_payload

            builder = encode_payload
        else:
            from .providers.smtp import SmtpProvider

            max_batch = min(max_batch, SmtpProvider.max_batch)
        return DryRunProvider(out_dir or Path("."), samples=samples, stands_in_for=name, max_batch=max_batch,
                              payload_builder=builder)
    if name == "sendgrid":
        from .providers import sendgrid

        return sendgrid.from_settings(settings)
    if name == "smtp":
        from .providers import smtp

        return smtp.from_settings(settings)
    raise NewsletterError(f"unknown provider '{name}'", hint="use sendgrid or smtp")


def write_report(report: SendReport, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "report.json"
    path.write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def dry_run(settings: Settings, issue_dir: Path, options: SendOptions, progress: Progress | None = None) -> SendReport:
    """Everything a send does but deliver: leaves the journal as it was, writes samples and report.json."""
    options.dry_run = True
    plan = prepare(settings, issue_dir, options)
    out_dir = options.out_dir or outbox_dir(settings, plan.built.issue.name)
    try:
        provider = open_provider(settings, plan, plan.provider_name, dry_run=True, out_dir=out_dir,
                                 samples=options.samples)
        report = execute(plan, provider, progress=progress)
    finally:
        plan.close()
    report.samples = [display_path(p) for p in provider.sample_paths]
    write_report(report, out_dir)
    return report


def send_test(settings: Settings, issue_dir: Path, addresses: Sequence[str], provider_name: str = "",
              subject_prefix: str = "", provider: Provider | None = None) -> SendReport:
    """Send the real message to ``addresses`` only; the journal is not touched."""
    from .lists import normalize_key

    name = provider_name or settings.provider
    issue = load_issue(Path(issue_dir))
    require_complete(issue)
    built = build(settings, issue)
    message = make_message(settings, built, "test", name, subject_prefix=subject_prefix)
    secret = read_secret(settings, required=False)
    recipients = []
    unique: dict[str, str] = {}
    for address in addresses:  # one message per address, however it is spelled
        unique.setdefault(normalize_key(address), address.strip())
    for address in unique.values():
        refuse_line_breaks("--test-to address", address)
        url = unsubscribe_url(settings, "test", address, secret, name)
        recipients.append(Recipient(email=address, key=normalize_key(address), name="",
                                    values=merge_values({"email": address, "name": ""}, url)))
    report = SendReport(issue=issue.name, list_name="(test)", provider=name, dry_run=False,
                        selected=len(recipients), to_send=len(recipients))
    provider = provider or open_provider(settings, None, name)
    started = time.monotonic()
    provider.open()
    try:
        for delivery, recipient in zip(provider.send_batch(message, recipients), recipients):
            if delivery.status == SENT:
                report.sent += 1
            else:
                report.failed.append((recipient.email, delivery.reason or delivery.status))
    finally:
        provider.close()
    report.batches = 1
    report.seconds = time.monotonic() - started
    return report


def status(settings: Settings, issue_dir: Path, list_name: str | None = None) -> list[tuple[str, dict, list]]:
    """(list, counts, problems) for each list the issue was sent to, from the journal."""
    issue_name = Path(issue_dir).resolve().name
    result = []
    for name, counts in jn.summarize(settings.journal_path, issue_name, list_name):
        journal = jn.Journal.read_only(settings.journal_path, issue_name, name)
        try:
            result.append((name, counts, journal.problems()))
        finally:
            journal.close()
    return result
