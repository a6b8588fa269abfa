"""The journal's tables, one description for SQLite and PostgreSQL, and its version.

The schema is versioned (``meta.schema_version``) and created on first use. A
journal written before versions existed (SQLite only) is brought up to date
by adding the tables and columns it lacks; one written by a newer version of
``newsletter`` is refused rather than misread.

Tables:

- ``sends``: one (issue id, list) pair;
- ``deliveries``: one row per recipient of a send, its status and merge values;
- ``runs``: each run of a send (its audience, provider, fingerprint; ``uid`` is the
  id the sent record in issue.md names, unique across journals); a send run's ``ready``
  (when it began delivering, so workers may join) and ``delivery`` (what shapes each request
  beyond the fingerprint: ``--at``, ``--sandbox``, the stages), and a worker's run ``joined``
  (the send run it helps);
- ``batches``: a request in flight (``ids``, the rows it carries, for SQLite), or a
  batch claimed by a sender sharing the send (``worker``: its run's uid, ``lease_until``);
- ``stages``: a staged send's stages;
- ``meta``: the schema's version and the journal's own id;
- ``ab_tests``: a subject A/B test of a send (``send --ab``): its subjects, share, and the decision with its
  figures; ``deliveries.variant`` is the variant (1..4) each recipient of the test slice was sent.

Version 2 added ``ab_tests`` and ``deliveries.variant`` (issue 23).
- ``audiences``: the readers a run was restricted to (the readers due for a sequence step, their keys as
  one JSON list), recorded once so that a resume repeats them (``runs.readers`` names one);
- ``schedules``: an issue scheduled for a list (``send --at``), held by the tool until ``send --due``;
- ``sequences`` and ``enrolments``: when each sequence started, and each reader's place in it;
- ``digest_items``: which digest issue carries each feed item to a list (each item goes in one).

Version 2 added ``audiences``, ``schedules``, ``sequences``, ``enrolments``, ``digest_items`` and
``runs.readers`` (``newsletter send --due``).
Version 3 added ``runs.joined``, ``runs.ready`` and ``runs.delivery`` (workers sharing a send).
"""

from __future__ import annotations

import time

from .basics import JournalError, Statements, new_journal_id

VERSION = 3  # 3: runs.joined, runs.ready, runs.delivery (workers sharing a send: sending/sharing.py)

# table -> [(column, declaration)]; "INTEGER PRIMARY KEY" is the row id, REAL a time in Unix seconds.
TABLES: dict[str, list[tuple[str, str]]] = {
    "meta": [("key", "TEXT PRIMARY KEY"), ("value", "TEXT NOT NULL")],
    "sends": [("id", "INTEGER PRIMARY KEY"), ("issue", "TEXT NOT NULL"), ("list", "TEXT NOT NULL"),
              ("folder", "TEXT")],
    "deliveries": [
        ("id", "INTEGER PRIMARY KEY"), ("send", "INTEGER NOT NULL REFERENCES sends (id)"), ("key", "TEXT NOT NULL"),
        ("email", "TEXT NOT NULL"), ("name", "TEXT NOT NULL DEFAULT ''"), ("fields", "TEXT"),
        ("status", "TEXT NOT NULL"), ("run", "INTEGER NOT NULL"), ("batch", "TEXT"), ("message_id", "TEXT"),
        ("reason", "TEXT"), ("attempts", "INTEGER NOT NULL DEFAULT 0"), ("not_before", "REAL NOT NULL DEFAULT 0"),
        ("updated", "REAL NOT NULL"), ("settled_run", "INTEGER"), ("variant", "INTEGER")],
    "batches": [
        ("id", "INTEGER PRIMARY KEY"), ("send", "INTEGER NOT NULL REFERENCES sends (id)"),
        ("run", "INTEGER NOT NULL"), ("label", "TEXT NOT NULL"), ("state", "TEXT NOT NULL"), ("ids", "TEXT"),
        ("size", "INTEGER NOT NULL"), ("started", "REAL NOT NULL"), ("settled", "REAL"),
        ("worker", "TEXT"), ("lease_until", "REAL")],
    "runs": [
        ("id", "INTEGER PRIMARY KEY"), ("send", "INTEGER NOT NULL REFERENCES sends (id)"),
        ("started", "REAL NOT NULL"), ("pid", "INTEGER NOT NULL"), ("kind", "TEXT NOT NULL DEFAULT 'send'"),
        ("provider", "TEXT"), ("tags", "TEXT"), ("filters", "TEXT"), ("fingerprint", "TEXT"), ("parts", "TEXT"),
        ("allow_changed", "INTEGER NOT NULL DEFAULT 0"), ("note", "TEXT"), ("finished", "REAL"), ("uid", "TEXT"),
        ("joined_after", "TEXT"), ("readers", "INTEGER"), ("joined", "INTEGER"), ("ready", "REAL"),
        ("delivery", "TEXT")],
    "stages": [
        ("send", "INTEGER NOT NULL REFERENCES sends (id)"), ("number", "INTEGER NOT NULL"),
        ("share", "REAL NOT NULL"), ("size", "INTEGER NOT NULL DEFAULT 0"), ("started", "REAL"),
        ("finished", "REAL"), ("judged", "REAL"), ("sent", "INTEGER NOT NULL DEFAULT 0"),
        ("hard_bounces", "INTEGER NOT NULL DEFAULT 0"), ("soft_bounces", "INTEGER NOT NULL DEFAULT 0"),
        ("blocks", "INTEGER NOT NULL DEFAULT 0"), ("complaints", "INTEGER NOT NULL DEFAULT 0"),
        ("verdict", "TEXT NOT NULL DEFAULT ''"), ("summary", "TEXT NOT NULL DEFAULT ''")],
    "ab_tests": [
        ("send", "INTEGER NOT NULL REFERENCES sends (id)"), ("share", "REAL NOT NULL"),
        ("subjects", "TEXT NOT NULL"), ("confidence", "REAL NOT NULL"), ("fallback", "INTEGER NOT NULL DEFAULT 1"),
        ("started", "REAL NOT NULL"), ("tested", "REAL"), ("decide_after", "REAL"), ("decided", "REAL"),
        ("winner", "INTEGER NOT NULL DEFAULT 0"), ("verdict", "TEXT NOT NULL DEFAULT ''"),
        ("figures", "TEXT NOT NULL DEFAULT ''"), ("summary", "TEXT NOT NULL DEFAULT ''")],
    # -- send --due (version 2) --
    "audiences": [("id", "INTEGER PRIMARY KEY"), ("label", "TEXT NOT NULL"), ("size", "INTEGER NOT NULL"),
                  ("created", "REAL NOT NULL"), ("readers", "TEXT NOT NULL")],
    "schedules": [
        ("id", "INTEGER PRIMARY KEY"), ("send", "INTEGER NOT NULL REFERENCES sends (id)"), ("at", "REAL NOT NULL"),
        ("zone", "TEXT NOT NULL DEFAULT ''"), ("folder", "TEXT NOT NULL"), ("provider", "TEXT NOT NULL"),
        ("tags", "TEXT NOT NULL DEFAULT '[]'"), ("filters", "TEXT NOT NULL DEFAULT '[]'"),
        ("fingerprint", "TEXT NOT NULL"), ("parts", "TEXT NOT NULL DEFAULT '{}'"),
        ("recipients", "INTEGER NOT NULL DEFAULT 0"), ("allow_changed", "INTEGER NOT NULL DEFAULT 0"),
        ("state", "TEXT NOT NULL"), ("created", "REAL NOT NULL"), ("updated", "REAL NOT NULL"),
        ("problem", "TEXT NOT NULL DEFAULT ''")],
    "sequences": [("id", "INTEGER PRIMARY KEY"), ("name", "TEXT NOT NULL"), ("list", "TEXT NOT NULL"),
                  ("trigger", "TEXT NOT NULL"), ("started", "REAL NOT NULL"), ("list_seen", "TEXT")],
    "enrolments": [
        ("id", "INTEGER PRIMARY KEY"), ("sequence", "INTEGER NOT NULL REFERENCES sequences (id)"),
        ("key", "TEXT NOT NULL"), ("email", "TEXT NOT NULL"), ("state", "TEXT NOT NULL"), ("moment", "REAL"),
        ("step", "INTEGER NOT NULL DEFAULT 0"), ("next_at", "REAL"), ("zone", "TEXT NOT NULL DEFAULT ''"),
        ("reason", "TEXT NOT NULL DEFAULT ''"), ("updated", "REAL NOT NULL")],
    "digest_items": [
        ("id", "INTEGER PRIMARY KEY"), ("list", "TEXT NOT NULL"), ("item", "TEXT NOT NULL"),
        ("issue", "TEXT NOT NULL"), ("title", "TEXT NOT NULL DEFAULT ''"), ("link", "TEXT NOT NULL DEFAULT ''"),
        ("added", "REAL NOT NULL")],
}
CONSTRAINTS = {
    "sends": ["UNIQUE (issue, list)"],
    "deliveries": ["UNIQUE (send, key)"],
    "stages": ["PRIMARY KEY (send, number)"],
    "ab_tests": ["UNIQUE (send)"],
    "schedules": ["UNIQUE (send)"],
    "sequences": ["UNIQUE (name, list)"],
    "enrolments": ["UNIQUE (sequence, key)"],
    "digest_items": ["UNIQUE (list, item)"],
}
INDEXES = [
    "CREATE INDEX IF NOT EXISTS batches_by_state ON batches (send, state)",
    "CREATE UNIQUE INDEX IF NOT EXISTS runs_by_uid ON runs (uid)",
    "CREATE INDEX IF NOT EXISTS enrolments_by_step ON enrolments (sequence, state, step, next_at)",
    "CREATE INDEX IF NOT EXISTS schedules_by_time ON schedules (state, at)",
    "CREATE INDEX IF NOT EXISTS digest_items_by_issue ON digest_items (issue)",
]
# Columns a journal of an earlier (unversioned) version may lack are added, never dropped or retyped.
FILLFACTOR = 70  # PostgreSQL: percent of each deliveries page filled by inserts (see ``create``)


def _declaration(dialect: str, declaration: str) -> str:
    if dialect == "sqlite":
        return declaration
    return (declaration.replace("INTEGER PRIMARY KEY", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
            .replace("INTEGER", "BIGINT").replace("REAL", "DOUBLE PRECISION"))


def table_sql(dialect: str, table: str) -> str:
    lines = [f"{column} {_declaration(dialect, declaration)}" for column, declaration in TABLES[table]]
    lines += CONSTRAINTS.get(table, [])
    return f"CREATE TABLE IF NOT EXISTS {table} (\n    " + ",\n    ".join(lines) + "\n)"


def create(db: Statements) -> None:
    """Create the tables (or add what an older journal lacks) and record the version, once."""
    with db.transaction():
        if db.dialect == "postgresql":  # several senders may open a new journal at once
            db.execute("SELECT pg_advisory_xact_lock(hashtextextended('newsletter journal schema', 0))")
        present = _tables(db)
        version = _version(db) if "meta" in present else 0
        if version > VERSION:
            raise JournalError(f"the send journal was written by a newer version of newsletter (schema {version}, "
                               f"this one knows {VERSION})", where=db.location.describe(),
                               hint="upgrade newsletter (pip install -U newsletter) on this machine before sending")
        if version == VERSION:
            return
        for table in TABLES:
            if table not in present:
                db.execute(table_sql(db.dialect, table))
            else:
                have = _columns(db, table)
                for column, declaration in TABLES[table]:
                    if column not in have:
                        db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {_declaration(db.dialect, declaration)}")
        for index in INDEXES:
            db.execute(index)
        if db.dialect == "postgresql":
            # Room on each page for a row's next versions: a send updates each row two or three times (claimed,
            # settled), and an update that stays on its page writes no index entry (a HOT update).
            db.execute(f"ALTER TABLE deliveries SET (fillfactor = {FILLFACTOR})")
        _backfill_uids(db)
        upsert = ("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value=excluded.value")
        db.execute(upsert, ("schema_version", str(VERSION)))
        db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                   ("journal_id", new_journal_id()))
        db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                   ("created", str(time.time())))


def _backfill_uids(db: Statements) -> None:
    """Runs recorded before runs had uids get one each, so every run can be named in a sent record."""
    for (number,) in db.execute("SELECT id FROM runs WHERE uid IS NULL").fetchall():
        db.execute("UPDATE runs SET uid=? WHERE id=?", (new_journal_id()[:16], number))


def _tables(db: Statements) -> set[str]:
    if db.dialect == "sqlite":
        rows = db.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
    else:
        rows = db.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
                          ).fetchall()
    return {str(row[0]) for row in rows}


def _columns(db: Statements, table: str) -> set[str]:
    if db.dialect == "sqlite":
        return {str(row[1]) for row in db.execute(f"PRAGMA table_info({table})").fetchall()}
    rows = db.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
                      "AND table_name = ?", (table,)).fetchall()
    return {str(row[0]) for row in rows}


def _version(db: Statements) -> int:
    row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    return int(row[0]) if row else 0
