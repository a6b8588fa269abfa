"""Each provider by name (the names are ``provider_names.py``'s, mapped to packages in ``names.py``):
config, the CLI, the send engine, serve, stats and the doctor all ask here, and get the provider's
``ProviderKind`` (``contract.py``).

Each name maps to a package whose ``KIND`` is that provider's kind. Packages are imported only when
asked for, so a send through SMTP never imports ``sendgrid``, and nothing outside ``names.py`` and this
file needs to know which packages exist.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ..errors import NewsletterError
from .contract import ProviderKind, Signals
from .names import NAMES, PROVIDERS

__all__ = ["NAMES", "capabilities", "fetch_signals", "is_hard_refusal", "is_provider_source", "kind", "kind_or_none",
           "kinds", "open_provider"]

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ..config import Settings
    from .base import Capabilities, Provider


def kind(name: str) -> ProviderKind:
    """Provider ``name``; a NewsletterError naming the known ones otherwise."""
    if name not in PROVIDERS:
        raise NewsletterError(f"unknown provider '{name}'", hint=f"use one of: {', '.join(NAMES)}")
    found = importlib.import_module(PROVIDERS[name]).KIND
    if not isinstance(found, ProviderKind):  # pragma: no cover - a provider package written wrong
        raise TypeError(f"{PROVIDERS[name]}.KIND is not a ProviderKind")
    return found


def kind_or_none(name: str) -> ProviderKind | None:
    """Provider ``name``, or None for no provider ("": a sample message, built for nobody's provider)."""
    return kind(name) if name else None


def kinds() -> tuple[ProviderKind, ...]:
    """Every provider, in the order of ``names.py``."""
    return tuple(kind(name) for name in NAMES)


def is_provider_source(source: str) -> bool:
    """Whether an event's ``source`` is a provider's (its event webhook), not the service's own pages."""
    return source in PROVIDERS


def capabilities(name: str) -> Capabilities:
    return kind(name).capabilities


def open_provider(settings: Settings, name: str) -> Provider[Any]:
    """Provider ``name`` configured from settings (secrets read from the environment)."""
    return kind(name).open(settings)


def fetch_signals(settings: Settings, name: str, *, since: float) -> Signals:
    """What provider ``name`` recorded since ``since`` (Unix seconds): ``{"bounces": [...], "blocks": [...],
    "spam_reports": [...]}``, each item with at least ``email`` (see ``sending/stage_rules.py``)."""
    return kind(name).fetch_signals(settings, since=since)


def is_hard_refusal(name: str, reason: str) -> bool:
    """Whether a refusal provider ``name`` gave (its reason as the journal keeps it) is a hard bounce: the
    receiving server said the address is permanently undeliverable. A staged send counts these."""
    return kind(name).is_hard_refusal(reason)
