"""Opening a provider by name (the names live in ``names.py``): config, the CLI and the send engine
all go through these.

Each name maps to the module that implements it. A provider module offers
``CAPABILITIES`` (base.Capabilities), ``encode`` (pure, picklable),
``check_schedule(send_at)``, ``from_settings(settings)``, ``fetch_signals(settings, since=...)``
(bounces, blocks and spam reports since a time, for a staged send) and ``is_hard_refusal(reason)``
(whether a recipient's refusal recorded in the journal is a hard bounce, for the same). Modules are
imported only when used, so a send through SMTP never imports ``sendgrid``,
and nothing outside names.py and this file needs to know which modules exist.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

from ..errors import NewsletterError
from .names import NAMES, PROVIDERS

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ..config import Settings
    from .base import Capabilities, Provider



def module(name: str) -> ModuleType:
    """The module implementing provider ``name``; a NewsletterError naming the known ones otherwise."""
    if name not in PROVIDERS:
        raise NewsletterError(f"unknown provider '{name}'", hint=f"use one of: {', '.join(NAMES)}")
    return importlib.import_module(PROVIDERS[name])


def capabilities(name: str) -> Capabilities:
    return module(name).CAPABILITIES


def open_provider(settings: Settings, name: str) -> Provider:
    """Provider ``name`` configured from settings (secrets read from the environment)."""
    return module(name).from_settings(settings)


def fetch_signals(settings: Settings, name: str, *, since: float) -> dict[str, list[dict]]:
    """What provider ``name`` recorded since ``since`` (Unix seconds): ``{"bounces": [...], "blocks": [...],
    "spam_reports": [...]}``, each item with at least ``email`` (see ``sending/stage_rules.py``)."""
    return module(name).fetch_signals(settings, since=since)


def is_hard_refusal(name: str, reason: str) -> bool:
    """Whether a refusal provider ``name`` gave (its reason as the journal keeps it) is a hard bounce: the
    receiving server said the address is permanently undeliverable. A staged send counts these."""
    return module(name).is_hard_refusal(reason)
