"""Exporting a list: its rows as CSV a spreadsheet can open safely, or as JSON.

The CSV is meant for spreadsheets (cells a spreadsheet would run as a formula
are neutralized); to copy a list faithfully, copy its file.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from ..errors import NewsletterError
from .csvfile import atomic_write
from .read import list_columns
from .select import iter_subscribers

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
        raise NewsletterError("cannot export a list onto itself", where=out,
                              hint="choose another --out file")
    if out.exists() and not overwrite:
        raise NewsletterError("already exists", where=out, hint="add --force to replace it")
    with atomic_write(out, bom=fmt == "csv") as writer:
        count = export_subscribers(path, writer, fmt=fmt, tags=tags, where=where, statuses=statuses)
        writer.commit()
    return count
