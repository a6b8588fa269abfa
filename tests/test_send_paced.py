"""Pacing through a real ``newsletter send`` process (issue 15, part 3): the per-domain cap, read from the
journal's timestamps, over a scaled-down clock (NEWSLETTER_TEST_HOUR_SECONDS, test-only: an hour lasts
that many seconds)."""

from __future__ import annotations

import bisect
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

ISSUE = "issues/2026-11-25-first-dispatch"
HOUR_SECONDS = 1.5


def most_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    return max((bisect.bisect_right(times, t) - bisect.bisect_right(times, t - window) for t in times), default=0)


def sent_times(root: Path) -> dict[str, list[float]]:
    db = sqlite3.connect(root / ".newsletter" / "journal.sqlite")
    try:
        rows = db.execute("SELECT email, updated FROM deliveries WHERE status='sent'").fetchall()
    finally:
        db.close()
    by_domain: dict[str, list[float]] = {}
    for email, updated in rows:
        by_domain.setdefault(email.rpartition("@")[2], []).append(updated)
    return by_domain


def test_a_domain_cap_spreads_the_send_over_scaled_hours(sendgrid_newsletter: Path, sendgrid_standin):
    rows = [f"reader{i}@example.com,Reader,subscribed" for i in range(25)]
    rows += [f"reader{i}@example.org,Reader,subscribed" for i in range(5)]
    (sendgrid_newsletter / "subscribers" / "readers.csv").write_text("email,name,status\n" + "\n".join(rows) + "\n")
    path = sendgrid_newsletter / "newsletter.toml"
    path.write_text(path.read_text() + '\n[send.domains]\n"example.com" = 10\n')

    done = subprocess.run([sys.executable, "-m", "newsletter.cli", "send", ISSUE, "--list", "readers", "--yes"],
                          cwd=sendgrid_newsletter,
                          env={**os.environ, "NEWSLETTER_TEST_HOUR_SECONDS": str(HOUR_SECONDS)},
                          capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stdout + done.stderr
    counts = sendgrid_standin.counts()
    assert len(counts) == 30 and max(counts.values()) == 1  # everyone, once
    times = sent_times(sendgrid_newsletter)
    capped, free = times["example.com"], times["example.org"]
    assert most_in_any_window(capped, HOUR_SECONDS * 0.95) == 10  # never more than the cap in an "hour"
    assert max(capped) - min(capped) >= 2 * HOUR_SECONDS * 0.95  # 10, 10 an hour later, 5 two hours later
    assert max(free) - min(free) < HOUR_SECONDS / 2  # the other domain was not held up
    assert "wait for the next slot" in done.stderr


def test_the_cap_counts_what_an_earlier_run_sent(sendgrid_newsletter: Path, sendgrid_standin):
    """Two lists, one after the other, through the same journal: the second waits for the first's hour."""
    subscribers = sendgrid_newsletter / "subscribers"
    for name, start in (("first", 0), ("second", 100)):
        rows = [f"reader{i}@example.com,Reader,subscribed" for i in range(start, start + 8)]
        (subscribers / f"{name}.csv").write_text("email,name,status\n" + "\n".join(rows) + "\n")
    path = sendgrid_newsletter / "newsletter.toml"
    path.write_text(path.read_text() + '\n[send]\nmax_per_hour = 10\n')
    hour = 5.0  # long enough for the second process to start within the first's "hour"
    env = {**os.environ, "NEWSLETTER_TEST_HOUR_SECONDS": str(hour)}

    for name in ("first", "second"):
        done = subprocess.run([sys.executable, "-m", "newsletter.cli", "send", ISSUE, "--list", name, "--yes"],
                              cwd=sendgrid_newsletter, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr

    every = sorted(t for ts in sent_times(sendgrid_newsletter).values() for t in ts)
    assert len(every) == 16 and len(sendgrid_standin.counts()) == 16
    assert most_in_any_window(every, hour * 0.95) == 10
    assert every[-1] - every[0] >= hour * 0.95  # the last 6 waited for the first run's hour to pass


def test_warmup_keeps_to_the_first_days_cap_most_recently_active_first(sendgrid_newsletter: Path, sendgrid_standin):
    """Day one of the warm-up plan allows 50: the 50 most recently subscribed go, the other 10 a "day" later."""
    rows = [f"reader{i}@example.com,Reader,subscribed,2026-{1 + i // 28:02d}-{1 + i % 28:02d}" for i in range(60)]
    (sendgrid_newsletter / "subscribers" / "readers.csv").write_text("email,name,status,subscribed_at\n"
                                                                      + "\n".join(rows) + "\n")
    path = sendgrid_newsletter / "newsletter.toml"
    path.write_text(path.read_text() + "\n[send]\nwarmup = true\n")
    hour = 0.1  # a day lasts 2.4 s

    done = subprocess.run([sys.executable, "-m", "newsletter.cli", "send", ISSUE, "--list", "readers", "--yes"],
                          cwd=sendgrid_newsletter, env={**os.environ, "NEWSLETTER_TEST_HOUR_SECONDS": str(hour)},
                          capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stdout + done.stderr
    assert len(sendgrid_standin.counts()) == 60 and max(sendgrid_standin.counts().values()) == 1
    order = [a.email for a in sendgrid_standin.accepted]
    assert set(order[:50]) == {f"reader{i}@example.com" for i in range(10, 60)}  # the newest first
    times = sorted(t for ts in sent_times(sendgrid_newsletter).values() for t in ts)
    assert times[50] - times[0] >= 24 * hour * 0.95
