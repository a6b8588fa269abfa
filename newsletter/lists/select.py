"""Selecting from a list: who matches the filters, who a send reaches, and the counts a writer checks first.

A send reaches each subscribed, valid address once; an address unsubscribed,
bounced or complained on any row is never mailed, even from another row that
says subscribed. ``list_stats`` counts the same way, so its ``recipients``
is what a send with no filter would reach.
"""

from __future__ import annotations

import datetime as dt
import difflib
import os
from collections import Counter
from collections.abc import Callable, Container, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any, TypeVar

from ..errors import NewsletterError
from .address_keys import fast_key, key_or_problem, validator_key
from .csvfile import FastRows, ListFormat, read_rows
from .list_names import require_list
from .read import Columns, Subscriber, open_subscribers, parse_tags, subscriber_of
from .statuses import SUPPRESSED

SKIP_REASONS = ("unsubscribed", "bounced", "complained", "invalid", "duplicate")
Row = tuple[str, str, str, str]  # a send's recipient as the journal takes it: key, email, name, fields as JSON text
_Item = TypeVar("_Item")
# A selection streams from the list file it holds open: close() it (contextlib.closing) when not read to the end.
Selection = Generator[_Item, None, None]


def _conditions(path: Path, cols: Columns, where: Mapping[str, str] | None) -> list[tuple[int, str]]:
    """(column position, wanted value casefolded) of each --where condition; an unknown column is an error."""
    conditions: list[tuple[int, str]] = []
    for name, value in (where or {}).items():
        index = cols.find(name.strip())
        if index is None:
            close = difflib.get_close_matches(name, cols.header, n=1)
            raise NewsletterError(
                f"no row has a column '{name}' to filter on: the list's columns are {', '.join(cols.header)}",
                where=path,
                hint=f"did you mean --where {close[0]}=...?" if close else "filter on one of those columns",
            )
        conditions.append((index, value.strip().casefold()))
    return conditions


def matcher(path: Path, cols: Columns, tags: Sequence[str], where: Mapping[str, str] | None,
            statuses: Sequence[str] | None = None) -> Callable[[Subscriber], bool]:
    """A test for 'has every tag, every field=value (case-insensitive) and one of the statuses'."""
    wanted_tags = {t.strip().lower() for t in tags if t.strip()}
    conditions = [(cols.header[index], value) for index, value in _conditions(path, cols, where)]
    wanted_status = set(statuses or ())

    def matches(sub: Subscriber) -> bool:
        if wanted_status and sub.status not in wanted_status:
            return False
        if wanted_tags and not wanted_tags.issubset(t.lower() for t in sub.tags):
            return False
        return all(sub.fields[name].casefold() == value for name, value in conditions)

    return matches


def iter_subscribers(path: Path, *, tags: Sequence[str] = (), where: Mapping[str, str] | None = None,
                     statuses: Sequence[str] | None = None) -> Iterator[Subscriber]:
    """Every row matching the filters, whatever its status or address (for list and export)."""
    with open_subscribers(require_list(path)) as (cols, rows):
        matches = matcher(path, cols, tags, where, statuses)
        yield from (sub for sub in rows if matches(sub))


def select_recipients(path: Path, *, tags: Sequence[str] = (), where: Mapping[str, str] | None = None,
                      on_skip: Callable[[str, str, int], None] | None = None,
                      only: Container[str] | None = None) -> Selection[Subscriber]:
    """Stream the subscribed, valid, de-duplicated rows matching every tag and every field=value condition.

    Rows that match the filters but are not sent call ``on_skip(email, reason, line)``
    with a reason from SKIP_REASONS; rows not matching the filters are not part
    of the selection. An address unsubscribed, bounced or complained on any row
    of the list is never sent, even from another row that says subscribed: a
    first pass reads those keys, before anything is yielded, so a list that
    cannot be read fails here and not halfway through a send. Both passes read
    the same file even if it is replaced meanwhile. Memory holds the keys of
    the selected recipients and of the suppressed rows, nothing more.

    ``only``: the keys wanted (as ``select_rows``): no Subscriber is built for the other rows.
    """
    return _select(path, tags, where, on_skip, None, only=only)


def select_rows(path: Path, *, columns: Sequence[str] = (), tags: Sequence[str] = (),
                where: Mapping[str, str] | None = None,
                on_skip: Callable[[str, str, int], None] | None = None, dedupe: bool = True,
                joined_after: dt.datetime | None = None, only: Container[str] | None = None) -> Selection[Row]:
    """The same selection as ``select_recipients``, in the form a send's journal takes each recipient:
    ``(key, email, name, fields)``, ``fields`` being the JSON object text ``{"column": "value"}`` of
    only the merge-field ``columns`` the issue uses (named as in the header; a column the list lacks
    reads as ""), or "" when it uses none.

    A send of a million rows reads each once here: no Subscriber is built, no cell is trimmed
    that nothing reads (most of the cost of the general reader), and no dict is built and then
    encoded per row: the JSON text is the very text ``json.dumps(..., ensure_ascii=False)`` would
    write, made by joining pre-encoded names with each value encoded by json's own C encoder.

    ``dedupe=False`` leaves an address's later rows in, for a caller that drops them itself: a
    fresh send's journal keeps the first row of each key (``Journal.select(first_wins=True)``),
    and a million addresses held here as well would be about 100 MB.

    ``joined_after``: only rows that joined later than that moment (their ``consent_confirmed_at``, as
    ``newsletter serve`` writes it, or else ``subscribed_at``); the others are skipped, those without a
    date as already mailed (``send --journal-lost``, whose journal no longer says who was).

    ``only``: the keys of the readers a run is restricted to (those due for a sequence step); the
    list's other rows are not part of the selection, so they are neither yielded nor skipped.
    """
    return _select(path, tags, where, on_skip, tuple(columns), dedupe, joined_after, only)



def _select(path: Path, tags: Sequence[str], where: Mapping[str, str] | None,
            on_skip: Callable[[str, str, int], None] | None,
            columns: tuple[str, ...] | None, dedupe: bool = True,
            joined_after: dt.datetime | None = None, only: Container[str] | None = None) -> Selection[Any]:
    """Both selections: the first pass now (suppressed keys, every row readable), the second streamed."""
    path = require_list(path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as err:
        raise NewsletterError(f"cannot read ({err.strerror})", where=path) from None
    try:
        with read_rows(path, fd=fd) as (fmt, rows):
            cols = Columns.of(fmt.header)
            matches = cells_matcher(path, cols, tags, where)
            too_early = joined_test(cols, joined_after) if joined_after is not None else None
            suppressed = _suppressed_keys(fmt, cols, rows)
    except BaseException:
        os.close(fd)
        raise
    return _selected(path, fd, matches, suppressed, on_skip, columns, dedupe, too_early, only)


JOINED_BEFORE = "joined before the recorded send (--journal-lost)"
NO_JOIN_DATE = "no subscribed_at: counted as already mailed (--journal-lost)"


def joined_test(cols: Columns, after: dt.datetime) -> Callable[[list[str]], str | None]:
    """Why a row did not join later than ``after`` (a skip reason), or None when it did.

    A row's join date is its ``consent_confirmed_at`` (the subscriber service's consent date) or
    else its ``subscribed_at``. A date without a time joined later only if it is a later day:
    on the day itself, it may have been before.
    """
    after = after if after.tzinfo else after.replace(tzinfo=dt.UTC)
    day = after.astimezone(dt.UTC).date()
    places = [i for i in (cols.find("consent_confirmed_at"), cols.subscribed_at) if i is not None]

    def reason(cells: list[str]) -> str | None:
        for at in places:
            text = cells[at].strip()
            if not text:
                continue
            try:
                if len(text) == 10:
                    return None if dt.date.fromisoformat(text) > day else JOINED_BEFORE
                moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                continue
            moment = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
            return None if moment > after else JOINED_BEFORE
        return NO_JOIN_DATE

    return reason


def cells_matcher(path: Path, cols: Columns, tags: Sequence[str],
                  where: Mapping[str, str] | None) -> Callable[[list[str]], bool] | None:
    """``matcher``'s test on a row's raw cells (None when there is no filter): what selection uses."""
    wanted_tags = {t.strip().lower() for t in tags if t.strip()}
    conditions = _conditions(path, cols, where)
    if not wanted_tags and not conditions:
        return None
    tags_at = cols.tags

    def matches(cells: list[str]) -> bool:
        if wanted_tags:
            have = parse_tags(cells[tags_at]) if tags_at is not None else ()
            if not wanted_tags.issubset(t.lower() for t in have):
                return False
        return all(cells[index].strip().casefold() == value for index, value in conditions)

    return matches


def _suppressed_keys(fmt: ListFormat, cols: Columns, rows: FastRows) -> dict[str, str]:
    """Key -> status of every unsubscribed, bounced or complained row; checks every row can be read."""
    suppressed: dict[str, str] = {}
    reader, offset, width, status_at, email_at = rows.reader, rows.first_line, len(fmt.header), cols.status, cols.email
    start = offset
    with rows.reporting(lambda: start):
        if status_at is None:  # no statuses: only check every row can be read
            for cells in reader:
                if len(cells) != width:
                    fmt.cells_of(cells, start)  # raises for a row of the wrong width
                start = offset + reader.line_num
            return suppressed
        for cells in reader:
            if len(cells) != width:
                cells = fmt.cells_of(cells, start)
                if cells is None:
                    start = offset + reader.line_num
                    continue
            status = cells[status_at]
            if status != "subscribed" and status:  # most rows say exactly "subscribed": one comparison
                status = status.strip().lower()
                if status in SUPPRESSED:
                    key = key_or_problem(cells[email_at])[0]
                    if key:
                        suppressed.setdefault(key, status)
            start = offset + reader.line_num
    return suppressed


def _selected(path: Path, fd: int, matches: Callable[[list[str]], bool] | None, suppressed: Mapping[str, str],
              on_skip: Callable[[str, str, int], None] | None, columns: tuple[str, ...] | None,
              dedupe: bool = True, too_early: Callable[[list[str]], str | None] | None = None,
              only: Container[str] | None = None) -> Selection[Any]:
    """The second pass: decide each row from its cells, cheapest test first; yield a Subscriber, or
    a journal row when ``columns`` is given (every row of an address unless ``dedupe``)."""
    seen: set[str] = set()
    add = seen.add if dedupe else _remember_nothing
    try:
        with read_rows(path, fd=fd) as (fmt, rows):
            cols = Columns.of(fmt.header)
            reader, offset, width = rows.reader, rows.first_line, len(fmt.header)
            email_at, name_at, status_at = cols.email, cols.name, cols.status
            journal_row = columns is not None
            merge = _merge_fields([(c, cols.index.get(c)) for c in dict.fromkeys(columns or ())])
            start = offset
            with rows.reporting(lambda: start):
                for cells in reader:
                    line, start = start, offset + reader.line_num
                    if len(cells) != width or not cells[email_at]:
                        cells = fmt.cells_of(cells, line)
                        if cells is None:
                            continue
                    if matches is not None and not matches(cells):
                        continue
                    email = cells[email_at].strip()
                    status = "subscribed" if status_at is None else cells[status_at]
                    if status != "subscribed":
                        status = status.strip().lower() or "subscribed"
                    key = (fast_key(email) or validator_key(email)[0]) if email else ""
                    if only is not None and key not in only:
                        continue  # not among the readers this run is for: not part of its selection
                    if status != "subscribed":
                        reason = status if status in SUPPRESSED else "invalid"
                    elif not key:
                        reason = "invalid"
                    elif key in suppressed:
                        reason = suppressed[key]
                    elif key in seen:
                        reason = "duplicate"
                    elif too_early is not None and (early := too_early(cells)) is not None:
                        reason = early
                    else:
                        add(key)
                        if journal_row:
                            yield (key, email, cells[name_at].strip() if name_at is not None else "", merge(cells))
                        else:
                            yield subscriber_of(cols, cells, line)
                        continue
                    if on_skip is not None:
                        on_skip(email, reason, line)
    finally:
        os.close(fd)


def _remember_nothing(key: str) -> None:
    """``seen.add`` when duplicates are left to the caller: ``seen`` stays empty."""


def _merge_fields(fields: Sequence[tuple[str, int | None]]) -> Callable[[list[str]], str]:
    """A row's merge fields as JSON object text ("" for none), byte for byte what
    ``json.dumps({name: value, ...}, ensure_ascii=False)`` writes (journals already hold that text),
    made the cheapest way: no dict and no ``json.dumps`` per row, one C call per value."""
    if not fields:
        return lambda cells: ""
    encoded = [("{" if n == 0 else ", ") + encode_basestring(name) + ": " for n, (name, _) in enumerate(fields)]
    if len(fields) == 1 and fields[0][1] is not None:
        head, at = encoded[0], fields[0][1]
        return lambda cells: head + encode_basestring(cells[at].strip()) + "}"
    parts = [(head, at) for head, (_, at) in zip(encoded, fields, strict=True)]
    return lambda cells: "".join([head + (encode_basestring(cells[at].strip()) if at is not None else '""')
                                  for head, at in parts]) + "}"


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
    with open_subscribers(require_list(path)) as (_cols, rows):
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
