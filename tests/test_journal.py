"""The send journal, on both of its homes: every test here runs once on a SQLite file and once on the
test PostgreSQL (``journal_location``), and must behave the same on each.

- Selecting a list into the journal: what a million-row send does first, so it is done in statements
  of thousands of rows with the merge fields as ready JSON text; the fast way writes exactly what a
  row-by-row upsert of ``json.dumps`` text wrote: same rows, same order, same text, same refresh rules.
- A request's batch is recorded once, not each recipient: entering flight and settling an all-accepted
  batch are one statement each, and a crash still leaves exactly the carried rows unknown.
- The schema is versioned; runs have ids unique across journals; a journal can be copied between homes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from journal_fixtures import fresh_schema_url

from newsletter.errors import NewsletterError
from newsletter.lists import select_rows
from newsletter.sending import journal as jn
from newsletter.sending.journal.copy import copy_journal

AWKWARD = ['plain', 'a "quoted" word', 'back\\slash', 'Zoë Ørsted 日本', 'two\nlines', 'tab\there', '',
           'ends with \\', '{"not": "json"}', '\u2028 separator']
SENDGRID = jn.Audience("sendgrid", (), ())


def _journal(location: jn.Location, limit: int | None = None, list_name: str = "list") -> jn.Journal:
    journal = jn.Journal.open(location, "issue-id", list_name)
    if limit is not None and location.dialect == "sqlite":
        # SQLite's own limit on parameters: fewer rows per statement, as on an old SQLite
        journal.db.connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, limit)
    journal.runs.start(SENDGRID, "fp", {})
    return journal


def _table(location: jn.Location) -> list[tuple[object, ...]]:
    """Every delivery row as the send loop and ``status`` read it (not the time it was written)."""
    db = jn.open_database(location, read_only=True)
    try:
        return [tuple(row) for row in db.execute(
            "SELECT id, key, email, name, fields, status, run, attempts, not_before FROM deliveries ORDER BY id"
        ).fetchall()]
    finally:
        db.close()


def _statuses(location: jn.Location) -> dict[str, str]:
    db = jn.open_database(location, read_only=True)
    try:
        return {str(e): str(s) for e, s in db.execute("SELECT email, status FROM deliveries ORDER BY id").fetchall()}
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


# -- selecting a list into the journal ----------------------------------------------------------------


def test_merge_values_reach_the_send_loop_exactly_as_the_list_has_them(tmp_path: Path,
                                                                       journal_location: jn.Location) -> None:
    listing = _awkward_list(tmp_path / "list.csv")
    journal = _journal(journal_location)

    journal.recipients.select(select_rows(listing, columns=["city", "missing", "note"]))

    pending = journal.flight.next_pending(100, 3)
    assert [r.email for r in pending] == [f"r{i}@example.com" for i in range(len(AWKWARD))]
    for i, row in enumerate(pending):
        expected = {"city": AWKWARD[i].strip(), "missing": "", "note": AWKWARD[i][::-1].strip()}
        # The text is what json.dumps wrote before (older journals hold that), and reads back the same.
        assert row.fields == json.dumps(expected, ensure_ascii=False)
        assert json.loads(row.fields) == expected
    journal.close()


def test_rows_split_over_many_statements_and_transactions_make_the_same_journal(
        new_journal_location: Callable[[], jn.Location]) -> None:
    rows = [(f"r{i}@example.com", f"R{i}@Example.com", f"Reader {i}", json.dumps({"city": f"City {i}"}))
            for i in range(57)]
    one_place, many_place = new_journal_location(), new_journal_location()
    one = _journal(one_place)
    one.recipients.select(rows)
    many = _journal(many_place, limit=40)  # 10 rows a statement (SQLite), 25 a transaction
    many.recipients.select(rows, chunk=25)

    assert _table(many_place) == _table(one_place)
    assert [r.key for r in many.flight.next_pending(100, 3)] == [key for key, *_ in rows]  # the list's order
    one.close()
    many.close()


def test_a_resume_refreshes_only_what_it_did_before_in_every_statement(
        new_journal_location: Callable[[], jn.Location]) -> None:
    """Pending rows take the list's new address, name and fields; sent and failed rows keep theirs
    unless asked; rows not selected again keep their old run (not selected); new rows are added."""
    first = [(f"r{i}@example.com", f"r{i}@example.com", f"Old {i}", '{"city": "old"}') for i in range(30)]
    second = [(f"r{i}@example.com", f"R{i}@example.com", f"New {i}", '{"city": "new"}') for i in range(5, 35)]
    tables = []
    for limit in (None, 16):
        location = new_journal_location()
        journal = _journal(location, limit)
        journal.recipients.select(first, chunk=7)
        ids = {r.key: r.id for r in journal.flight.next_pending(100, 3)}
        journal.flight.settle([(ids["r6@example.com"], jn.SENT, "m-6", ""),
                               (ids["r7@example.com"], jn.FAILED, "", "no"),
                               (ids["r8@example.com"], jn.FAILED, "", "no")])
        journal.runs.start(SENDGRID, "fp", {})
        journal.recipients.select(second, chunk=7, refresh=(jn.PENDING, jn.FAILED))
        tables.append(_table(location))
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


def test_merge_fields_given_as_a_dict_are_kept_as_the_same_text(journal_location: jn.Location) -> None:
    """Callers that still hand over a dict (and those with no fields) write what they always wrote."""
    journal = _journal(journal_location)
    journal.recipients.select([("a@example.com", "a@example.com", "A", {"city": "Zoë \"Z\""}),
                               ("b@example.com", "b@example.com", "B", {}),
                               ("c@example.com", "c@example.com", "C", "")])
    fields = [row[4] for row in _table(journal_location)]
    assert fields == [json.dumps({"city": 'Zoë "Z"'}, ensure_ascii=False), None, None]
    journal.close()


def test_a_broken_row_stops_the_selection_before_anything_is_written(tmp_path: Path,
                                                                     journal_location: jn.Location) -> None:
    listing = tmp_path / "list.csv"
    rows = [f"r{i}@example.com,subscribed" for i in range(20_000)]
    rows[15_000] = 'r15000@example.com,"subscribed'
    listing.write_text("email,status\n" + "\n".join(rows) + "\n")
    journal = _journal(journal_location)

    with pytest.raises(NewsletterError, match=r"list.csv:15002: a quote .* is never closed"):
        journal.recipients.select(select_rows(listing))
    assert _table(journal_location) == []
    journal.close()


def test_a_key_given_twice_in_one_statement_ends_as_the_later_row(journal_location: jn.Location) -> None:
    """As with one upsert per row: the second row of a key refreshes the first (still pending)."""
    journal = _journal(journal_location)
    journal.recipients.select([("a@example.com", "a@example.com", "First", '{"x": "1"}'),
                               ("b@example.com", "b@example.com", "B", ""),
                               ("a@example.com", "A@example.com", "Second", '{"x": "2"}')])
    assert [row[1:5] for row in _table(journal_location)] == [
        ("a@example.com", "A@example.com", "Second", '{"x": "2"}'), ("b@example.com", "b@example.com", "B", None)]
    journal.close()


def test_first_wins_keeps_the_earlier_row_of_a_key_and_counts_the_later(journal_location: jn.Location) -> None:
    """A fresh send selected while sending reads its list with duplicates: the journal keeps the first."""
    journal = _journal(journal_location)
    repeats = journal.recipients.select([("a@example.com", "a@example.com", "First", ""),
                                         ("b@example.com", "b@example.com", "B", "")], first_wins=True)
    repeats += journal.recipients.select([("a@example.com", "A@example.com", "Second", "")], first_wins=True)
    assert repeats == 1
    assert [row[1:4] for row in _table(journal_location)] == [("a@example.com", "a@example.com", "First"),
                                                               ("b@example.com", "b@example.com", "B")]
    journal.close()


# -- batches in flight ---------------------------------------------------------------------------------


def _loaded(location: jn.Location, rows: int = 10) -> jn.Journal:
    journal = _journal(location, list_name="big")
    journal.recipients.select((f"r{i}@example.com", f"r{i}@example.com", f"R {i}", {}) for i in range(rows))
    return journal


def test_entering_flight_writes_one_batch_record_and_no_recipient_row(journal_location: jn.Location) -> None:
    journal = _loaded(journal_location)
    rows = journal.flight.next_pending(4, 3)
    seen: list[str] = []
    if journal_location.dialect == "sqlite":  # the statements SQLite runs (PostgreSQL: the same code path)
        journal.db.connection.set_trace_callback(seen.append)
    journal.flight.mark_in_flight([r.id for r in rows], "1-1")
    if seen:
        writes = [s for s in seen if s.lstrip().upper().startswith(("INSERT", "UPDATE"))]
        assert len(writes) == 1 and "batches" in writes[0]
    # Read back: those four are in flight (status, counts), and the loop does not take them again.
    assert journal.view.counts()[jn.IN_FLIGHT] == 4
    again = journal.flight.next_pending(100, 3)
    assert len(again) == 6 and not {r.id for r in rows} & {r.id for r in again}
    # A journal several senders share (PostgreSQL) claims what it takes: those six read as in flight too.
    claimed = 6 if journal_location.dialect == "postgresql" else 0
    assert next(s for _, s in jn.summarize(journal_location, "issue-id"))[jn.IN_FLIGHT] == 4 + claimed
    journal.flight.give_back()
    # All accepted: one statement settles the batch's rows (and closes it) in one transaction.
    seen.clear()
    journal.flight.settle_groups({(jn.SENT, "msg-1", ""): [r.id for r in rows]})
    if journal_location.dialect == "sqlite":
        writes = [s for s in seen if s.lstrip().upper().startswith("UPDATE")]
        assert len(writes) == 2 and "deliveries" in writes[0] and "batches" in writes[1]
    assert journal.view.counts()[jn.SENT] == 4 and journal.view.counts()[jn.IN_FLIGHT] == 0
    journal.close()


def test_a_crash_leaves_unknown_only_the_rows_the_batch_still_carried(journal_location: jn.Location) -> None:
    journal = _loaded(journal_location)
    rows = journal.flight.next_pending(5, 3)
    journal.flight.mark_in_flight([r.id for r in rows], "1-1")
    journal.flight.settle_groups({(jn.SENT, "m", ""): [rows[0].id], (jn.FAILED, "", "bad address"): [rows[1].id]})
    journal.flight.release([rows[2].id], "4xx: try later", retry_at=1.0)  # deferred: back in the queue
    journal.db.close()  # kill -9 here: the journal is closed without another word
    status = _statuses(journal_location)
    # One sender's journal records the batch (its rows read pending in the table, in flight in every view);
    # a journal several senders share marks each claimed row, so that no other sender takes it.
    carried = "in_flight" if journal_location.dialect == "postgresql" else "pending"
    assert [status[r.email] for r in rows] == ["sent", "failed", "pending", carried, carried]

    again = jn.Journal.open(journal_location, "issue-id", "big")
    again.runs.start(SENDGRID, "fp", {})
    status = _statuses(journal_location)
    assert [status[r.email] for r in rows] == ["sent", "failed", "pending", "unknown", "unknown"]
    assert all(status[f"r{i}@example.com"] == "pending" for i in range(5, 10))  # never in a batch
    again.close()


def test_a_sequential_batch_leaves_only_its_first_unanswered_row_unknown(journal_location: jn.Location) -> None:
    journal = _loaded(journal_location, 6)
    rows = journal.flight.next_pending(6, 3)
    journal.flight.mark_in_flight([r.id for r in rows], "1-1" + jn.SEQUENTIAL)
    journal.flight.settle_groups({(jn.SENT, "", ""): [rows[0].id, rows[1].id]})
    journal.db.close()
    again = jn.Journal.open(journal_location, "issue-id", "big")
    again.runs.start(jn.Audience("smtp", (), ()), "fp", {})
    assert list(_statuses(journal_location).values()) == ["sent", "sent", "unknown", "pending", "pending", "pending"]
    again.close()


# -- a run is recorded once it sends --------------------------------------------------------------------


def _counts(location: jn.Location) -> tuple[int, int, int, int]:
    """(sends, runs, deliveries, batches) as another connection sees them: what a crash would leave."""
    db = jn.open_database(location, read_only=True)
    try:
        return tuple(int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])  # type: ignore[return-value]
                     for table in ("sends", "runs", "deliveries", "batches"))
    finally:
        db.close()


def test_a_transaction_inside_another_is_a_savepoint_of_it(journal_location: jn.Location) -> None:
    db = jn.open_database(journal_location)
    insert = "INSERT INTO meta (key, value) VALUES (?, ?)"
    db.begin()
    with db.transaction(durable=False):
        db.execute(insert, ("kept", "1"))
    with pytest.raises(ValueError), db.transaction():
        db.execute(insert, ("undone", "1"))
        raise ValueError("a failure inside: only this inner transaction is undone")
    with pytest.raises(jn.JournalError), db.transaction():
        db.execute(insert, ("kept", "again"))  # the database refuses it: the outer transaction goes on
    assert db.meta("kept") == "1" and db.meta("undone") is None
    assert db.in_transaction
    other = jn.open_database(journal_location, read_only=True)
    assert other.meta("kept") is None  # nothing is seen outside until the outer one commits
    db.commit()
    assert other.meta("kept") == "1" and other.meta("undone") is None and not db.in_transaction
    db.begin()
    with db.transaction():
        db.execute(insert, ("rolled back", "1"))
    db.rollback()  # the outer one rolled back: what its inner ones committed goes with it
    assert db.meta("rolled back") is None and other.meta("rolled back") is None
    other.close()
    db.close()


def test_a_provisional_run_leaves_nothing_until_it_is_committed(tmp_path: Path, journal_location: jn.Location) -> None:
    listing = _awkward_list(tmp_path / "list.csv")
    committed: list[str] = []
    journal = jn.Journal(jn.open_database(journal_location), "issue-id", "list", provisional=True)
    journal.runs.start(SENDGRID, "fp", {})
    journal.recipients.select(select_rows(listing))
    journal.when_committed(lambda: committed.append(journal.run_uid))
    assert journal.view.counts()[jn.PENDING] == len(AWKWARD)  # this connection sees its own run
    assert _counts(journal_location) == (0, 0, 0, 0)  # nobody else does, and a crash would leave nothing
    journal.discard_run()
    assert _counts(journal_location) == (0, 0, 0, 0) and not committed and journal.run == 0

    journal.begin_run()  # again, and this time its first request goes out
    journal.runs.start(SENDGRID, "fp", {})
    journal.recipients.select(select_rows(listing))
    journal.when_committed(lambda: committed.append(journal.run_uid))
    rows = journal.flight.next_pending(3, 3)
    journal.flight.mark_in_flight([r.id for r in rows], "1-1")
    assert committed == [journal.run_uid] and not journal.provisional
    journal.db.close()  # kill -9 as the request goes: the run, its selection and its batch are on record
    assert _counts(journal_location) == (1, 1, len(AWKWARD), 1)
    again = jn.Journal.open(journal_location, "issue-id", "list")
    again.runs.start(SENDGRID, "fp", {})
    assert list(_statuses(journal_location).values()).count("unknown") == 3
    again.close()


# -- runs, the schema, copies ---------------------------------------------------------------------------


def test_each_run_has_an_id_no_other_journal_holds(new_journal_location: Callable[[], jn.Location]) -> None:
    here, elsewhere = _journal(new_journal_location()), _journal(new_journal_location())
    assert here.run_uid and here.run_uid != elsewhere.run_uid
    assert here.runs.holds_uid(here.run_uid) and not here.runs.holds_uid(elsewhere.run_uid)
    assert [run.uid for run in here.runs.history()] == [here.run_uid]
    here.close()
    elsewhere.close()


def test_a_journal_written_by_a_newer_version_is_refused_not_misread(journal_location: jn.Location) -> None:
    _journal(journal_location).close()
    db = jn.open_database(journal_location)
    db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    db.close()
    with pytest.raises(jn.JournalError, match=r"newer version of newsletter \(schema 99") as caught:
        jn.open_database(journal_location)
    assert "upgrade newsletter" in str(caught.value)


def test_a_copy_holds_every_record_and_goes_on_from_there(new_journal_location: Callable[[], jn.Location],
                                                          tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """``journal copy``: to the other home and back, the same rows, runs, batches and journal id; the copy
    takes new runs and rows after the copied ones."""
    source_place = new_journal_location()
    journal = _loaded(source_place)
    rows = journal.flight.next_pending(3, 3)
    journal.flight.mark_in_flight([r.id for r in rows], "1-1")
    journal.flight.settle_groups({(jn.SENT, "m-1", ""): [rows[0].id]})
    journal.close()
    if source_place.dialect == "postgresql":  # to the other home and back
        middle = jn.Location("sqlite", path=tmp_path / "other.sqlite")
    else:
        middle = jn.Location("postgresql", url=fresh_schema_url(request.getfixturevalue("postgres_url")),
                             password_env="NEWSLETTER_DATABASE_PASSWORD")
    back = new_journal_location()
    for source, target in ((source_place, middle), (middle, back)):
        source_db, target_db = jn.open_database(source, read_only=True), jn.open_database(target)
        counts = copy_journal(source_db, target_db)
        assert counts["deliveries"] == 10 and counts["batches"] == 1 and counts["runs"] == 1
        assert target_db.journal_id == source_db.journal_id
        source_db.close()
        target_db.close()
    assert _table(back) == _table(source_place)
    again = jn.Journal.open(back, "issue-id", "big")
    again.runs.start(SENDGRID, "fp", {})  # the copied batch in flight is recovered as in the original
    assert [run.id for run in again.runs.history()] == [1, 2]
    assert _statuses(back)["r1@example.com"] == "unknown"
    again.close()


def test_copying_into_a_journal_that_holds_sends_is_refused(new_journal_location: Callable[[], jn.Location]) -> None:
    first, second = new_journal_location(), new_journal_location()
    _loaded(first).close()
    _loaded(second).close()
    source_db, target_db = jn.open_database(first, read_only=True), jn.open_database(second)
    with pytest.raises(NewsletterError, match="already holds sends"):
        copy_journal(source_db, target_db)
    source_db.close()
    target_db.close()


def test_an_unversioned_journal_of_an_earlier_version_is_brought_up_to_date(tmp_path: Path) -> None:
    """A SQLite journal from before the schema had versions: its sends, rows and runs are kept and read."""
    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE sends (id INTEGER PRIMARY KEY, issue TEXT NOT NULL, list TEXT NOT NULL, UNIQUE (issue, list));
        CREATE TABLE deliveries (id INTEGER PRIMARY KEY, send INTEGER NOT NULL, key TEXT NOT NULL,
            email TEXT NOT NULL, name TEXT NOT NULL DEFAULT '', fields TEXT, status TEXT NOT NULL,
            run INTEGER NOT NULL, batch TEXT, message_id TEXT, reason TEXT, attempts INTEGER NOT NULL DEFAULT 0,
            not_before REAL NOT NULL DEFAULT 0, updated REAL NOT NULL, UNIQUE (send, key));
        CREATE TABLE runs (id INTEGER PRIMARY KEY, send INTEGER NOT NULL, started REAL NOT NULL, pid INTEGER NOT NULL);
        INSERT INTO sends VALUES (1, 'issue-id', 'list');
        INSERT INTO runs VALUES (1, 1, 1.0, 1);
        INSERT INTO deliveries (send, key, email, status, run, updated) VALUES (1, 'a@example.com',
            'a@example.com', 'sent', 1, 1.0);
    """)
    old.close()
    location = jn.Location("sqlite", path=path)
    journal = jn.Journal.open(location, "issue-id", "list")
    assert journal.view.sent_count() == 1
    [run] = journal.runs.history()
    assert run.uid  # given one, so a sent record can name it
    from newsletter.sending.journal.schema import VERSION

    assert journal.db.meta("schema_version") == str(VERSION) and len(journal.db.journal_id) == 32
    # what later versions added is there too: an A/B test's table and each row's variant (version 2)
    assert journal.db.execute("SELECT COUNT(*) FROM ab_tests").fetchone()[0] == 0
    assert journal.db.execute("SELECT variant FROM deliveries").fetchall() == [(None,)]
    journal.close()


def test_a_postgresql_url_with_a_password_is_refused_without_showing_it(settings) -> None:
    import dataclasses

    send = dataclasses.replace(settings.send, journal_url="postgresql://me:hunter2secret@127.0.0.1/db")
    with pytest.raises(NewsletterError) as caught:
        jn.location_of(dataclasses.replace(settings, send=send))
    assert "holds a password" in str(caught.value) and "hunter2secret" not in str(caught.value)
    assert "NEWSLETTER_DATABASE_PASSWORD" in str(caught.value)


def test_an_unreachable_postgresql_journal_says_where_and_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("NEWSLETTER_DATABASE_PASSWORD", "s3cret-word")
    location = jn.Location("postgresql", url=f"postgresql://someone@127.0.0.1:{port}/letters",
                           password_env="NEWSLETTER_DATABASE_PASSWORD")
    with pytest.raises(jn.JournalError) as caught:
        jn.open_database(location)
    message = str(caught.value)
    assert f"postgresql://someone@127.0.0.1:{port}/letters" in message and "s3cret-word" not in message
    assert "NEWSLETTER_DATABASE_PASSWORD" in message


# -- send --due: restricted audiences, enrolments, its lock (issue 22) ----------------------------------


def test_a_run_restricted_to_recorded_readers_is_repeated_by_its_resume(journal_location: jn.Location,
                                                                        tmp_path: Path) -> None:
    listing = _awkward_list(tmp_path / "list.csv")
    journal = jn.Journal.open(journal_location, "step-id", "list")
    readers = jn.audiences.record(journal.db, ["r1@example.com", "r3@example.com", "r3@example.com"], "step 1")
    assert jn.audiences.label(journal.db, readers) == "step 1 (2 readers)"
    journal.runs.start(jn.Audience("smtp", (), (), "", readers), "fp", {})
    keys = jn.audiences.readers(journal.db, journal.runs.history()[-1].audience.readers)
    journal.recipients.select(select_rows(listing, only=keys))
    assert sorted(_statuses(journal_location)) == ["r1@example.com", "r3@example.com"]
    assert journal.runs.unfinished().audience.readers == readers  # what --resume repeats
    journal.close()


def test_readers_move_on_once_their_step_is_settled_in_its_own_journal(journal_location: jn.Location) -> None:
    import datetime as dt

    from newsletter.sending.due import enrolments
    from newsletter.sending.due.delays import parse_delay

    now = dt.datetime(2031, 1, 1, tzinfo=dt.UTC)
    db = jn.open_database(journal_location)
    number, started, new = enrolments.sequence_record(db, "welcome", "list", "added", now)
    assert new and enrolments.sequence_record(db, "welcome", "list", "added", now)[:2] == (number, started)
    readers = [enrolments.NewReader(f"r{i}@example.com", f"r{i}@example.com", enrolments.ACTIVE, now.timestamp(),
                                    now.timestamp(), "Europe/Paris" if i == 2 else "") for i in range(3)]
    enrolments.add(db, number, [*readers, readers[0]], now)  # a reader given twice is recorded once
    assert enrolments.due(db, number, 0, now) == ["r0@example.com", "r1@example.com", "r2@example.com"]
    step = jn.Journal(db, "step-1", "list")
    step.runs.start(SENDGRID, "fp", {})
    step.recipients.select([(f"r{i}@example.com", f"r{i}@example.com", "", "") for i in range(3)])
    rows = step.flight.next_pending(3, 3)
    step.flight.mark_in_flight([rows[0].id, rows[2].id], "1-1")
    step.flight.settle_groups({(jn.SENT, "m-1", ""): [rows[0].id, rows[2].id]})
    moved = enrolments.advance(db, number, 1, step.send, parse_delay("1d 09:00"), dt.UTC, now)
    assert moved == 2 and enrolments.due(db, number, 0, now) == ["r1@example.com"]  # r1 is still pending
    later = dt.datetime(2031, 1, 2, 8, 30, tzinfo=dt.UTC)  # 09:30 in Paris, 08:30 UTC
    assert enrolments.due(db, number, 1, later) == ["r2@example.com"]
    assert enrolments.due(db, number, 1, later.replace(hour=9)) == ["r2@example.com", "r0@example.com"]
    enrolments.stop(db, number, {"r1@example.com": "left the list (unsubscribed)"}, now)
    assert enrolments.stop_reasons(db, number) == {"left the list (unsubscribed)": 1}
    db.close()


def test_only_one_send_due_holds_the_journal_at_a_time(journal_location: jn.Location) -> None:
    from newsletter.sending.due.lock import due_lock

    first, second = jn.open_database(journal_location), jn.open_database(journal_location)
    with due_lock(first) as holder:
        assert holder == ""
        with due_lock(second) as other:
            assert "another newsletter send --due is running" in other
    with due_lock(second) as holder:  # released: the next one gets it
        assert holder == ""
    first.close()
    second.close()
