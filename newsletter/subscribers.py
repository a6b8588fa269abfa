"""Subscriber lists: read, validate, filter, change and export ``subscribers/<list>.csv``.

A list is a CSV file the writer owns and may edit by hand. This module gives
it meaning (who is subscribed, which rows are the same person, which rows a
send selects) and changes it only through ``listfile``, which locks the file
and replaces it atomically, copying untouched rows back byte for byte.

Addresses are stored as written (trimmed) and compared by ``key``: the address
as email-validator normalizes it, then lowercased entirely. Lowercasing the
part before the @ goes beyond email-validator: mailbox providers and SendGrid
treat it case-insensitively, and mailing one person twice is worse than the
rare false match.
"""

from __future__ import annotations

import csv
import datetime as dt
import difflib
import functools
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import email_validator
from email_validator import EmailNotValidError, validate_email

from .errors import NewsletterError, display_path
from .listfile import (
    FastRows,
    ListFormat,
    Record,
    Rewrite,
    atomic_write,
    read_list,
    read_rows,
    rewrite_list,
)

STATUSES = ("subscribed", "unsubscribed", "bounced", "complained")
SUPPRESSED = ("unsubscribed", "bounced", "complained")
SKIP_REASONS = ("unsubscribed", "bounced", "complained", "invalid", "duplicate")
BASE_COLUMNS = ("email", "name", "status", "tags", "subscribed_at")
_LIST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")


class ListProblems(NewsletterError):
    """``validate`` found problems in a list: exit 1, like failed checks."""

    exit_code = 1


@dataclass(frozen=True)
class Subscriber:
    """One row of a list, as the send step and the commands see it."""

    email: str  # as stored in the file (trimmed)
    key: str  # normalized address, lowercased entirely; "" when the address is invalid
    name: str
    status: str  # lowercased; an empty cell reads as "subscribed"
    tags: tuple[str, ...]
    fields: Mapping[str, str]  # every column of the row (trimmed) -> merge field value
    line: int  # 1-based line where the row starts


# --- addresses ------------------------------------------------------------

# The common case, proven equal to email-validator's verdict and normalization:
# an unquoted ASCII dot-atom local part, and ASCII host labels of letters and
# digits joined by single hyphens (so no Punycode "xn--" and no reserved
# "ab--" labels), the last one ending in a letter, none over 63 characters,
# 254 characters in all, not a special-use domain. email-validator accepts
# every such address and normalizes it only by lowercasing the domain, which
# lowercasing the whole address covers. Anything else goes to email-validator
# itself. tests/test_subscribers_keys.py checks both paths agree on tricky
# and random addresses.
_ATEXT = r"A-Za-z0-9_!#$%&'*+/=?^`{|}~-"
_LABEL = r"[A-Za-z0-9]++(?:-[A-Za-z0-9]++)*+"  # possessive (++, *+): no backtracking, half the time
_SPECIAL_USE = tuple(email_validator.SPECIAL_USE_DOMAIN_NAMES)
_SPECIAL_TLDS = "|".join(re.escape(d) for d in _SPECIAL_USE if "." not in d) or "(?!)"
_SPECIAL_SUFFIXES = tuple("." + d for d in _SPECIAL_USE if "." in d)
_SIMPLE_ADDRESS = re.compile(
    rf"[{_ATEXT}]++(?:\.[{_ATEXT}]++)*+"  # the local part, a dot-atom
    rf"@{_LABEL}(?:\.(?!(?i:{_SPECIAL_TLDS})\Z){_LABEL})++"  # labels; the last one not a special-use name
    r"(?<=[A-Za-z])"  # and ending in a letter
)


def _fast_key(email: str) -> str | None:
    """The key of a plain ASCII address without calling email-validator, or None to ask it."""
    if not _SIMPLE_ADDRESS.fullmatch(email):
        return None
    # Only past 64 characters can the address be too long or a label exceed 63 characters.
    if len(email) > 64 and (len(email) > 254 or max(map(len, email[email.index("@") + 1:].split("."))) > 63):
        return None
    lowered = email.lower()
    if _SPECIAL_SUFFIXES and lowered.endswith(_SPECIAL_SUFFIXES):
        return None
    return lowered


@functools.lru_cache(maxsize=65536)
def _validator_key(email: str) -> tuple[str, str]:
    """(key, "") or ("", why) from email-validator itself, syntax only (no DNS)."""
    try:
        valid = validate_email(
            email, check_deliverability=False, allow_smtputf8=True, allow_empty_local=False,
            allow_quoted_local=False, allow_domain_literal=False, allow_display_name=False,
            strict=False, test_environment=False, globally_deliverable=True,
        )
    except ValueError as err:  # EmailNotValidError, and anything odd idna raises
        return "", str(err)
    return valid.normalized.lower(), ""


def key_or_problem(email: str) -> tuple[str, str]:
    """(key, "") for a valid address, ("", what is wrong) for an invalid one; ``email`` is trimmed first."""
    email = email.strip()
    if not email:
        return "", "The email address is empty."
    fast = _fast_key(email)
    if fast is not None:
        return fast, ""
    return _validator_key(email)


def normalize_key(email: str) -> str:
    """The de-duplication and journal key of one address; raises NewsletterError if it is not valid."""
    key, problem = key_or_problem(email)
    if not key:
        raise NewsletterError(f"'{email.strip()}' is not a valid email address: {problem}",
                              hint="check the spelling of the address")
    return key


# --- reading ----------------------------------------------------------------


def check_list_name(name: str) -> str:
    """A list name is a file name under subscribers/: letters, digits, '.', '_', '-'."""
    stem = name.removesuffix(".csv")
    if not _LIST_NAME.match(stem):
        raise NewsletterError(f"'{name}' is not a list name",
                              hint="use letters, digits, '.', '_' or '-', like 'weekly' for subscribers/weekly.csv")
    return stem


def require_list(path: Path) -> Path:
    """``path`` if the list exists, else an error naming the lists that do."""
    if path.is_file():
        return path
    others = sorted(p.stem for p in path.parent.glob("*.csv")) if path.parent.is_dir() else []
    close = difflib.get_close_matches(path.stem, others, n=1)
    if close:
        hint = f"did you mean '{close[0]}'?"
    elif others:
        hint = f"lists here: {', '.join(others)}"
    else:
        hint = f"create it with: newsletter subscribers add EMAIL --list {path.stem}"
    raise NewsletterError("no such list", where=display_path(path), hint=hint)


@dataclass(frozen=True)
class _Columns:
    """Where the columns with a meaning are (header names match case-insensitively)."""

    header: tuple[str, ...]
    email: int
    name: int | None
    status: int | None
    tags: int | None
    subscribed_at: int | None
    index: dict[str, int]  # column name as written -> position

    @classmethod
    def of(cls, header: Sequence[str]) -> _Columns:
        lowered = [h.lower() for h in header]

        def find(name: str) -> int | None:
            return lowered.index(name) if name in lowered else None

        email = find("email")
        assert email is not None  # read_list requires it
        return cls(tuple(header), email, find("name"), find("status"), find("tags"), find("subscribed_at"),
                   {name: i for i, name in enumerate(header)})

    def find(self, name: str) -> int | None:
        lowered = [h.lower() for h in self.header]
        return lowered.index(name.lower()) if name.lower() in lowered else None


@functools.lru_cache(maxsize=4096)
def parse_tags(cell: str) -> tuple[str, ...]:
    """Tags of one cell: separated by ';' (or ','), trimmed, empty ones dropped."""
    return tuple(t for t in (part.strip() for part in re.split(r"[;,]", cell)) if t)


def _status_of(cell: str) -> str:
    """A status cell as a status: lowercased, and an empty cell means subscribed."""
    return cell.strip().lower() or "subscribed"


class _RowFields(Mapping[str, str]):
    """A row's cells by column name, trimmed when read.

    A send reads the few merge fields its templates use; trimming and copying
    every cell of a million rows up front would cost more than the rest of
    reading a row.
    """

    __slots__ = ("_cells", "_index")

    def __init__(self, index: Mapping[str, int], cells: Sequence[str]):
        self._index = index
        self._cells = cells

    def __getitem__(self, name: str) -> str:
        return self._cells[self._index[name]].strip()

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def __repr__(self) -> str:
        return repr(dict(self))


_new_object = object.__new__
_set_attribute = object.__setattr__


def _subscriber(cols: _Columns, cells: list[str], line: int) -> Subscriber:
    """One row as a Subscriber, built the fast way: a send builds a million of them.

    A frozen dataclass's __init__ sets each field through object.__setattr__;
    filling the instance dict in one step gives an equal object in half the time.
    """
    email = cells[cols.email].strip()
    sub = _new_object(Subscriber)
    _set_attribute(sub, "__dict__", {
        "email": email,
        "key": (_fast_key(email) or _validator_key(email)[0]) if email else "",
        "name": cells[cols.name].strip() if cols.name is not None else "",
        "status": (cells[cols.status].strip().lower() or "subscribed") if cols.status is not None else "subscribed",
        "tags": parse_tags(cells[cols.tags]) if cols.tags is not None else (),
        "fields": _RowFields(cols.index, cells),
        "line": line,
    })
    return sub


def list_columns(path: Path) -> list[str]:
    """The header of a list, as written (trimmed); raises NewsletterError if the list cannot be read."""
    with read_list(require_list(path)) as (fmt, _records):
        return list(fmt.header)


def _matcher(path: Path, cols: _Columns, tags: Sequence[str], where: Mapping[str, str] | None,
             statuses: Sequence[str] | None = None) -> Callable[[Subscriber], bool]:
    """A test for 'has every tag, every field=value (case-insensitive) and one of the statuses'."""
    wanted_tags = {t.strip().lower() for t in tags if t.strip()}
    conditions: list[tuple[str, str]] = []
    for name, value in (where or {}).items():
        index = cols.find(name.strip())
        if index is None:
            close = difflib.get_close_matches(name, cols.header, n=1)
            raise NewsletterError(
                f"no column '{name}' to filter on", where=display_path(path),
                hint=f"did you mean '{close[0]}'?" if close else f"columns: {', '.join(cols.header)}",
            )
        conditions.append((cols.header[index], value.strip().casefold()))
    wanted_status = set(statuses or ())

    def matches(sub: Subscriber) -> bool:
        if wanted_status and sub.status not in wanted_status:
            return False
        if wanted_tags and not wanted_tags.issubset(t.lower() for t in sub.tags):
            return False
        return all(sub.fields[name].casefold() == value for name, value in conditions)

    return matches


@contextmanager
def _subscribers(path: Path, fd: int | None = None) -> Iterator[tuple[_Columns, Iterator[Subscriber]]]:
    """Every non-blank row of a list as a Subscriber, streaming."""
    with read_rows(path, fd=fd) as (fmt, rows):
        cols = _Columns.of(fmt.header)

        def subscribers() -> Iterator[Subscriber]:
            reader, offset, width, email_at = rows.reader, rows.first_line, len(fmt.header), cols.email
            start = offset
            with rows.reporting(lambda: start):
                for cells in reader:
                    line, start = start, offset + reader.line_num
                    if len(cells) != width or not cells[email_at]:
                        cells = fmt.cells_of(cells, line)
                        if cells is None:
                            continue
                    yield _subscriber(cols, cells, line)

        yield cols, subscribers()


def iter_subscribers(path: Path, *, tags: Sequence[str] = (), where: Mapping[str, str] | None = None,
                     statuses: Sequence[str] | None = None) -> Iterator[Subscriber]:
    """Every row matching the filters, whatever its status or address (for list and export)."""
    with _subscribers(require_list(path)) as (cols, rows):
        matches = _matcher(path, cols, tags, where, statuses)
        yield from (sub for sub in rows if matches(sub))


def select_recipients(path: Path, *, tags: Sequence[str] = (), where: Mapping[str, str] | None = None,
                      on_skip: Callable[[str, str, int], None] | None = None) -> Iterator[Subscriber]:
    """Stream the subscribed, valid, de-duplicated rows matching every tag and every field=value condition.

    Rows that match the filters but are not sent call ``on_skip(email, reason, line)``
    with a reason from SKIP_REASONS; rows not matching the filters are not part
    of the selection. An address unsubscribed, bounced or complained on any row
    of the list is never sent, even from another row that says subscribed: a
    first pass reads those keys, before anything is yielded, so a list that
    cannot be read fails here and not halfway through a send. Both passes read
    the same file even if it is replaced meanwhile. Memory holds the keys of
    the selected recipients and of the suppressed rows, nothing more.
    """
    path = require_list(path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as err:
        raise NewsletterError(f"cannot read ({err.strerror})", where=display_path(path)) from None
    try:
        with read_rows(path, fd=fd) as (fmt, rows):
            cols = _Columns.of(fmt.header)
            matches = _matcher(path, cols, tags, where)
            suppressed = _suppressed_keys(fmt, cols, rows)
    except BaseException:
        os.close(fd)
        raise
    return _selected(path, fd, matches if tags or where else None, suppressed, on_skip)


def _suppressed_keys(fmt: ListFormat, cols: _Columns, rows: FastRows) -> dict[str, str]:
    """Key -> status of every unsubscribed, bounced or complained row; checks every row can be read."""
    suppressed: dict[str, str] = {}
    reader, offset, width, status_at, email_at = rows.reader, rows.first_line, len(fmt.header), cols.status, cols.email
    start = offset
    with rows.reporting(lambda: start):
        for cells in reader:
            line, start = start, offset + reader.line_num
            if len(cells) != width:
                cells = fmt.cells_of(cells, line)
                if cells is None:
                    continue
            if status_at is not None:
                status = cells[status_at].strip().lower()
                if status in SUPPRESSED:
                    key = key_or_problem(cells[email_at])[0]
                    if key:
                        suppressed.setdefault(key, status)
    return suppressed


def _selected(path: Path, fd: int, matches: Callable[[Subscriber], bool] | None, suppressed: Mapping[str, str],
              on_skip: Callable[[str, str, int], None] | None) -> Iterator[Subscriber]:
    """The second pass of select_recipients: decide each row, cheapest test first."""
    seen: set[str] = set()
    try:
        with _subscribers(path, fd) as (_cols, subscribers):
            for sub in subscribers:
                if matches is not None and not matches(sub):
                    continue
                key = sub.key
                if sub.status != "subscribed":
                    reason = sub.status if sub.status in SUPPRESSED else "invalid"
                elif not key:
                    reason = "invalid"
                elif key in suppressed:
                    reason = suppressed[key]
                elif key in seen:
                    reason = "duplicate"
                else:
                    seen.add(key)
                    yield sub
                    continue
                if on_skip is not None:
                    on_skip(sub.email, reason, sub.line)
    finally:
        os.close(fd)


# --- validating -------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one row of a list."""

    line: int
    email: str
    message: str


def _date_problem(value: str) -> str:
    if not value:
        return ""
    try:
        dt.datetime.fromisoformat(value)
    except ValueError:
        return f"subscribed_at '{value}' is not a date (write it as YYYY-MM-DD)"
    return ""


def validate_list(path: Path, *, check_dns: bool = False, dns_resolver: Any = None) -> Iterator[Problem]:
    """Every problem of a list, in file order: invalid or duplicate address, unknown status, bad date, bad row.

    Syntax only unless ``check_dns``: then each domain is looked up once (MX,
    then A/AAAA, as email-validator does) and a domain that cannot receive mail
    is a problem. A file that cannot be parsed at all raises NewsletterError.
    """
    path = require_list(path)
    first: dict[str, int] = {}  # key -> line of its first row (ints: a million keys stay small)
    first_status: dict[str, str] = {}  # key -> status of its first row, when that is not subscribed
    domains: dict[str, str] | None = None
    if check_dns:
        domains = {}
        dns_resolver = dns_resolver or email_validator.caching_resolver(timeout=10)
    with read_list(path) as (fmt, records):
        cols = _Columns.of(fmt.header)
        for record in records:
            try:
                cells = fmt.cells_of(record.cells, record.line)
            except NewsletterError as err:
                yield Problem(record.line, "", err.reason + f" ({err.hint})")
                continue
            if cells is None:
                continue
            sub = _subscriber(cols, cells, record.line)
            yield from _row_problems(sub, cols, first, first_status, domains, dns_resolver)


def _row_problems(sub: Subscriber, cols: _Columns, first: dict[str, int], first_status: dict[str, str],
                  domains: dict[str, str] | None, dns_resolver: Any) -> Iterator[Problem]:
    if not sub.key:
        why = key_or_problem(sub.email)[1]
        yield Problem(sub.line, sub.email, f"invalid address '{sub.email}': {why}")
    elif sub.key in first:
        line, status = first[sub.key], first_status.get(sub.key, "subscribed")
        wins = next((s for s in (status, sub.status) if s in SUPPRESSED), "") if status != sub.status else ""
        note = f"; '{wins}' wins, so it receives no mail" if wins else ""
        yield Problem(sub.line, sub.email,
                      f"duplicate address '{sub.email}', same as line {line}{note} (keep one row per address)")
    else:
        first[sub.key] = sub.line
        if sub.status != "subscribed":
            first_status[sub.key] = sub.status
        if domains is not None:
            problem = _dns_problem(sub.email, sub.key, domains, dns_resolver)
            if problem:
                yield Problem(sub.line, sub.email, problem)
    if sub.status not in STATUSES:
        close = difflib.get_close_matches(sub.status, STATUSES, n=1)
        fix = f"did you mean '{close[0]}'?" if close else f"use one of {', '.join(STATUSES)}"
        yield Problem(sub.line, sub.email, f"unknown status '{sub.status}' ({fix})")
    if cols.subscribed_at is not None:
        problem = _date_problem(sub.fields[cols.header[cols.subscribed_at]])
        if problem:
            yield Problem(sub.line, sub.email, problem)


def _dns_problem(email: str, key: str, domains: dict[str, str], dns_resolver: Any) -> str:
    """Whether the address's domain can receive mail, asked once per domain."""
    domain = key.rpartition("@")[2]
    if domain not in domains:
        try:
            validate_email(email, check_deliverability=True, dns_resolver=dns_resolver)
            domains[domain] = ""
        except EmailNotValidError as err:
            domains[domain] = f"domain '{domain}' cannot receive mail: {err}"
    return domains[domain]


# --- changing a list --------------------------------------------------------


KeyedRows = Iterator[tuple[Record, "list[str] | None", str]]  # (record, cells or None if blank, key or "")
Edit = Callable[[Rewrite, "_Columns", KeyedRows], Iterator[str]]


def _rewrite(path: Path, edit: Edit, *, add_columns: Sequence[str] = (), create: bool = False,
             dry_run: bool = False) -> int:
    """listfile.rewrite_list with each row's key and the columns' meanings at hand; returns rows changed.

    ``create`` makes a missing list with the usual columns first.
    """
    def keyed(state: Rewrite, rows: Iterator[tuple[Record, list[str] | None]]) -> Iterator[str]:
        cols = _Columns.of(state.fmt.header)
        return edit(state, cols, ((record, cells, key_or_problem(cells[cols.email])[0] if cells else "")
                                   for record, cells in rows))

    return rewrite_list(path, keyed, add_columns=add_columns, new_header=BASE_COLUMNS if create else None,
                        dry_run=dry_run)


def _set_cell(cells: list[str], index: int | None, value: str) -> bool:
    if index is None or cells[index].strip() == value:
        return False
    cells[index] = value
    return True


def _join_tags(tags: Iterable[str]) -> str:
    return ";".join(dict.fromkeys(t for t in tags if t))


def _merge_tags(cells: list[str], index: int | None, tags: Sequence[str]) -> bool:
    if index is None or not tags:
        return False
    current = parse_tags(cells[index])
    have = {t.lower() for t in current}
    new = [t for t in tags if t.lower() not in have]
    if not new:
        return False
    cells[index] = _join_tags([*current, *new])
    return True


def add_subscriber(path: Path, email: str, *, name: str | None = None, tags: Sequence[str] = (),
                   fields: Mapping[str, str] | None = None, today: dt.date | None = None) -> str:
    """Add one address, or re-subscribe and update it if the list has it already.

    Returns what happened: "added", "resubscribed" (it was unsubscribed,
    bounced or complained), "updated" or "unchanged". The list file is created
    with a header if it does not exist; a --field naming a new column adds it.
    """
    email, name = email.strip(), (name or "").strip()
    key = normalize_key(email)
    fields = {k.strip(): v.strip() for k, v in (fields or {}).items()}
    for reserved in ("email", "status"):
        if any(k.lower() == reserved for k in fields):
            raise NewsletterError(f"'{reserved}' cannot be set as a field",
                                  hint="give the address as EMAIL; change status with 'subscribers unsubscribe'")
    tags = [t.strip() for t in tags if t.strip()]
    stamp = (today or dt.date.today()).isoformat()
    needed = [*(["name"] if name else []), *(["tags"] if tags else []), *fields]
    outcome = ["added"]

    def edit(state: Rewrite, cols: _Columns, rows: KeyedRows) -> Iterator[str]:
        found = False
        for record, cells, row_key in rows:
            if row_key != key or cells is None:
                yield record.raw
                continue
            cells = list(cells)
            was = _status_of(cells[cols.status]) if cols.status is not None else "subscribed"
            changed = _set_cell(cells, cols.status, "subscribed") if was != "subscribed" else False
            if changed and was in SUPPRESSED:
                _set_cell(cells, cols.subscribed_at, stamp)
            changed |= bool(name) and _set_cell(cells, cols.name, name)
            changed |= _merge_tags(cells, cols.tags, tags)
            for column, value in fields.items():
                changed |= _set_cell(cells, cols.find(column), value)
            if not found:
                outcome[0] = ("resubscribed" if was in SUPPRESSED else "updated") if changed else "unchanged"
            found = True
            yield state.row(cells) if changed else record.raw
        if not found:
            yield state.row(_new_row(cols, email, name, "subscribed", tags, stamp, fields))

    _rewrite(path, edit, add_columns=needed, create=True)
    return outcome[0]


def _new_row(cols: _Columns, email: str, name: str, status: str, tags: Sequence[str], stamp: str,
             fields: Mapping[str, str]) -> list[str]:
    cells = [""] * len(cols.header)
    cells[cols.email] = email
    for index, value in ((cols.name, name), (cols.status, status), (cols.tags, _join_tags(tags)),
                         (cols.subscribed_at, stamp)):
        if index is not None:
            cells[index] = value
    for column, value in fields.items():
        index = cols.find(column)
        if index is not None:
            cells[index] = value
    return cells


def _apply_status(path: Path, keys_to_status: Mapping[str, str], *, keep: Sequence[str] = ()
                  ) -> tuple[int, dict[str, str]]:
    """Set statuses by key, leaving rows whose status is in ``keep``; returns (rows changed, key -> first status)."""
    for status in keys_to_status.values():
        if status not in STATUSES:
            raise NewsletterError(f"unknown status '{status}'", hint=f"use one of {', '.join(STATUSES)}")
    found: dict[str, str] = {}

    def edit(state: Rewrite, cols: _Columns, rows: KeyedRows) -> Iterator[str]:
        for record, cells, key in rows:
            status = keys_to_status.get(key) if cells is not None else None
            if status is None or cells is None:
                yield record.raw
                continue
            was = _status_of(cells[cols.status]) if cols.status is not None else "subscribed"
            found.setdefault(key, was)
            if was == status or was in keep:
                yield record.raw
                continue
            cells = list(cells)
            cells[cols.status] = status  # type: ignore[index]  # the column was added if missing
            yield state.row(cells)

    if not keys_to_status:
        return 0, found
    return _rewrite(require_list(path), edit, add_columns=["status"]), found


def set_status(path: Path, keys_to_status: Mapping[str, str], *, keep: Sequence[str] = ()) -> int:
    """Atomically set the status of every row whose key is given (keys from ``normalize_key``), except rows
    whose status (read inside the lock) is in ``keep``; returns rows changed."""
    return _apply_status(path, keys_to_status, keep=keep)[0]


def unsubscribe(path: Path, email: str) -> str:
    """Mark an address unsubscribed and keep its row, so it is never mailed again by accident.

    Returns the status it had ("subscribed", or "unsubscribed"/"bounced"/"complained"
    when nothing needed to change: those already receive no mail and keep
    the more specific status). Raises NewsletterError if the list does not have it.
    """
    key = normalize_key(email)
    _changed, found = _apply_status(path, {key: "unsubscribed"}, keep=SUPPRESSED)
    if key not in found:
        raise NewsletterError(f"'{email.strip()}' is not on this list", where=display_path(path),
                              hint="check the spelling; 'newsletter subscribers list' shows who is")
    return found[key]


def remove_subscriber(path: Path, email: str) -> int:
    """Delete every row of an address (an erasure request); returns how many rows went."""
    key = normalize_key(email)

    def edit(state: Rewrite, cols: _Columns, rows: KeyedRows) -> Iterator[str]:
        for record, cells, row_key in rows:
            if cells is not None and row_key == key:
                state.changed += 1
                continue
            yield record.raw

    removed = _rewrite(require_list(path), edit)
    if not removed:
        raise NewsletterError(f"'{email.strip()}' is not on this list", where=display_path(path),
                              hint="check the spelling; 'newsletter subscribers list' shows who is")
    return removed


# --- stats and export -------------------------------------------------------


@dataclass
class ListStats:
    """Counts a writer wants before a send: rows by status and tag, and who would receive mail."""

    rows: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    by_tag: Counter[str] = field(default_factory=Counter)
    invalid: int = 0
    duplicates: int = 0
    recipients: int = 0


def list_stats(path: Path) -> ListStats:
    """Count a list in one pass; ``recipients`` equals what select_recipients would yield with no filter."""
    stats = ListStats()
    seen: dict[str, int] = {}  # key -> 1 if a row is subscribed | 2 if a row is suppressed
    with _subscribers(require_list(path)) as (_cols, rows):
        for sub in rows:
            stats.rows += 1
            stats.by_status[sub.status] += 1
            stats.by_tag.update(sub.tags)
            if not sub.key:
                stats.invalid += 1
                continue
            flags = seen.get(sub.key)
            if flags is not None:
                stats.duplicates += 1
            flag = 1 if sub.status == "subscribed" else 2 if sub.status in SUPPRESSED else 0
            seen[sub.key] = (flags or 0) | flag
    stats.recipients = sum(1 for flags in seen.values() if flags == 1)
    return stats


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralize(cell: str) -> str:
    """Prefix a cell a spreadsheet would run as a formula with ', so it shows as text."""
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


class TextOut(Protocol):
    """Anything text can be written to: a file, sys.stdout, an AtomicWriter."""

    def write(self, text: str, /) -> Any: ...


def export_subscribers(path: Path, out: TextOut, *, fmt: str = "csv", tags: Sequence[str] = (),
                       where: Mapping[str, str] | None = None, statuses: Sequence[str] | None = None) -> int:
    """Write matching rows as CSV (formula injection neutralized) or a JSON array; returns rows written.

    The CSV is meant for spreadsheets; to copy a list faithfully, copy its file.
    """
    header = list_columns(path)
    rows = iter_subscribers(path, tags=tags, where=where, statuses=statuses)
    count = 0
    if fmt == "json":
        out.write("[")
        for sub in rows:
            out.write(("," if count else "") + "\n  " + json.dumps(dict(sub.fields), ensure_ascii=False))
            count += 1
        out.write("\n]\n" if count else "]\n")
        return count
    if fmt != "csv":
        raise NewsletterError(f"unknown export format '{fmt}'", hint="use csv or json")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([neutralize(h) for h in header])
    for sub in rows:
        writer.writerow([neutralize(sub.fields[h]) for h in header])
        count += 1
    return count


def export_to_file(path: Path, out: Path, *, fmt: str = "csv", tags: Sequence[str] = (),
                   where: Mapping[str, str] | None = None, statuses: Sequence[str] | None = None,
                   overwrite: bool = False) -> int:
    """Export into a file, atomically; an existing file is replaced only when ``overwrite`` says so.

    A CSV file starts with a byte-order mark so spreadsheets read it as UTF-8.
    """
    if out.resolve() == path.resolve():
        raise NewsletterError("cannot export a list onto itself", where=display_path(out),
                              hint="choose another --out file")
    if out.exists() and not overwrite:
        raise NewsletterError("already exists", where=display_path(out), hint="add --force to replace it")
    with atomic_write(out, bom=fmt == "csv") as writer:
        count = export_subscribers(path, writer, fmt=fmt, tags=tags, where=where, statuses=statuses)
        writer.commit()
    return count
