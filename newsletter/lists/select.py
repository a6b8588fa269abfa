"""Selecting from a list: who matches the filters, who a send reaches, and the counts a writer checks first.

A send reaches each subscribed, valid address once; an address unsubscribed,
bounced or complained on any row is never mailed, even from another row that
says subscribed. ``list_stats`` counts the same way, so its ``recipients``
is what a send with no filter would reach.
"""

from __future__ import annotations

import difflib
import os
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import NewsletterError, display_path
from .addresses import key_or_problem
from .csvfile import FastRows, ListFormat, read_rows
from .names import require_list
from .read import SUPPRESSED, Columns, Subscriber, open_subscribers

SKIP_REASONS = ("unsubscribed", "bounced", "complained", "invalid", "duplicate")


def matcher(path: Path, cols: Columns, tags: Sequence[str], where: Mapping[str, str] | None,
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


def iter_subscribers(path: Path, *, tags: Sequence[str] = (), where: Mapping[str, str] | None = None,
                     statuses: Sequence[str] | None = None) -> Iterator[Subscriber]:
    """Every row matching the filters, whatever its status or address (for list and export)."""
    with open_subscribers(require_list(path)) as (cols, rows):
        matches = matcher(path, cols, tags, where, statuses)
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
            cols = Columns.of(fmt.header)
            matches = matcher(path, cols, tags, where)
            suppressed = _suppressed_keys(fmt, cols, rows)
    except BaseException:
        os.close(fd)
        raise
    return _selected(path, fd, matches if tags or where else None, suppressed, on_skip)


def _suppressed_keys(fmt: ListFormat, cols: Columns, rows: FastRows) -> dict[str, str]:
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
        with open_subscribers(path, fd) as (_cols, subscribers):
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
