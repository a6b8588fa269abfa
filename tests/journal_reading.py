"""Reading test results back: the journal's status per recipient, and the address a preview prints."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import time
from pathlib import Path


def statuses(root: Path, list_name: str) -> dict[str, str]:
    """Each recipient's status in the send journal of the newsletter at ``root``, for ``list_name``."""
    db = sqlite3.connect(root / ".newsletter" / "journal.sqlite")
    try:
        return dict(db.execute("SELECT d.email, d.status FROM deliveries d JOIN sends s ON s.id = d.send "
                               "WHERE s.list = ?", (list_name,)))
    finally:
        db.close()


def preview_url(process: subprocess.Popen, timeout: float) -> str:
    """The http://127.0.0.1:PORT/ a started ``newsletter preview`` prints; fails the test if none comes."""
    url = None
    deadline = time.monotonic() + timeout
    while url is None and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        match = re.search(r"http://127\.0\.0\.1:\d+/", line)
        url = match.group(0) if match else None
    assert url, process.stderr.read() if process.poll() is not None else "no URL printed"
    return url
