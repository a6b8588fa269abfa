"""What the provider said, on record at once: the send loop's journal writes and what they mean for the send.

Every outcome is committed as soon as it is known: the accepted recipients of
one answer in one statement, the others each by its outcome. A request's end
decides about the recipients the provider did not report: retried (nothing
was delivered: 429, 5xx), unknown (it may have been: a timeout), failed or
split (a refusal naming recipients), or the whole send stopped (credentials,
a refusal of the request itself, a bug).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from itertools import repeat

from ..errors import NewsletterError
from ..providers.base import (
    DEFERRED,
    FAILED,
    SENT,
    Accepted,
    Delivery,
    OutcomeUnknownError,
    RejectedError,
    TransientError,
)
from . import journal as jn
from .posting import Chunk, Request
from .report import SendReport
from .throttle import Throttle

# (row, status, message id, reason) of recipients settled one by one
Settled = tuple[jn.Row, str, str, str]
INTERRUPTED = "interrupted while this request was under way"


class Outcomes:
    """Journals outcomes and decides what a request's end means; ``fatal`` is what stops the send, if anything."""

    def __init__(self, journal: jn.Journal, report: SendReport, throttle: Throttle, *, max_attempts: int,
                 sequential: bool):
        self.journal = journal
        self.report = report
        self.throttle = throttle
        self.max_attempts = max_attempts
        self.sequential = sequential  # the provider tries a request's recipients one by one, in order
        self.fatal: BaseException | None = None
        self.split: list[list[jn.Row]] = []  # rows to send again before the rest (halves of a refused batch...)

    def stop_with(self, error: BaseException) -> None:
        """The send stops (the first reason given is the one shown)."""
        self.fatal = self.fatal or error

    # -- as answers arrive --

    def record(self, request: Request, chunk: Accepted | Sequence[Delivery]) -> None:
        """Commit what the provider said about these recipients, at once: the accepted ones of one
        answer (a whole SendGrid batch) in one statement, the others each by its outcome."""
        opened = request.open
        flight = self.journal.flight
        if isinstance(chunk, Accepted):  # everyone in it accepted: no outcome to look at one by one
            pop = opened.pop
            ids = [row.id for row in map(pop, chunk.keys, repeat(None)) if row is not None]
            flight.settle_groups({(jn.SENT, chunk.message_id or "", ""): ids})
            self.report.sent += len(ids)
            self.throttle.accepted()
            return
        accepted: dict[str, list[int]] = {}  # message id -> rows
        outcomes: list[Settled] = []
        for delivery in chunk:
            row = opened.pop(delivery.key, None)
            if row is None:
                continue
            status = delivery.status
            if status == SENT:
                accepted.setdefault(delivery.message_id or "", []).append(row.id)
            elif status == FAILED:
                outcomes.append((row, jn.FAILED, "", delivery.reason or ""))
                self.report.failed.append((row.email, delivery.reason))
            elif status == DEFERRED:
                retry_at = time.time() + self.throttle.backoff(row.attempts + 1)
                flight.release([row.id], delivery.reason, retry_at=retry_at)
            else:
                outcomes.append((row, jn.UNKNOWN, delivery.message_id or "", delivery.reason or ""))
                self.report.unknown.append((row.email, delivery.reason))
        groups: dict[tuple[str, str, str], list[int]] = {(jn.SENT, m, ""): ids for m, ids in accepted.items()}
        for row, settled, message_id, reason in outcomes:
            groups.setdefault((settled, message_id, reason), []).append(row.id)
        flight.settle_groups(groups)
        self.report.sent += sum(len(ids) for ids in accepted.values())
        if accepted or any(status == jn.FAILED for _, status, _, _ in outcomes):
            self.throttle.accepted()

    def settle(self, outcomes: Iterable[Settled]) -> None:
        groups: dict[tuple[str, str, str], list[int]] = {}
        for row, status, message_id, reason in outcomes:
            groups.setdefault((status, message_id, reason), []).append(row.id)
        self.journal.flight.settle_groups(groups)

    def unknown(self, rows: Sequence[jn.Row], reason: str, shown: str | None = None) -> None:
        """These recipients may or may not have been mailed: never resent without asking."""
        self.settle([(row, jn.UNKNOWN, "", reason) for row in rows])
        self.report.unknown.extend((row.email, shown or reason) for row in rows)

    def finished(self, request: Request, error: BaseException | None, elapsed: float) -> None:
        """The request is over: decide about the recipients the provider did not report."""
        rows = list(request.open.values())
        request.open.clear()
        if error is None:
            self.report.batches += 1
            if request.built_by_worker:
                self.report.worker_batches += 1
            self.throttle.answered(elapsed)
            if rows:
                self.unknown(rows, "the provider did not report this recipient", "not reported by the provider")
            return
        ids = [row.id for row in rows]
        if isinstance(error, TransientError):
            self.report.retries += 1
            delay = self.throttle.failed(str(error), error.status, error.retry_after)
            if ids:  # nothing was delivered: the same rows go again after the wait, not counted as an attempt
                self.journal.flight.release(ids, str(error), retry_at=time.time() + delay, count_attempt=False)
        elif isinstance(error, OutcomeUnknownError):
            self.unknown(rows, str(error))
            self.throttle.timed_out(str(error), request.timeout)
        elif isinstance(error, RejectedError):
            self.report.batches += 1
            self.rejected(rows, error)
        elif isinstance(error, KeyboardInterrupt):
            self.unknown(rows, INTERRUPTED, "interrupted mid-request")
        elif isinstance(error, NewsletterError):
            # A refusal of the whole send (credentials, sender, TLS...): nothing of these was delivered.
            if ids:
                self.journal.flight.release(ids, f"not sent: {error}", count_attempt=False)
            self.stop_with(error)
        else:
            # A bug, not an answer: part of the request may have gone out. Never resend it blindly.
            self.unknown(rows, f"the send failed while delivering this request ({type(error).__name__}: {error})")
            self.stop_with(error)

    def rejected(self, rows: list[jn.Row], err: RejectedError) -> None:
        """A refused request delivered nothing: fail the recipients it names, send the rest again.

        The provider names the culprit as ``personalizations.N...``; an error about the
        request as a whole would fail for everyone, so the send stops. Without any field
        to go by, the batch is split in halves.
        """
        if not rows:
            return
        flight = self.journal.flight
        ids = [row.id for row in rows]
        fields = [f for _, f in err.errors if f]
        named = sorted({int(f.split(".")[1]) for f in fields
                        if f.startswith("personalizations.") and f.split(".")[1].isdigit()})
        if fields and not named:
            flight.release(ids, f"not sent: {err}", count_attempt=False)
            self.stop_with(err)
            return
        if len(rows) == 1 or (named and all(i < len(rows) for i in named)):
            culprits = [rows[i] for i in named] if len(rows) > 1 else rows
            self.settle([(row, jn.FAILED, "", str(err)) for row in culprits])
            self.report.failed.extend((row.email, str(err)) for row in culprits)
            culprit_ids = {row.id for row in culprits}
            others = [row for row in rows if row.id not in culprit_ids]
            if others:
                flight.release([row.id for row in others], "", count_attempt=False, keep=True)
                self.split.append(others)
            return
        flight.release(ids, "", count_attempt=False, keep=True)  # sent again at once, in halves
        half = len(rows) // 2
        self.split.extend([rows[:half], rows[half:]])

    def refuse(self, rows: list[jn.Row], refused: Sequence[tuple[int, str]]) -> list[jn.Row]:
        """Fail the rows at the refused positions (unsafe data, alone); the others, to be sent."""
        if not refused:
            return rows
        reasons = dict(refused)
        self.settle([(rows[i], jn.FAILED, "", reason) for i, reason in refused])
        self.report.failed.extend((rows[i].email, reason) for i, reason in refused)
        return [row for i, row in enumerate(rows) if i not in reasons]

    def refuse_keys(self, rows: list[jn.Row], refused: Sequence[tuple[str, str]]) -> list[jn.Row]:
        """Fail the rows whose keys the encoder could not carry; the others, to be sent."""
        if not refused:
            return rows
        by_key = {row.key: row for row in rows}
        failed = [(by_key[k], jn.FAILED, "", reason) for k, reason in refused if k in by_key]
        self.settle(failed)
        self.report.failed.extend((row.email, reason) for row, _, _, reason in failed)
        keys = {k for k, _ in refused}
        return [row for row in rows if row.key not in keys]

    # -- a second Ctrl-C --

    def abandon(self, posting: Iterable[Request], chunks: Iterable[Chunk]) -> None:
        """Record what is known and leave: only recipients whose request is under way become unknown."""
        for chunk in chunks:  # outcomes already reported are recorded as they went
            chunk.request.abandoned = True
            self.record(chunk.request, chunk.outcomes)
            chunk.request.journaled.set()
        for request in posting:
            request.leave()
            rows = list(request.open.values())
            if rows and self.sequential:  # only the first can have been under way
                self.journal.flight.release([row.id for row in rows[1:]], "", count_attempt=False)
                rows = rows[:1]
            self.unknown(rows, INTERRUPTED, "interrupted mid-request")
        self.report.interrupted = True
