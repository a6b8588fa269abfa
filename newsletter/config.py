"""Load and validate ``newsletter.toml`` once, into frozen settings.

Secrets never live here: the file names the environment variable that holds
an API key or password (``api_key_env``, ``password_env``), and only the
provider that needs the secret reads that variable, at send time.
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass, field, fields
from email.headerregistry import Address
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from .errors import NewsletterError, display_path
from .providers.registry import NAMES as PROVIDER_NAMES

CONFIG_FILE = "newsletter.toml"
DEFAULT_SENDGRID_HOST = "https://api.sendgrid.com"


@dataclass(frozen=True)
class SendGridSettings:
    api_key_env: str = "SENDGRID_API_KEY"
    api_host: str = DEFAULT_SENDGRID_HOST
    unsubscribe_group: int | None = None
    categories: tuple[str, ...] = ()
    timeout: float = 30.0


@dataclass(frozen=True)
class SmtpSettings:
    host: str = "localhost"
    port: int = 587
    security: str = "starttls"  # starttls | ssl | none
    username: str = ""
    password_env: str = "SMTP_PASSWORD"
    timeout: float = 30.0


@dataclass(frozen=True)
class SendSettings:
    journal: str = ".newsletter/journal.sqlite"
    batch_size: int = 1000
    concurrency: int = 4  # batches in flight at once, where the provider allows it (SendGrid)
    max_attempts: int = 5  # tries of one recipient a server refused for now (SMTP 4xx)
    max_in_flight: int = 2000  # recipients whose requests may be under way at once (the grey zone of a crash)
    outage_seconds: float = 300.0  # pause (resumably) after this long without one accepted request
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 60.0
    parallel_from: int = 50_000  # recipients to go from which request bodies are built in worker processes; 0: never


@dataclass(frozen=True)
class CheckSettings:
    spam_threshold: float = 5.0
    link_timeout: float = 10.0
    link_concurrency: int = 8


@dataclass(frozen=True)
class Settings:
    """Everything ``newsletter.toml`` says, validated; ``root`` is the newsletter's folder."""

    root: Path
    name: str
    from_address: str
    postal_address: str
    base_url: str = ""
    reply_to: str = ""
    theme: str = "default"
    language: str = "en"
    why: str = ""
    unsubscribe_url: str = ""
    unsubscribe_mailto: str = ""
    unsubscribe_secret_env: str = "NEWSLETTER_UNSUBSCRIBE_SECRET"
    provider: str = "sendgrid"
    sendgrid: SendGridSettings = field(default_factory=SendGridSettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    send: SendSettings = field(default_factory=SendSettings)
    checks: CheckSettings = field(default_factory=CheckSettings)

    @property
    def path(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def templates_dir(self) -> Path:
        return self.root / "templates"

    @property
    def subscribers_dir(self) -> Path:
        return self.root / "subscribers"

    @property
    def issues_dir(self) -> Path:
        return self.root / "issues"

    @property
    def journal_path(self) -> Path:
        return self.root / self.send.journal

    @property
    def from_email(self) -> str:
        return parseaddr(self.from_address)[1]

    @property
    def from_name(self) -> str:
        return parseaddr(self.from_address)[0]

    def list_path(self, list_name: str) -> Path:
        return self.subscribers_dir / f"{list_name}.csv"


# [section] -> (dataclass, key in toml -> attribute name)
_NEWSLETTER_KEYS = {
    "name": "name", "from": "from_address", "reply_to": "reply_to",
    "postal_address": "postal_address", "base_url": "base_url", "theme": "theme",
    "language": "language", "why": "why", "unsubscribe_url": "unsubscribe_url",
    "unsubscribe_mailto": "unsubscribe_mailto", "unsubscribe_secret_env": "unsubscribe_secret_env",
    "provider": "provider",
}
_SECTIONS: dict[str, type] = {
    "sendgrid": SendGridSettings, "smtp": SmtpSettings, "send": SendSettings, "checks": CheckSettings,
}
_SECURITY = ("starttls", "ssl", "none")


def find_root(start: Path | None = None) -> Path:
    """The nearest folder at or above ``start`` that holds ``newsletter.toml``."""
    here = (start or Path.cwd()).resolve()
    if here.is_file():
        here = here.parent
    for folder in (here, *here.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    raise NewsletterError(
        f"no {CONFIG_FILE} found in {display_path(here)} or any folder above it",
        hint="run the command inside your newsletter's folder, or pass --root",
    )


def _unknown_key(section: str, key: str, known: list[str], path: Path) -> NewsletterError:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(sorted(known))}"
    return NewsletterError(f"unknown setting '{section}.{key}'", where=display_path(path), hint=hint)


def _coerce(section: str, key: str, value: Any, expected: Any, path: Path) -> Any:
    """Check a TOML value against the annotated type of its setting."""
    where = display_path(path)
    name = f"{section}.{key}"
    text = str(expected)
    if "tuple" in text:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise NewsletterError(f"'{name}' must be a list of strings, like [\"a\", \"b\"]", where=where)
        return tuple(value)
    if "int" in text and "float" not in text:
        if isinstance(value, bool) or not isinstance(value, int):
            raise NewsletterError(f"'{name}' must be a whole number, not {value!r}", where=where)
        return value
    if "float" in text:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise NewsletterError(f"'{name}' must be a number, not {value!r}", where=where)
        return float(value)
    if not isinstance(value, str):
        raise NewsletterError(f"'{name}' must be a string in quotes, not {value!r}", where=where)
    return value.strip()


def _section(cls: type, section: str, table: Any, path: Path) -> Any:
    if not isinstance(table, dict):
        raise NewsletterError(f"'{section}' must be a table: [{section}]", where=display_path(path))
    annotations = {f.name: f.type for f in fields(cls)}
    values = {}
    for key, value in table.items():
        if key not in annotations:
            raise _unknown_key(section, key, list(annotations), path)
        values[key] = _coerce(section, key, value, annotations[key], path)
    return cls(**values)


def _check_address(value: str, key: str, path: Path) -> None:
    name, addr = parseaddr(value)
    if "\r" in value or "\n" in value or "@" not in addr:
        raise NewsletterError(
            f"'newsletter.{key}' is not an email address: {value!r}", where=display_path(path),
            hint='write it as "Name <you@example.com>" or "you@example.com"',
        )
    try:
        Address(display_name=name, addr_spec=addr)
    except Exception:
        raise NewsletterError(f"'newsletter.{key}' is not a valid address: {value!r}",
                              where=display_path(path)) from None


def load_settings(root: Path | None = None) -> Settings:
    """Read ``newsletter.toml`` from ``root`` (or the nearest folder above the cwd)."""
    root = find_root(root) if root is None or not (Path(root) / CONFIG_FILE).is_file() else Path(root).resolve()
    path = root / CONFIG_FILE
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise NewsletterError("is not UTF-8 text", where=display_path(path)) from None
    except tomllib.TOMLDecodeError as err:
        raise NewsletterError(f"is not valid TOML: {err}", where=display_path(path)) from None
    for section in data:
        if section != "newsletter" and section not in _SECTIONS:
            raise _unknown_key("", section, ["newsletter", *_SECTIONS], path)
    main = data.get("newsletter")
    if not isinstance(main, dict):
        raise NewsletterError("missing the [newsletter] table", where=display_path(path),
                              hint="add [newsletter] with name, from and postal_address")
    values: dict[str, Any] = {}
    for key, value in main.items():
        if key not in _NEWSLETTER_KEYS:
            raise _unknown_key("newsletter", key, list(_NEWSLETTER_KEYS), path)
        values[_NEWSLETTER_KEYS[key]] = _coerce("newsletter", key, value, "str", path)
    for required in ("name", "from", "postal_address"):
        if not values.get(_NEWSLETTER_KEYS[required]):
            raise NewsletterError(f"missing setting 'newsletter.{required}'", where=display_path(path),
                                  hint=f"add {required} = \"...\" under [newsletter]")
    _check_address(values["from_address"], "from", path)
    if values.get("reply_to"):
        _check_address(values["reply_to"], "reply_to", path)
    base_url = values.get("base_url", "")
    if base_url:
        if not base_url.startswith(("https://", "http://")):
            raise NewsletterError(f"'newsletter.base_url' must start with https://, not {base_url!r}",
                                  where=display_path(path))
        values["base_url"] = base_url.rstrip("/") + "/"
    unsubscribe_url = values.get("unsubscribe_url", "")
    if unsubscribe_url and not unsubscribe_url.startswith(("https://", "http://")):
        raise NewsletterError("'newsletter.unsubscribe_url' must be an https:// URL", where=display_path(path))
    provider = values.get("provider", "sendgrid")
    if provider not in PROVIDER_NAMES:
        raise NewsletterError(f"'newsletter.provider' must be one of {', '.join(PROVIDER_NAMES)}, not {provider!r}",
                              where=display_path(path))
    sections = {name: _section(cls, name, data.get(name, {}), path) for name, cls in _SECTIONS.items()}
    if sections["smtp"].security not in _SECURITY:
        raise NewsletterError(f"'smtp.security' must be one of {', '.join(_SECURITY)}",
                              where=display_path(path))
    if sections["send"].batch_size < 1 or sections["send"].batch_size > 1000:
        raise NewsletterError("'send.batch_size' must be between 1 and 1000 (SendGrid's limit per request)",
                              where=display_path(path))
    return Settings(root=root, **values, **sections)
