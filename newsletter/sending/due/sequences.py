"""Sequences as files: ``sequences/<name>/sequence.toml`` and one issue folder per step, in name order.

::

    sequences/welcome/
      sequence.toml          list = "readers"; trigger = "confirmed"; stop = ["tag:customer"]
      01-welcome/issue.md    delay: "0"       (an issue folder like any other: build, check, preview...)
      02-best-of/issue.md    delay: "3d"
      03-how-to-reply/       delay: "7d 09:00"

``trigger`` says when a reader starts: ``confirmed`` (a sign-up confirmed through ``newsletter serve``:
the row's ``consent_confirmed_at``), ``added`` (a row that appears on the list, by ``subscribers add`` or
``import``), ``tag:NAME`` (a row that gains the tag) or ``date:COLUMN`` (the date in that column).
``stop`` lists tags that end a reader's sequence (``tag:customer``); leaving the list always does.
``timezone`` is the zone a step's time of day is read in, unless the reader's row has its own.
This module only reads and writes these files; ``enrolments.py`` keeps who is where.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import frontmatter

from ...compose.content import ISSUE_FILE, PLACEHOLDER_INTRO, load_issue, new_issue_id, slugify
from ...config import Settings
from ...errors import NewsletterError, display_path
from ...lists import check_list_name
from .delays import Delay, DelayError, parse_delay, zone_named

SEQUENCES_DIR = "sequences"
SEQUENCE_FILE = "sequence.toml"
KEYS = ("list", "trigger", "stop", "timezone")
TRIGGERS = ('"added"', '"confirmed"', '"tag:NAME"', '"date:COLUMN"')


@dataclass(frozen=True)
class Trigger:
    kind: str  # added | confirmed | tag | date
    value: str = ""  # the tag's name or the date column's

    def describe(self) -> str:
        return f"{self.kind}:{self.value}" if self.value else self.kind


@dataclass(frozen=True)
class Step:
    number: int  # 1-based
    path: Path
    delay: Delay
    subject: str

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class Sequence:
    name: str
    path: Path
    list_name: str
    trigger: Trigger
    stop_tags: tuple[str, ...]
    zone: dt.tzinfo
    steps: tuple[Step, ...]

    @property
    def file(self) -> Path:
        return self.path / SEQUENCE_FILE


def sequences_dir(settings: Settings) -> Path:
    return settings.root / SEQUENCES_DIR


def sequence_names(settings: Settings) -> list[str]:
    """The sequences of the newsletter: folders of ``sequences/`` that hold a sequence.toml."""
    folder = sequences_dir(settings)
    if not folder.is_dir():
        return []
    return sorted(path.name for path in folder.iterdir() if (path / SEQUENCE_FILE).is_file())


def load_sequence(settings: Settings, name: str) -> Sequence:
    """The sequence ``sequences/<name>/``, checked: its settings, and each step's issue and delay."""
    path = sequences_dir(settings) / name
    file = path / SEQUENCE_FILE
    if not file.is_file():
        known = sequence_names(settings)
        close = difflib.get_close_matches(name, known, n=1)
        raise NewsletterError(f"no sequence '{name}'", where=file,
                              hint=f"did you mean '{close[0]}'?" if close else
                              f"start one with: newsletter new --sequence {name} \"Welcome\"")
    text = file.read_text(encoding="utf-8")
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        line = re.search(r"line (\d+)", str(err))
        raise NewsletterError(f"is not valid TOML: {err}", where=file,
                              line=int(line[1]) if line else None) from None
    for key in table:
        if key not in KEYS:
            close = difflib.get_close_matches(key, KEYS, n=1)
            raise NewsletterError(f"unknown setting '{key}'", where=file, line=_line(text, key),
                                  hint=f"did you mean '{close[0]}'?" if close else f"settings: {', '.join(KEYS)}")
    list_name = _text(table, "list", file, text)
    if not list_name:
        raise NewsletterError("sequence.toml names no list", where=file,
                              hint='add list = "NAME" (the list subscribers/NAME.csv whose readers it mails)')
    try:
        check_list_name(list_name)
    except NewsletterError as err:
        raise NewsletterError(err.reason, where=file, line=_line(text, "list"), hint=err.hint) from None
    trigger = _trigger(_text(table, "trigger", file, text) or "confirmed", file, text)
    zone_text = _text(table, "timezone", file, text) or "UTC"
    zone = zone_named(zone_text)
    if zone is None:
        raise NewsletterError(f"no time zone '{zone_text}'", where=file, line=_line(text, "timezone"),
                              hint='name an IANA zone, like timezone = "Europe/Paris", or "UTC"')
    return Sequence(name, path, list_name, trigger, _stops(table.get("stop", []), file, text), zone, _steps(path))


def _line(text: str, key: str) -> int | None:
    for number, line in enumerate(text.splitlines(), 1):
        if re.match(rf"\s*{re.escape(key)}\s*=", line):
            return number
    return None


def _text(table: dict[str, Any], key: str, file: Path, text: str) -> str:
    value = table.get(key, "")
    if not isinstance(value, str):
        raise NewsletterError(f"'{key}' must be text in quotes", where=file, line=_line(text, key))
    return value.strip()


def _trigger(value: str, file: Path, text: str) -> Trigger:
    kind, _, argument = value.partition(":")
    kind, argument = kind.strip().lower(), argument.strip()
    if kind in ("added", "confirmed") and not argument:
        return Trigger(kind)
    if kind in ("tag", "date") and argument:
        return Trigger(kind, argument)
    raise NewsletterError(f"trigger '{value}' is not one of {', '.join(TRIGGERS)}", where=file,
                          line=_line(text, "trigger"),
                          hint='for a welcome series after a confirmed sign-up: trigger = "confirmed"')


def _stops(value: Any, file: Path, text: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    tags = []
    for item in items if isinstance(items, list) else [None]:
        kind, _, tag = str(item).partition(":") if isinstance(item, str) else ("", "", "")
        if kind.strip() != "tag" or not tag.strip():
            raise NewsletterError(f"stop rule {item!r} is not \"tag:NAME\"", where=file,
                                  line=_line(text, "stop"),
                                  hint='write stop = ["tag:customer"]; leaving the list always ends a sequence')
        tags.append(tag.strip().lower())
    return tuple(tags)


def _steps(path: Path) -> tuple[Step, ...]:
    steps = []
    folders = sorted(p for p in path.iterdir() if p.is_dir() and (p / ISSUE_FILE).is_file())
    for number, folder in enumerate(folders, 1):
        issue = load_issue(folder)
        where = display_path(folder / ISSUE_FILE)
        if not issue.delay:
            raise NewsletterError("a sequence step needs a 'delay:' (how long after the step before it)",
                                  where=where, hint='add delay: "0" for at once, or "3d", "10d 09:00"')
        try:
            delay = parse_delay(issue.delay)
        except DelayError as err:
            raise NewsletterError(str(err), where=where, line=_front_matter_line(folder / ISSUE_FILE, "delay"),
                                  ) from None
        steps.append(Step(number, folder.resolve(), delay, issue.subject))
    return tuple(steps)


def _front_matter_line(path: Path, key: str) -> int | None:
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if line.startswith(f"{key}:"):
            return number
    return None


# -- writing ------------------------------------------------------------------------------------------

SEQUENCE_TEMPLATE = """\
# A sequence: each folder beside this file is one step, sent in name order (docs/automation.md).
list = "{list}"
# When a reader starts: "confirmed" (a sign-up confirmed through newsletter serve), "added" (a row that
# appears on the list), "tag:NAME" (a row that gains the tag) or "date:COLUMN" (the date in that column).
trigger = "confirmed"
# Tags that end a reader's sequence; leaving the list always does.
stop = []
# The zone a step's time of day ("10d 09:00") is read in, unless the reader's row has a timezone column.
timezone = "UTC"
"""


def new_step(settings: Settings, name: str, title: str, delay: str | None) -> Path:
    """Add a step to ``sequences/<name>/`` (starting the sequence's folder and sequence.toml if needed):
    the next ``NN-slug/issue.md``, with ``delay:`` (default "0" for the first step, else "1d")."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name):
        raise NewsletterError(f"'{name}' cannot name a sequence's folder",
                              hint="use letters, digits, '.', '_' and '-', like --sequence welcome")
    slug = slugify(title)
    if not slug:
        raise NewsletterError(f"title '{title}' has no letters or digits to name a folder with")
    path = sequences_dir(settings) / name
    created = not (path / SEQUENCE_FILE).exists()
    path.mkdir(parents=True, exist_ok=True)
    if created:
        first_list = (settings.serve.lists or ["readers"])[0]
        (path / SEQUENCE_FILE).write_text(SEQUENCE_TEMPLATE.format(list=first_list), encoding="utf-8")
    existing = sorted(p for p in path.iterdir() if p.is_dir() and (p / ISSUE_FILE).is_file())
    numbers = [int(m[1]) for p in existing if (m := re.match(r"(\d+)-", p.name))]
    wait = delay if delay is not None else ("1d" if existing else "0")
    try:
        parse_delay(wait)
    except DelayError as err:
        raise NewsletterError(f"--delay: {err}") from None
    folder = path / f"{max(numbers, default=0) + 1:02d}-{slug}"
    folder.mkdir()
    post = frontmatter.Post(f"{PLACEHOLDER_INTRO} You can greet each reader: "
                            "Hi {{ subscriber.name | default('there') }}!\n",
                            id=new_issue_id(), subject=title, preheader="", delay=wait, articles=[])
    (folder / ISSUE_FILE).write_text(frontmatter.dumps(post, sort_keys=False) + "\n", encoding="utf-8")
    return folder
