"""The provider names and the package behind each: the one list the CLI and the registry read.

The names themselves are ``newsletter/provider_names.py``'s, at the bottom of the package, so
``config.py`` checks ``newsletter.provider`` without importing the providers; each name's package is
``newsletter.providers.<name>``, whose ``KIND`` is its ``ProviderKind``.
"""

from __future__ import annotations

from ..provider_names import PROVIDER_NAMES

NAMES: tuple[str, ...] = PROVIDER_NAMES
PROVIDERS: dict[str, str] = {name: f"newsletter.providers.{name}" for name in NAMES}
