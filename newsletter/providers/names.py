"""The provider names and the module behind each: the one list config, the CLI and the registry read.

Kept apart from ``registry.py`` (which opens providers from ``Settings``) so that
``config.py`` can check ``newsletter.provider`` without an import loop.
"""

from __future__ import annotations

PROVIDERS: dict[str, str] = {
    "sendgrid": "newsletter.providers.sendgrid",
    "smtp": "newsletter.providers.smtp",
}
NAMES: tuple[str, ...] = tuple(PROVIDERS)
