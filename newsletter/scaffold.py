"""Start a newsletter of one's own: ``newsletter init`` writes a folder that builds and dry-runs at once.

The folder gets the settings only the writer can give (name, from address,
postal address, web address), an empty ``issues/``, a header-only subscriber
list, a ``templates/`` that explains how to override the shipped theme, and a
``.gitignore`` that keeps build output and local state out of git. The theme
itself stays inside the package, so the new folder holds nothing to upgrade.

``newsletter.toml`` also holds what the next steps need without a trip to the
docs: an ``[smtp]`` table, commented out, for sending through one's own mail
server, and a ``[serve]`` table that ``newsletter serve`` starts with (sign-ups
for the first list, and the unsubscribe page every email links to).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import CONFIG_FILE, load_settings
from .errors import NewsletterError
from .lists import BASE_COLUMNS, check_list_name

DEFAULT_LIST = "readers"
FOLDERS = ("issues", "subscribers", "templates")

# What `newsletter` writes that belongs to one machine, not to the newsletter's history.
IGNORED = ("build/", "outbox/", "site/", "screenshots/", ".newsletter/", "*.lock", "subscribers/.*.tmp")

# The settings init asks for: toml key -> the command-line flag that gives it.
REQUIRED_FLAGS = {"name": "--name", "from": "--from", "postal_address": "--postal-address",
                  "base_url": "--base-url"}
# Every setting init writes from a flag: the error about a setting names the flag to fix.
SETTING_FLAGS = {**REQUIRED_FLAGS, "unsubscribe_url": "--unsubscribe-url"}
# What init asks on a terminal for each flag left out.
QUESTIONS = {
    "--name": "Newsletter name",
    "--from": "From address (Name <you@example.com>)",
    "--postal-address": "Postal address (printed in every footer, as the law asks)",
    "--base-url": "Web address of the archive (https://...)",
}

TEMPLATES_README = """\
# Your own themes

The `default` theme ships inside the `newsletter` package, so this folder can
stay empty. A theme here overrides a shipped theme of the same name:

```sh
newsletter theme copy default        # copies the shipped theme to templates/default/ for editing
```

Set `theme = "NAME"` under `[newsletter]` in newsletter.toml to use
`templates/NAME/`. A theme needs `email.html.j2` and `email.txt.j2`.
"""


class BadDetail(NewsletterError):
    """A value init was given that ``newsletter.toml`` would refuse; ``flag`` is the one to fix
    (None when the error names no flag), so a prompt can ask for just that one again."""

    def __init__(self, message: str, flag: str | None, **context: Any):
        self.flag = flag
        super().__init__(message, **context)


@dataclass(frozen=True)
class NewsletterDetails:
    """What only the writer can say about their newsletter."""

    name: str
    from_address: str
    postal_address: str
    base_url: str
    list_name: str = DEFAULT_LIST
    unsubscribe_url: str = ""  # default: newsletter serve's unsubscribe/{token} under base_url

    @property
    def unsubscribe_link(self) -> str:
        """Where unsubscribe links point: the one given, else the page ``newsletter serve`` answers
        (``unsubscribe/{token}`` under the web address, where readers reach the service by default)."""
        return self.unsubscribe_url.strip() or self.base_url.strip().rstrip("/") + "/unsubscribe/{token}"


@dataclass(frozen=True)
class Scaffold:
    """What ``init_newsletter`` made: the folder, and each file or folder it created (kept ones left out)."""

    root: Path
    created: tuple[Path, ...]
    list_name: str
    details: NewsletterDetails


def missing_details(values: dict[str, str | None]) -> list[str]:
    """The flags (``--name`` ...) whose value is missing or blank, in the order init asks for them."""
    return [flag for key, flag in REQUIRED_FLAGS.items() if not (values.get(key) or "").strip()]


def _toml_string(value: str) -> str:
    """A TOML basic string: JSON's escaping is a subset of TOML's."""
    return json.dumps(value.strip(), ensure_ascii=False)


def settings_text(details: NewsletterDetails, list_name: str = DEFAULT_LIST) -> str:
    """The ``newsletter.toml`` of a new newsletter: the four settings, SendGrid, SMTP (commented out,
    ready to fill in) and ``newsletter serve`` for ``list_name``, with pointers to the rest."""
    return f"""\
# Settings of this newsletter; every key is documented in newsletter's docs/configuration.md.
# Secrets are never written here: only the NAMES of the environment variables that hold them.

[newsletter]
name = {_toml_string(details.name)}
from = {_toml_string(details.from_address)}
postal_address = {_toml_string(details.postal_address)}
base_url = {_toml_string(details.base_url)}
theme = "default"
# The page that records an unsubscribe: `newsletter serve` answers it (see [serve] below), and
# `newsletter subscribers unsubscribe --token TOKEN` does it by hand. Every email links to it, with
# the signed token in place of {{token}}. The token is signed with the secret in the environment
# variable NEWSLETTER_UNSUBSCRIBE_SECRET.
unsubscribe_url = {_toml_string(details.unsubscribe_link)}
provider = "sendgrid"           # or "smtp": fill in the [smtp] table below and uncomment it
# subscribe_url = "https://..."   # your own sign-up page; without one, web pages link to serve's form

[sendgrid]
api_key_env = "SENDGRID_API_KEY"

# To send through your own mail server instead (provider = "smtp" above), uncomment this table and
# give your server's details. The password is read from the environment variable named here:
#   export SMTP_PASSWORD='...'
# [smtp]
# host = "smtp.example.com"
# port = 587                      # 465 with security = "ssl"
# security = "starttls"           # "starttls", "ssl", or "none" for a relay on this machine only
# username = "you@example.com"    # "" when the server takes mail without a login
# password_env = "SMTP_PASSWORD"

[serve]
# `newsletter serve`: sign-up with double opt-in at /subscribe/<list>, one-click unsubscribe at
# /unsubscribe/<token>, SendGrid's events; `newsletter subscribers sync --list NAME` brings what it
# recorded into subscribers/NAME.csv. It listens on 127.0.0.1; readers reach it at base_url through
# your TLS proxy (or set public_url). See newsletter's docs/serve.md.
lists = [{_toml_string(list_name)}]  # the lists readers may join and leave through it
# host = "127.0.0.1"
# port = 8080
# public_url = "https://..."      # where readers reach the service; default: base_url
"""


def _gitignore(path: Path) -> bool:
    """Write or complete ``.gitignore``; True when the file is new."""
    existing = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    missing = [line for line in IGNORED if line not in existing]
    if not missing:
        return False
    prefix = "" if not existing or existing[-1] == "" else "\n"
    with path.open("a", encoding="utf-8") as out:
        out.write(prefix + "# newsletter: build output, dry-run outbox, web archive and local send state\n"
                  + "\n".join(missing) + "\n")
    return not existing


def init_newsletter(folder: Path, details: NewsletterDetails) -> Scaffold:
    """Make ``folder`` a newsletter that builds, checks and dry-runs; refuse to touch an existing one.

    The settings are validated by loading them back, as every command will, so
    a bad address is reported now with the flag to fix rather than on first build.
    """
    folder = Path(folder)
    config = folder / CONFIG_FILE
    if config.exists():
        raise NewsletterError("a newsletter already lives here", where=config,
                              hint="edit that file, or run newsletter init in another folder")
    list_name = check_list_name(details.list_name)
    missing = missing_details({"name": details.name, "from": details.from_address,
                               "postal_address": details.postal_address, "base_url": details.base_url})
    if missing:
        raise NewsletterError(f"missing {', '.join(missing)}", hint="newsletter init needs all four settings")
    for sub in (*FOLDERS, f"subscribers/{list_name}.csv", "templates/README.md", ".gitignore"):
        path = folder / sub
        if path.exists() and path.is_dir() != (sub in FOLDERS):
            kind = "folder" if sub in FOLDERS else "file"
            raise NewsletterError(f"init puts a {kind} here, and something else is in the way",
                                  where=path, hint="move it aside, then run newsletter init again")
    made = [p for p in (folder, *folder.parents) if not p.exists()]  # the folders init makes, deepest first
    try:
        folder.mkdir(parents=True, exist_ok=True)
        config.write_text(settings_text(details, list_name), encoding="utf-8")
    except OSError as err:
        raise NewsletterError(f"cannot write the newsletter: {err.strerror}", where=folder) from None
    try:
        load_settings(folder)
    except NewsletterError as err:
        config.unlink()
        for path in made:
            path.rmdir()
        flag = next((flag for key, flag in SETTING_FLAGS.items() if f"'newsletter.{key}'" in err.reason), None)
        raise BadDetail(f"{err.reason}; nothing was written", flag,
                        hint=f"give another value to {flag}" if flag else err.hint) from None

    created: list[Path] = [config]
    for sub in FOLDERS:
        if not (folder / sub).is_dir():
            (folder / sub).mkdir()
            created.append(folder / sub)
    files = {
        folder / "subscribers" / f"{list_name}.csv": ",".join(BASE_COLUMNS) + "\n",
        folder / "templates" / "README.md": TEMPLATES_README,
    }
    for path, text in files.items():
        if not path.exists():
            path.write_text(text, encoding="utf-8")
            created.append(path)
    if _gitignore(folder / ".gitignore"):
        created.append(folder / ".gitignore")
    return Scaffold(folder, tuple(created), list_name, details)


def init_asking(folder: Path, values: dict[str, str | None], ask: Callable[[str, str | None], str], *,
                list_name: str = DEFAULT_LIST, unsubscribe_url: str = "") -> Scaffold:
    """``init_newsletter`` with the settings in ``values`` (keys of REQUIRED_FLAGS), asking
    ``ask(question, why the last answer was refused or None)`` for each one missing, and again for
    an asked one the settings refuse: a typo costs one answer, not the whole session."""
    values = dict(values)
    asked = {flag: key for key, flag in REQUIRED_FLAGS.items() if flag in missing_details(values)}
    for flag, key in asked.items():
        values[key] = ask(QUESTIONS[flag], None)
    while True:
        details = NewsletterDetails(values["name"] or "", values["from"] or "", values["postal_address"] or "",
                                    values["base_url"] or "", list_name, unsubscribe_url)
        try:
            return init_newsletter(folder, details)
        except BadDetail as err:
            if err.flag not in asked:
                raise
            values[asked[err.flag]] = ask(QUESTIONS[err.flag], err.reason.removesuffix("; nothing was written"))
