"""What a theme says about its own files: the ``[acknowledged]`` table of its ``checks.toml``.

A theme uses some features of email HTML and CSS on purpose, each with a
fallback where a client lacks it. Its ``checks.toml`` names those findings
and why they are fine; a warning about the theme's own files whose code is
acknowledged there becomes a note that carries the reason. Errors never can.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

from ..config import Settings
from ..errors import NewsletterError
from ..themes import SHIPPED_THEMES
from .framework import INFO, WARNING, Finding

THEME_ACKNOWLEDGEMENTS = "checks.toml"


def _acknowledgements(folder: Path, cache: dict[Path, dict[str, str]]) -> dict[str, str]:
    """``[acknowledged]`` of a theme folder's checks.toml: finding code -> why it is fine there."""
    if folder not in cache:
        path = folder / THEME_ACKNOWLEDGEMENTS
        table: dict[str, str] = {}
        if path.is_file():
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8")).get("acknowledged", {})
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
                raise NewsletterError(f"is not valid TOML: {err}", where=path) from None
            if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
                raise NewsletterError("[acknowledged] must map finding codes to reasons (strings)",
                                      where=path)
            table = data
        cache[folder] = table
    return cache[folder]


def acknowledge(findings: list[Finding], settings: Settings) -> list[Finding]:
    """Turn warnings a theme acknowledges (for its own files) into notes that carry the theme's reason."""
    theme_roots = (settings.templates_dir.resolve(), SHIPPED_THEMES)
    cache: dict[Path, dict[str, str]] = {}
    result = []
    for finding in findings:
        if finding.severity == WARNING and finding.where:
            path = Path(finding.where).resolve()
            if path.parent.parent in theme_roots:
                reason = _acknowledgements(path.parent, cache).get(finding.code)
                if reason:
                    finding = dataclasses.replace(
                        finding, severity=INFO,
                        message=f"{finding.message} (acknowledged by the theme: {reason})")
        result.append(finding)
    return result


def about_shipped_theme(finding: Finding) -> bool:
    """A note about a file of a theme that ships with the package: the writer did not write it and
    cannot act on it, so reports only count such notes (``--verbose`` lists them). A writer's own
    copy of the theme (``templates/<theme>/``) is not shipped and keeps full reporting."""
    if finding.severity != INFO or not finding.where:
        return False
    return Path(finding.where).resolve().is_relative_to(SHIPPED_THEMES)
