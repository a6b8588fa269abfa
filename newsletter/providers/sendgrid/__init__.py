"""SendGrid: one request per batch of up to 1000 recipients, through the official client.

``body.py`` writes the request bodies (pure), ``client.py`` holds the API client (the only module
that imports ``sendgrid``) and the provider that posts them, ``suppressions.py`` reads what SendGrid
recorded about addresses. ``KIND`` is what the registry, and so the rest of the package, sees of it.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from ...errors import NewsletterError
from ..contract import DnsExpectations, EventWebhook, ProviderKind, Signals
from .body import GROUP_UNSUBSCRIBE_TAG, MAX_RECIPIENTS, encode
from .client import (
    CAPABILITIES,
    EVENT_SIGNATURE_HEADER,
    EVENT_TIMESTAMP_HEADER,
    SendGridProvider,
    event_webhook_verifier,
    from_settings,
)
from .events import read_events
from .suppressions import SIGNAL_KINDS, fetch_signals, fetch_suppressions

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ...config import Settings

MAX_SEND_AHEAD = dt.timedelta(hours=72)
SENDGRID_DOMAIN = "sendgrid.net"  # signs and returns bounces for a domain not authenticated with it


def check_send_at(send_at: dt.datetime | None, now: dt.datetime | None = None) -> None:
    """SendGrid schedules at most 72 hours ahead; refuse before any request rather than per batch."""
    if send_at is None:
        return
    now = now or dt.datetime.now(dt.UTC)
    when = send_at if send_at.tzinfo else send_at.astimezone()
    if when - now > MAX_SEND_AHEAD:
        raise NewsletterError(
            f"--provider-at {when.isoformat(timespec='minutes')} is more than 72 hours ahead; "
            "SendGrid schedules delivery at most 72 hours in advance",
            hint="pick a time within the next 72 hours, or schedule it with --at (newsletter holds it until then)",
        )


def _webhook_key_env(settings: Settings) -> str:
    return settings.serve.sendgrid_webhook_key_env


class SendGrid(ProviderKind):
    """SendGrid's v3 API: scheduling, categories, unsubscribe groups, suppressions, a signed event webhook."""

    name = "sendgrid"
    title = "SendGrid"
    capabilities = CAPABILITIES
    encode = staticmethod(encode)
    suppression_list = True
    group_unsubscribe_setting = "sendgrid.unsubscribe_group"
    group_unsubscribe_link = GROUP_UNSUBSCRIBE_TAG
    event_webhook = EventWebhook(signature_header=EVENT_SIGNATURE_HEADER, timestamp_header=EVENT_TIMESTAMP_HEADER,
                                 verifier=event_webhook_verifier, key_env=_webhook_key_env, read=read_events)

    def open(self, settings: Settings) -> SendGridProvider:
        return from_settings(settings)

    def check_schedule(self, send_at: dt.datetime | None) -> None:
        check_send_at(send_at)

    def fetch_signals(self, settings: Settings, *, since: float) -> Signals:
        return fetch_signals(settings, since=since)

    def is_hard_refusal(self, reason: str) -> bool:
        """Never: SendGrid's own refusals (a malformed address, a body it rejects) are not answers from a
        receiving server; its bounces come through ``fetch_signals``."""
        return False

    def fetch_suppressions(self, settings: Settings) -> dict[str, str]:
        """Global unsubscribes, bounces, spam reports and the unsubscribe group's suppressions."""
        provider = from_settings(settings)
        try:
            return fetch_suppressions(provider)
        finally:
            provider.close()

    def unsubscribe_group(self, settings: Settings) -> int | None:
        return settings.sendgrid.unsubscribe_group

    def categories(self, settings: Settings) -> tuple[str, ...]:
        return settings.sendgrid.categories

    def dns(self, settings: Settings) -> DnsExpectations:
        """Domain authentication publishes DKIM keys at s1/s2 (CNAMEs to sendgrid.net, which rotates them)
        and a Return-Path subdomain em<n>.<domain>; without it, SendGrid signs and bounces as sendgrid.net."""
        return DnsExpectations(spf_include=SENDGRID_DOMAIN, dkim_selectors=("s1", "s2"),
                               fallback_domain=SENDGRID_DOMAIN, key_rotation_domain=SENDGRID_DOMAIN,
                               bounce_label="em", domain_setup="in SendGrid (Settings > Sender Authentication)",
                               key_length_setup="SendGrid: Sender Authentication > the domain > key length")

    def doctor_fingerprint(self, settings: Settings) -> tuple[str, ...]:
        return (repr(settings.sendgrid.unsubscribe_group),)


KIND = SendGrid()

__all__ = ["CAPABILITIES", "EVENT_SIGNATURE_HEADER", "EVENT_TIMESTAMP_HEADER", "KIND", "MAX_RECIPIENTS",
           "SIGNAL_KINDS", "SendGridProvider", "check_send_at", "encode", "event_webhook_verifier", "fetch_signals",
           "fetch_suppressions", "from_settings"]
