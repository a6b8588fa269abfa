"""Where the send journal lives: a SQLite file, or a PostgreSQL database named by a URL without a password.

``location_of`` reads it from ``[send]``; ``location_from_text`` from the command line (``journal copy``).
Opening it is ``database.open_database``'s job.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from ...errors import NewsletterError, display_path
from ...secret_names import variable_name

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ...config import Settings

Dialect = Literal["sqlite", "postgresql"]


@dataclass(frozen=True)
class Location:
    """Which journal the settings name: a SQLite file (``path``) or a PostgreSQL URL without a password."""

    dialect: Dialect
    path: Path | None = None
    url: str = ""
    password_env: str = ""

    def describe(self) -> str:
        """How messages and the sent record name this journal (never with a password)."""
        if self.dialect == "sqlite":
            assert self.path is not None
            return f"sqlite:{display_path(self.path)}"
        return describe_url(self.url)

    def may_exist(self) -> bool:
        """False only when it certainly holds nothing yet (a SQLite file not made): reading it is then skipped."""
        return self.dialect == "postgresql" or (self.path is not None
                                                and (self.path.exists() or self.path.is_symlink()))


def describe_url(url: str) -> str:
    """The URL without any password or query, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    user = f"{parts.username}@" if parts.username else ""
    return f"postgresql://{user}{host}{port}{parts.path}"


def location_of(settings: Settings) -> Location:
    """The journal ``[send]`` names: ``journal_url`` (PostgreSQL) when set, else the SQLite file ``journal``."""
    send = settings.send
    if send.journal_url:
        return postgres_location(send.journal_url, send.journal_password_env, setting="[send] journal_url")
    return Location("sqlite", path=settings.root / send.journal)


def postgres_location(url: str, password_env: str, *, setting: str) -> Location:
    """A PostgreSQL journal's location, refusing a URL that is not one or that holds a password."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise NewsletterError(f"{setting} must be a postgresql://user@host/database URL, not {describe_url(url)!r}",
                              hint="leave it out to keep the journal in the SQLite file [send] journal names")
    if parts.password:
        raise NewsletterError(f"{setting} holds a password", where=describe_url(url),
                              hint="remove it from the URL and put it in the environment variable "
                                   f"{variable_name('send.journal_password_env', password_env)} "
                                   "(named by [send] journal_password_env)")
    return Location("postgresql", url=url, password_env=password_env)


def location_from_text(text: str, settings: Settings, *, option: str = "--to") -> Location:
    """A journal given on the command line: a postgresql:// URL or a SQLite file's path (``journal copy``)."""
    if "://" in text:
        return postgres_location(text, settings.send.journal_password_env, setting=option)
    path = Path(text)
    return Location("sqlite", path=path if path.is_absolute() else settings.root / path)
