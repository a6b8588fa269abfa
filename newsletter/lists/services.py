"""Import another service's export into a subscriber list, merging instead of duplicating.

Column names of Mailchimp, Substack, Buttondown and listmonk exports are
recognised without a mapping; ``--map`` covers anything else. Existing rows
are updated in place, an address the list has as unsubscribed, bounced or
complained stays so unless the writer asks to resubscribe, and the list is
rewritten once, atomically, however many rows come in.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import NewsletterError, display_path
from .address_keys import key_or_problem
from .csvfile import read_list
from .editor import Entry, upsert
from .read import BASE_COLUMNS, list_columns
from .validate import Problem

# Column names of common exports (normalized: lowercase, runs of other characters -> "_") -> meaning.
_ALIASES = {
    **dict.fromkeys(("email", "email_address", "e_mail", "emailaddress", "mail"), "email"),
    **dict.fromkeys(("name", "full_name", "fullname", "display_name"), "name"),
    **dict.fromkeys(("first_name", "fname", "firstname", "given_name"), "first_name"),
    **dict.fromkeys(("last_name", "lname", "lastname", "surname", "family_name"), "last_name"),
    **dict.fromkeys(("status", "member_status", "subscriber_status", "subscription_status",
                     "subscriber_type"), "status"),
    **dict.fromkeys(("tags", "tag"), "tags"),
    "subscription_type": "tag",  # Substack: free / paid / comp becomes a tag, for segments
    **dict.fromkeys(("subscribed_at", "confirm_time", "optin_time", "created_at", "creation_date",
                     "date_subscribed", "subscribe_date", "signup_date", "date_added"), "subscribed_at"),
    "attributes": "attributes",  # listmonk: a JSON object of merge fields
    "unsub_time": "unsubscribed_if_set",  # Mailchimp's export of unsubscribed members
    "clean_time": "bounced_if_set",  # Mailchimp's export of cleaned (bounced) members
}
_EMAIL_HEADERS = {"email", "email address", "e-mail", "e_mail", "email_address", "mail"}
_STATUS_WORDS = {
    **dict.fromkeys(("subscribed", "subscribe", "active", "confirmed", "enabled", "regular", "premium",
                     "gifted", "trialed", "opted_in", "optin"), "subscribed"),
    **dict.fromkeys(("unsubscribed", "unsubscribe", "inactive", "disabled", "blocklisted", "blacklisted",
                     "removed", "opted_out", "optout", "cancelled"), "unsubscribed"),
    **dict.fromkeys(("bounced", "bounce", "cleaned", "hard_bounce", "undeliverable"), "bounced"),
    **dict.fromkeys(("complained", "complaint", "spam", "spam_complaint", "abuse"), "complained"),
}
_NOT_CONFIRMED = {"pending", "unconfirmed", "unactivated", "transactional", "archived", "not_subscribed"}
_SERVICES = (  # (name, columns that give it away), checked in order
    ("Mailchimp", {"email_address", "member_rating", "leid", "euid", "optin_time"}),
    ("listmonk", {"attributes", "uuid"}),
    ("Buttondown", {"subscriber_type", "notes", "referrer_url"}),
    ("Substack", {"subscription_type", "active_subscription"}),
)


def _norm(column: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", column.strip().lower()).strip("_")


@dataclass
class ImportReport:
    """What an import did (or, with dry_run, would do) to the list."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[Problem] = field(default_factory=list)
    kept_suppressed: int = 0  # rows the source said subscribed that stay unsubscribed/bounced/complained
    ignored_columns: list[str] = field(default_factory=list)
    recognised: str = ""  # "Mailchimp", "Substack", ... when the columns give it away


@dataclass
class _Incoming:
    line: int
    email: str
    key: str
    name: str = ""
    status: str = ""  # "" when the source says nothing about it
    tags: list[str] = field(default_factory=list)
    subscribed_at: str = ""
    fields: dict[str, str] = field(default_factory=dict)  # list column -> non-empty value

    def entry(self) -> Entry:
        return Entry(self.email, name=self.name, status=self.status, tags=tuple(self.tags),
                     subscribed_at=self.subscribed_at, fields=self.fields)


@dataclass
class _Plan:
    """Which source column feeds which meaning or list column."""

    roles: dict[str, list[int]]
    fields: list[tuple[int, str]]  # (source column, list column)
    attribute_targets: dict[str, str]  # normalized attribute key -> list column
    ignored: list[str]
    new_columns: list[str]


def _plan(source: Path, header: Sequence[str], list_header: Sequence[str], mapping: Mapping[str, str],
          status_from: str | None) -> _Plan:
    """Decide each source column: --map first, then --status-from, then a list column of that name, then aliases."""
    where = display_path(source)
    by_lower = {h.lower(): i for i, h in enumerate(header)}
    list_by_norm = {_norm(h): h for h in list_header if _norm(h) not in BASE_COLUMNS}
    has_attributes = any(_ALIASES.get(_norm(h)) == "attributes" for h in header)
    explicit: dict[int, str] = {}
    attribute_targets: dict[str, str] = {}
    for source_column, target in mapping.items():
        index = by_lower.get(source_column.strip().lower())
        if index is None and has_attributes:
            attribute_targets[_norm(source_column)] = target.strip()
            continue
        if index is None:
            close = difflib.get_close_matches(source_column, header, n=1)
            raise NewsletterError(f"--map names a column '{source_column}' this file does not have", where=where,
                                  hint=f"did you mean '{close[0]}'?" if close else f"columns: {', '.join(header)}")
        explicit[index] = target.strip()
    status_index = None
    if status_from:
        status_index = by_lower.get(status_from.strip().lower())
        if status_index is None:
            raise NewsletterError(f"--status-from names a column '{status_from}' this file does not have",
                                  where=where, hint=f"columns: {', '.join(header)}")
    roles: dict[str, list[int]] = {}
    fields_: list[tuple[int, str]] = []
    ignored: list[str] = []
    for index, name in enumerate(header):
        norm = _norm(name)
        if index in explicit:
            target = explicit[index]
            if not target:
                ignored.append(name)
            elif _norm(target) in BASE_COLUMNS:
                roles.setdefault(_norm(target), []).append(index)
            else:
                fields_.append((index, list_by_norm.get(_norm(target), target)))
        elif index == status_index:
            roles.setdefault("status", []).append(index)
        elif norm in list_by_norm:
            fields_.append((index, list_by_norm[norm]))
        elif norm in _ALIASES and not (status_index is not None and _ALIASES[norm] == "status"):
            roles.setdefault(_ALIASES[norm], []).append(index)
        else:
            ignored.append(name)
    if "email" not in roles:
        raise NewsletterError(f"found no email column (columns: {', '.join(header)})", where=where, line=1,
                              hint="name it with --map 'COLUMN=email'")
    listed = {h.lower() for h in list_header}
    new_columns = [target for _, target in fields_ if target.lower() not in listed]
    new_columns += [t for t in attribute_targets.values() if t and t.lower() not in listed]
    return _Plan(roles, fields_, attribute_targets, ignored, list(dict.fromkeys(new_columns)))


def _date_value(value: str) -> str:
    """An export's timestamp as YYYY-MM-DD, or "" when it is not one we can read."""
    try:
        return dt.datetime.fromisoformat(value.strip()).date().isoformat()
    except ValueError:
        return ""


def _import_tags(cell: str) -> list[str]:
    """Tags as exports write them: 'a;b', 'a, b', '"a","b"' (Mailchimp) or '["a", "b"]'."""
    cell = cell.strip().strip("[]")
    return [t for t in (part.strip().strip("\"'").strip() for part in re.split(r"[;,]", cell)) if t]


def _incoming(plan: _Plan, header: Sequence[str], cells: list[str], line: int, list_columns_by_norm: Mapping[str, str],
              ignored_attributes: set[str]) -> _Incoming | str:
    """One source row as what it means for the list, or the reason it is rejected."""

    def values(role: str) -> list[str]:
        return [cells[i].strip() for i in plan.roles.get(role, []) if cells[i].strip()]

    email = next(iter(values("email")), "")
    if not email:
        return "no email address"
    key, problem = key_or_problem(email)
    if not key:
        return f"invalid address '{email}': {problem}"
    row = _Incoming(line=line, email=email, key=key)
    row.name = next(iter(values("name")), "") or " ".join([*values("first_name")[:1], *values("last_name")[:1]])
    for word in values("status")[:1]:
        norm = _norm(word)
        if norm in _NOT_CONFIRMED:
            return f"'{email}' is not a confirmed subscriber (status '{word}')"
        if norm not in _STATUS_WORDS:
            column = header[plan.roles["status"][0]]
            return (f"unknown status '{word}' in column '{column}' "
                    f"(use --status-from COLUMN to read another column, or fix the file)")
        row.status = _STATUS_WORDS[norm]
    if not row.status and values("unsubscribed_if_set"):
        row.status = "unsubscribed"
    elif not row.status and values("bounced_if_set"):
        row.status = "bounced"
    for cell in values("tags"):
        row.tags += _import_tags(cell)
    row.tags += values("tag")
    row.subscribed_at = next((d for d in map(_date_value, values("subscribed_at")) if d), "")
    for index, target in plan.fields:
        if cells[index].strip():
            row.fields[target] = cells[index].strip()
    for cell in values("attributes"):
        try:
            attributes = json.loads(cell)
        except ValueError:
            return f"the attributes column is not JSON: {cell[:40]!r}"
        if not isinstance(attributes, dict):
            continue
        for name, value in attributes.items():
            field = plan.attribute_targets.get(_norm(name)) or list_columns_by_norm.get(_norm(name))
            if field and isinstance(value, (str, int, float, bool)) and str(value).strip():
                row.fields[field] = str(value).strip()
            elif not field:
                ignored_attributes.add(f"attributes.{name}")
    return row


def _read_source(source: Path, list_header: Sequence[str], mapping: Mapping[str, str], status_from: str | None,
                 report: ImportReport) -> tuple[dict[str, _Incoming], _Plan]:
    """The source file's rows by key (first occurrence wins), rejecting with reasons what cannot be imported."""
    if not source.is_file():
        raise NewsletterError("no such file to import", where=source)
    wanted = _EMAIL_HEADERS | {m.strip().lower() for m in mapping}
    incoming: dict[str, _Incoming] = {}
    ignored_attributes: set[str] = set()
    list_by_norm = {_norm(h): h for h in list_header if _norm(h) not in BASE_COLUMNS}
    with read_list(source, wanted=wanted, required=None) as (fmt, records):
        plan = _plan(source, fmt.header, list_header, mapping, status_from)
        norms = {_norm(h) for h in fmt.header}
        report.recognised = next((name for name, marks in _SERVICES if marks & norms), "")
        list_by_norm.update({_norm(t): t for t in plan.new_columns})
        for record in records:
            # A row of the wrong width stops the import: its values cannot be told apart, and a quote
            # gone wrong there may have shifted every row after it.
            cells = fmt.cells_of(record.cells, record.line)
            if cells is None:
                continue
            row = _incoming(plan, fmt.header, cells, record.line, list_by_norm, ignored_attributes)
            if isinstance(row, str):
                email = cells[plan.roles["email"][0]].strip()
                report.rejected.append(Problem(record.line, email, row))
            elif row.key in incoming:
                first = incoming[row.key].line
                report.rejected.append(Problem(record.line, row.email, f"duplicate of line {first} in this file"))
            else:
                incoming[row.key] = row
    report.ignored_columns = [*plan.ignored, *sorted(ignored_attributes)]
    return incoming, plan


def import_subscribers(path: Path, source: Path, *, mapping: Mapping[str, str] | None = None,
                       status_from: str | None = None, resubscribe: bool = False,
                       dry_run: bool = False) -> ImportReport:
    """Merge another service's CSV export into a list, rewriting the list once (through the editor).

    Existing addresses are updated, never duplicated; an address the list has
    as unsubscribed, bounced or complained stays so unless ``resubscribe``;
    the source's own unsubscribes and bounces are carried over. Importing the
    same file twice changes nothing the second time.
    """
    mapping = dict(mapping or {})
    report = ImportReport()
    list_header = list_columns(path) if path.is_file() and path.stat().st_size else list(BASE_COLUMNS)
    incoming, plan = _read_source(source, list_header, mapping, status_from, report)
    done = upsert(path, [row.entry() for row in incoming.values()], resubscribe=resubscribe,
                  columns=plan.new_columns, dry_run=dry_run)
    counts = Counter("updated" if outcome == "resubscribed" else outcome for outcome in done.outcomes.values())
    report.added, report.updated, report.unchanged = counts["added"], counts["updated"], counts["unchanged"]
    report.kept_suppressed = len(done.kept_suppressed)
    return report
