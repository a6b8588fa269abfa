"""SMTP: each recipient their own message over one reused connection, through smtplib.

``wire.py`` writes each recipient's copy as the bytes DATA sends (pure), ``connection.py`` opens a
secured, logged-in session, ``client.py`` holds the provider that runs the transactions. This module
is what the registry sees of all that.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ...config import Settings
from ...errors import NewsletterError
from .client import CAPABILITIES, MAX_BATCH, SmtpProvider, from_settings
from .wire import WireTemplate, encode


def fetch_signals(settings: Settings, *, since: float) -> dict[str, list[dict[str, Any]]]:
    """Nothing: an SMTP server has no API for bounces. Its 5xx answers are in the journal, and later
    bounces reach ``newsletter serve``'s event store, which a staged send also reads."""
    return {}


def is_hard_refusal(reason: str) -> bool:
    """A 5xx answer to RCPT or DATA (``_outcome``'s "SMTP 550 ..."): the receiving server refused the
    address for good, a hard bounce."""
    return reason.startswith("SMTP 5")


def check_schedule(send_at: dt.datetime | None) -> None:
    if send_at is not None:
        raise NewsletterError("--provider-at needs a provider that holds mail until a time; smtp sends at once",
                              hint="schedule it with --at instead: newsletter holds it and `send --due` sends it")



__all__ = ["CAPABILITIES", "MAX_BATCH", "SmtpProvider", "WireTemplate", "encode", "from_settings"]
