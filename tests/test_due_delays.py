"""A sequence step's `delay:` as writers write it, and when it makes the step due (time zones, DST)."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from newsletter.sending.due.delays import DelayError, parse_delay

PARIS = zoneinfo.ZoneInfo("Europe/Paris")


@pytest.mark.parametrize(("text", "seconds", "at"), [
    ("0", 0, None), ("3d", 3 * 86_400, None), ("2h", 7_200, None), ("1d 12h", 129_600, None), ("1w", 604_800, None),
    ("90m", 5_400, None), ("10d 09:00", 864_000, dt.time(9, 0)), ("0 18:30", 0, dt.time(18, 30)),
    ("09:00", 0, dt.time(9, 0)),
])
def test_the_forms_a_writer_writes(text: str, seconds: int, at: dt.time | None) -> None:
    delay = parse_delay(text)
    assert (delay.seconds, delay.at) == (seconds, at)


@pytest.mark.parametrize("text", ["", "3 days", "d3", "3x", "25:00", "-1d", "3d 9am"])
def test_anything_else_is_refused_with_the_forms(text: str) -> None:
    with pytest.raises(DelayError, match='write "0", "3d"'):
        parse_delay(text)


def test_a_time_of_day_is_read_in_the_zone_and_across_a_change_of_clocks() -> None:
    before_dst = dt.datetime(2031, 3, 28, 15, 0, tzinfo=dt.UTC)  # Paris changes clocks on 2031-03-30
    due = parse_delay("3d 09:00").after(before_dst, PARIS)
    assert due == dt.datetime(2031, 3, 31, 9, 0, tzinfo=PARIS)
    assert due.astimezone(dt.UTC).hour == 7  # summer time: UTC+2


def test_a_time_of_day_already_past_means_the_next_day() -> None:
    evening = dt.datetime(2031, 1, 5, 20, 0, tzinfo=dt.UTC)
    assert parse_delay("0 09:00").after(evening, dt.UTC) == dt.datetime(2031, 1, 6, 9, 0, tzinfo=dt.UTC)
    assert parse_delay("0 21:00").after(evening, dt.UTC) == dt.datetime(2031, 1, 5, 21, 0, tzinfo=dt.UTC)
