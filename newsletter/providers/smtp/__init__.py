"""SMTP: each recipient their own message over one reused connection, through smtplib.

``wire.py`` writes each recipient's copy as the bytes DATA sends (pure), ``connection.py`` opens a
secured, logged-in session, ``client.py`` holds the provider that runs the transactions. ``KIND`` is
what the registry, and so the rest of the package, sees of it.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from ...errors import NewsletterError
from ..contract import DnsExpectations, ProviderKind
from .client import CAPABILITIES, MAX_BATCH, SmtpProvider, from_settings
from .wire import WireTemplate, encode

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ...config import Settings


class Smtp(ProviderKind):
    """An SMTP server of the writer's: no scheduling, no suppression list, no webhook (its later bounces
    reach ``newsletter serve`` by mail); its host is ours to check in DNS."""

    name = "smtp"
    title = "SMTP"
    capabilities = CAPABILITIES
    encode = staticmethod(encode)

    def open(self, settings: Settings) -> SmtpProvider:
        return from_settings(settings)

    def check_schedule(self, send_at: dt.datetime | None) -> None:
        if send_at is not None:
            raise NewsletterError("--provider-at needs a provider that holds mail until a time; smtp sends at once",
                                  hint="schedule it with --at instead: newsletter holds it and `send --due` sends it")

    def is_hard_refusal(self, reason: str) -> bool:
        """A 5xx answer to RCPT or DATA (``_outcome``'s "SMTP 550 ..."): the receiving server refused the
        address for good, a hard bounce. (Signals: none; an SMTP server has no API for bounces. Its 5xx
        answers are in the journal, and later bounces reach ``newsletter serve``'s event store, which a
        staged send also reads.)"""
        return reason.startswith("SMTP 5")

    def dns(self, settings: Settings) -> DnsExpectations:
        """SPF must authorize the host's addresses; DKIM is the server's own (selectors from [doctor])."""
        return DnsExpectations(sending_host=settings.smtp.host, sending_host_in_clear=settings.smtp.security == "none",
                               host_setting="smtp.host", security_setting="smtp.security")

    def doctor_fingerprint(self, settings: Settings) -> tuple[str, ...]:
        return (settings.smtp.host, settings.smtp.security)


KIND = Smtp()

__all__ = ["CAPABILITIES", "KIND", "MAX_BATCH", "SmtpProvider", "WireTemplate", "encode", "from_settings"]
