"""SendGrid's Event Webhook: which of its events change a list, and into which store events.

A batch is a JSON array of events. Two things are read from it:

- list events, for ``subscribers sync``: those that mean "stop mailing this
  address" (hard bounces, drops for a bounced or invalid address, spam reports,
  (group) unsubscribes). Each names its list through the ``list`` custom argument
  every send carries; an event without one (a message sent another way) applies
  to every list.
- message events, for ``newsletter stats``: every report about a copy of an issue
  that carries the ``issue_id`` custom argument (delivered, deferred, bounce hard
  or soft, dropped, open, click, spam report, unsubscribe), in the store's own
  words (``store.MESSAGE_KINDS``), with the reader key a click link of that issue
  carries instead of the address, and the receiving domain's group;
- batch reports, for ``newsletter resolve``: the events that prove SendGrid took
  a request (processed, delivered, deferred, bounce, dropped), counted per request
  by the run and batch custom arguments every request carries (``providers.base``'s
  ``RUN_LABEL`` and ``BATCH_LABEL``).

SendGrid's event names are read here and nowhere else outside ``providers/``.

``read_batch`` does everything to a batch that takes time (the signature, the
JSON, every address) in one call, which the service runs in a thread: a
large batch must not hold up every other request on the event loop.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from ..errors import NewsletterError
from ..lists import key_or_problem
from ..lists.domain_groups import stats_group
from ..providers.base import BATCH_LABEL, RUN_LABEL
from .store import (
    BOUNCED,
    CLICKED,
    COMPLAINED,
    DEFERRED,
    DELIVERED,
    DROPPED,
    EVERY_LIST,
    HARD,
    OPENED,
    PROCESSED,
    SOFT,
    UNSUBSCRIBED,
    BatchReport,
    Event,
    MessageEvent,
    stamp,
)

_KINDS = {"bounce": BOUNCED, "spamreport": COMPLAINED, "unsubscribe": UNSUBSCRIBED,
          "group_unsubscribe": UNSUBSCRIBED}
_DROPPED_FOR = ("bounced address", "invalid")  # a drop for these reasons means the address does not take mail


def kind_of(item: dict[str, Any]) -> str | None:
    """The store's kind for one SendGrid event, or None when it changes nothing."""
    name = item.get("event")
    if name == "bounce" and item.get("type") == "blocked":  # a temporary block, not a dead address
        return None
    if name == "dropped":
        reason = str(item.get("reason", "")).lower()
        return BOUNCED if any(r in reason for r in _DROPPED_FOR) else None
    return _KINDS.get(name) if isinstance(name, str) else None


_MESSAGE_KINDS = {"delivered": DELIVERED, "deferred": DEFERRED, "bounce": BOUNCED, "dropped": DROPPED,
                  "open": OPENED, "click": CLICKED, "spamreport": COMPLAINED, "unsubscribe": UNSUBSCRIBED,
                  "group_unsubscribe": UNSUBSCRIBED}
ReaderOf = Callable[[str, str], str]  # (issue id, address) -> the reader key its click links carry


def _items(body: bytes) -> list[dict[str, Any]]:
    try:
        items = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise NewsletterError("the event batch is not JSON") from None
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise NewsletterError("the event batch is not a JSON array of events")
    return items


def _source_id(item: dict[str, Any]) -> str:
    return "sendgrid:" + str(item.get("sg_event_id") or hashlib.sha256(
        json.dumps(item, sort_keys=True).encode("utf-8")).hexdigest())


def message_events(items: list[dict[str, Any]], reader_of: ReaderOf, at: str) -> list[MessageEvent]:
    """The message events of the items that name an issue (the ``issue_id`` custom argument of a send)."""
    found = []
    for item in items:
        kind = _MESSAGE_KINDS.get(str(item.get("event")))
        issue, email = item.get("issue_id"), item.get("email")
        if kind is None or not isinstance(issue, str) or not issue or not isinstance(email, str):
            continue
        detail = ""
        if kind == BOUNCED:
            detail = SOFT if item.get("type") == "blocked" else HARD  # blocked: refused for now, not a dead address
        variant = str(item.get("variant", ""))
        when = item.get("timestamp")
        moment = stamp(dt.datetime.fromtimestamp(when, dt.UTC)) if isinstance(when, int) and when > 0 else at
        found.append(MessageEvent(issue=issue, kind=kind, at=moment, reader=reader_of(issue, email.strip()),
                                  group=stats_group(email), variant=int(variant) if variant.isdigit() else 0,
                                  detail=detail, source="sendgrid", source_id=_source_id(item)))
    return found


_EVIDENCE = {"processed": PROCESSED, "delivered": DELIVERED, "deferred": DEFERRED, "bounce": BOUNCED,
             "dropped": DROPPED}


def batch_reports(items: list[dict[str, Any]], at: str) -> list[BatchReport]:
    """The events that prove SendGrid took a request, counted per (run, batch, kind) with the first and last
    time, for the items that carry a send's run and batch labels."""
    found: dict[tuple[str, str, str], BatchReport] = {}
    for item in items:
        kind, run, batch = _EVIDENCE.get(str(item.get("event"))), item.get(RUN_LABEL), item.get(BATCH_LABEL)
        if kind is None or not isinstance(run, str) or not isinstance(batch, str) or not run or not batch:
            continue
        when = item.get("timestamp")
        moment = stamp(dt.datetime.fromtimestamp(when, dt.UTC)) if isinstance(when, int) and when > 0 else at
        known = found.get((run, batch, kind))
        found[(run, batch, kind)] = BatchReport(run, batch, kind, 1, moment, moment) if known is None else \
            BatchReport(run, batch, kind, known.events + 1, min(known.first_at, moment), max(known.last_at, moment))
    return list(found.values())


def parse_batch(body: bytes, served: Collection[str], at: str) -> list[Event]:
    """The store events in one webhook body; a NewsletterError if it is not SendGrid's JSON array."""
    return list_events(_items(body), served, at)


def list_events(items: list[dict[str, Any]], served: Collection[str], at: str) -> list[Event]:
    """The list events among a batch's items."""
    events: list[Event] = []
    for item in items:
        kind = kind_of(item)
        email = item.get("email")
        if kind is None or not isinstance(email, str):
            continue
        list_name = item.get("list")
        if list_name is None:
            list_name = EVERY_LIST
        elif list_name not in served:
            continue  # another newsletter's (or list's) mail
        key = key_or_problem(email)[0] or email.strip().lower()
        events.append(Event(list_name=list_name, kind=kind, email=email.strip(), key=key, at=at,
                            source="sendgrid", source_id=_source_id(item)))
    return events


def batch_digest(timestamp: str, body: bytes) -> str:
    """What identifies a signed batch: a digest of the bytes SendGrid signs (its timestamp, then the body).

    Not the signature: an ECDSA signature can be re-encoded (base64 the decoder reads alike) or malleated
    (``s`` replaced by ``n - s``) into other bytes that verify just as well, so a replay keyed on the
    signature is a replay accepted. The payload cannot change without breaking the signature.
    """
    return hashlib.sha256(timestamp.encode("ascii", "replace") + b"\n" + body).hexdigest()


@dataclass(frozen=True)
class Batch:
    """A verified, fresh batch: its digest (for replays) and the store events it holds."""

    digest: str
    events: list[Event]
    message_events: list[MessageEvent] = field(default_factory=list)
    reports: list[BatchReport] = field(default_factory=list)


@dataclass(frozen=True)
class Refusal:
    """Why a batch is not recorded, and the HTTP status that says so."""

    status: int
    reason: str


def read_batch(verify: Callable[[bytes, str, str], bool], body: bytes, signature: str, timestamp: str, *,
               served: Collection[str], max_age: float, now: float, at: str,
               reader_of: ReaderOf | None = None) -> Batch | Refusal:
    """Check a webhook request (timestamp age, then signature) and parse it; CPU-bound, so run in a thread."""
    try:
        age = now - int(timestamp)
    except ValueError:
        return Refusal(403, "signature missing or not valid" if not timestamp else "bad timestamp")
    if not verify(body, signature, timestamp):
        return Refusal(403, "signature missing or not valid")
    if abs(age) > max_age:
        return Refusal(403, "stale batch")
    try:
        items = _items(body)
    except NewsletterError as err:
        return Refusal(400, str(err))
    return Batch(batch_digest(timestamp, body), list_events(items, served, at),
                 message_events(items, reader_of, at) if reader_of is not None else [], batch_reports(items, at))
