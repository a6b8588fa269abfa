"""The event store's vocabulary and interface, shared by the SQLite and PostgreSQL stores.

An event is one fact a reader or a provider told the service: someone asked
to subscribe, confirmed, left, bounced or complained. Events are only ever
appended; ``subscribers sync`` reads the ones after a list's cursor.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..providers.contract import (  # the words a provider's events are read into: the store keeps them
    BOUNCED as BOUNCED,
)
from ..providers.contract import (
    CLICKED as CLICKED,
)
from ..providers.contract import (
    COMPLAINED as COMPLAINED,
)
from ..providers.contract import (
    DEFERRED as DEFERRED,
)
from ..providers.contract import (
    DELIVERED as DELIVERED,
)
from ..providers.contract import (
    DROPPED as DROPPED,
)
from ..providers.contract import (
    HARD as HARD,
)
from ..providers.contract import (
    OPENED as OPENED,
)
from ..providers.contract import (
    PROCESSED as PROCESSED,
)
from ..providers.contract import (
    SOFT as SOFT,
)
from ..providers.contract import (
    UNSUBSCRIBED as UNSUBSCRIBED,
)

# 2: a heartbeat row (/healthz proves a write), webhook batches remembered by a digest of their payload
# (not by their signature bytes, which can be re-encoded), and confirmation mails counted by mailbox.
# 3: clicks (the /c/ route) and message events (what a provider reports of each copy), for `newsletter stats`.
# 4: batch reports (what the provider reported of each request of a send, by its run and batch), for `resolve`.
SCHEMA_VERSION = 4

SUBSCRIBED = "subscribed"  # asked to subscribe, and the confirmation mail was accepted: changes nothing in the list
CONFIRMED = "confirmed"  # clicked Confirm (or re-subscribed from a genuine unsubscribe link)
KINDS = (SUBSCRIBED, CONFIRMED, UNSUBSCRIBED, BOUNCED, COMPLAINED)
DEPARTURES = (UNSUBSCRIBED, BOUNCED, COMPLAINED)
EVERY_LIST = "*"  # a provider event that does not name its list applies to every list


# What a provider reports of one copy of an issue (message events), in the store's own words: the
# words of the provider contract (providers/contract.py), which providers read their events into.
MESSAGE_KINDS = (DELIVERED, DEFERRED, BOUNCED, DROPPED, OPENED, CLICKED, COMPLAINED, UNSUBSCRIBED)
# What proves a request reached the provider, counted per request (run, batch) for `newsletter resolve`.
EVIDENCE_KINDS = (PROCESSED, DELIVERED, DEFERRED, BOUNCED, DROPPED)


@dataclass(frozen=True)
class BatchReport:
    """How many events of one kind (``EVIDENCE_KINDS``) the provider reported about the copies one request
    carried, and when the first and last happened (stamps). The request is named by the labels every send
    gives it (``providers.base.RUN_LABEL``, ``BATCH_LABEL``)."""

    run: str
    batch: str
    kind: str
    events: int
    first_at: str
    last_at: str


@dataclass(frozen=True)
class ClickRecord:
    """One request for a click link: which issue and link, whose (a reader key, never an address), and the
    verdict reached with the request's client address and user agent, which are not kept."""

    issue: str
    link: int  # 0: the hidden honeypot link
    url: str
    reader: str  # click_tokens.Click.reader: a keyed hash, the same for every link of one recipient
    group: int  # the receiving domain's group (lists.domain_groups.STATS_GROUPS)
    variant: int  # the A/B variant (0: none)
    sent_at: int  # when the copy was sent (Unix seconds)
    at: str  # stamp() of the request
    human: bool
    reason: str = ""  # why not human: "head", "prefetch", "too soon", "honeypot"
    id: int = 0


@dataclass(frozen=True)
class MessageEvent:
    """One provider report about one copy of an issue (``MESSAGE_KINDS``), with no address: the reader key."""

    issue: str
    kind: str
    at: str  # stamp(): when the provider says it happened
    reader: str = ""
    group: int = 0
    variant: int = 0
    detail: str = ""  # a bounce: HARD or SOFT
    source: str = ""
    source_id: str = ""  # stored once


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def stamp(moment: dt.datetime) -> str:
    """The one text form of a time in the store: UTC, to the microsecond, so text order is time order."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Event:
    """One appended fact. ``key`` is the normalized address the lists compare by."""

    list_name: str
    kind: str
    email: str
    key: str
    at: str  # stamp() of when the service accepted it
    name: str = ""
    asked_at: str = ""  # for a confirmation: when the subscription was asked for (the consent record)
    source: str = ""  # "web", "one-click", "sendgrid"
    source_id: str = ""  # the provider's id of the event (SendGrid's sg_event_id): stored once
    id: int = 0  # given by the store


class EventStore(Protocol):
    """What the service and ``subscribers sync`` need from a store; both stores behave the same."""

    where: str  # a description for messages, never holding a password

    def append(self, events: Sequence[Event]) -> int:
        """Append events durably in one transaction (skipping a ``source_id`` seen before); returns how many."""

    def append_batch(self, digest: str, events: Sequence[Event], at: str, forget_before: str,
                     message_events: Sequence[MessageEvent] = (), reports: Sequence[BatchReport] = ()) -> int | None:
        """Append a signed webhook batch's events (and its message events, and add its batch reports to those
        of their request) and remember its ``digest``, in one transaction; None (nothing appended) when the
        digest was seen before: a replay. Digests older than ``forget_before`` are forgotten (batches that
        old are refused as stale anyway)."""

    def batch_reports_of(self, run: str) -> list[BatchReport]:
        """What the provider reported of each request of the run ``run`` (its uid), by batch and kind."""

    def record_click(self, click: ClickRecord) -> int:
        """Append a click durably; its id."""

    def mark_clicks(self, ids: Sequence[int], reason: str) -> None:
        """Count the clicks ``ids`` as a program's after all (``reason``): the honeypot was hit after them."""

    def clicks_of(self, issue: str) -> list[ClickRecord]:
        """Every click of the issue (its id), oldest first."""

    def message_events_of(self, issue: str) -> list[MessageEvent]:
        """Every message event of the issue (its id), oldest first."""

    def record_confirmation(self, event: Event, mailbox: str) -> None:
        """Append a ``subscribed`` event and count one confirmation mail to ``mailbox``, in one transaction."""

    def confirmations_since(self, mailbox: str, since: str) -> int:
        """Confirmation mails sent to ``mailbox`` (limits.mailbox_key) at or after ``since`` (a stamp)."""

    def unsynced(self, list_name: str) -> list[Event]:
        """Events for ``list_name`` (or every list) after its sync cursor, oldest first."""

    def events_since(self, list_name: str, since: str) -> list[Event]:
        """Events for ``list_name`` (or every list) at or after ``since`` (a stamp), synced or not, oldest
        first: a staged send judges what came back during its wait even if a sync ran meanwhile."""

    def mark_synced(self, list_name: str, last_id: int) -> None:
        """Move ``list_name``'s cursor to ``last_id`` once its events are in the list file."""

    def ping(self) -> None:
        """Raise NewsletterError if the store cannot be reached."""

    def heartbeat(self, at: str) -> None:
        """Commit a write (the heartbeat row) durably; raise NewsletterError if nothing can be recorded."""

    def close(self) -> None: ...


def event_columns() -> tuple[str, ...]:
    """The event table's columns in the order both stores write and read them."""
    return ("list_name", "kind", "email", "key", "name", "at", "asked_at", "source", "source_id")


def event_values(event: Event) -> tuple[str | None, ...]:
    return (event.list_name, event.kind, event.email, event.key, event.name, event.at, event.asked_at,
            event.source, event.source_id or None)


def event_of_row(row: Sequence[Any]) -> Event:
    """An Event from ``SELECT id, <event_columns()>``."""
    (id_, list_name, kind, email, key, name, at, asked_at, source, source_id) = row
    return Event(list_name=list_name, kind=kind, email=email, key=key, name=name or "", at=at,
                 asked_at=asked_at or "", source=source or "", source_id=source_id or "", id=int(id_))


def click_columns() -> tuple[str, ...]:
    return ("issue", "link", "url", "reader", "domain_group", "variant", "sent_at", "at", "human", "reason")


def click_values(click: ClickRecord) -> tuple[Any, ...]:
    return (click.issue, click.link, click.url, click.reader, click.group, click.variant, click.sent_at, click.at,
            int(click.human), click.reason)


def click_of_row(row: Sequence[Any]) -> ClickRecord:
    """A ClickRecord from ``SELECT id, <click_columns()>``."""
    (id_, issue, link, url, reader, group, variant, sent_at, at, human, reason) = row
    return ClickRecord(issue=issue, link=int(link), url=url, reader=reader, group=int(group), variant=int(variant),
                       sent_at=int(sent_at), at=at, human=bool(human), reason=reason or "", id=int(id_))


def message_event_columns() -> tuple[str, ...]:
    return ("issue", "kind", "at", "reader", "domain_group", "variant", "detail", "source", "source_id")


def message_event_values(event: MessageEvent) -> tuple[Any, ...]:
    return (event.issue, event.kind, event.at, event.reader, event.group, event.variant, event.detail, event.source,
            event.source_id or None)


def message_event_of_row(row: Sequence[Any]) -> MessageEvent:
    (issue, kind, at, reader, group, variant, detail, source, source_id) = row
    return MessageEvent(issue=issue, kind=kind, at=at, reader=reader or "", group=int(group), variant=int(variant),
                        detail=detail or "", source=source or "", source_id=source_id or "")


def batch_report_columns() -> tuple[str, ...]:
    return ("run", "batch", "kind", "events", "first_at", "last_at")


def batch_report_values(report: BatchReport) -> tuple[Any, ...]:
    return (report.run, report.batch, report.kind, report.events, report.first_at, report.last_at)


def batch_report_of_row(row: Sequence[Any]) -> BatchReport:
    (run, batch, kind, events, first_at, last_at) = row
    return BatchReport(run=run, batch=batch, kind=kind, events=int(events), first_at=first_at, last_at=last_at)
