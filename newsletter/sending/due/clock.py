"""What time it is, asked in one place: every part of ``send --due`` takes a clock instead of reading the time.

A clock is any function that returns the current moment (aware, in UTC). ``system_clock`` is the
real one; ``--now TIME`` (``fixed_clock``) lets a writer see or do what would be due at another time,
and lets tests run a month of sequences in a second without sleeping. Times are kept in the journal
as Unix seconds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from ...errors import NewsletterError

Clock = Callable[[], dt.datetime]


def system_clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def fixed_clock(moment: dt.datetime) -> Clock:
    """A clock that always says ``moment`` (``send --due --now TIME``)."""
    fixed = moment.astimezone(dt.UTC)
    return lambda: fixed


def parse_moment(text: str, option: str) -> dt.datetime:
    """A date and time as a writer types it (ISO 8601; without a zone: this machine's local time)."""
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise NewsletterError(f"{option} '{text}' is not a date and time like 2027-03-02T09:00+01:00",
                              hint="write the date, a T, the time and the zone's offset (or Z for UTC)") from None
    return moment if moment.tzinfo else moment.astimezone()


def of_seconds(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def shown(moment: dt.datetime | float) -> str:
    """A moment as ``send --due`` and ``status`` print it: minutes, in UTC."""
    if not isinstance(moment, dt.datetime):
        moment = of_seconds(moment)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def duration(seconds: float) -> str:
    """How long, as a writer reads it: "3 d 4 h", "2 h 5 min", "40 s"."""
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min"
    return f"{secs} s"
