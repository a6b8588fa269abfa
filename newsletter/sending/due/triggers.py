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
import json
from dataclasses import dataclass, field
from pathlib import Path

from ...lists import iter_subscribers, select_recipients, select_rows
from ...lists.read import Subscriber, parse_tags
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


def list_state(sequence: Sequence, path: Path) -> str:
    """The list file as it is (its inode, size and time of change: every edit makes a new one, since lists
    are rewritten whole) and the sequence's rules: the same as at the last run means the list holds
    nobody new and nobody who must stop, and need not be read again (a run every few minutes, a list of
    a hundred thousand readers). Leaving the list is caught by the step's own send in any case: a reader
    it no longer selects is stopped (``steps.py``)."""
    try:
        stat = path.stat()
    except OSError:
        return ""
    rules = f"{sequence.trigger.describe()};{','.join(sequence.stop_tags)}"
    return f"{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns};{rules}"


def changes(sequence: Sequence, path: Path, known: dict[str, str], started: float, now: dt.datetime, *,
            backfill: bool) -> Changes:
    """New readers and stops for ``sequence`` from its list at ``path``, given the readers the journal
    ``known``s (key -> state) and when the sequence ``started``.

    The list is read the way a send reads it (``select_rows``: no Subscriber built, only the tags column
    when there are stop tags), which is all a run needs for readers it knows; only when some subscribed
    row is new to the sequence is it read again in full, for those rows' trigger columns."""
    found = Changes()
    present: set[str] = set()
    new: set[str] = set()
    stop_tags = set(sequence.stop_tags)
    for key, _email, _name, fields in select_rows(path, columns=["tags"] if stop_tags else []):
        present.add(key)
        state = known.get(key)
        if state is None:
            new.add(key)
        elif state == ACTIVE and stop_tags and fields and not fields.endswith('""}'):
            stopping = sorted(stop_tags & {t.lower() for t in parse_tags(json.loads(fields)["tags"])})
            if stopping:
                found.stops[key] = f"tagged {stopping[0]}"
    if new:
        found.new = _new_readers(sequence, path, new, started, now, backfill=backfill)
    gone = [key for key, state in known.items() if state == ACTIVE and key not in present]
    if gone:
        found.stops.update(_departures(path, set(gone)))
    return found


def _new_readers(sequence: Sequence, path: Path, keys: set[str], started: float, now: dt.datetime, *,
                 backfill: bool) -> list[NewReader]:
    """Those of ``keys`` whose trigger has fired: enrolled (or ``before``, on the list at the start)."""
    first = sequence.steps[0].delay if sequence.steps else None
    stop_tags = set(sequence.stop_tags)
    readers = []
    for sub in select_recipients(path, only=keys):  # a Subscriber for the new rows alone, not the whole list
        if sub.key not in keys or stop_tags & {t.lower() for t in sub.tags}:
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
        readers.append(NewReader(sub.key, sub.email, BEFORE if before else ACTIVE, moment.timestamp(), next_at,
                                 own_zone if zone_named(own_zone) else ""))
    return readers


def _departures(path: Path, keys: set[str]) -> dict[str, str]:
    """Why each of these readers is no longer among the subscribed rows."""
    reasons = dict.fromkeys(keys, "left the list (removed)")
    for sub in iter_subscribers(path):
        if sub.key in keys and sub.status != "subscribed":
            reasons[sub.key] = f"left the list ({sub.status})"
    return reasons
