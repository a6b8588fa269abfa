"""Request bodies built in worker processes, so a large send uses every core.

Turning a batch of journal rows into a request (each recipient's
unsubscribe token, merge values and personalization, encoded by the
provider's pure ``encode``) is pure work and most of a large send's time; in one process it runs
under one interpreter lock, on one core. A send of at least
``[send] parallel_from`` recipients hands that work to a few worker
processes instead.

Only the work without side effects moves. The sending process still reads
the journal, marks a batch in flight (after its body exists, before its
request), makes the requests and settles the results, exactly as for a small
send. A worker is handed the rows of one batch and returns bytes: if it
fails or dies, nothing was sent and those rows are simply still pending.
Workers ignore Ctrl-C, which is the sending process's to handle.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..compose.click_tokens import CLICK_FIELD, ReaderParts
from ..compose.message import may_break_lines, refuse_line_breaks
from ..compose.personalize import subscriber_values, subscriber_values_of
from ..compose.unsubscribe import UnsubscribeLinks
from ..config import Settings
from ..errors import NewsletterError
from ..providers import registry
from ..providers.base import Message, Payload, Recipient
from .journal import Row

MAX_PROCESSES = 4  # more would only wait on the requests: [send] concurrency defaults to 4


def recipient_of(row: Row, links: UnsubscribeLinks, readers: ReaderParts | None = None) -> Recipient:
    """The recipient a journal row stands for; a NewsletterError if its address or name could forge headers."""
    email, name = row.email, row.name
    refuse_line_breaks("subscriber email", email)
    refuse_line_breaks("subscriber name", name)
    fields = json.loads(row.fields) if row.fields else None
    values = subscriber_values(email, name, fields, links(email))
    if readers is not None:
        values[CLICK_FIELD] = readers.many([row.key], [email])[0]
    return Recipient(email, row.key, name, values)


def recipients_of(rows: Iterable[Row | tuple[object, ...]], links: UnsubscribeLinks,
                  readers: ReaderParts | None = None) -> tuple[list[Recipient], list[tuple[int, str]]]:
    """(recipients, refusals): each row made a recipient, or refused as (its position, why) on its own.

    ``rows`` are journal rows, or plain tuples in the same order (a worker's). The same recipients
    as ``recipient_of`` row by row, made a batch at a time: one check of every address and name for
    line breaks, the batch's tokens at once, and its fields parsed at once. Only a batch where
    something may be refused goes row by row, so each refusal names its own row. ``readers``: each
    recipient's click-link value too ([stats] clicks).
    """
    rows = list(rows)
    if not rows:
        return [], []
    _, keys, emails, names, fields = list(zip(*rows, strict=True))[:5]
    if not may_break_lines(emails) and not may_break_lines(names):
        values = subscriber_values_of(emails, names, fields, links.many(emails))
        if readers is not None:
            for value, part in zip(values, readers.many(keys, emails), strict=True):
                value[CLICK_FIELD] = part
        return list(map(Recipient._make, zip(emails, keys, names, values, strict=True))), []
    recipients: list[Recipient] = []
    refused: list[tuple[int, str]] = []
    for position, row in enumerate(rows):
        try:
            recipients.append(recipient_of(Row._make((*row[:5], 0)), links, readers))  # (a worker's tuple made a row)
        except NewsletterError as err:
            refused.append((position, str(err)))
    return recipients, refused


@dataclass(frozen=True)
class BodyContext:
    """What a worker needs to build bodies, sent to it once when it starts (the secret goes by pipe, not file)."""

    settings: Settings
    list_name: str
    secret: bytes | None
    provider_name: str
    message: Message
    encode: Callable[[Message, Sequence[Recipient]], Payload[Any]]  # the provider's own, pure encoder
    readers: ReaderParts | None = None  # each recipient's click-link value ([stats] clicks)


class Encoded(NamedTuple):
    """A worker's answer for one batch: the payload (None when every row was refused) and the refusals."""

    payload: Payload[Any] | None
    refused: list[tuple[int, str]]  # (position of the row in the batch, why)


_context: BodyContext | None = None
_links: UnsubscribeLinks | None = None


def _start_worker(context: BodyContext, parent: int) -> None:
    global _context, _links
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C reaches every process in the group
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    _context = context
    _links = UnsubscribeLinks(context.settings, context.list_name, context.secret,
                              registry.kind_or_none(context.provider_name))


def _exit_with_parent(parent: int, every: float = 0.2) -> None:
    """A worker must not outlive its send: after a kill -9 nothing else would ever stop it.

    ``parent`` is the sending process's pid as it knew it, so a worker that finishes starting
    after its parent died (reparented already) exits at once too.
    """
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(1)


def _encode(rows: list[tuple[object, ...]]) -> Encoded:
    """Runs in a worker: rows as plain tuples (id, key, email, name, fields as JSON) in, one request body out.
    (``recipients_of`` reads them by position, as it reads journal rows.)"""
    assert _context is not None and _links is not None, "worker not started"
    recipients, refused = recipients_of(rows, _links, _context.readers)
    try:
        body = _context.encode(_context.message, recipients) if recipients else None
    except NewsletterError:
        raise  # about the issue or the settings: the sending process shows it as it is
    except Exception as err:  # noqa: BLE001 - a bug, not an answer; its type may not survive the pipe
        raise RuntimeError(f"{type(err).__name__}: {err}") from None
    return Encoded(body, refused)


@contextmanager
def _ctrl_c_ignored() -> Iterator[None]:
    """SIGINT ignored for a moment, so processes started now inherit that from their first instruction.

    (``_start_worker`` ignores it too, but only once the worker has started Python and unpickled its
    context; a Ctrl-C before that would kill it.) A Ctrl-C in these few milliseconds of starting
    processes is lost to the sending process too. Only the main thread may change signal handlers.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def worker_count() -> int:
    """One worker per CPU this process may run on (its affinity, which container limits often set), up to 4."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(MAX_PROCESSES, cpus))


class BodyWorkers:
    """A pool of worker processes building request bodies; ``submit(rows)`` gives a Future of ``Encoded``."""

    def __init__(self, context: BodyContext, processes: int | None = None):
        self.processes = processes or worker_count()
        self.context = context
        self._pool: ProcessPoolExecutor | None = None
        try:
            # spawn, not fork: the sending process has threads (HTTP requests), and a forked child
            # could inherit a lock one of them held.
            self._pool = ProcessPoolExecutor(self.processes, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_start_worker, initargs=(context, os.getpid()))
            with _ctrl_c_ignored():  # start every worker now, so each is born ignoring Ctrl-C
                self._started = [self._pool.submit(os.getpid) for _ in range(self.processes)]
        except Exception as err:  # noqa: BLE001 - e.g. no POSIX semaphores here; nothing was sent
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
            raise NewsletterError(f"could not start the worker processes that build request bodies: {err}",
                                  hint="nothing was sent; [send] parallel_from = 0 in newsletter.toml builds "
                                       "every body in the sending process") from None

    @property
    def ready(self) -> bool:
        """The start-up calls are answered: at least one worker runs (a fraction of a second after
        ``__init__``); the others may still be starting, and take work when they are up."""
        return all(future.done() for future in self._started)

    def submit(self, rows: Sequence[Row]) -> Future[Encoded]:
        assert self._pool is not None  # (None only when __init__ failed, and then there is no self)
        return self._pool.submit(_encode, [tuple(row[:5]) for row in rows])

    def close(self) -> None:
        """Stop the workers (again: harmless); bodies not yet built are dropped (their rows were never in flight)."""
        if self._pool is not None:
            with _tracker_watched():
                self._pool.shutdown(wait=True, cancel_futures=True)


@contextmanager
def _tracker_watched() -> Iterator[None]:
    """Closing the pool unlinks its semaphores, telling multiprocessing's resource tracker (a process of its
    own). If that process was killed, the first message starts a new one, which knows none of them and
    prints a traceback for each, after a warning: noise about a send that went well. A tracker
    started here first, with its error output to /dev/null, takes those messages quietly instead.
    Nothing leaks: the semaphores are unlinked all the same."""
    from multiprocessing import resource_tracker

    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "resource_tracker: process died unexpectedly, relaunching"
            os.dup2(devnull.fileno(), 2)  # the new tracker inherits file descriptor 2
            try:
                resource_tracker.ensure_running()  # the live tracker, or else a quiet new one
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)
    yield
