"""What the list says about a sequence's readers: who starts it now, and who must stop.

The list is read once per run (``lists.select_recipients``: subscribed, valid, de-duplicated rows, an
address suppressed on any row left out). A row not yet in the sequence starts it when its trigger says
so: ``confirmed`` at its ``consent_confirmed_at`` (written when ``newsletter serve``'s sign-up is synced
in), ``date:COLUMN`` at that date, ``added`` and ``tag:NAME`` when a run first sees the row (or the tag).
Readers who were on the list when the sequence started are recorded as ``before`` and never enrolled,
unless the writer asks for ``--backfill``: nobody gets a welcome a year late. An active reader no longer
among the subscribed rows (unsubscribed, bounced, complained, removed) or who gained a stop tag stops.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from ...lists import iter_subscribers, select_recipients
from ...lists.read import Subscriber
from .delays import zone_named
from .enrolments import ACTIVE, BEFORE, NewReader
from .sequences import Sequence


@dataclass
class Changes:
    """What one run changes in a sequence's enrolments."""

    new: list[NewReader] = field(default_factory=list)
    stops: dict[str, str] = field(default_factory=dict)  # key -> why


def _moment(text: str) -> dt.datetime | None:
    text = text.strip()
    if not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _date_moment(text: str, zone: dt.tzinfo) -> dt.datetime | None:
    """A date column's value: a date is its midnight in the reader's zone; a date and time as it says."""
    text = text.strip()
    if len(text) == 10:
        try:
            return dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), tzinfo=zone)
        except ValueError:
            return None
    return _moment(text)


def trigger_moment(sequence: Sequence, sub: Subscriber, zone: dt.tzinfo, now: dt.datetime) -> dt.datetime | None:
    """When this row's trigger fired (None: it has not)."""
    trigger = sequence.trigger
    if trigger.kind == "added":
        return now
    if trigger.kind == "tag":
        return now if trigger.value.lower() in (t.lower() for t in sub.tags) else None
    if trigger.kind == "confirmed":
        return _moment(sub.fields.get("consent_confirmed_at") or "")
    return _date_moment(sub.fields.get(trigger.value) or "", zone)


def changes(sequence: Sequence, path: Path, known: dict[str, str], started: float, now: dt.datetime, *,
            backfill: bool) -> Changes:
    """New readers and stops for ``sequence`` from its list at ``path``, given the readers the journal
    ``known``s (key -> state) and when the sequence ``started``."""
    found = Changes()
    present: set[str] = set()
    first = sequence.steps[0].delay if sequence.steps else None
    stop_tags = set(sequence.stop_tags)
    for sub in select_recipients(path):
        present.add(sub.key)
        tags = {t.lower() for t in sub.tags}
        stopping = sorted(stop_tags & tags)
        state = known.get(sub.key)
        if state is not None:
            if state == ACTIVE and stopping:
                found.stops[sub.key] = f"tagged {stopping[0]}"
            continue
        if stopping:
            continue
        own_zone = (sub.fields.get("timezone") or "").strip()
        zone = zone_named(own_zone) or sequence.zone
        moment = trigger_moment(sequence, sub, zone, now)
        if moment is None:
            continue
        before = moment.timestamp() < started or (moment == now and now.timestamp() == started)
        if before and backfill:
            moment, before = now, False
        next_at = first.after(moment, zone).timestamp() if (first is not None and not before) else None
        found.new.append(NewReader(sub.key, sub.email, BEFORE if before else ACTIVE, moment.timestamp(), next_at,
                                   own_zone if zone_named(own_zone) else ""))
    gone = [key for key, state in known.items() if state == ACTIVE and key not in present]
    if gone:
        found.stops.update(_departures(path, set(gone)))
    return found


def _departures(path: Path, keys: set[str]) -> dict[str, str]:
    """Why each of these readers is no longer among the subscribed rows."""
    reasons = dict.fromkeys(keys, "left the list (removed)")
    for sub in iter_subscribers(path):
        if sub.key in keys and sub.status != "subscribed":
            reasons[sub.key] = f"left the list ({sub.status})"
    return reasons
