"""One ``send --due`` at a time per journal: two cron entries, or two machines sharing a PostgreSQL
journal, started at the same moment, must not both send what is due.

SQLite: a lock file beside the journal (``locks/send-due.lock``); PostgreSQL: a session advisory lock,
the same for every machine that shares the journal. Both die with their process, so a ``send --due``
killed with kill -9 leaves no lock behind. The one that does not get the lock does nothing and says who
holds it: what is due goes out through the one that does (each send keeps its own per-issue lock too).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager

from ...errors import NewsletterError
from ..journal import JournalDB, JournalError

KEY = "newsletter send --due"


@contextmanager
def due_lock(db: JournalDB) -> Iterator[str]:
    """Hold the lock while the block runs; yields "" when this process holds it, else who does."""
    if db.dialect == "postgresql":
        row = db.execute("SELECT pg_try_advisory_lock(hashtextextended(?, 0))", (KEY,)).fetchone()
        if not row[0]:
            yield f"another newsletter send --due is running on {db.location.describe()}"
            return
        try:
            yield ""
        finally:
            try:
                db.execute("SELECT pg_advisory_unlock(hashtextextended(?, 0))", (KEY,))
            except JournalError:
                pass  # the connection is gone: so is the lock
        return
    assert db.location.path is not None
    folder = db.location.path.parent / "locks"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / "send-due.lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise NewsletterError(f"cannot create the lock of send --due: {err.strerror}", where=folder,
                              hint="make the folder writable, or set [send] journal in newsletter.toml") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "another process"
            yield f"another newsletter send --due is running ({holder})"
            return
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, started {dt.datetime.now().isoformat(timespec='seconds')}".encode(), 0)
        yield ""
    finally:
        os.close(fd)
