"""The names ``newsletter.provider`` may take: the one list, at the bottom of the package.

The settings check ``newsletter.provider`` against it and the CLI offers it as ``--provider``'s choices
without importing a provider (or, for ``--help``, the settings); ``providers/names.py`` maps each name
to its package, ``newsletter.providers.<name>``, where everything else about a provider lives.
"""

from __future__ import annotations

PROVIDER_NAMES: tuple[str, ...] = ("sendgrid", "smtp")
