"""The small interface every provider implements, and the vocabulary they share.

Providers translate; they do not decide. The send engine (``newsletter/sending/``)
owns batching, concurrency, back-off, the journal and progress, identically for
every provider. A provider does two things:

- ``encode(message, recipients) -> Payload``: pure and picklable (a module-level
  function), so worker processes, the dry run and tests can call it without a
  network;
- ``deliver(payload)``: the only network step, yielding the recipients'
  ``Delivery`` outcomes in chunks as the answers arrive (SMTP: one recipient at
  a time; SendGrid: the whole request at once, as one ``Accepted``), so the
  engine journals each answer as soon as it exists.

It declares what it can do as ``Capabilities``. A fault that concerns the
whole request is raised as one of the exceptions below, so the engine can tell
"safe to retry" from "maybe delivered" from "stop everything".
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from ..compose.outgoing import Message as Message
from ..compose.outgoing import Recipient as Recipient
from ..compose.outgoing import quote_addresses as quote_addresses
from ..errors import NewsletterError


class Status(StrEnum):
    """A recipient's state: what a provider answered about them, and where the journal has them.
    One closed vocabulary for both (a StrEnum: each member is its own text, as the journal stores it)."""

    # A provider's outcomes for a recipient of a request:
    SENT = "sent"  # the provider accepted the message for this recipient
    FAILED = "failed"  # permanently refused for this recipient (bad address, 5xx SMTP reply, ...)
    DEFERRED = "deferred"  # temporarily refused (SMTP 4xx): safe to try again later
    UNKNOWN = "unknown"  # the request may or may not have been delivered: never resent automatically
    # Where the journal has a recipient besides those outcomes:
    PENDING = "pending"  # selected, to be sent
    IN_FLIGHT = "in_flight"  # a request carrying them is under way (or claimed by a sender sharing the send)
    HELD = "held"  # a later stage's recipient in a staged send
    WAITING = "waiting"  # over a pacing cap for now


SENT, FAILED, DEFERRED, UNKNOWN = Status.SENT, Status.FAILED, Status.DEFERRED, Status.UNKNOWN
OUTCOMES = (SENT, FAILED, DEFERRED, UNKNOWN)


class Delivery(NamedTuple):
    """What happened to one recipient of a batch (a tuple: one per recipient)."""

    key: str
    status: Status  # one of OUTCOMES
    message_id: str = ""
    reason: str = ""


@dataclass(frozen=True)
class Accepted:
    """A chunk of outcomes in which every recipient was accepted under one message id (a whole
    SendGrid request). Iterated, it gives each recipient's ``Delivery`` like any other chunk;
    the send loop reads ``keys`` instead, so a million-recipient send makes no object per
    recipient to say what one answer already said."""

    keys: Sequence[str]
    message_id: str = ""

    def __iter__(self) -> Iterator[Delivery]:
        return (Delivery(key, SENT, self.message_id) for key in self.keys)


class ProviderError(NewsletterError):
    """A fault of a whole batch; ``str()`` says what the provider said (never a secret)."""

    def __init__(self, message: str, *, status: int | None = None, body: str = "", hint: str | None = None):
        self.status = status
        self.body = body
        super().__init__(message, hint=hint)


class TransientError(ProviderError):
    """Nothing was delivered and trying again later may work (429, 5xx, connection refused)."""

    def __init__(self, message: str, *, retry_after: float | None = None, status: int | None = None,
                 body: str = "", hint: str | None = None):
        self.retry_after = retry_after
        super().__init__(message, status=status, body=body, hint=hint)


class OutcomeUnknownError(ProviderError):
    """The request was written but no answer came back: it may have been delivered."""


class AuthError(ProviderError):
    """The provider refused our credentials (401/403): stop the whole send at once."""


class RejectedError(ProviderError):
    """The provider refused the batch's content (400/413): split it to find the recipient(s) at fault.

    ``errors`` holds the provider's own messages as (message, field) pairs.
    """

    def __init__(self, message: str, *, errors: Sequence[tuple[str, str]] = (), status: int | None = None,
                 body: str = "", hint: str | None = None):
        self.errors = tuple(errors)
        super().__init__(message, status=status, body=body, hint=hint)


@dataclass(frozen=True)
class Capabilities:
    """What a provider declares it can do; the engine reads this, never the provider's name."""

    max_batch: int  # most recipients one payload may carry
    max_concurrency: int  # requests the engine may have under way at once (1: never overlapping)
    scheduling: bool = False  # honours Message.send_at (``--at``)
    unsubscribe_groups: bool = False  # hosts the unsubscribe link itself (a group), instead of ours
    # Delivers a payload's recipients one after another, in order, and waits after yielding each
    # outcome until the engine has journaled it: after a crash, only the first recipient still in
    # flight can have been attempted (one unknown, as a mail queue would have), the rest are unsent.
    sequential: bool = False
    unicode_addresses: bool = False  # carries addresses with non-ASCII characters (SMTPUTF8, RFC 6531)


DataT = TypeVar("DataT")  # what a provider's encode hands its deliver: request bodies, wire copies...


class Payload(NamedTuple, Generic[DataT]):
    """One request, encoded: the keys of the recipients it carries, in order, and the provider's data
    (typed by the provider: its ``encode`` makes it, only its ``deliver`` reads it).

    ``refused`` names recipients the encoder could not put in the request at all (an address
    the provider cannot carry), each with its reason: they fail alone, before anything is sent.
    ``labels`` name the request in the provider's own records (``RUN_LABEL``, ``BATCH_LABEL``): the
    send loop sets them once the request is journaled in flight, and a provider that reports events
    hands them back with each (SendGrid: ``custom_args``), so a request in the grey zone can be
    settled from what the provider saw of it (``sending/resolution.py``).
    """

    keys: tuple[str, ...]
    data: DataT
    refused: tuple[tuple[str, str], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()


# The names of a request's labels: its run (the journal's run uid, unique across journals) and its batch
# (the journal's label for the request: a provider that splits it into several requests adds "#i/n").
RUN_LABEL = "newsletter_run"
BATCH_LABEL = "newsletter_batch"


def request_labels(run_uid: str, batch: str) -> tuple[tuple[str, str], ...]:
    """``Payload.labels`` for the request journaled as ``batch`` by the run ``run_uid``."""
    return ((RUN_LABEL, run_uid), (BATCH_LABEL, batch))


# What a deliver yields, chunk by chunk; a generator, which the engine may close.
Outcomes = Generator[list[Delivery] | Accepted, None, None]


class Provider(Protocol[DataT]):
    """What the send engine needs of a way out, once opened (the instance half of the contract; the
    other half, what a provider is before it is opened, is ``contract.ProviderKind``).

    Generic over the data its ``encode`` hands its ``deliver`` (``Provider[Bodies]``: SendGrid's JSON
    bodies, ``Provider[SmtpData]``: each copy's bytes), so only that provider's ``deliver`` reads what
    its ``encode`` made, typed; the engine, which holds any provider, holds a ``Provider[Any]``."""

    name: str
    capabilities: Capabilities
    timeout: float  # seconds a request may stay unanswered before its outcome is unknown (the send loop
    # lengthens it after a timeout, and sets it back: docs/sending.md, "Provider trouble")

    def encode(self, message: Message, recipients: Sequence[Recipient]) -> Payload[DataT]:
        """The request for these recipients; pure (a staticmethod of a module-level function)."""

    def open(self) -> None:
        """Connect / check credentials before the first request (may raise AuthError)."""

    def deliver(self, payload: Payload[DataT]) -> Outcomes:
        """Make the request; yield outcomes as they arrive, or raise a ProviderError for the whole request.
        A generator: the engine closes it to stop a sequential provider before its next recipient."""

    def probe(self, timeout: float) -> None:
        """A request that delivers nothing (an API read, an SMTP NOOP): returns once the provider answers."""

    def close(self) -> None:
        """Release connections."""


def deliver_all(provider: Provider[Any], message: Message, recipients: Sequence[Recipient]) -> list[Delivery]:
    """Encode and deliver one batch, and wait for every outcome (tests, and callers without a journal)."""
    payload = provider.encode(message, recipients)
    outcomes = [Delivery(key, FAILED, reason=reason) for key, reason in payload.refused]
    if payload.keys:
        for chunk in provider.deliver(payload):
            outcomes.extend(chunk)
    order = {r.key: i for i, r in enumerate(recipients)}
    return sorted(outcomes, key=lambda d: order.get(d.key, len(order)))
