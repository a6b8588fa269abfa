"""What the doctor knows before it asks DNS anything: which domains and selectors the setup uses.

Read from ``newsletter.toml``: the From and Reply-To domains, the provider,
the domain mail is DKIM-signed with and its selectors, and the envelope
(Return-Path) domain SPF is checked on. What the provider expects in DNS (an SPF
include, default DKIM selectors, the domain it signs as otherwise) is its
``ProviderKind.dns``: SendGrid's default to the ``s1``/``s2`` selectors of an
authenticated From domain, as its domain authentication publishes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from ..config import Settings
from ..errors import display_path
from ..providers import registry
from ..providers.contract import DnsExpectations, ProviderKind
from .domains import domain_of
from .resolver import DnsClient


@dataclass
class DoctorContext:
    """The settings, the DNS client to ask, and the names derived from the settings."""

    settings: Settings
    dns: DnsClient

    @property
    def provider(self) -> str:
        return self.settings.provider

    @property
    def kind(self) -> ProviderKind:
        return registry.kind(self.settings.provider)

    @property
    def expects(self) -> DnsExpectations:
        """What the provider needs published in DNS."""
        return self.kind.dns(self.settings)

    @property
    def from_domain(self) -> str:
        return domain_of(self.settings.from_email)

    @property
    def reply_to_domain(self) -> str:
        return domain_of(self.settings.reply_to) if self.settings.reply_to else ""

    @property
    def dkim_domain(self) -> str:
        return (self.settings.doctor.dkim_domain or self.from_domain).lower()

    @property
    def dkim_selectors(self) -> tuple[str, ...]:
        configured = self.settings.doctor.dkim_selectors
        if configured:
            return configured
        return self.expects.dkim_selectors

    @property
    def envelope_domain(self) -> str:
        """The domain SPF is evaluated for: ``[doctor] envelope_domain``, else the From domain."""
        return (self.settings.doctor.envelope_domain or self.from_domain).lower()

    @property
    def config_path(self) -> str:
        return display_path(self.settings.path)

    @property
    def unsubscribe_host(self) -> str:
        return (urlsplit(self.settings.unsubscribe_url).hostname or "") if self.settings.unsubscribe_url else ""
