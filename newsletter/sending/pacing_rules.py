"""Pacing: how many to send now, to which recipient domains, and when the next slot opens.

Mailbox providers throttle and then junk a sender whose volume jumps:
``[send] max_per_hour`` caps the whole send per rolling hour, ``[send.domains]``
caps each recipient domain per rolling hour (``"gmail.com" = 2000``), and
with ``[send] warmup = true`` the warm-up plan caps each day of a new
domain or IP. Everything is computed from the timestamps of sends already
made (the journal's), so the caps hold across runs and restarts.

The warm-up plan starts at 50 messages on the first day and doubles daily
for the first week, then grows by half each day until the whole list fits
in a day. That is the shape mailbox providers and sending services publish
for a new domain or dedicated IP (start small with the most engaged
readers, roughly double while bounces and complaints stay low); the numbers
are this project's choice, kept conservative, not any one provider's table.
Pure functions; the send loop calls them.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeVar

from ..config import SendSettings

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ..config import Settings
    from ..lists import Subscriber

HOUR = 3600.0
DAY = 86400.0
WARMUP_START = 50
WARMUP_FAST_DAYS = 7  # days of doubling
WARMUP_FAST_GROWTH = 2.0
WARMUP_SLOW_GROWTH = 1.5
ACTIVITY_COLUMNS = ("last_active", "last_opened", "last_clicked", "subscribed_at")  # most telling first


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].strip().lower()


@dataclass(frozen=True)
class PacingLimits:
    """The caps in force: per rolling hour overall and per recipient domain, and per rolling day (warm-up)."""

    per_hour: int = 0  # 0: no cap
    per_domain_hour: Mapping[str, int] = field(default_factory=dict)
    per_day: int = 0  # 0: no cap

    @classmethod
    def from_settings(cls, send: SendSettings, *, first_send_at: float | None = None,
                      now: float | None = None) -> PacingLimits:
        """The caps ``[send]`` sets; the warm-up cap of the current day when ``warmup = true``."""
        per_day = 0
        if send.warmup:
            day = 0 if first_send_at is None or now is None else max(0, int((now - first_send_at) // DAY))
            per_day = warmup_cap(day)
        return cls(per_hour=send.max_per_hour, per_domain_hour=dict(send.domains), per_day=per_day)


@dataclass(frozen=True)
class PacingDecision:
    """How many of each domain's pending recipients may go now, and when more may (None: nothing held)."""

    allowed: dict[str, int]
    next_slot_at: float | None

    @property
    def total(self) -> int:
        return sum(self.allowed.values())


def _room(cap: int, used: int) -> float:
    return math.inf if cap <= 0 else max(0, cap - used)


def _frees_at(times: Sequence[float], cap: int, window: float, extra_now: int, now: float) -> float:
    """When a window with sends at ``times`` (plus ``extra_now`` at ``now``) has room for one more."""
    recent = sorted([t for t in times if t > now - window] + [now] * extra_now)
    over = len(recent) - cap  # this many must leave the window first
    return recent[over] + window if over >= 0 else now


def plan_now(sent: Iterable[tuple[float, str]], pending: Mapping[str, int], limits: PacingLimits,
             now: float) -> PacingDecision:
    """Split what may go now among the domains with recipients pending.

    ``sent``: (time, recipient address or domain) of sends already made; ``pending``: domain -> recipients
    still to send. The room under the overall caps is shared evenly across domains (so one big domain does
    not starve the others), each domain within its own cap."""
    history = [(t, domain_of(d) if "@" in d else d.lower()) for t, d in sent]
    hour = [t for t, _ in history if t > now - HOUR]
    day = [t for t, _ in history if t > now - DAY]
    by_domain = Counter(d for t, d in history if t > now - HOUR)
    caps = {d.lower(): c for d, c in limits.per_domain_hour.items()}
    demand = {d.lower(): min(n, _room(caps.get(d.lower(), 0), by_domain[d.lower()]))
              for d, n in pending.items() if n > 0}
    budget = min(_room(limits.per_hour, len(hour)), _room(limits.per_day, len(day)))
    allowed = {d: 0 for d in demand}
    active = sorted(d for d, n in demand.items() if n > 0)
    while active and budget > 0:
        share = max(1, int(budget // len(active))) if budget != math.inf else math.inf
        for d in list(active):
            give = min(share, demand[d] - allowed[d], budget)
            allowed[d] += int(give)
            budget -= give
            if allowed[d] >= demand[d]:
                active.remove(d)
            if budget <= 0:
                break
    held = [d for d, n in pending.items() if n > 0 and allowed.get(d.lower(), 0) < n]
    if not held:
        return PacingDecision(allowed, None)
    planned = sum(allowed.values())
    overall = []
    if limits.per_hour > 0 and len(hour) + planned >= limits.per_hour:
        overall.append(_frees_at(hour, limits.per_hour, HOUR, planned, now))
    if limits.per_day > 0 and len(day) + planned >= limits.per_day:
        overall.append(_frees_at(day, limits.per_day, DAY, planned, now))
    slots = []
    for d in held:
        d = d.lower()
        waits = list(overall)
        cap = caps.get(d, 0)
        if cap > 0 and by_domain[d] + allowed.get(d, 0) >= cap:
            waits.append(_frees_at([t for t, x in history if x == d], cap, HOUR, allowed.get(d, 0), now))
        slots.append(max(waits) if waits else now)
    return PacingDecision(allowed, min(slots))


# --- warm-up ------------------------------------------------------------------


WARMUP_LAST_DAY = 100  # the cap is past any list's size long before (about 10**20): later days are the same


def warmup_cap(day: int) -> int:
    """The most messages to send on warm-up day ``day`` (0 is the first day).

    Days past ``WARMUP_LAST_DAY`` count as that day: ``warmup = true`` left on for years made the
    growth overflow a float (day 1,760), and every send stopped with an OverflowError.
    """
    day = min(day, WARMUP_LAST_DAY)
    fast = min(day, WARMUP_FAST_DAYS)
    cap = WARMUP_START * WARMUP_FAST_GROWTH ** fast * WARMUP_SLOW_GROWTH ** max(0, day - WARMUP_FAST_DAYS)
    return int(round(cap, -1)) if cap >= 100 else int(cap)


def warmup_schedule(list_size: int, max_days: int = 60) -> list[int]:
    """Daily caps from day 1 until a day's cap covers ``list_size`` (at least the first day)."""
    caps = [warmup_cap(0)]
    while caps[-1] < list_size and len(caps) < max_days:
        caps.append(warmup_cap(len(caps)))
    return caps


class HasFields(Protocol):
    """A subscriber as the warm-up order reads it: its list columns."""

    @property
    def fields(self) -> Mapping[str, str]: ...


SubscriberT = TypeVar("SubscriberT", bound=HasFields)


def warmup_order(subscribers: Iterable[SubscriberT], columns: Sequence[str] = ACTIVITY_COLUMNS) -> list[SubscriberT]:
    """Subscribers most recently active first: by the first of ``last_active``, ``last_opened``,
    ``last_clicked``, ``subscribed_at`` a row has (ISO dates sort as text); rows with none go last,
    in list order."""
    rows = list(subscribers)

    def activity(sub: SubscriberT) -> str:
        for column in columns:
            value = sub.fields.get(column) or ""
            if value.strip():
                return value.strip()
        return ""

    dated = sorted((s for s in rows if activity(s)), key=activity, reverse=True)
    return dated + [s for s in rows if not activity(s)]


def warmup_report(settings: Settings, list_name: str | None = None) -> str:
    """The warm-up plan as ``newsletter doctor --warmup`` prints it: the daily caps, and with a list,
    who goes on which day (most recently active first)."""
    from ..lists import iter_subscribers, require_list

    subscribers: list[Subscriber] = []
    if list_name:
        path = require_list(settings.list_path(list_name))
        subscribers = warmup_order(s for s in iter_subscribers(path, statuses=("subscribed",)) if s.key)
    caps = warmup_schedule(len(subscribers) if subscribers else 100_000)
    lines = ["Warm-up plan for a new sending domain or IP: the most to send each day.",
             "Start with the most recently active subscribers; stop and wait a day if bounces or complaints rise.",
             ""]
    done = 0
    for number, cap in enumerate(caps, start=1):
        line = f"  day {number:>2}: {cap:>9,}"
        if subscribers:
            today = subscribers[done:done + cap]
            if today:
                line += f"  ({len(today):,} subscribers: {today[0].email} ... {today[-1].email})"
            done += len(today)
        lines.append(line)
    lines.append("")
    if subscribers:
        lines.append(f"{len(subscribers):,} subscribed on list '{list_name}': {len(caps)} days of warm-up.")
    lines.append("With [send] warmup = true in newsletter.toml, send keeps to these caps, counted from the journal.")
    return "\n".join(lines)
