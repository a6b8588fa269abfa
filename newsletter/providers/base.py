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

import datetime as dt
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from enum import StrEnum
from functools import cached_property
from types import MappingProxyType
from typing import Any, Generic, NamedTuple, Protocol, TypeVar
from urllib.parse import quote

from ..compose.merge import MergeField
from ..compose.message import Envelope, InlineImage, build_message
from ..compose.personalize import Personalizer
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


class Recipient(NamedTuple):
    """One addressee of a send, with the merge values their copy is filled with.

    A tuple rather than a dataclass: one is made per recipient per send, and a
    million-recipient send feels the difference.
    """

    email: str
    key: str  # normalized address: the journal's and the de-duplication's key
    name: str = ""
    values: Mapping[str, str] = MappingProxyType({})  # "subscriber.<col>" and "unsubscribe_url"

    @property
    def unsubscribe_url(self) -> str:
        return self.values.get("unsubscribe_url", "")


@dataclass(frozen=True)
class Message:
    """The issue as it goes out: rendered and inlined once, shared by every recipient."""

    issue_name: str
    list_name: str
    subject: str
    html: str  # inlined HTML holding merge tokens
    text: str  # plain text holding merge tokens
    fields: tuple[MergeField, ...]
    from_address: str
    reply_to: str = ""
    unsubscribe_mailto: str = ""  # address for the mailto: List-Unsubscribe target, "" for none
    send_at: dt.datetime | None = None
    sandbox: bool = False
    categories: tuple[str, ...] = ()
    unsubscribe_group: int | None = None  # SendGrid ASM group; then SendGrid adds the unsubscribe headers
    headers: tuple[tuple[str, str], ...] = ()  # further headers every copy carries (List-Id...), in order
    related: tuple[InlineImage, ...] = ()  # pictures carried inside the message, shown by ``html`` as cid:
    # what a provider that reports events for each copy hands back with them (the issue id, an A/B variant):
    # stats reads them from newsletter serve's event store
    labels: tuple[tuple[str, str], ...] = ()

    @cached_property
    def html_personalizer(self) -> Personalizer:
        return Personalizer(self.html, self.fields)

    @cached_property
    def text_personalizer(self) -> Personalizer:
        return Personalizer(self.text, self.fields)

    def personalize(self, recipient: Recipient) -> tuple[str, str]:
        """(html, text) filled with the recipient's values, escaped for each part."""
        return self.html_personalizer.fill(recipient.values), self.text_personalizer.fill(recipient.values)

    def email_for(self, recipient: Recipient) -> EmailMessage:
        """The complete message ``recipient`` receives: their copy, their To, their unsubscribe links."""
        html, text = self.personalize(recipient)
        targets = self.list_unsubscribe(recipient)
        envelope = Envelope(
            from_address=self.from_address, to_email=recipient.email, to_name=recipient.name,
            reply_to=self.reply_to, subject=self.subject, list_unsubscribe=targets,
            one_click=any(target.startswith("https://") for target in targets),
            extra_headers=dict(self.headers),
        )
        return build_message(envelope, text, html, related=self.related)

    def list_unsubscribe(self, recipient: Recipient) -> list[str]:
        """List-Unsubscribe targets for this recipient: their HTTPS link and the mailto."""
        targets = self.unsubscribe_links([recipient])
        if self.unsubscribe_mailto:
            targets.append(self.unsubscribe_mailto_prefix + quote_addresses([recipient.email])[0])
        return [target for target in targets if target]

    def unsubscribe_links(self, recipients: Sequence[Recipient]) -> list[str]:
        """Each recipient's HTTPS List-Unsubscribe target, "" for none (a batch at a time: an
        encoder writes them for every recipient)."""
        links = [values.get("unsubscribe_url", "") for _, _, _, values in recipients]
        return [link if link.startswith("https://") else "" for link in links]

    @property
    def unsubscribe_mailto_prefix(self) -> str:
        """The mailto List-Unsubscribe target up to the recipient's address (which follows it
        percent-encoded: ``quote_addresses``); "" when there is none."""
        return f"mailto:{self.unsubscribe_mailto}?subject=unsubscribe%20" if self.unsubscribe_mailto else ""


_PLAIN_ADDRESSES = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_@ "


def quote_addresses(emails: Sequence[str]) -> list[str]:
    """Each address percent-encoded for a URL query, as ``quote(email, safe="")`` would.

    The common case, addresses of letters, digits, ".-_" and "@", needs only its "@" encoded: one
    check (deleting those characters leaves nothing) and one replacement over the batch joined by
    spaces (a space is in no such address).
    """
    joined = " ".join(emails)
    if (joined.isascii() and not joined.encode("ascii").translate(None, _PLAIN_ADDRESSES)
            and joined.count(" ") == len(emails) - 1):
        return joined.replace("@", "%40").split(" ")
    return [quote(email, safe="") for email in emails]


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
