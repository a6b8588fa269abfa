"""Reading test results back: the journal's status per recipient, the address a preview prints, and the
moment a process says a line."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import threading
import time
from pathlib import Path
from typing import IO


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


def said_line(stream: IO[str], text: str, timeout: float) -> str:
    """Wait until a process says a line holding ``text`` on ``stream`` (its stderr, say, opened as text) and
    return it; fails the test if it has not said it within ``timeout`` seconds. The lines after it are read
    and dropped, so the process never blocks on a full pipe."""
    said: list[str] = []
    heard = threading.Event()

    def listen() -> None:
        for line in stream:
            if not heard.is_set() and text in line:
                said.append(line)
                heard.set()
        heard.set()  # the process closed the stream: nothing more will come

    threading.Thread(target=listen, daemon=True).start()
    assert heard.wait(timeout) and said, f"the process did not say {text!r}"
    return said[0]


def forget_sends(root: Path, issue: str) -> None:
    """Make the newsletter at ``root`` one that never sent ``issue``: no journal, and no ``sent:`` record in
    its issue.md (what a test comparing two ways of sending the same list starts again from)."""
    for path in (root / ".newsletter").glob("journal.sqlite*"):
        path.unlink()
    issue_md = root / issue / "issue.md"
    lines = issue_md.read_text().split("\n")
    issue_md.write_text("\n".join(line for line in lines if line != "sent:" and not line.startswith("- {list: ")))
