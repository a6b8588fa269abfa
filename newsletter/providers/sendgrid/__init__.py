"""SendGrid: one request per batch of up to 1000 recipients, through the official client.

``body.py`` writes the request bodies (pure), ``client.py`` holds the API client (the only module
that imports ``sendgrid``) and the provider that posts them, ``suppressions.py`` reads what SendGrid
recorded about addresses. This module is what the registry sees of all that.
"""

from __future__ import annotations

import datetime as dt

from ...errors import NewsletterError
from .body import MAX_RECIPIENTS, encode
from .client import (
    CAPABILITIES,
    EVENT_SIGNATURE_HEADER,
    EVENT_TIMESTAMP_HEADER,
    SendGridProvider,
    event_webhook_verifier,
    from_settings,
)
from .suppressions import SIGNAL_KINDS, fetch_signals, fetch_suppressions

MAX_SEND_AHEAD = dt.timedelta(hours=72)


def is_hard_refusal(reason: str) -> bool:
    """Never: SendGrid's own refusals (a malformed address, a body it rejects) are not answers from a
    receiving server; its bounces come through ``fetch_signals``."""
    return False


def check_schedule(send_at: dt.datetime | None) -> None:
    check_send_at(send_at)


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



__all__ = ["CAPABILITIES", "EVENT_SIGNATURE_HEADER", "EVENT_TIMESTAMP_HEADER", "MAX_RECIPIENTS", "SIGNAL_KINDS",
           "SendGridProvider", "check_send_at", "encode", "event_webhook_verifier", "fetch_signals",
           "fetch_suppressions", "from_settings"]
