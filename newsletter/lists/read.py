"""Reading a list: ``subscribers/<list>.csv`` rows as Subscribers, with the meaning of each column.

A list is a CSV file the writer owns and may edit by hand: a header row with
``email`` and any of ``name``, ``status``, ``tags``, ``subscribed_at``; every
other column is a merge field. This module turns rows into Subscribers (the
CSV itself is ``csvfile``'s business); selecting, validating and editing
build on it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .addresses import fast_key, validator_key
from .csvfile import read_list, read_rows
from .names import require_list

BASE_COLUMNS = ("email", "name", "status", "tags", "subscribed_at")


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




@dataclass(frozen=True)
class Columns:
    """Where the columns with a meaning are (header names match case-insensitively)."""

    header: tuple[str, ...]
    email: int
    name: int | None
    status: int | None
    tags: int | None
    subscribed_at: int | None
    index: dict[str, int]  # column name as written -> position

    @classmethod
    def of(cls, header: Sequence[str]) -> Columns:
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



def status_of(cell: str) -> str:
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


def subscriber_of(cols: Columns, cells: list[str], line: int) -> Subscriber:
    """One row as a Subscriber, built the fast way: a send builds a million of them.

    A frozen dataclass's __init__ sets each field through object.__setattr__;
    filling the instance dict in one step gives an equal object in half the time.
    """
    email = cells[cols.email].strip()
    sub = _new_object(Subscriber)
    _set_attribute(sub, "__dict__", {
        "email": email,
        "key": (fast_key(email) or validator_key(email)[0]) if email else "",
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


@contextmanager
def open_subscribers(path: Path, fd: int | None = None) -> Iterator[tuple[Columns, Iterator[Subscriber]]]:
    """Every non-blank row of a list as a Subscriber, streaming; a row that cannot be read is an error
    naming its line. Pass ``fd`` (an open descriptor of ``path``) to read the very file opened earlier."""
    with read_rows(path, fd=fd) as (fmt, rows):
        cols = Columns.of(fmt.header)

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
                    yield subscriber_of(cols, cells, line)

        yield cols, subscribers()
