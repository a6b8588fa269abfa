"""The send loop's side of the body workers (``workers.py``): handing them batches, taking built bodies back,
and going on without them when one dies.

A batch handed to a worker is pending in the journal until its body is back and
its request starts, so a worker that dies (killed by the out-of-memory killer,
say) has sent nothing: the pool breaks, every batch it held comes back here as
rows to build in the sending process, and the send goes on there. The news comes
as the failed futures' callbacks, which ``concurrent.futures`` fires as soon as
it sees the worker's process end (it waits on the processes' sentinels), and
reaches the loop through its inbox like any other event.
"""

from __future__ import annotations

from concurrent.futures import BrokenExecutor, Future
from typing import Any

from ..errors import NewsletterError
from ..providers.base import Payload, Provider, RejectedError
from . import journal as jn
from .outcomes import Outcomes
from .plan import SendPlan
from .posting import Built, Inbox
from .report import SendReport
from .workers import BodyContext, BodyWorkers, Encoded


class Bodies:
    """Batches being built by worker processes (``encoding``) and built, waiting for a slot (``built``)."""

    def __init__(self, plan: SendPlan, provider: Provider[Any], report: SendReport, inbox: Inbox, outcomes: Outcomes):
        self.plan = plan
        self.report = report
        self.inbox = inbox
        self.outcomes = outcomes
        self.encoding: dict[Future[Encoded], list[jn.Row]] = {}
        self.built: list[tuple[list[jn.Row], Payload[Any]]] = []
        self.workers = self._start(provider)
        report.body_workers = self.workers.processes if self.workers else 0

    def _start(self, provider: Provider[Any]) -> BodyWorkers | None:
        """Worker processes that encode payloads, for a large send (not a dry run: it samples in order)."""
        plan = self.plan
        threshold = plan.settings.send.parallel_from
        large = self.report.to_send >= threshold or plan.selection is not None  # selected while sending: large
        if not plan.mode.delivers or threshold <= 0 or not large:
            if plan.bodies is not None:
                plan.bodies.close()  # the list looked large, but few of its recipients are still to go
                plan.bodies = None
            return None
        encode = provider.encode  # a module-level function: it pickles by name
        if plan.bodies is not None and plan.bodies.context.encode is encode:
            return plan.bodies
        if plan.bodies is not None:  # started for another encoder than this provider's
            plan.bodies.close()
        plan.bodies = BodyWorkers(BodyContext(plan.settings, plan.list_name, plan.secret, plan.provider_name,
                                              plan.message, encode, plan.readers))
        return plan.bodies

    @property
    def ready(self) -> bool:
        """Workers are up to take a batch (until then, and after they are gone, the loop builds bodies itself)."""
        return self.workers is not None and self.workers.ready

    @property
    def busy(self) -> bool:
        return bool(self.encoding)

    def room(self) -> bool:
        """Whether to hand the workers another batch: enough are being built to keep every worker busy."""
        return self.workers is not None and len(self.encoding) + len(self.built) <= self.workers.processes

    def submit(self, rows: list[jn.Row]) -> bool:
        """Hand ``rows`` to a worker; False when the workers are gone (the rows are to be built here)."""
        assert self.workers is not None
        try:
            future = self.workers.submit(rows)
        except BrokenExecutor as err:
            self.lost(err)
            return False
        self.encoding[future] = rows
        future.add_done_callback(lambda f: self.inbox.put(Built(f)))
        return True

    def collect(self, future: Future[Encoded], may_continue: bool) -> None:
        """A worker's answer: the body joins ``built``, a refusal is settled, a dead worker is survived."""
        rows = self.encoding.pop(future, None)
        if rows is None:
            return
        error = future.exception()
        if isinstance(error, BrokenExecutor):
            self.outcomes.split.insert(0, rows)
            self.lost(error)
        elif isinstance(error, RejectedError):
            self.outcomes.rejected(rows, error)
        elif isinstance(error, NewsletterError):
            self.outcomes.stop_with(error)
        elif error is not None:
            self.outcomes.stop_with(NewsletterError(
                f"a worker process failed while building a request ({error}); nothing in that batch was sent",
                hint="run the send again to resume; [send] parallel_from = 0 in newsletter.toml builds every "
                     "request in the sending process"))
        elif may_continue:  # else stopping or paused: these rows were never in flight and stay pending
            payload, refused = future.result()
            sendable = self.outcomes.refuse(rows, refused)
            if sendable and payload is not None:
                self.built.append((sendable, payload))

    def lost(self, error: BaseException) -> None:
        """A worker died: the pool is broken. Every batch it held is built here instead, and the send goes on."""
        if self.workers is None:
            return
        for rows in self.encoding.values():
            self.outcomes.split.insert(0, rows)
        self.encoding.clear()
        self.close()
        self.report.body_workers_lost = (f"a worker process stopped ({type(error).__name__}); the rest of the "
                                         "bodies were built in the sending process")

    def close(self) -> None:
        if self.workers is not None:
            self.workers.close()
            self.workers = None
            self.plan.bodies = None

    def cancel(self) -> None:
        """A second Ctrl-C: bodies not yet built are dropped (their rows were never in flight)."""
        for future in self.encoding:
            future.cancel()
