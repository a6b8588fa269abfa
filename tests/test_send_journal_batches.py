"""The journal records a request's batch once, not each recipient: entering flight and settling an
all-accepted batch are one statement each, and a crash still leaves exactly the carried rows unknown."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from newsletter.sending import journal as jn


def _journal(path: Path, rows: int = 10) -> jn.Journal:
    journal = jn.Journal.open(path, "issue-id", "big")
    journal.start_run(jn.Audience("sendgrid", (), ()), "fp", {})
    journal.select((f"r{i}@example.com", f"r{i}@example.com", f"R {i}", {}) for i in range(rows))
    return journal


def _statuses(path: Path) -> dict[str, str]:
    db = sqlite3.connect(path)
    try:
        return dict(db.execute("SELECT email, status FROM deliveries ORDER BY id"))
    finally:
        db.close()


def _updates(journal: jn.Journal) -> list[str]:
    """The SQL statements the journal runs from now on."""
    seen: list[str] = []
    journal.db.set_trace_callback(seen.append)
    return seen


def test_entering_flight_writes_one_batch_record_and_no_recipient_row(tmp_path: Path):
    path = tmp_path / "journal.sqlite"
    journal = _journal(path)
    rows = journal.next_pending(4, 3)
    seen = _updates(journal)
    journal.mark_in_flight([r.id for r in rows], "1-1")
    writes = [s for s in seen if s.lstrip().upper().startswith(("INSERT", "UPDATE"))]
    assert len(writes) == 1 and "batches" in writes[0]
    # Read back: those four are in flight (status, counts), and the loop does not take them again.
    assert journal.counts()[jn.IN_FLIGHT] == 4
    assert not {r.id for r in rows} & {r.id for r in journal.next_pending(100, 3)}
    assert [s for _, s in jn.summarize(path, "issue-id")][0][jn.IN_FLIGHT] == 4
    # All accepted: one statement settles the batch's rows (and closes it) in one transaction.
    seen.clear()
    journal.settle_groups({(jn.SENT, "msg-1", ""): [r.id for r in rows]})
    writes = [s for s in seen if s.lstrip().upper().startswith("UPDATE")]
    assert len(writes) == 2 and "deliveries" in writes[0] and "batches" in writes[1]
    assert journal.counts()[jn.SENT] == 4 and journal.counts()[jn.IN_FLIGHT] == 0
    journal.close()


def test_a_crash_leaves_unknown_only_the_rows_the_batch_still_carried(tmp_path: Path):
    path = tmp_path / "journal.sqlite"
    journal = _journal(path)
    rows = journal.next_pending(5, 3)
    journal.mark_in_flight([r.id for r in rows], "1-1")
    journal.settle_groups({(jn.SENT, "m", ""): [rows[0].id], (jn.FAILED, "", "bad address"): [rows[1].id]})
    journal.release([rows[2].id], "4xx: try later", retry_at=1.0)  # deferred: back in the queue
    # kill -9 here: the journal is closed without another word
    journal.db.close()
    status = _statuses(path)
    assert [status[r.email] for r in rows] == ["sent", "failed", "pending", "pending", "pending"]

    again = jn.Journal.open(path, "issue-id", "big")
    again.start_run(jn.Audience("sendgrid", (), ()), "fp", {})
    status = _statuses(path)
    assert [status[r.email] for r in rows] == ["sent", "failed", "pending", "unknown", "unknown"]
    assert all(status[f"r{i}@example.com"] == "pending" for i in range(5, 10))  # never in a batch
    again.close()


def test_a_sequential_batch_leaves_only_its_first_unanswered_row_unknown(tmp_path: Path):
    path = tmp_path / "journal.sqlite"
    journal = _journal(path, 6)
    rows = journal.next_pending(6, 3)
    journal.mark_in_flight([r.id for r in rows], "1-1" + jn.SEQUENTIAL)
    journal.settle_groups({(jn.SENT, "", ""): [rows[0].id, rows[1].id]})
    journal.db.close()
    again = jn.Journal.open(path, "issue-id", "big")
    again.start_run(jn.Audience("smtp", (), ()), "fp", {})
    assert list(_statuses(path).values()) == ["sent", "sent", "unknown", "pending", "pending", "pending"]
    again.close()
