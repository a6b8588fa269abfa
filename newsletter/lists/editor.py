"""Editing a list: the one way anything changes ``subscribers/<list>.csv``.

``subscribers add``, ``import``, ``unsubscribe`` and ``remove``, the SendGrid
suppression sync and the subscriber service's sync all change lists through
these functions. Each call is one locked, atomic rewrite
(``csvfile.rewrite_list``): rows it leaves alone are copied back byte for
byte, a second writer waits for the lock, and a list that cannot be read is
an error before anything is replaced.

The rules every caller gets the same way: an address is matched by its key
(``addresses``), never duplicated; a row that says unsubscribed, bounced or
complained stays so unless the caller asks to re-subscribe; names and fields
are set, tags merged.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import NewsletterError, display_path
from .addresses import key_or_problem, normalize_key
from .csvfile import Record, Rewrite, rewrite_list
from .names import require_list
from .read import BASE_COLUMNS, Columns, parse_tags, status_of
from .statuses import STATUSES, SUPPRESSED

_NOT_ON_LIST = "check the spelling; 'newsletter subscribers list' shows who is"


@dataclass(frozen=True)
class Entry:
    """What a caller knows about one address, to add to a list or merge into its rows."""

    email: str
    name: str = ""  # "" leaves a row's name as it is
    status: str = ""  # "" when the caller says nothing about it (a new row is then subscribed)
    tags: tuple[str, ...] = ()  # merged into a row's tags
    subscribed_at: str = ""  # YYYY-MM-DD when known: for a new row, a re-subscribed row, or a row without one
    fields: Mapping[str, str] = field(default_factory=dict)  # column -> value; a column the list lacks is added


@dataclass
class UpsertReport:
    """What ``upsert`` did (or, in a dry run, would do), by address key."""

    outcomes: dict[str, str]  # key -> "added" | "resubscribed" | "updated" | "unchanged"
    kept_suppressed: set[str]  # keys an entry said subscribed that stay unsubscribed, bounced or complained
    rows_changed: int


KeyedRows = Iterator[tuple[Record, "list[str] | None", str]]  # (record, cells or None if blank, key or "")
Edit = Callable[[Rewrite, Columns, KeyedRows], Iterator[str]]
_RANK = {"unchanged": 0, "updated": 1, "resubscribed": 2}


def upsert(path: Path, entries: Iterable[Entry], *, resubscribe: bool = False, today: dt.date | None = None,
           columns: Sequence[str] = (), dry_run: bool = False) -> UpsertReport:
    """Merge ``entries`` into a list in one rewrite, creating the list (with the usual columns) if needed.

    Every row of an address already on the list is updated in place; an
    address not on it is appended. An entry saying unsubscribed, bounced or
    complained marks the rows so (a row already suppressed keeps its own
    status); an entry saying subscribed, or any entry when ``resubscribe``,
    subscribes them, except that a suppressed row stays suppressed unless
    ``resubscribe``. ``today`` is the date a new or re-subscribed row gets
    when its entry has none. ``columns`` are added to the header even if no
    entry has a value for them. An address given twice: the last entry wins.
    """
    wanted: dict[str, Entry] = {}
    for entry in entries:
        if entry.status and entry.status not in STATUSES:
            raise NewsletterError(f"unknown status '{entry.status}' for {entry.email.strip()}",
                                  hint=f"use one of {', '.join(STATUSES)}")
        wanted[normalize_key(entry.email)] = entry
    stamp = today.isoformat() if today else ""
    values = list(wanted.values())
    needed = [*(["name"] if any(e.name for e in values) else []),
              *(["status"] if any(e.status for e in values) else []),
              *(["tags"] if any(e.tags for e in values) else []),
              *(["subscribed_at"] if any(e.subscribed_at for e in values) else []),
              *columns, *(column for e in values for column in e.fields)]
    outcomes: dict[str, str] = {}
    kept: set[str] = set()

    def edit(state: Rewrite, cols: Columns, rows: KeyedRows) -> Iterator[str]:
        for record, cells, key in rows:
            entry = wanted.get(key) if cells is not None else None
            if entry is None or cells is None:
                yield record.raw
                continue
            cells = list(cells)
            outcome, kept_row = _merge(cols, cells, entry, resubscribe, stamp)
            if kept_row:
                kept.add(key)
            if _RANK[outcome] >= _RANK.get(outcomes.get(key, "unchanged"), 0):
                outcomes[key] = outcome
            yield record.raw if outcome == "unchanged" else state.row(cells)
        for key, entry in wanted.items():
            if key not in outcomes:
                outcomes[key] = "added"
                yield state.row(_new_row(cols, entry, stamp))

    changed = _rewrite(path, edit, add_columns=needed, create=True, dry_run=dry_run)
    return UpsertReport(outcomes, kept, changed)


def _merge(cols: Columns, cells: list[str], entry: Entry, resubscribe: bool, stamp: str) -> tuple[str, bool]:
    """Update one row from an entry in place; returns (outcome, kept a suppression)."""
    was = status_of(cells[cols.status]) if cols.status is not None else "subscribed"
    status, kept = was, False
    if entry.status in SUPPRESSED:
        status = was if was in SUPPRESSED else entry.status
    elif entry.status == "subscribed" or resubscribe:
        if was in SUPPRESSED and not resubscribe:
            kept = True
        else:
            status = "subscribed"
    changed = False
    if status != was and cols.status is not None:
        cells[cols.status] = status
        changed = True
        if status == "subscribed" and (entry.subscribed_at or stamp):
            _set_cell(cells, cols.subscribed_at, entry.subscribed_at or stamp)
    if entry.name:
        changed |= _set_cell(cells, cols.name, entry.name)
    changed |= _merge_tags(cells, cols.tags, entry.tags)
    if entry.subscribed_at and cols.subscribed_at is not None and not cells[cols.subscribed_at].strip():
        changed |= _set_cell(cells, cols.subscribed_at, entry.subscribed_at)
    for column, value in entry.fields.items():
        changed |= _set_cell(cells, cols.find(column), value)
    if not changed:
        return "unchanged", kept
    return ("resubscribed" if was in SUPPRESSED and status == "subscribed" else "updated"), kept


def _new_row(cols: Columns, entry: Entry, stamp: str) -> list[str]:
    cells = [""] * len(cols.header)
    cells[cols.email] = entry.email.strip()
    for index, value in ((cols.name, entry.name), (cols.status, entry.status or "subscribed"),
                         (cols.tags, _join_tags(entry.tags)), (cols.subscribed_at, entry.subscribed_at or stamp)):
        if index is not None:
            cells[index] = value
    for column, value in entry.fields.items():
        index = cols.find(column)
        if index is not None:
            cells[index] = value
    return cells


def set_status(path: Path, statuses: Mapping[str, str], *, keep: Sequence[str] = ()) -> int:
    """Set the status of every row of each address given (``address -> status``), in one rewrite.

    Rows whose status, read inside the lock, is in ``keep`` are left alone:
    pass SUPPRESSED so that a row unsubscribed by hand since the caller read
    the list is not overwritten. Returns the number of rows changed.
    """
    return _apply_status(path, statuses, keep=keep)[0]


def unsubscribe(path: Path, email: str) -> str:
    """Mark an address unsubscribed and keep its row, so it is never mailed again by accident.

    Returns the status it had ("subscribed", or "unsubscribed"/"bounced"/"complained"
    when nothing needed to change: those already receive no mail and keep
    the more specific status). Raises NewsletterError if the list does not have it.
    """
    key = normalize_key(email)
    _changed, found = _apply_status(path, {key: "unsubscribed"}, keep=SUPPRESSED)
    if key not in found:
        raise NewsletterError(f"'{email.strip()}' is not on this list", where=display_path(path), hint=_NOT_ON_LIST)
    return found[key]


def _apply_status(path: Path, statuses: Mapping[str, str], *, keep: Sequence[str] = ()
                  ) -> tuple[int, dict[str, str]]:
    """Set statuses by address; returns (rows changed, key -> status its first row had)."""
    by_key: dict[str, str] = {}
    for address, status in statuses.items():
        if status not in STATUSES:
            raise NewsletterError(f"unknown status '{status}'", hint=f"use one of {', '.join(STATUSES)}")
        key = key_or_problem(address)[0]
        if key:  # an invalid address matches no row: a row's key is "" when its address is invalid
            by_key[key] = status
    found: dict[str, str] = {}

    def edit(state: Rewrite, cols: Columns, rows: KeyedRows) -> Iterator[str]:
        for record, cells, key in rows:
            status = by_key.get(key) if cells is not None else None
            if status is None or cells is None:
                yield record.raw
                continue
            was = status_of(cells[cols.status]) if cols.status is not None else "subscribed"
            found.setdefault(key, was)
            if was == status or was in keep:
                yield record.raw
                continue
            cells = list(cells)
            cells[cols.status] = status  # type: ignore[index]  # the column was added if missing
            yield state.row(cells)

    if not by_key:
        return 0, found
    return _rewrite(require_list(path), edit, add_columns=["status"]), found


def add_subscriber(path: Path, email: str, *, name: str | None = None, tags: Sequence[str] = (),
                   fields: Mapping[str, str] | None = None, today: dt.date | None = None) -> str:
    """Add one address, or re-subscribe and update it if the list has it already (the writer asked).

    Returns what happened: "added", "resubscribed" (it was unsubscribed,
    bounced or complained), "updated" or "unchanged". The list file is created
    with a header if it does not exist; a field naming a new column adds it.
    """
    fields = {k.strip(): v.strip() for k, v in (fields or {}).items()}
    for reserved in ("email", "status"):
        if any(k.lower() == reserved for k in fields):
            raise NewsletterError(f"'{reserved}' cannot be set as a field",
                                  hint="give the address as EMAIL; change status with 'subscribers unsubscribe'")
    key = normalize_key(email)
    entry = Entry(email.strip(), name=(name or "").strip(), tags=tuple(t.strip() for t in tags if t.strip()),
                  fields=fields)
    report = upsert(path, [entry], resubscribe=True, today=today or dt.date.today())
    return report.outcomes[key]


def remove_subscriber(path: Path, email: str) -> int:
    """Delete every row of an address (an erasure request); returns how many rows went."""
    key = normalize_key(email)

    def edit(state: Rewrite, cols: Columns, rows: KeyedRows) -> Iterator[str]:
        for record, cells, row_key in rows:
            if cells is not None and row_key == key:
                state.changed += 1
                continue
            yield record.raw

    removed = _rewrite(require_list(path), edit)
    if not removed:
        raise NewsletterError(f"'{email.strip()}' is not on this list", where=display_path(path), hint=_NOT_ON_LIST)
    return removed


def _rewrite(path: Path, edit: Edit, *, add_columns: Sequence[str] = (), create: bool = False,
             dry_run: bool = False) -> int:
    """csvfile.rewrite_list with each row's key and the columns' meanings at hand; returns rows changed.

    ``create`` makes a missing list with the usual columns first.
    """
    def keyed(state: Rewrite, rows: Iterator[tuple[Record, list[str] | None]]) -> Iterator[str]:
        cols = Columns.of(state.fmt.header)
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
