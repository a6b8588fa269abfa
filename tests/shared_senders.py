"""Helpers for tests of senders sharing a send through the test PostgreSQL journal: a newsletter whose
``[send] journal_url`` points at a schema of its own, real ``newsletter send`` processes, and the journal
read back."""

from __future__ import annotations

import bisect
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from journal_fixtures import PASSWORD_ENV, fresh_schema_url
from newsletter_helpers import ISSUE, set_option

from newsletter.sending import journal as jn


def share_journal(root: Path, postgres_url: str, extra: str = "") -> jn.Location:
    """Point the newsletter at ``root`` at a new PostgreSQL journal; its location."""
    url = fresh_schema_url(postgres_url)
    set_option(root, "send", f'journal_url = "{url}"\n{extra}'.rstrip())
    return jn.Location("postgresql", url=url, password_env=PASSWORD_ENV)


def readers(root: Path, name: str, count: int, domains: tuple[str, ...] = ("example.com",)) -> set[str]:
    """``subscribers/<name>.csv`` with ``count`` readers spread over ``domains``; their addresses."""
    emails = [f"{name}-{i}@{domains[i % len(domains)]}" for i in range(count)]
    rows = [f"{email},Reader {i},subscribed" for i, email in enumerate(emails)]
    (root / "subscribers" / f"{name}.csv").write_text("email,name,status\n" + "\n".join(rows) + "\n")
    return set(emails)


def start(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``newsletter send ISSUE ARGS --yes`` as a process of its own, its output kept."""
    return subprocess.Popen([sys.executable, "-m", "newsletter.cli", "send", ISSUE, *args, "--yes"], cwd=root,
                            env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def query(location: jn.Location, sql: str, params: tuple[object, ...] = ()) -> list[tuple]:
    db = jn.open_database(location, read_only=True)
    try:
        return [tuple(row) for row in db.execute(sql, params).fetchall()]
    finally:
        db.close()


def execute(location: jn.Location, sql: str, params: tuple[object, ...] = ()) -> None:
    """One statement in a transaction of its own (to set the journal up as a test needs it)."""
    db = jn.open_database(location)
    try:
        with db.transaction():
            db.execute(sql, params)
    finally:
        db.close()


def statuses(location: jn.Location, list_name: str) -> dict[str, str]:
    return {str(e): str(s) for e, s in query(location, "SELECT d.email, d.status FROM deliveries d JOIN sends s "
                                                       "ON s.id = d.send WHERE s.list=?", (list_name,))}


def until(condition: Callable[[], bool], *, timeout: float = 60, alive: subprocess.Popen[str] | None = None,
          what: str = "") -> None:
    """Wait (looking every 20 ms) until ``condition`` holds; fail after ``timeout`` or if ``alive`` exits."""
    deadline = time.monotonic() + timeout
    while not condition():
        if alive is not None and alive.poll() is not None:
            out, err = alive.communicate()
            raise AssertionError(f"the sender exited ({alive.returncode}) before {what}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def ready(location: jn.Location, list_name: str) -> bool:
    """The send of ``list_name`` has begun delivering: workers may join."""
    try:
        rows = query(location, "SELECT r.ready FROM runs r JOIN sends s ON s.id = r.send WHERE s.list=? AND "
                               "r.kind='send' ORDER BY r.id DESC LIMIT 1", (list_name,))
    except jn.JournalError:  # the first sender has not made the journal's tables yet
        return False
    return bool(rows) and rows[0][0] is not None


def most_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    return max((bisect.bisect_right(times, t) - bisect.bisect_left(times, t - window + 1e-9) for t in times),
               default=0)
