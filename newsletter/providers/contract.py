"""What a provider is before it is opened: the module half of the provider contract.

The instance half, ``base.Provider``, is what the send loop drives (encode, deliver, probe). This half
is everything else the rest of the package asks about a provider, by its name from ``newsletter.toml``:
how to open one from the settings, what it can do, whether it holds mail until a time, what it
recorded about addresses (bounces for a staged send, suppressions for ``subscribers sync``), how its
event webhook is verified, what it needs published in DNS, and its own unsubscribe group. Each
provider package declares one subclass of ``ProviderKind`` and one instance of it, ``KIND``; the
registry returns it. Modules outside ``providers/`` read these facts and never a provider's name, so a
new provider is one package and one line in ``names.py``.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .base import Capabilities, Message, Payload, Provider, Recipient

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ..config import Settings

# What a provider recorded since a time, for a staged send's circuit breaker: ``{"bounces": [...],
# "blocks": [...], "spam_reports": [...]}``, each item with at least ``email`` (``sending/stage_rules.py``).
Signals = dict[str, list[dict[str, Any]]]
# A check of one signed webhook batch: (raw body, signature header, timestamp header) -> genuine.
Verifier = Callable[[bytes, str, str], bool]
Encoder = Callable[[Message, Sequence[Recipient]], Payload[Any]]


# What a provider's events say, in the words of serve's event store (``serve/store.py`` keeps these).
UNSUBSCRIBED, BOUNCED, COMPLAINED = "unsubscribed", "bounced", "complained"  # the address leaves the list
DELIVERED = "delivered"
DEFERRED = "deferred"  # the receiving server said "later": the provider tries again
DROPPED = "dropped"  # the provider did not send it (a suppressed or invalid address)
OPENED = "opened"  # the provider's pixel was loaded: inflated by privacy proxies (Apple Mail) and scanners
CLICKED = "clicked"  # the provider's own click tracking
HARD, SOFT = "hard", "soft"  # a bounce's detail
PROCESSED = "processed"  # the provider took the request that carried the copy (its first event about it)


@dataclass(frozen=True)
class ReportedEvent:
    """One event of a provider's webhook batch, read out of the provider's own format."""

    email: str
    source_id: str  # the event's id, unique across providers (the provider's name first): stored once
    departure: str | None = None  # UNSUBSCRIBED, BOUNCED or COMPLAINED when the address leaves the list
    message: str | None = None  # what happened to a copy (DELIVERED ... UNSUBSCRIBED), None for nothing
    detail: str = ""  # HARD or SOFT, for a bounce
    list_name: str | None = None  # the list the copy went to, as the send labelled it; None: not labelled
    issue: str = ""  # the issue id the send labelled it with ("" for mail sent another way)
    variant: int = 0  # the A/B variant it was labelled with, 0 for none
    timestamp: int | None = None  # when it happened, Unix seconds, when the provider says
    # What the event proves of the request that carried the copy (the provider took it): PROCESSED, DELIVERED,
    # DEFERRED, BOUNCED or DROPPED; None for nothing. ``run`` and ``batch`` name that request as the send
    # labelled it (``base.RUN_LABEL``, ``base.BATCH_LABEL``): ``newsletter resolve`` settles its recipients.
    request: str | None = None
    run: str = ""
    batch: str = ""


@dataclass(frozen=True)
class EventWebhook:
    """How a provider posts its events to ``newsletter serve`` (at ``/events/<name>``), and how a batch's
    signature is checked: the headers that carry it, and ``verifier(public_key)`` to check them with
    (a NewsletterError at start for a key that is not one). ``key_env`` reads, from the settings, the
    environment variable that holds the verification key; ``read`` turns a verified body into events
    (a NewsletterError when it is not the provider's format)."""

    signature_header: str
    timestamp_header: str
    verifier: Callable[[str], Verifier]
    key_env: Callable[[Settings], str]
    read: Callable[[bytes], list[ReportedEvent]]


@dataclass(frozen=True)
class DnsExpectations:
    """What a provider needs published in DNS for its mail to pass SPF, DKIM and DMARC (``newsletter
    doctor`` checks them). "" or () where the provider expects nothing of the kind."""

    spf_include: str = ""  # the include: the envelope domain's SPF record needs ("": see sending_host)
    sending_host: str = ""  # a host of ours that hands mail out, whose addresses SPF must authorize
    sending_host_in_clear: bool = False  # mail goes to that host without TLS
    host_setting: str = ""  # the setting that names that host, for a fix ("smtp.host")
    security_setting: str = ""  # the setting that says how it is secured, for a fix
    dkim_selectors: tuple[str, ...] = ()  # the selectors to check when [doctor] names none
    # The domain the provider signs DKIM with, and returns bounces through, when the From domain is not
    # authenticated with it ("": nothing signs, and the envelope domain is the configured one).
    fallback_domain: str = ""
    key_rotation_domain: str = ""  # the selectors are CNAMEs here when the provider rotates the keys
    # The label of the Return-Path subdomain of an authenticated domain (em.<domain>): "" for none.
    bounce_label: str = ""
    # Where a writer authenticates a domain with the provider (a fix says "authenticate D <this>").
    domain_setup: str = ""
    key_length_setup: str = ""  # where the provider sets a DKIM key's length, for a fix


class ProviderKind(ABC):
    """One provider, before it is opened: what it can do, how it is opened, and every fact about it that
    the package outside ``providers/`` needs. Subclasses are stateless; the package's ``KIND`` is one."""

    name: str  # its name in newsletter.toml (provider = "..."), its [table] of settings and its event route
    title: str  # how messages name it ("SendGrid")
    capabilities: Capabilities
    # ``encode`` (pure, picklable: a module-level function) is the instance half's, so the dry run can
    # make the requests a live send would make without opening the provider.
    encode: Encoder

    @abstractmethod
    def open(self, settings: Settings) -> Provider[Any]:
        """The provider for ``settings``, its secret read from the environment variable they name."""

    @abstractmethod
    def check_schedule(self, send_at: dt.datetime | None) -> None:
        """Refuse a ``--provider-at`` time the provider cannot hold mail until (a NewsletterError)."""

    def fetch_signals(self, settings: Settings, *, since: float) -> Signals:
        """Bounces, blocks and spam reports recorded since ``since`` (Unix seconds); none by default."""
        return {}

    def is_hard_refusal(self, reason: str) -> bool:
        """Whether a refusal the provider gave (its reason as the journal keeps it) is a hard bounce."""
        return False

    # -- what differs by provider, for the modules outside providers/ ------------------------------

    suppression_list: bool = False  # keeps its own list of addresses it will not deliver to

    def fetch_suppressions(self, settings: Settings) -> dict[str, str]:
        """Every address the provider will not deliver to: address -> unsubscribed | bounced | complained."""
        raise NotImplementedError(f"{self.title} keeps no suppression list")  # only when suppression_list

    def unsubscribe_group(self, settings: Settings) -> int | None:
        """The provider's own unsubscribe group the settings name (it then hosts the unsubscribe link and
        writes List-Unsubscribe itself), or None."""
        return None

    group_unsubscribe_setting: str = ""  # the setting that names that group, for a fix ("" for none)
    # What each recipient's unsubscribe link is, for a message sent with the group: the provider's tag.
    group_unsubscribe_link: str = ""

    def categories(self, settings: Settings) -> tuple[str, ...]:
        """The categories every message carries (a provider that files messages under them)."""
        return ()

    event_webhook: EventWebhook | None = None  # posts its events to newsletter serve

    def dns(self, settings: Settings) -> DnsExpectations:
        """What the provider needs published in DNS, for ``settings``."""
        return DnsExpectations()

    def doctor_fingerprint(self, settings: Settings) -> tuple[str, ...]:
        """The settings the doctor's findings about this provider depend on (its cache key)."""
        return ()
