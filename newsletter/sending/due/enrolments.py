"""Who is where in each sequence, kept in the journal: when a sequence started, and one row per reader.

A reader's row (``enrolments``) says their state (``active``, ``done``, ``stopped``, or ``before``: on the
list when the sequence started, so never enrolled unless ``--backfill``), how many steps they have had
(``step``) and when the next one is due (``next_at``). It only records progress: what a reader was
actually sent is the journal of each step's own send, keyed on (step, reader), which is what makes a
step go to a reader once whatever happens to this table. ``advance`` moves readers on by reading those
sends, so a run killed between sending and advancing is put right by the next one.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence as Seq
from typing import NamedTuple

from ...providers.base import Status
from ..journal import JournalDB
from .delays import Delay, zone_named

ACTIVE, DONE, STOPPED, BEFORE = "active", "done", "stopped", "before"
SETTLED = (str(Status.SENT), str(Status.FAILED), str(Status.UNKNOWN))  # a step's outcome that moves a reader on
CHUNK = 500


class NewReader(NamedTuple):
    key: str
    email: str
    state: str  # active | before
    moment: float  # when they started (their trigger's moment)
    next_at: float | None  # when their first step is due (active only)
    zone: str  # their own time zone's name, "" for the sequence's


class Due(NamedTuple):
    """Readers waiting for one step: how many, and the first of them."""

    step: int  # the step they wait for (1-based)
    readers: int
    first_at: float


def sequence_record(db: JournalDB, name: str, list_name: str, trigger: str,
                    now: dt.datetime) -> tuple[int, float, bool]:
    """The sequence's record (id, when it started, whether it starts now), made at the first run that sees it."""
    row = db.execute("SELECT id, started FROM sequences WHERE name=? AND list=?", (name, list_name)).fetchone()
    if row:
        return int(row[0]), float(row[1]), False
    with db.transaction():
        db.execute("INSERT INTO sequences (name, list, trigger, started) VALUES (?, ?, ?, ?) "
                   "ON CONFLICT (name, list) DO NOTHING", (name, list_name, trigger, now.timestamp()))
    row = db.execute("SELECT id, started FROM sequences WHERE name=? AND list=?", (name, list_name)).fetchone()
    return int(row[0]), float(row[1]), True


def find(db: JournalDB, name: str, list_name: str) -> tuple[int, float] | None:
    row = db.execute("SELECT id, started FROM sequences WHERE name=? AND list=?", (name, list_name)).fetchone()
    return (int(row[0]), float(row[1])) if row else None


def known(db: JournalDB, sequence: int) -> dict[str, str]:
    """Every reader the sequence has a row for: key -> state."""
    return {str(k): str(s) for k, s in db.execute("SELECT key, state FROM enrolments WHERE sequence=?",
                                                    (sequence,)).fetchall()}


def add(db: JournalDB, sequence: int, readers: Seq[NewReader], now: dt.datetime) -> None:
    """Record new readers (a reader already recorded keeps their row)."""
    stamp = now.timestamp()
    with db.transaction():
        for start in range(0, len(readers), CHUNK):
            chunk = readers[start:start + CHUNK]
            db.execute("INSERT INTO enrolments (sequence, key, email, state, moment, step, next_at, zone, updated) "
                       "VALUES " + ", ".join(["(?, ?, ?, ?, ?, 0, ?, ?, ?)"] * len(chunk))
                       + " ON CONFLICT (sequence, key) DO NOTHING",
                       [v for r in chunk for v in (sequence, r.key, r.email, r.state, r.moment, r.next_at, r.zone,
                                                   stamp)])


def stop(db: JournalDB, sequence: int, reasons: dict[str, str], now: dt.datetime) -> None:
    """End the sequence for these active readers (key -> why): they get no further step."""
    with db.transaction():
        for key, reason in reasons.items():
            db.execute("UPDATE enrolments SET state=?, reason=?, next_at=NULL, updated=? "
                       "WHERE sequence=? AND key=? AND state=?", (STOPPED, reason, now.timestamp(), sequence, key,
                                                                  ACTIVE))


def backfill(db: JournalDB, sequence: int, first: Delay, default_zone: dt.tzinfo, now: dt.datetime) -> int:
    """Enrol the readers who were on the list when the sequence started, from now (``--backfill``)."""
    with db.transaction():
        zones = [str(z) for (z,) in db.execute("SELECT DISTINCT zone FROM enrolments WHERE sequence=? AND state=?",
                                               (sequence, BEFORE)).fetchall()]
        count = 0
        for zone in zones:
            due = first.after(now, zone_named(zone) or default_zone).timestamp()
            count += db.execute("UPDATE enrolments SET state=?, moment=?, next_at=?, updated=? "
                                "WHERE sequence=? AND state=? AND zone=?",
                                (ACTIVE, now.timestamp(), due, now.timestamp(), sequence, BEFORE, zone)).rowcount
    return count


def due(db: JournalDB, sequence: int, done: int, now: dt.datetime) -> list[str]:
    """The active readers who have had ``done`` steps and whose next one is due by ``now``."""
    rows = db.execute("SELECT key FROM enrolments WHERE sequence=? AND state=? AND step=? AND next_at <= ? "
                      "ORDER BY next_at, id", (sequence, ACTIVE, done, now.timestamp())).fetchall()
    return [str(row[0]) for row in rows]


def advance(db: JournalDB, sequence: int, number: int, send: int, following: Delay | None,
            default_zone: dt.tzinfo, now: dt.datetime) -> int:
    """Move on the readers waiting for step ``number`` whose delivery of it (the step's send ``send``) is
    settled: to the step after it, due ``following`` from now in their zone, or to the end."""
    marks = ", ".join("?" * len(SETTLED))
    settled = f"key IN (SELECT key FROM deliveries WHERE send=? AND status IN ({marks}))"
    if db.execute("SELECT 1 FROM enrolments WHERE sequence=? AND state=? AND step=? LIMIT 1",
                  (sequence, ACTIVE, number - 1)).fetchone() is None:
        return 0  # nobody waits for this step: its journal need not be read
    state = ACTIVE if following is not None else DONE
    update = (f"UPDATE enrolments SET step=?, state=?, next_at=?, updated=? WHERE sequence=? AND state=? AND step=? "
              f"AND {settled}")
    with db.transaction():
        if following is None or following.at is None:  # the next step's time is the same in every zone
            next_at = following.after(now, default_zone).timestamp() if following else None
            return int(db.execute(update, (number, state, next_at, now.timestamp(), sequence, ACTIVE, number - 1,
                                           send, *SETTLED)).rowcount)
        zones = [str(z) for (z,) in db.execute(
            f"SELECT DISTINCT zone FROM enrolments WHERE sequence=? AND state=? AND step=? AND {settled}",
            (sequence, ACTIVE, number - 1, send, *SETTLED)).fetchall()]
        moved = 0
        for zone in zones:
            next_at = following.after(now, zone_named(zone) or default_zone).timestamp()
            moved += db.execute(update + " AND zone=?", (number, state, next_at, now.timestamp(), sequence, ACTIVE,
                                                         number - 1, send, *SETTLED, zone)).rowcount
    return moved


def counts(db: JournalDB, sequence: int) -> Counter[tuple[str, int]]:
    """How many readers are in each (state, steps had)."""
    rows = db.execute("SELECT state, step, COUNT(*) FROM enrolments WHERE sequence=? GROUP BY state, step",
                      (sequence,)).fetchall()
    return Counter({(str(state), int(step)): int(n) for state, step, n in rows})


def stop_reasons(db: JournalDB, sequence: int) -> Counter[str]:
    rows = db.execute("SELECT reason, COUNT(*) FROM enrolments WHERE sequence=? AND state=? GROUP BY reason",
                      (sequence, STOPPED)).fetchall()
    return Counter({str(reason): int(n) for reason, n in rows})


def waiting(db: JournalDB, sequence: int) -> list[Due]:
    """For each step someone waits for: how many wait, and when the first of them is due."""
    rows = db.execute("SELECT step, COUNT(*), MIN(next_at) FROM enrolments WHERE sequence=? AND state=? "
                      "GROUP BY step ORDER BY step", (sequence, ACTIVE)).fetchall()
    return [Due(int(step) + 1, int(n), float(first)) for step, n, first in rows]


def next_readers(db: JournalDB, sequence: int, limit: int) -> list[tuple[float, int, str]]:
    """(when, step, address) of the readers due soonest."""
    rows = db.execute("SELECT next_at, step, email FROM enrolments WHERE sequence=? AND state=? "
                      "ORDER BY next_at, id LIMIT ?", (sequence, ACTIVE, limit)).fetchall()
    return [(float(at), int(step) + 1, str(email)) for at, step, email in rows]


def in_send(db: JournalDB, send: int, keys: Seq[str]) -> set[str]:
    """Which of these readers the step's send ``send`` has a row for (selected at some time)."""
    found: set[str] = set()
    for start in range(0, len(keys), 5_000):
        chunk = keys[start:start + 5_000]
        found.update(str(k) for (k,) in db.execute(f"SELECT key FROM deliveries WHERE send=? AND key IN {db.text_set}",
                                                   (send, db.texts(chunk))).fetchall())
    return found


def list_seen(db: JournalDB, sequence: int) -> str:
    """What the list file and the sequence's rules were when a run last read the list for it ("" never)."""
    row = db.execute("SELECT list_seen FROM sequences WHERE id=?", (sequence,)).fetchone()
    return str(row[0] or "") if row else ""


def saw_list(db: JournalDB, sequence: int, seen: str) -> None:
    with db.transaction():
        db.execute("UPDATE sequences SET list_seen=? WHERE id=?", (seen, sequence))
