"""Load and validate ``newsletter.toml`` once, into frozen settings.

Secrets never live here: the file names the environment variable that holds
an API key or password (``api_key_env``, ``password_env``), and only the
provider that needs the secret reads that variable, at send time.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import dataclass, field, fields
from email.headerregistry import Address
from email.utils import parseaddr
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from .config_types import Setting, setting_readers
from .errors import NewsletterError, display_path, os_error
from .list_name_rule import check_list_name
from .providers.names import NAMES as PROVIDER_NAMES

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
    # PostgreSQL instead of the SQLite file, shared by several senders and CI: postgresql://user@host/db
    # (never with a password: that comes from the variable journal_password_env names).
    journal_url: str = ""
    journal_password_env: str = "NEWSLETTER_DATABASE_PASSWORD"
    batch_size: int = 1000
    concurrency: int = 4  # batches in flight at once, where the provider allows it (SendGrid)
    max_attempts: int = 5  # tries of one recipient a server refused for now (SMTP 4xx)
    max_in_flight: int = 2000  # recipients whose requests may be under way at once (the grey zone of a crash)
    outage_seconds: float = 300.0  # pause (resumably) after this long without one accepted request
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 5.0  # retries come within seconds: a long back-off only delays the send
    parallel_from: int = 50_000  # recipients to go from which request bodies are built in worker processes; 0: never
    # Staged send and pacing (docs/deliverability.md).
    stages: tuple[str, ...] = ()  # e.g. ["1%", "10%", "100%"]: cumulative shares of the list
    stage_wait_minutes: float = 30.0  # between stages, for bounces and complaints to come back
    max_hard_bounce_rate: float = 0.02  # of a stage's recipients; above it the send halts
    max_complaint_rate: float = 0.001
    max_per_hour: int = 0  # 0: no limit
    warmup: bool = False  # enforce the warm-up plan's daily caps (newsletter doctor --warmup)
    domains: tuple[tuple[str, int], ...] = ()  # [send.domains] "gmail.com" = 2000: recipient domain, cap per hour


@dataclass(frozen=True)
class CheckSettings:
    spam_threshold: float = 5.0
    link_timeout: float = 10.0
    link_concurrency: int = 8


@dataclass(frozen=True)
class ServeSettings:
    """``[serve]``: the subscriber service (``newsletter serve``), see docs/serve.md."""

    host: str = "127.0.0.1"
    port: int = 8080
    lists: tuple[str, ...] = ()  # the lists readers may subscribe to and leave through the service
    public_url: str = ""  # where readers reach the service; "" = newsletter.base_url
    database_url: str = ""  # "" = the SQLite file `database`; "postgresql://user@host/db" = PostgreSQL
    database: str = ".newsletter/events.sqlite"
    database_password_env: str = "NEWSLETTER_DATABASE_PASSWORD"
    confirm_hours: float = 48.0  # how long a confirmation link works
    requests_per_ip: int = 20  # subscribe POSTs from one client address per rate_window_seconds
    requests_per_address: int = 5  # subscribe POSTs for one email address per rate_window_seconds
    rate_window_seconds: float = 3600.0
    confirmations_per_day: int = 3  # confirmation mails one address can be sent in 24 hours
    sendgrid_webhook_key_env: str = "SENDGRID_WEBHOOK_PUBLIC_KEY"
    webhook_max_age_seconds: float = 600.0  # older signed event batches are refused as stale
    forwarded_allow_ips: str = "127.0.0.1"  # proxies whose X-Forwarded-For is believed


@dataclass(frozen=True)
class StatsSettings:
    """``[stats]``: what an issue did, without spying on readers (docs/stats.md)."""

    clicks: bool = False  # rewrite an issue's links to newsletter serve's /c/ route, to count clicks
    # a click sooner than this after the send (or the provider's delivery) is a scanner's, not a reader's
    human_after_seconds: float = 10.0
    ab_confidence: float = 0.95  # how sure an A/B test must be before it names a winner
    ab_wait_hours: float = 4.0  # how long `send --due` lets an A/B test collect clicks before deciding


@dataclass(frozen=True)
class DoctorSettings:
    """What ``newsletter doctor`` checks DNS for, beyond what the provider settings imply."""

    dkim_selectors: tuple[str, ...] = ()  # default: s1 and s2 for SendGrid
    dkim_domain: str = ""  # the d= domain mail is signed with; default: the From domain
    envelope_domain: str = ""  # the Return-Path (MAIL FROM) domain SPF applies to; default: the From domain
    bimi_selector: str = "default"
    dns_timeout: float = 5.0
    nameserver: str = ""  # the DNS server a live send's doctor gate asks, HOST[:PORT]; "" = the system's
    probe_timeout: float = 10.0  # seconds for the unsubscribe endpoint's answer


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
    subscribe_url: str = ""  # the sign-up page, linked from the web archive's index
    unsubscribe_mailto: str = ""
    unsubscribe_secret_env: str = "NEWSLETTER_UNSUBSCRIBE_SECRET"
    provider: str = "sendgrid"
    sendgrid: SendGridSettings = field(default_factory=SendGridSettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    send: SendSettings = field(default_factory=SendSettings)
    checks: CheckSettings = field(default_factory=CheckSettings)
    serve: ServeSettings = field(default_factory=ServeSettings)
    doctor: DoctorSettings = field(default_factory=DoctorSettings)
    stats: StatsSettings = field(default_factory=StatsSettings)

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
        """``subscribers/<name>.csv``; a name that is not a plain file name is refused, so no command
        (send, preview, serve, subscribers ...) reads or writes a CSV outside ``subscribers/``."""
        return self.subscribers_dir / f"{check_list_name(list_name)}.csv"


# [section] -> (dataclass, key in toml -> attribute name)
_NEWSLETTER_KEYS = {
    "name": "name", "from": "from_address", "reply_to": "reply_to",
    "postal_address": "postal_address", "base_url": "base_url", "theme": "theme",
    "language": "language", "why": "why", "unsubscribe_url": "unsubscribe_url",
    "unsubscribe_mailto": "unsubscribe_mailto", "unsubscribe_secret_env": "unsubscribe_secret_env",
    "provider": "provider", "subscribe_url": "subscribe_url",
}
_SECTIONS: dict[str, type] = {
    "sendgrid": SendGridSettings, "smtp": SmtpSettings, "send": SendSettings, "checks": CheckSettings,
    "serve": ServeSettings,
    "doctor": DoctorSettings,
    "stats": StatsSettings,
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
    return NewsletterError(f"unknown setting '{section}.{key}'", where=path, hint=hint)


def _section(cls: type, section: str, table: Any, path: Path) -> Any:
    if not isinstance(table, dict):
        raise NewsletterError(f"'{section}' must be a table: [{section}]", where=path)
    readers = setting_readers(cls)
    values = {}
    for key, value in table.items():
        if key not in readers:
            raise _unknown_key(section, key, list(readers), path)
        read, default = readers[key]
        values[key] = read(value, Setting(path, section, key, default))
    return cls(**values)


def _check_address(value: str, key: str, path: Path) -> None:
    name, addr = parseaddr(value)
    if "\r" in value or "\n" in value or "@" not in addr:
        raise NewsletterError(
            f"'newsletter.{key}' is not an email address: {value!r}", where=path,
            hint='write it as "Name <you@example.com>" or "you@example.com"',
        )
    try:
        Address(display_name=name, addr_spec=addr)
    except Exception:  # noqa: BLE001 - the email package raises several undocumented types on odd addresses
        raise NewsletterError(f"'newsletter.{key}' is not a valid address: {value!r}",
                              where=path) from None


def load_settings(root: Path | None = None) -> Settings:
    """Read ``newsletter.toml`` from ``root`` (or the nearest folder above the cwd)."""
    root = find_root(root) if root is None or not (Path(root) / CONFIG_FILE).is_file() else Path(root).resolve()
    path = root / CONFIG_FILE
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except UnicodeDecodeError:
        raise NewsletterError("is not UTF-8 text", where=path) from None
    except OSError as err:  # no permission, a folder in its place
        raise os_error(err, path, "read the settings") from None
    except tomllib.TOMLDecodeError as err:
        raise NewsletterError(f"is not valid TOML: {err}", where=path) from None
    for section in data:
        if section != "newsletter" and section not in _SECTIONS:
            raise _unknown_key("", section, ["newsletter", *_SECTIONS], path)
    main = data.get("newsletter")
    if not isinstance(main, dict):
        raise NewsletterError("missing the [newsletter] table", where=path,
                              hint="add [newsletter] with name, from and postal_address")
    values: dict[str, Any] = {}
    for key, value in main.items():
        if key not in _NEWSLETTER_KEYS:
            raise _unknown_key("newsletter", key, list(_NEWSLETTER_KEYS), path)
        read, default = setting_readers(Settings, tuple(_NEWSLETTER_KEYS.values()))[_NEWSLETTER_KEYS[key]]
        values[_NEWSLETTER_KEYS[key]] = read(value, Setting(path, "newsletter", key, default))
    for required in ("name", "from", "postal_address"):
        if not values.get(_NEWSLETTER_KEYS[required]):
            raise NewsletterError(f"missing setting 'newsletter.{required}'", where=path,
                                  hint=f"add {required} = \"...\" under [newsletter]")
    _check_address(values["from_address"], "from", path)
    if values.get("reply_to"):
        _check_address(values["reply_to"], "reply_to", path)
    base_url = values.get("base_url", "")
    if base_url:
        if not base_url.startswith(("https://", "http://")):
            raise NewsletterError(f"'newsletter.base_url' must start with https://, not {base_url!r}",
                                  where=path)
        if not urlsplit(base_url).hostname:
            raise NewsletterError(f"'newsletter.base_url' names no host: {base_url!r}", where=path,
                                  hint='write the whole address, like base_url = "https://example.com/news/"')
        values["base_url"] = base_url.rstrip("/") + "/"
    unsubscribe_url = values.get("unsubscribe_url", "")
    if unsubscribe_url and not unsubscribe_url.startswith(("https://", "http://")):
        raise NewsletterError("'newsletter.unsubscribe_url' must be an https:// URL", where=path)
    subscribe_url = values.get("subscribe_url", "")
    if subscribe_url and not subscribe_url.startswith(("https://", "http://")):
        raise NewsletterError(f"'newsletter.subscribe_url' must be an https:// URL, not {subscribe_url!r}",
                              where=path, hint="the web address of your sign-up page")
    provider = values.get("provider", "sendgrid")
    if provider not in PROVIDER_NAMES:
        raise NewsletterError(f"'newsletter.provider' must be one of {', '.join(PROVIDER_NAMES)}, not {provider!r}",
                              where=path)
    sections = {name: _section(cls, name, data.get(name, {}), path) for name, cls in _SECTIONS.items()}
    if sections["smtp"].security not in _SECURITY:
        raise NewsletterError(f"'smtp.security' must be one of {', '.join(_SECURITY)}",
                              where=path)
    _check_ranges(sections, path, text)
    _check_env_names({"newsletter": values, **{name: vars(section) for name, section in sections.items()}},
                     path, text)
    _check_serve(sections["serve"], path)
    return Settings(root=root, **values, **sections)


class _Range(NamedTuple):
    """The values a number setting may take, and why (for the error)."""

    low: float
    high: float | None = None
    low_allowed: bool = True  # False: the value must be greater than ``low``
    why: str = ""

    def allows(self, value: float) -> bool:
        above = value >= self.low if self.low_allowed else value > self.low
        return above and (self.high is None or value <= self.high)

    def describe(self) -> str:
        low = f"{self.low:g}"
        if self.high is not None:
            return f"between {low} and {self.high:g}"
        return f"at least {low}" if self.low_allowed else f"greater than {low}"


# (section, key) -> the values it may take. A setting outside its range would make a send do nothing
# ("max_attempts = 0" tries no one) or spin (a timeout of 0), so it is an error when the file is read.
_RANGES: dict[tuple[str, str], _Range] = {
    ("sendgrid", "timeout"): _Range(0, low_allowed=False, why="seconds to wait for SendGrid's answer"),
    ("sendgrid", "unsubscribe_group"): _Range(1, why="a SendGrid unsubscribe group id"),
    ("smtp", "port"): _Range(1, 65535, why="a TCP port"),
    ("smtp", "timeout"): _Range(0, low_allowed=False, why="seconds to wait for the server's answer"),
    ("send", "batch_size"): _Range(1, 1000, why="SendGrid's limit per request is 1000"),
    ("send", "concurrency"): _Range(1, why="requests in flight at once"),
    ("send", "max_attempts"): _Range(1, why="each recipient needs at least one try"),
    ("send", "max_in_flight"): _Range(1, why="recipients whose requests may be under way at once"),
    ("send", "outage_seconds"): _Range(0, low_allowed=False, why="seconds without an accepted request before a pause"),
    ("send", "stage_wait_minutes"): _Range(0, why="minutes between the stages of a staged send"),
    ("send", "max_hard_bounce_rate"): _Range(0, 1, why="a share of a stage, like 0.02"),
    ("send", "max_complaint_rate"): _Range(0, 1, why="a share of a stage, like 0.001"),
    ("send", "max_per_hour"): _Range(0, why="0 turns the hourly cap off"),
    ("send", "backoff_seconds"): _Range(0, why="seconds to wait before a retry"),
    ("send", "max_backoff_seconds"): _Range(0, why="the longest wait before a retry"),
    ("send", "parallel_from"): _Range(0, why="0 turns worker processes off"),
    ("checks", "link_timeout"): _Range(0, low_allowed=False, why="seconds to wait for each link"),
    ("checks", "link_concurrency"): _Range(1, why="links checked at once"),
    ("serve", "port"): _Range(1, 65535, why="a TCP port"),
    ("serve", "confirm_hours"): _Range(0, low_allowed=False, why="how long a confirmation link works"),
    ("serve", "requests_per_ip"): _Range(1, why="sign-up requests one client address may make per window"),
    ("serve", "requests_per_address"): _Range(1, why="sign-up requests for one address per window"),
    ("serve", "rate_window_seconds"): _Range(0, low_allowed=False, why="the window of the rate limits"),
    ("serve", "confirmations_per_day"): _Range(1, why="confirmation mails one address may be sent a day"),
    ("serve", "webhook_max_age_seconds"): _Range(0, low_allowed=False, why="the age of a signed event batch"),
    ("stats", "human_after_seconds"): _Range(0, why="seconds after the send in which a click is a scanner's"),
    ("stats", "ab_confidence"): _Range(0.5, 0.999, why="a share like 0.95"),
    ("stats", "ab_wait_hours"): _Range(0, why="hours an A/B test collects clicks before send --due decides"),
    ("doctor", "dns_timeout"): _Range(0, low_allowed=False, why="seconds to wait for a DNS answer"),
    ("doctor", "probe_timeout"): _Range(0, low_allowed=False, why="seconds to wait for the unsubscribe endpoint"),
}


def _check_ranges(sections: dict[str, Any], path: Path, text: str) -> None:
    for (section, key), limits in _RANGES.items():
        value = getattr(sections[section], key)
        if value is None or limits.allows(value):
            continue
        default = next(f.default for f in fields(type(sections[section])) if f.name == key)
        example = f"{key} = {default}" if default is not None else f"{key} = {limits.low:g}"
        raise NewsletterError(
            f"'{section}.{key}' must be {limits.describe()} ({limits.why}), not {value:g}",
            where=path, line=_line_of(text, section, key),
            hint=f"write {example} under [{section}], or remove the line for the default",
        )


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _looks_like_token(value: str) -> bool:
    """A generated password or key made only of letters and digits is also a valid variable name.
    Variable names have underscores or are upper case; a long run of lower-case letters mixed with
    digits (and upper case, or 16+ characters) is far more likely the secret itself."""
    return ("_" not in value and len(value) >= 12 and any(c.isdigit() for c in value)
            and any(c.islower() for c in value) and (any(c.isupper() for c in value) or len(value) >= 16))
_ENV_SETTINGS = (("newsletter", "unsubscribe_secret_env", "NEWSLETTER_UNSUBSCRIBE_SECRET"),
                 ("sendgrid", "api_key_env", "SENDGRID_API_KEY"), ("smtp", "password_env", "SMTP_PASSWORD"),
                 ("serve", "database_password_env", "NEWSLETTER_DATABASE_PASSWORD"),
                 ("serve", "sendgrid_webhook_key_env", "SENDGRID_WEBHOOK_PUBLIC_KEY"))


def _check_env_names(values: dict[str, dict[str, Any]], path: Path, text: str) -> None:
    """A ``*_env`` setting names an environment variable; a value that cannot be one is likely the secret
    itself, pasted in the wrong place, so the error never shows it."""
    for section, key, example in _ENV_SETTINGS:
        value = values[section].get(key if section != "newsletter" else _NEWSLETTER_KEYS[key])
        if value is None or (_ENV_NAME.match(value) and not _looks_like_token(value)):
            continue
        if not value:
            raise NewsletterError(f"'{section}.{key}' is empty", where=path,
                                  line=_line_of(text, section, key),
                                  hint=f"write the name of the environment variable: {key} = \"{example}\"")
        raise NewsletterError(
            f"'{section}.{key}' must be the name of an environment variable, like {example}; "
            "its value looks like a secret itself, so it is not shown here",
            where=path, line=_line_of(text, section, key),
            hint=f"put the secret in an environment variable (export {example}=...) and write only its name "
                 f"here: {key} = \"{example}\". If the value was a real key or password, treat it as "
                 "exposed: revoke it and make a new one",
        )


def _line_of(text: str, section: str, key: str) -> int | None:
    """The line of ``newsletter.toml`` that sets ``key`` in ``[section]``, for pointing at it."""
    current = ""
    assignment = re.compile(rf"\s*{re.escape(key)}\s*=")
    for number, line in enumerate(text.splitlines(), start=1):
        header = re.match(r"\s*\[\s*([^\]]+?)\s*\]", line)
        if header:
            current = header.group(1)
        elif current == section and assignment.match(line):
            return number
    return None


def _check_serve(serve: ServeSettings, path: Path) -> None:
    """The [serve] values that would only fail later, at start or at a reader's click."""
    where = display_path(path)
    if serve.public_url and not serve.public_url.startswith(("https://", "http://")):
        raise NewsletterError(f"'serve.public_url' must start with https://, not {serve.public_url!r}", where=where)
    if serve.database_url and not serve.database_url.startswith(("postgresql://", "postgres://")):
        raise NewsletterError(f"'serve.database_url' must be a postgresql:// URL, not {serve.database_url!r}",
                              where=where, hint='leave it out for the SQLite file "serve.database"')
