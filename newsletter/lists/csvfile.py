"""Read and safely rewrite one CSV list file, keeping what a hand edit put there.

This module knows CSV files, not subscribers: how a list file is spelled
(byte-order mark, ``,`` or ``;`` or tab, CRLF or LF), how to stream its
records with the line each starts on and the exact text it came from, how to
lock it against a second writer, and how to replace it atomically so a crash
or Ctrl-C mid-write leaves the old file intact. Rows a rewrite does not touch
are copied back as the exact text they were read from.

Reading is strict: a quote that is never closed (which would swallow every
line after it into one value) or text after a closing quote is an error
naming the file and the line, never a row silently merged or dropped.
"""

from __future__ import annotations

import csv
import dataclasses
import fcntl
import itertools
import os
import re
import tempfile
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NamedTuple

from ..errors import NewsletterError, display_path
from .list_names import refuse_link_outside

DELIMITERS = (",", ";", "\t")
BOM = "\ufeff"
_UTF8_HINT = "save it as UTF-8 (in a spreadsheet: 'CSV UTF-8'), then try again"

class Record(NamedTuple):
    """One CSV record: the line it starts on, its cells, and its exact text (line ending included)."""

    line: int
    cells: list[str]
    raw: str


@dataclass(frozen=True)
class ListFormat:
    """How a list file is spelled, so a rewrite writes it back the same way."""

    path: Path
    header: list[str]
    header_raw: str
    header_line: int
    delimiter: str = ","
    newline: str = "\n"
    bom: bool = False

    def format_row(self, cells: Iterable[str]) -> str:
        """One record as text in this file's dialect (quoting only where needed)."""
        out = _RowBuffer()
        csv.writer(out, delimiter=self.delimiter, lineterminator=self.newline).writerow(cells)
        return out.text

    def cells_of(self, cells: list[str], line: int) -> list[str] | None:
        """A record's cells, or None for a blank line; a record of the wrong width is an error naming its line."""
        width = len(self.header)
        if len(cells) == width:
            return cells if any(cells) else None
        if not cells or not any(c.strip() for c in cells):
            return None
        if len(cells) > width and not any(c.strip() for c in cells[width:]):
            return cells[:width]  # spreadsheets add trailing empty cells
        raise NewsletterError(
            f"this row has {len(cells)} fields but the header has {width}", where=self.path,
            line=line,
            hint=f"every row needs {width - 1} separators '{self.delimiter}'; quote values that contain one",
        )


class _RowBuffer:
    """The smallest file-like object csv.writer needs, to format one row."""

    text = ""

    def write(self, text: str) -> None:
        self.text += text


def _line_ending(raw: str) -> str:
    for ending in ("\r\n", "\n", "\r"):
        if raw.endswith(ending):
            return ending
    return "\n"


def _pick_delimiter(first_line: str, wanted: Collection[str]) -> str:
    """The delimiter that makes the header name a ``wanted`` column, else the one giving most columns."""
    best, best_count = ",", 0
    for delimiter in DELIMITERS:
        cells = next(csv.reader([first_line], delimiter=delimiter), [])
        if any(c.strip().lower() in wanted for c in cells):
            return delimiter
        if len(cells) > best_count:
            best, best_count = delimiter, len(cells)
    return best


def _first_bad_utf8_line(path: Path) -> int:
    """The 1-based physical line holding the first byte that is not UTF-8 (for the error message)."""
    data = path.read_bytes()
    for number, line in enumerate(data.splitlines(keepends=True), start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            return number
    return 1


def _bad_record(path: Path, line: int, err: Exception) -> NewsletterError:
    if isinstance(err, UnicodeDecodeError):
        return NewsletterError("is not UTF-8 text", where=path,
                               line=_first_bad_utf8_line(path), hint=_UTF8_HINT)
    too_large = "field larger than field limit" in str(err)  # csv's words
    if too_large and _record_ends(path, line):
        limit = csv.field_size_limit()
        return NewsletterError(f"a value in this row is longer than the {limit:,} characters a list's value may "
                               "hold (the CSV reader's field size limit)", where=path, line=line,
                               hint="shorten it: a subscriber's values are names, tags and short fields; long "
                                    "text pasted into a cell by mistake, or a document, does not belong in the list")
    if too_large or "end of data" in str(err):  # a quote that never closes swallows the rest of the file
        return NewsletterError("a quote (\") opened in this row is never closed, so every line after it would "
                               "be read as part of one value", where=path, line=line,
                               hint="close the quote, or write a quote inside a quoted value as two (\"\")")
    return NewsletterError(f"cannot read this CSV row ({err})", where=path, line=line,
                           hint="put a value that holds a quote in quotes and double the quotes inside it, "
                                "like \"Ada \"\"the Countess\"\" L.\"")


def _record_ends(path: Path, line: int, chunk: int = 1 << 20) -> bool:
    """Whether the record starting on ``line`` ends (a line break outside quotes) before the file does: then
    a value too long for the reader is just long; otherwise a quote opened in it is never closed."""
    quotes = 0
    try:
        with open(path, encoding="utf-8-sig", errors="replace", newline="") as data:
            for _ in range(line - 1):
                if not data.readline():
                    return False
            while block := data.read(chunk):
                for mark in _QUOTE_OR_BREAK.finditer(block):
                    if mark.group() == '"':
                        quotes += 1
                    elif quotes % 2 == 0:
                        return True
    except OSError:
        return False
    return quotes % 2 == 0


_QUOTE_OR_BREAK = re.compile(r'["\n\r]')


@dataclass(frozen=True)
class FastRows:
    """A list's records straight from csv.reader, for loops that read every row of a big list.

    A generator per record costs about as much as parsing it, so the caller
    iterates ``reader`` itself and tracks lines: the first record starts at
    ``first_line``, and each next one at ``first_line + reader.line_num``.
    Wrap the loop in ``reporting`` to turn a parse error into a NewsletterError.
    """

    reader: Any  # a csv reader (its type is private to the csv module)
    first_line: int
    path: Path

    @contextmanager
    def reporting(self, line: Callable[[], int]) -> Iterator[None]:
        """Name the file and the line (``line()``: where the record being read starts) when parsing fails."""
        try:
            yield
        except (csv.Error, UnicodeDecodeError) as err:
            raise _bad_record(self.path, line(), err) from None


def _records(stream: Iterable[str], path: Path, delimiter: str, first_line: int = 1) -> Iterator[Record]:
    """Stream records with their start line and exact text; csv.reader never reads ahead of a record."""
    taken: list[str] = []

    def lines() -> Iterator[str]:
        for text in stream:
            taken.append(text)
            yield text

    reader = csv.reader(lines(), delimiter=delimiter, strict=True)
    start = first_line
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except (csv.Error, UnicodeDecodeError) as err:
            raise _bad_record(path, start, err) from None
        raw = "".join(taken)
        taken.clear()
        yield Record(start, cells, raw)
        start = reader.line_num + first_line


@contextmanager
def read_list(path: Path, *, wanted: Collection[str] = ("email",), required: str | None = "email",
              fd: int | None = None) -> Iterator[tuple[ListFormat, Iterator[Record]]]:
    """Open a list: its format (header, dialect) and a stream of the records after the header.

    Blank lines before the header are skipped. The delimiter is the one that
    makes the header name a column in ``wanted``; the header must hold
    ``required`` (case and surrounding spaces ignored) or a NewsletterError
    names the fix. Pass ``fd`` (an open descriptor of ``path``) to read the
    same file twice even if it is replaced in between.
    """
    with _opened(path, wanted, required, fd) as (fmt, stream, first_line):
        yield fmt, _records(stream, path, fmt.delimiter, first_line)


@contextmanager
def read_rows(path: Path, *, fd: int | None = None) -> Iterator[tuple[ListFormat, FastRows]]:
    """Like read_list for a list with an email column, without the cost of keeping each record's text."""
    with _opened(path, ("email",), "email", fd) as (fmt, stream, first_line):
        yield fmt, FastRows(csv.reader(stream, delimiter=fmt.delimiter, strict=True), first_line, path)


@contextmanager
def _opened(path: Path, wanted: Collection[str], required: str | None,
            fd: int | None) -> Iterator[tuple[ListFormat, IO[str], int]]:
    """The list's format, the open stream just after the header, and the line the next record starts on."""
    where = display_path(path)
    try:
        if fd is None:
            with open(path, "rb") as probe:
                bom = probe.read(3) == BOM.encode("utf-8")
            stream = open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115  (closed by `with stream` below)
        else:
            bom = os.pread(fd, 3, 0) == BOM.encode("utf-8")
            os.lseek(fd, 0, os.SEEK_SET)
            stream = open(os.dup(fd), encoding="utf-8-sig", newline="")  # noqa: SIM115  (as above)
    except FileNotFoundError:
        raise NewsletterError("no such file", where=where) from None
    except OSError as err:
        raise NewsletterError(f"cannot read ({err.strerror})", where=where) from None
    with stream:
        line = 1
        try:
            first = stream.readline()
            while first and not first.strip():
                line += 1
                first = stream.readline()
        except UnicodeDecodeError:
            raise NewsletterError("is not UTF-8 text", where=where, line=_first_bad_utf8_line(path),
                                  hint=_UTF8_HINT) from None
        if not first:
            raise NewsletterError("is empty", where=where,
                                  hint="the first line must be a header such as 'email,name,status,tags'")
        delimiter = _pick_delimiter(first, {w.lower() for w in wanted})
        # A header cell may hold a quoted line break, so the header is a record of its own;
        # csv.reader reads no further than the end of that record.
        header = next(_records(itertools.chain([first], stream), path, delimiter, line))
        after = header.line + header.raw.count("\n") + header.raw.count("\r") - header.raw.count("\r\n")
        names = [c.strip() for c in header.cells]
        lowered = [n.lower() for n in names]
        if required is not None and required not in lowered:
            raise NewsletterError(
                f"has no '{required}' column (the header has: {', '.join(names) or 'nothing'})",
                where=where, line=header.line,
                hint=f"the first line must name the columns, one of them '{required}'",
            )
        seen: set[str] = set()
        for name in lowered:
            if name and name in seen:
                raise NewsletterError(f"the header names the column '{name}' twice", where=where,
                                      line=header.line, hint="rename or delete one of them")
            seen.add(name)
        yield ListFormat(path=path, header=names, header_raw=header.raw, header_line=header.line,
                         delimiter=delimiter, newline=_line_ending(header.raw), bom=bom), stream, after


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``<list>.csv.lock`` so two writers never lose each other's change."""
    lock_path = path.with_name(path.name + ".lock")
    try:
        handle = open(lock_path, "a")  # noqa: SIM115  (closed by `with handle` below)
    except OSError as err:
        raise NewsletterError(f"cannot create the lock file ({err.strerror})",
                              where=lock_path) from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Rewrite:
    """One rewrite under way: the format rows are written in (its header maybe widened), and rows changed."""

    def __init__(self, fmt: ListFormat):
        self.fmt = fmt
        self.changed = 0

    def row(self, cells: Sequence[str]) -> str:
        """A changed or new row as text; counting it is what makes the rewrite commit."""
        self.changed += 1
        return self.fmt.format_row(cells)


RewriteEdit = Callable[[Rewrite, Iterator[tuple[Record, "list[str] | None"]]], Iterator[str]]


def rewrite_list(path: Path, edit: RewriteEdit, *, add_columns: Sequence[str] = (),
                 new_header: Sequence[str] | None = None, dry_run: bool = False) -> int:
    """Lock a list, stream its records through ``edit``, and replace it atomically if a row changed.

    ``edit`` gets the Rewrite and (record, cells, or None for a blank line)
    for every record, and yields the text to write: ``record.raw`` for a row
    it leaves alone, so that row is copied byte for byte, ``rewrite.row(cells)``
    for a changed or new one; dropping a row means yielding nothing for it and
    adding 1 to ``rewrite.changed``. Columns of ``add_columns`` the header
    lacks are appended (every row then gains an empty cell). With
    ``new_header``, a missing or empty file is first created with it. A record
    that cannot be read raises before anything is replaced; so does a crash.
    Returns the number of rows changed, added or dropped.
    """
    refuse_link_outside(path)  # an edit must not rewrite a file elsewhere through a link
    creating = new_header is not None and (not path.exists() or path.stat().st_size == 0)
    if creating and dry_run:  # report what a new list would get, touching nothing
        state = Rewrite(ListFormat(path=path, header=_with_columns(new_header or (), add_columns), header_raw="",
                                   header_line=1))
        for _ in edit(state, iter(())):
            pass
        return state.changed
    if creating:
        path.parent.mkdir(parents=True, exist_ok=True)
    with locked(path):
        if new_header is not None and (not path.exists() or path.stat().st_size == 0):
            header = _with_columns(new_header, add_columns)  # (checked again: another writer may have made it)
            with atomic_write(path) as out:
                out.write(ListFormat(path=path, header=header, header_raw="", header_line=1).format_row(header))
                out.commit()
        with read_list(path) as (fmt, records):
            header = _with_columns(fmt.header, add_columns)
            extra = header[len(fmt.header):]
            widened = fmt
            if extra:
                widened = dataclasses.replace(fmt, header=header, header_raw=fmt.format_row(header))
            state = Rewrite(widened)

            def rows() -> Iterator[tuple[Record, list[str] | None]]:
                for record in records:
                    cells = fmt.cells_of(record.cells, record.line)
                    if cells is not None and extra:
                        cells = [*cells, *[""] * len(extra)]
                        record = Record(record.line, cells, widened.format_row(cells))
                    yield record, cells

            with atomic_write(path, bom=fmt.bom) as out:
                out.write(widened.header_raw)
                last = widened.header_raw
                for text in edit(state, rows()):
                    if text and last and not last.endswith(("\n", "\r")):
                        out.write(widened.newline)  # the old last line had no line break
                    out.write(text)
                    last = text or last
                if state.changed and not dry_run:
                    out.commit()
            return state.changed


def _with_columns(header: Sequence[str], more: Sequence[str]) -> list[str]:
    """``header`` followed by the columns of ``more`` it lacks (compared ignoring case)."""
    have = {h.lower() for h in header}
    return [*header, *(c for c in dict.fromkeys(more) if c.lower() not in have)]


class AtomicWriter:
    """A temporary file beside ``path`` that replaces it on ``commit`` (after fsync), or vanishes.

    The temporary name starts with a dot and does not end in ``.csv``, so a
    half-written file is never mistaken for a list.
    """

    def __init__(self, path: Path, *, bom: bool = False):
        self.path = path
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        self.tmp = Path(tmp)
        self.committed = False
        self._file = os.fdopen(fd, "w", encoding="utf-8", newline="")
        if bom:
            self._file.write(BOM)

    def write(self, text: str) -> None:
        self._file.write(text)

    def commit(self) -> None:
        """Make the new content durable, then swap it in with one rename."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        try:
            os.chmod(self.tmp, self.path.stat().st_mode & 0o7777)
        except FileNotFoundError:  # a new file: the permissions any new file gets, not mkstemp's 0600
            os.chmod(self.tmp, 0o666 & ~_umask())
        os.replace(self.tmp, self.path)
        self.committed = True
        _fsync_dir(self.path.parent)

    def discard(self) -> None:
        """Throw the temporary file away, unless it has become the file."""
        if not self._file.closed:
            self._file.close()
        if not self.committed:
            self.tmp.unlink(missing_ok=True)


@contextmanager
def atomic_write(path: Path, *, bom: bool = False) -> Iterator[AtomicWriter]:
    """Write ``path`` atomically: commit explicitly; an exception or a missing commit leaves it untouched."""
    try:
        writer = AtomicWriter(path, bom=bom)
    except OSError as err:
        raise NewsletterError(f"cannot write beside this file ({err.strerror})",
                              where=path) from None
    try:
        yield writer
    except OSError as err:  # a full disk, a vanished folder: the old file is still whole
        raise NewsletterError(f"could not finish writing ({err.strerror}); the file is unchanged",
                              where=path) from None
    finally:
        writer.discard()


def _umask() -> int:
    """The process umask, read without changing it (os.umask would, for a moment, in every thread)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def _fsync_dir(folder: Path) -> None:
    """Persist the rename itself (the directory entry), where the platform allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
