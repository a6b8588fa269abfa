"""Pacing building blocks: per-hour and per-domain caps from the timestamps of sends already made, over a
scaled-down clock, and the warm-up plan that `newsletter doctor --warmup` prints."""

from __future__ import annotations

import bisect
import dataclasses

import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.config import SendSettings, load_settings
from newsletter.errors import NewsletterError
from newsletter.sending.pacing_rules import (
    DAY,
    HOUR,
    PacingLimits,
    plan_now,
    warmup_cap,
    warmup_order,
    warmup_schedule,
)


def _simulate(pending: dict[str, int], limits: PacingLimits, start: float = 1_800_000_000.0,
              history: list[tuple[float, str]] | None = None):
    """Run a send the way the loop will: ask, send what is allowed (a journal row each), wait for the slot."""
    journal = list(history or [])
    left = dict(pending)
    now = start
    for _ in range(1000):
        decision = plan_now(journal, left, limits, now)
        for domain, n in decision.allowed.items():
            journal.extend((now, f"reader{len(journal) + i}@{domain}") for i in range(n))
            left[domain] -= n
        if decision.next_slot_at is None:
            assert not any(left.values())
            return journal, now
        assert decision.next_slot_at > now  # never a busy loop
        now = decision.next_slot_at
    raise AssertionError("the send never finished")


def _max_in_window(times: list[float], window: float) -> int:
    """The most sends in any window of ``window`` seconds ending at a send."""
    times = sorted(times)
    return max((bisect.bisect_right(times, t) - bisect.bisect_right(times, t - window) for t in times), default=0)


def test_a_domain_cap_spreads_a_send_over_hours():
    limits = PacingLimits(per_hour=3000, per_domain_hour={"gmail.com": 2000})
    journal, finished = _simulate({"gmail.com": 5000, "example.org": 300}, limits)

    gmail = [t for t, a in journal if a.endswith("@gmail.com")]
    assert len(gmail) == 5000 and len(journal) == 5300  # everyone, once
    assert _max_in_window(gmail, HOUR) == 2000
    assert _max_in_window([t for t, _ in journal], HOUR) <= 3000
    assert finished - 1_800_000_000.0 == 2 * HOUR  # 2000 now, 2000 an hour later, 1000 after two
    assert all(t == 1_800_000_000.0 for t, a in journal if a.endswith("@example.org"))  # not held up by gmail


def test_caps_hold_across_runs_from_the_journal():
    start = 1_800_000_000.0
    earlier_run = [(start - 1800 + i * 0.1, f"old{i}@gmail.com") for i in range(1900)]  # half an hour ago
    limits = PacingLimits(per_domain_hour={"gmail.com": 2000})

    decision = plan_now(earlier_run, {"gmail.com": 500, "example.com": 10}, limits, start)

    assert decision.allowed == {"gmail.com": 100, "example.com": 10}
    # with those 100 sent the hour holds 2000 to gmail.com: the next opens when the oldest leaves it
    assert decision.next_slot_at == earlier_run[0][0] + HOUR


def test_no_caps_sends_everything_at_once():
    decision = plan_now([], {"gmail.com": 10_000, "example.com": 5}, PacingLimits(), 0.0)
    assert decision.allowed == {"gmail.com": 10_000, "example.com": 5}
    assert decision.next_slot_at is None


def test_the_overall_cap_is_shared_between_domains():
    decision = plan_now([], {"gmail.com": 1000, "example.com": 1000, "example.org": 3}, PacingLimits(per_hour=100),
                        0.0)
    assert decision.total == 100
    assert decision.allowed["example.org"] == 3
    assert abs(decision.allowed["gmail.com"] - decision.allowed["example.com"]) <= 1
    assert decision.next_slot_at == HOUR


def test_warmup_caps_grow_daily_and_are_enforced_per_day():
    assert warmup_schedule(1000) == [50, 100, 200, 400, 800, 1600]
    assert [warmup_cap(d) for d in (0, 7, 8)] == [50, 6400, 9600]
    settings = dataclasses.replace(SendSettings(), warmup=True)
    first = 1_800_000_000.0
    day_three = PacingLimits.from_settings(settings, first_send_at=first, now=first + 2 * DAY + 5)
    assert day_three.per_day == 200
    journal, finished = _simulate({"example.com": 500}, PacingLimits.from_settings(settings), start=first)
    assert _max_in_window([t for t, _ in journal], DAY) == 50  # day one's cap, day after day
    assert finished == first + 9 * DAY


def test_warmup_left_on_for_years_still_lets_a_send_through():
    """``warmup = true`` never turned off: five years after the first send, the day's cap is still a
    number (the growth used to overflow at day 1,760 and every send stopped with a traceback)."""
    settings = dataclasses.replace(SendSettings(), warmup=True)
    first = 1_800_000_000.0
    years_later = PacingLimits.from_settings(settings, first_send_at=first, now=first + 5 * 365 * DAY)
    assert years_later.per_day >= 10**15
    assert warmup_cap(100) == warmup_cap(10_000)


def test_warmup_order_puts_the_most_recently_active_first(newsletter_root):
    from newsletter.lists import iter_subscribers

    rows = list(iter_subscribers(newsletter_root / "subscribers" / "example.csv"))
    ordered = [s.fields["subscribed_at"] for s in warmup_order(rows)]
    assert ordered == sorted(ordered, reverse=True)


def test_doctor_warmup_prints_the_plan_for_a_list(newsletter_root):
    path = newsletter_root / "newsletter.toml"
    path.write_text(path.read_text() + "\n[send]\nwarmup = true\nmax_per_hour = 500\n")
    assert load_settings(newsletter_root).send.warmup is True

    result = CliRunner().invoke(main, ["--root", str(newsletter_root), "doctor", "--warmup", "--list", "example"])

    assert result.exit_code == 0, result.output
    assert "day  1:        50" in result.output
    assert "subscribed on list 'example': 1 days" in result.output
    newest = max((s for s in iter_rows(newsletter_root) if s.status == "subscribed"),
                 key=lambda s: s.fields["subscribed_at"])
    assert f"subscribers: {newest.email} ..." in result.output


def iter_rows(root):
    from newsletter.lists import iter_subscribers

    return list(iter_subscribers(root / "subscribers" / "example.csv"))


def test_warmup_must_be_true_or_false(newsletter_root):
    path = newsletter_root / "newsletter.toml"
    path.write_text(path.read_text() + '\n[send]\nwarmup = "yes"\n')
    result = CliRunner().invoke(main, ["--root", str(newsletter_root), "doctor", "--warmup"])
    assert result.exit_code == 2
    assert "'send.warmup' must be true or false" in result.output


def test_a_domain_cap_of_zero_is_refused_not_read_as_no_cap(newsletter_root):
    """``"gmail.com" = 0`` reads like "send none to Gmail"; pacing would take it as "no cap" and send them all."""
    path = newsletter_root / "newsletter.toml"
    path.write_text(path.read_text() + '\n[send.domains]\n"gmail.com" = 0\n')
    with pytest.raises(NewsletterError, match=r"send\.domains") as error:
        load_settings(newsletter_root)
    assert error.value.exit_code == 2 and "remove" in str(error.value.hint)
