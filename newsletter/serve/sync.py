"""Bring the service's events home: apply the event store to ``subscribers/<list>.csv``.

For each address, a confirmation after any departure counts (someone who left
and came back is subscribed); among departures the stronger wins, in the
order complained > bounced > unsubscribed (``lists.DEPARTURE_PRECEDENCE``,
which SendGrid's suppressions follow too), whichever came last: a bounce then
an unsubscribe in one webhook batch is a bounced address. New confirmed
subscribers are appended with their consent dates (``subscribed_at``,
``consent_requested_at``, ``consent_confirmed_at``); a departure moves a row's
status only up that order. Each list has a cursor in the store, moved only
after the list file is written, so a sync repeated or interrupted applies
nothing twice.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ..config import Settings
from ..errors import NewsletterError, display_path
from ..lists import add_subscriber, check_list_name, iter_subscribers, mark_departures, outranks
from .connect import open_store, store_is_configured
from .store import CONFIRMED, DEPARTURES, Event, EventStore

CONSENT_COLUMNS = ("consent_requested_at", "consent_confirmed_at")
T = TypeVar("T")


@dataclass(frozen=True)
class Change:
    email: str
    was: str  # "" when the address was not on the list
    now: str


@dataclass(frozen=True)
class EventSyncReport:
    """What applying the store's events did (or, in a dry run, would do) to one list."""

    path: Path
    events: int  # events read after the cursor
    changes: tuple[Change, ...]
    written: bool
    configured: bool = True  # False: no event store yet, nothing to read

    @property
    def summary(self) -> str:
        where = display_path(self.path)
        if not self.configured:
            return f"No event store yet (start 'newsletter serve'); {where} unchanged."
        by_kind = Counter("added" if not c.was else c.now for c in self.changes)
        detail = ", ".join(f"{n} {kind}" for kind, n in sorted(by_kind.items()))
        head = f"{self.events} new event{'s' if self.events != 1 else ''} from the subscriber service"
        if not self.changes:
            return f"{head}; {where} already agrees."
        if not self.written:
            return (f"Dry run, nothing written to {where}: {head}; "
                    f"{len(self.changes)} address(es) would change ({detail}).")
        return f"{head}; changed {len(self.changes)} address(es) in {where} ({detail})."


def last_events(events: list[Event]) -> dict[str, Event]:
    """Each address's event that decides its row (requests to subscribe change nothing).

    A confirmation replaces whatever came before it; a departure replaces a
    confirmation or a weaker departure, never a stronger one. A confirmation
    without a name (the "Subscribe again" button) keeps the name the reader
    confirmed earlier in the same events.
    """
    latest: dict[str, Event] = {}
    names: dict[str, str] = {}
    for event in events:
        if event.kind == CONFIRMED:
            if event.name:
                names[event.key] = event.name
            elif event.key in names:
                event = dataclasses.replace(event, name=names[event.key])
            latest[event.key] = event
        elif event.kind in DEPARTURES:
            held = latest.get(event.key)
            if held is None or held.kind == CONFIRMED or not outranks(held.kind, event.kind):
                latest[event.key] = event
    return latest


def _date_of(stamp: str) -> dt.date:
    try:
        return dt.date.fromisoformat(stamp[:10])
    except ValueError:
        return dt.date.today()


def _plan(path: Path, latest: dict[str, Event]) -> tuple[list[Event], dict[str, str], list[Change]]:
    """(confirmations to write, key -> departure status, changes) against the list as it is now."""
    current: dict[str, tuple[str, str]] = {}
    if path.is_file():
        for sub in iter_subscribers(path):
            current.setdefault(sub.key, (sub.email, sub.status))
    joins, departures, changes = [], {}, []
    for key, event in latest.items():
        email, was = current.get(key, (event.email, ""))
        if event.kind == CONFIRMED:
            joins.append(event)
            if was != "subscribed":
                changes.append(Change(email, was, "subscribed"))
        elif was and outranks(event.kind, was):  # absent: nothing to mark; a stronger status stays
            departures[key] = event.kind
            changes.append(Change(email, was, event.kind))
    return joins, departures, changes


def _apply(path: Path, joins: list[Event], departures: dict[str, str]) -> None:
    for event in joins:
        add_subscriber(path, event.email, name=event.name or None, today=_date_of(event.at),
                       fields={"consent_requested_at": event.asked_at, "consent_confirmed_at": event.at})
    if departures:
        mark_departures(path, departures)


def _with_store(settings: Settings, work: Callable[[EventStore], T]) -> T:
    store: EventStore = open_store(settings, create=False)
    try:
        return work(store)
    finally:
        store.close()


def sync_events(settings: Settings, list_name: str, *, write: bool = True) -> EventSyncReport:
    """Apply every event after ``list_name``'s cursor to its list file, then move the cursor."""
    path = settings.list_path(check_list_name(list_name))
    if not store_is_configured(settings):
        return EventSyncReport(path=path, events=0, changes=(), written=False, configured=False)

    def work(store: EventStore) -> EventSyncReport:
        events = store.unsynced(list_name)
        joins, departures, changes = _plan(path, last_events(events))
        if write:
            if joins or departures:
                _apply(path, joins, departures)
            if events:
                store.mark_synced(list_name, events[-1].id)
        return EventSyncReport(path=path, events=len(events), changes=tuple(changes), written=write)

    return _with_store(settings, work)


def apply_unsynced_departures(settings: Settings, list_name: str) -> EventSyncReport:
    """Before a live send: mark who left (unsubscribed, bounced, complained) since the last sync.

    Only addresses whose latest event is a departure change; the cursor stays,
    so the next ``subscribers sync`` still applies everything (sign-ups too).
    Raises a NewsletterError if the store is configured but cannot be read:
    mailing someone who left is worse than waiting.
    """
    path = settings.list_path(check_list_name(list_name))
    if not store_is_configured(settings):
        return EventSyncReport(path=path, events=0, changes=(), written=False, configured=False)

    def work(store: EventStore) -> EventSyncReport:
        events = store.unsynced(list_name)
        leaving = {key: e for key, e in last_events(events).items() if e.kind in DEPARTURES}
        _joins, departures, changes = _plan(path, leaving)
        if departures:
            mark_departures(path, departures)
        return EventSyncReport(path=path, events=len(events), changes=tuple(changes), written=True)

    try:
        return _with_store(settings, work)
    except NewsletterError as err:
        raise NewsletterError(f"cannot apply the subscriber service's unsubscribes before sending: {err}",
                              hint="start the event store (see docs/serve.md, 'When the store is down') and send "
                                   "again; nobody has been mailed") from None
