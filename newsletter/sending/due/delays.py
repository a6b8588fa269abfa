"""A sequence step's ``delay:``: how long after the step before it (or after the reader's start) it goes.

Written as a writer says it: ``"0"`` (at once), ``"3d"``, ``"2h"``, ``"1d 12h"``, ``"90m"``, ``"1w"``, and
optionally a time of day, ``"10d 09:00"``: ten days later, at nine in the morning in the reader's time
zone (their list row's ``timezone`` column), else the sequence's (``timezone`` in sequence.toml), else
UTC. A time of day that has already passed on the day the wait ends (only possible for a wait of
less than a day, like ``"0 09:00"``) means the next day at that time.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from dataclasses import dataclass

UNITS = {"w": 7 * 86_400, "d": 86_400, "h": 3_600, "m": 60}
_PART = re.compile(r"(\d+)\s*([wdhm])")
_TIME = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")
FORMS = '"0", "3d", "2h", "1d 12h", "1w" or "10d 09:00" (a wait, then optionally a time of day)'


class DelayError(ValueError):
    """A ``delay:`` that is not one of FORMS."""


@dataclass(frozen=True)
class Delay:
    """A wait in seconds, and the time of day the step waits for after it (None: any time)."""

    seconds: int
    at: dt.time | None = None
    text: str = ""

    def after(self, moment: dt.datetime, zone: dt.tzinfo) -> dt.datetime:
        """When the step is due, the step before it having been at ``moment``."""
        later = moment + dt.timedelta(seconds=self.seconds)
        if self.at is None:
            return later
        local = later.astimezone(zone)
        due = dt.datetime.combine(local.date(), self.at, tzinfo=zone)
        if due < moment:
            due = dt.datetime.combine(local.date() + dt.timedelta(days=1), self.at, tzinfo=zone)
        return due.astimezone(dt.UTC)


def parse_delay(text: str) -> Delay:
    """``text`` as a Delay, or a DelayError saying which forms there are."""
    words = text.strip().lower().split()
    at = None
    if words and (match := _TIME.fullmatch(words[-1])):
        at = dt.time(int(match[1]), int(match[2]))
        words = words[:-1]
    body = "".join(words)
    if body in ("", "0") and (body == "0" or at is not None):
        return Delay(0, at, text.strip())
    seconds, position = 0, 0
    for match in _PART.finditer(body):
        if match.start() != position:
            break
        seconds += int(match[1]) * UNITS[match[2]]
        position = match.end()
    if not body or position != len(body):
        raise DelayError(f"'{text}' is not a delay: write {FORMS}")
    return Delay(seconds, at, text.strip())


def zone_named(name: str) -> dt.tzinfo | None:
    """The IANA time zone ``name`` ("Europe/Paris"), or None if there is no such zone."""
    name = name.strip()
    if not name:
        return None
    if name.upper() in ("UTC", "Z"):
        return dt.UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None
