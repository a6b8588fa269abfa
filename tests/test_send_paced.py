"""Pacing through ``engine.send`` to the SendGrid stand-in (issue 15, part 3): the per-domain cap, the hourly
cap and the warm-up, read from the journal's timestamps, at their real sizes (an hour is 3,600 s).

The send's clock is injected: when pacing waits for the next slot, ``HoursPass`` lets that time pass at once
by moving every timestamp in the journal that much into the past, as the hours would have. The journal then
holds the send's timeline as it would have been, and the caps are checked on it.
"""

from __future__ import annotations

import bisect
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from newsletter.config import load_settings
from newsletter.sending import engine

ISSUE = "issues/2026-11-25-first-dispatch"
HOUR = 3600.0


class HoursPass:
    """A pacing clock whose waits take no time: the journal's timestamps move back by the time waited."""

    def __init__(self, root: Path) -> None:
        self.journal = root / ".newsletter" / "journal.sqlite"
        self.waits: list[float] = []

    def now(self) -> float:
        return time.time()

    def wait_until(self, moment: float, should_stop: Callable[[], bool]) -> bool:
        waited = moment - time.time()
        if waited > 0:
            self.waits.append(waited)
            db = sqlite3.connect(self.journal)
            try:
                with db:
                    db.execute("UPDATE deliveries SET updated = updated - ?", (waited,))
            finally:
                db.close()
        return not should_stop()


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


def send(root: Path, list_name: str, clock: HoursPass) -> list[str]:
    """``newsletter send ISSUE --list LIST --yes`` in this process, on ``clock``; what it said."""
    said: list[str] = []
    report = engine.send(load_settings(root), root / ISSUE, engine.SendOptions(list_name=list_name, confirmed=True),
                         say=said.append, pacing_clock=clock)
    assert report.ok, report.summary()
    return said


def test_a_domain_cap_spreads_the_send_over_the_hours(sendgrid_newsletter: Path, sendgrid_standin):
    rows = [f"reader{i}@example.com,Reader,subscribed" for i in range(25)]
    rows += [f"reader{i}@example.org,Reader,subscribed" for i in range(5)]
    (sendgrid_newsletter / "subscribers" / "readers.csv").write_text("email,name,status\n" + "\n".join(rows) + "\n")
    path = sendgrid_newsletter / "newsletter.toml"
    path.write_text(path.read_text() + '\n[send.domains]\n"example.com" = 10\n')
    clock = HoursPass(sendgrid_newsletter)

    said = send(sendgrid_newsletter, "readers", clock)

    counts = sendgrid_standin.counts()
    assert len(counts) == 30 and max(counts.values()) == 1  # everyone, once
    times = sent_times(sendgrid_newsletter)
    capped, free = times["example.com"], times["example.org"]
    assert most_in_any_window(capped, HOUR * 0.95) == 10  # never more than the cap in an hour
    assert max(capped) - min(capped) >= 2 * HOUR * 0.95  # 10, 10 an hour later, 5 two hours later
    assert max(free) - min(free) < HOUR / 2  # the other domain was not held up
    assert len([wait for wait in clock.waits if wait > HOUR * 0.95]) == 2  # an hour each, for the next 10
    assert any("wait for the next slot" in line for line in said), said


def test_the_cap_counts_what_an_earlier_run_sent(sendgrid_newsletter: Path, sendgrid_standin):
    """Two lists, one after the other, through the same journal: the second waits for the first's hour."""
    subscribers = sendgrid_newsletter / "subscribers"
    for name, start in (("first", 0), ("second", 100)):
        rows = [f"reader{i}@example.com,Reader,subscribed" for i in range(start, start + 8)]
        (subscribers / f"{name}.csv").write_text("email,name,status\n" + "\n".join(rows) + "\n")
    path = sendgrid_newsletter / "newsletter.toml"
    path.write_text(path.read_text() + '\n[send]\nmax_per_hour = 10\n')
    clock = HoursPass(sendgrid_newsletter)

    send(sendgrid_newsletter, "first", clock)
    assert not clock.waits  # 8 of the hour's 10
    send(sendgrid_newsletter, "second", clock)

    every = sorted(t for ts in sent_times(sendgrid_newsletter).values() for t in ts)
    assert len(every) == 16 and len(sendgrid_standin.counts()) == 16
    assert most_in_any_window(every, HOUR * 0.95) == 10
    assert every[-1] - every[0] >= HOUR * 0.95  # the last 6 waited for the first run's hour to pass


def test_warmup_keeps_to_the_first_days_cap_most_recently_active_first(sendgrid_newsletter: Path, sendgrid_standin):
    """Day one of the warm-up plan allows 50: the 50 most recently subscribed go, the other 10 a day later."""
    rows = [f"reader{i}@example.com,Reader,subscribed,2026-{1 + i // 28:02d}-{1 + i % 28:02d}" for i in range(60)]
    (sendgrid_newsletter / "subscribers" / "readers.csv").write_text("email,name,status,subscribed_at\n"
                                                                      + "\n".join(rows) + "\n")
    path = sendgrid_newsletter / "newsletter.toml"
    path.write_text(path.read_text() + "\n[send]\nwarmup = true\n")

    send(sendgrid_newsletter, "readers", HoursPass(sendgrid_newsletter))

    assert len(sendgrid_standin.counts()) == 60 and max(sendgrid_standin.counts().values()) == 1
    order = [a.email for a in sendgrid_standin.accepted]
    assert set(order[:50]) == {f"reader{i}@example.com" for i in range(10, 60)}  # the newest first
    times = sorted(t for ts in sent_times(sendgrid_newsletter).values() for t in ts)
    assert times[50] - times[0] >= 24 * HOUR * 0.95
