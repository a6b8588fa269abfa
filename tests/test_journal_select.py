"""Selecting a list into the send journal: what a million-row send does first, so it is done in
statements of thousands of rows with the merge fields as ready JSON text. These tests pin that the
fast way writes exactly what a row-by-row upsert of ``json.dumps`` text wrote: same rows, same
order, same text, same refresh rules on a resume."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from newsletter.errors import NewsletterError
from newsletter.lists import select_rows
from newsletter.sending import journal as jn

AWKWARD = ['plain', 'a "quoted" word', 'back\\slash', 'Zoë Ørsted 日本', 'two\nlines', 'tab\there', '',
           'ends with \\', '{"not": "json"}', '\u2028 separator']


def _journal(path: Path, limit: int | None = None) -> jn.Journal:
    journal = jn.Journal.open(path, "issue-id", "list")
    if limit is not None:  # SQLite's own limit on parameters: fewer rows per statement, as on an old SQLite
        journal.db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, limit)
    journal.start_run(jn.Audience("sendgrid", (), ()), "fp", {})
    return journal


def _table(path: Path) -> list[tuple]:
    """Every delivery row as the send loop and ``status`` read it (not the time it was written)."""
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT id, key, email, name, fields, status, run, attempts, not_before FROM deliveries "
                          "ORDER BY id").fetchall()
    finally:
        db.close()


def _awkward_list(path: Path) -> Path:
    """A list whose merge values hold quotes, backslashes, non-ASCII text and line breaks."""
    lines = ["email,name,status,city,note"]
    for i, value in enumerate(AWKWARD):
        quoted = '"' + value.replace('"', '""') + '"'
        backwards = '"' + value[::-1].replace('"', '""') + '"'
        lines.append(f"r{i}@example.com,Reader {i},subscribed,{quoted},{backwards}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_merge_values_reach_the_send_loop_exactly_as_the_list_has_them(tmp_path: Path) -> None:
    listing = _awkward_list(tmp_path / "list.csv")
    journal = _journal(tmp_path / "journal.sqlite")

    journal.select(select_rows(listing, columns=["city", "missing", "note"]))

    pending = journal.next_pending(100, 3)
    assert [r.email for r in pending] == [f"r{i}@example.com" for i in range(len(AWKWARD))]
    for i, row in enumerate(pending):
        expected = {"city": AWKWARD[i].strip(), "missing": "", "note": AWKWARD[i][::-1].strip()}
        # The text is what json.dumps wrote before (older journals hold that), and reads back the same.
        assert row.fields == json.dumps(expected, ensure_ascii=False)
        assert json.loads(row.fields) == expected


def test_rows_split_over_many_statements_and_transactions_make_the_same_journal(tmp_path: Path) -> None:
    rows = [(f"r{i}@example.com", f"R{i}@Example.com", f"Reader {i}", json.dumps({"city": f"City {i}"}))
            for i in range(57)]
    one = _journal(tmp_path / "one.sqlite")
    one.select(rows)
    many = _journal(tmp_path / "many.sqlite", limit=40)  # 10 rows a statement, 25 a transaction
    many.select(rows, chunk=25)

    assert _table(tmp_path / "many.sqlite") == _table(tmp_path / "one.sqlite")
    assert [r.key for r in many.next_pending(100, 3)] == [key for key, *_ in rows]  # the list's order


def test_a_resume_refreshes_only_what_it_did_before_in_every_statement(tmp_path: Path) -> None:
    """Pending rows take the list's new address, name and fields; sent and failed rows keep theirs
    unless asked; rows not selected again keep their old run (not selected); new rows are added."""
    first = [(f"r{i}@example.com", f"r{i}@example.com", f"Old {i}", '{"city": "old"}') for i in range(30)]
    second = [(f"r{i}@example.com", f"R{i}@example.com", f"New {i}", '{"city": "new"}') for i in range(5, 35)]
    tables = []
    for name, limit in (("one", None), ("many", 12)):
        path = tmp_path / f"{name}.sqlite"
        journal = _journal(path, limit)
        journal.select(first, chunk=7)
        ids = {r.key: r.id for r in journal.next_pending(100, 3)}
        journal.settle([(ids["r6@example.com"], jn.SENT, "m-6", ""), (ids["r7@example.com"], jn.FAILED, "", "no"),
                        (ids["r8@example.com"], jn.FAILED, "", "no")])
        journal.start_run(jn.Audience("sendgrid", (), ()), "fp", {})
        journal.select(second, chunk=7, refresh=(jn.PENDING, jn.FAILED))
        tables.append(_table(path))
        by_key = {row[1]: row for row in tables[-1]}
        assert by_key["r0@example.com"][2:4] == ("r0@example.com", "Old 0")  # not selected again
        assert by_key["r0@example.com"][6] < journal.run
        assert by_key["r5@example.com"][2:5] == ("R5@example.com", "New 5", '{"city": "new"}')
        assert by_key["r6@example.com"][2:6] == ("r6@example.com", "Old 6", None, jn.SENT)  # settled: kept
        assert by_key["r7@example.com"][2:4] == ("R7@example.com", "New 7")  # failed, and asked to refresh
        assert by_key["r34@example.com"][2:6] == ("R34@example.com", "New 34", '{"city": "new"}', jn.PENDING)
        assert {row[1] for row in tables[-1] if row[6] == journal.run} == {key for key, *_ in second}
        journal.close()
    assert tables[0] == tables[1]


def test_merge_fields_given_as_a_dict_are_kept_as_the_same_text(tmp_path: Path) -> None:
    """Callers that still hand over a dict (and those with no fields) write what they always wrote."""
    journal = _journal(tmp_path / "journal.sqlite")
    journal.select([("a@example.com", "a@example.com", "A", {"city": "Zoë \"Z\""}),
                    ("b@example.com", "b@example.com", "B", {}),
                    ("c@example.com", "c@example.com", "C", "")])
    fields = [row[4] for row in _table(tmp_path / "journal.sqlite")]
    assert fields == [json.dumps({"city": 'Zoë "Z"'}, ensure_ascii=False), None, None]


def test_a_broken_row_stops_the_selection_before_anything_is_written(tmp_path: Path) -> None:
    listing = tmp_path / "list.csv"
    rows = [f"r{i}@example.com,subscribed" for i in range(20_000)]
    rows[15_000] = 'r15000@example.com,"subscribed'
    listing.write_text("email,status\n" + "\n".join(rows) + "\n")
    journal = _journal(tmp_path / "journal.sqlite")

    with pytest.raises(NewsletterError, match=r"list.csv:15002: a quote .* is never closed"):
        journal.select(select_rows(listing))
    assert _table(tmp_path / "journal.sqlite") == []


def test_a_key_given_twice_in_one_statement_ends_as_the_later_row(tmp_path: Path) -> None:
    """As with one upsert per row: the second row of a key refreshes the first (still pending)."""
    journal = _journal(tmp_path / "journal.sqlite")
    journal.select([("a@example.com", "a@example.com", "First", '{"x": "1"}'),
                    ("b@example.com", "b@example.com", "B", ""),
                    ("a@example.com", "A@example.com", "Second", '{"x": "2"}')])
    assert [row[1:5] for row in _table(tmp_path / "journal.sqlite")] == [
        ("a@example.com", "A@example.com", "Second", '{"x": "2"}'), ("b@example.com", "b@example.com", "B", None)]
