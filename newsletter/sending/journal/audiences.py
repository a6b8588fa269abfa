"""Restricted audiences: the readers one run of a send is for, when that is not the whole list.

A sequence step goes out, each time ``send --due`` runs, to the readers whose step is due
then, not to everyone on the list. Those readers are recorded here before the send starts,
and the run names the record (``runs.readers``), so a resume after a crash repeats exactly
them, as it repeats a run's tags and filters. The selection then keeps only rows whose key
is in the set (``lists.select_rows(only=...)``): everyone else on the list is not part of the
run at all, neither selected nor counted as skipped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable

from .database import JournalDB


def record(db: JournalDB, keys: Iterable[str], label: str) -> int:
    """Record the readers ``keys`` (normalized addresses) as one audience; its id (what ``Audience.readers``
    holds). ``label`` says what it is for, as ``status`` shows it ("sequence welcome, step 2").

    The keys are one JSON list in one row: for a step due to 100,000 readers, one statement instead of
    100,000 indexed rows (the send reads them back whole, once)."""
    unique = list(dict.fromkeys(keys))
    with db.transaction():
        return db.insert("INSERT INTO audiences (label, size, created, readers) VALUES (?, ?, ?, ?)",
                         (label, len(unique), time.time(), json.dumps(unique)))


def readers(db: JournalDB, audience: int) -> frozenset[str]:
    """The keys of the readers recorded as ``audience``."""
    row = db.execute("SELECT readers FROM audiences WHERE id=?", (audience,)).fetchone()
    return frozenset(json.loads(row[0])) if row else frozenset()


def label(db: JournalDB, audience: int) -> str:
    """What the audience was recorded for, with its size ("" when there is no such record)."""
    row = db.execute("SELECT label, size FROM audiences WHERE id=?", (audience,)).fetchone()
    return f"{row[0]} ({row[1]} readers)" if row else ""
