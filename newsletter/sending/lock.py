"""One send of an issue to a list at a time: a lock file that dies with its process."""

from __future__ import annotations

import datetime as dt
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import NewsletterError


@contextmanager
def exclusive(journal_path: Path, issue: str, list_name: str, label: str = "") -> Iterator[None]:
    """Hold the lock for sending ``issue`` (its id) to ``list_name``; refuse if another process holds it.

    ``label`` (the folder name) is what the refusal calls the issue.
    """
    folder = journal_path.parent / "locks"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / f"{issue}--{list_name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise NewsletterError(f"cannot create the send lock: {err.strerror}", where=folder,
                              hint="make the folder writable, or set [send] journal in newsletter.toml") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "another process"
            raise NewsletterError(f"another send of {label or issue} to list '{list_name}' is running ({holder})",
                                  hint="wait for it to finish, or stop that process; a killed send leaves "
                                       "no lock behind") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, started {dt.datetime.now().isoformat(timespec='seconds')}".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock; the kernel does the same if the process dies
