"""Copying journal records between databases: a whole journal (``newsletter journal copy``), or one
send's records into an in-memory journal (a dry run or a test send, which must not touch the real one).

Rows keep their ids, so a batch's record of the rows it carries stays true in the copy.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from ...errors import NewsletterError
from .database import JournalDB, open_database
from .location import Location
from .schema import TABLES

CHUNK = 5_000
# Copied in this order (a row's references exist before it); meta is the journal's own and copied apart.
ORDER = ("sends", "audiences", "runs", "deliveries", "batches", "stages", "ab_tests", "schedules",
         "sequences", "enrolments", "digest_items")
SEND_TABLES = ("runs", "deliveries", "batches", "stages", "ab_tests")  # one send's own records, by ``send``


def _columns(table: str) -> list[str]:
    return [column for column, _ in TABLES[table]]


def _rows(source: JournalDB, sql: str, params: Sequence[Any]) -> Iterator[list[Sequence[Any]]]:
    """The rows ``sql`` selects, a chunk at a time (flat memory for a million recipients)."""
    last = -1
    while True:
        chunk = source.execute(sql + " AND id > ? ORDER BY id LIMIT ?", (*params, last, CHUNK)).fetchall()
        if not chunk:
            return
        yield chunk
        last = chunk[-1][0]


def _copy_table(source: JournalDB, target: JournalDB, table: str, where: str = "1=1",
                params: Sequence[Any] = ()) -> int:
    columns = _columns(table)
    names = ", ".join(columns)
    insert = f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(columns))})"
    select = f"SELECT {names} FROM {table} WHERE {where}"
    copied = 0
    if "id" not in columns:  # stages: small, keyed by (send, number)
        rows = source.execute(select, params).fetchall()
        target.executemany(insert, rows)
        return len(rows)
    for chunk in _rows(source, select, params):
        target.executemany(insert, chunk)
        copied += len(chunk)
    return copied


def copy_send(source: JournalDB, target: JournalDB, issue: str, list_name: str, folder: str = "") -> None:
    """The records of one send (issue id and list; also a record from before ids, known by ``folder``)."""
    sends = source.execute("SELECT id FROM sends WHERE list=? AND (issue=? OR (issue=? AND folder IS NULL))",
                           (list_name, issue, folder or issue)).fetchall()
    with target.transaction(durable=False):
        for (send,) in sends:
            _copy_table(source, target, "sends", "id=?", (send,))
            # the readers its runs were restricted to (a sequence step's), so a resume's dry run repeats them
            restricted = "id IN (SELECT readers FROM runs WHERE send=? AND readers IS NOT NULL)"
            _copy_table(source, target, "audiences", restricted, (send,))
            for table in SEND_TABLES:
                _copy_table(source, target, table, "send=?", (send,))


def copy_journal(source: JournalDB, target: JournalDB) -> dict[str, int]:
    """Every record of ``source`` into the empty journal ``target``; rows copied per table.

    The target keeps the source's journal id: it is the same record, moved, and the sent
    records in issue folders go on naming it.
    """
    if target.execute("SELECT COUNT(*) FROM sends").fetchone()[0]:
        raise NewsletterError("the journal to copy into already holds sends", where=target.location.describe(),
                              hint="copy into an empty journal (a new SQLite file, or a PostgreSQL database whose "
                                   "newsletter_journal schema is empty); merging two journals is not supported")
    counts: dict[str, int] = {}
    with target.transaction():
        for table in ORDER:
            counts[table] = _copy_table(source, target, table)
        journal_id = source.journal_id
        if journal_id:
            target.execute("UPDATE meta SET value=? WHERE key='journal_id'", (journal_id,))
        if target.dialect == "postgresql":  # the copied ids are taken: new rows number after them
            for table in ORDER:
                if "id" in _columns(table):
                    target.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                   f"GREATEST((SELECT MAX(id) FROM {table}), 1))")
    return counts


def copy_between(source: Location, target: Location) -> dict[str, int]:
    """``newsletter journal copy``: every record of the journal at ``source`` into the new, empty journal at
    ``target`` (SQLite to PostgreSQL, or back); rows copied per table."""
    if source == target:
        raise NewsletterError("the journal to copy into is the journal to copy from", where=source.describe(),
                              hint="give --to another journal (a postgresql:// URL or a new SQLite file)")
    if not source.may_exist():
        raise NewsletterError("there is no journal to copy here yet", where=source.describe(),
                              hint="send something first, or give --from the journal to copy")
    if target.dialect == "sqlite" and target.path is not None and target.path.exists():
        raise NewsletterError("the file to copy the journal into exists already", where=target.describe(),
                              hint="give --to a new file's path; never overwrite a journal, it records who was "
                                   "mailed")
    source_db = open_database(source, read_only=True)
    try:
        target_db = open_database(target)
        try:
            return copy_journal(source_db, target_db)
        finally:
            target_db.close()
    finally:
        source_db.close()
