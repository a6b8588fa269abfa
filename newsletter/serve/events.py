"""A provider's event webhook: which of its events change a list, and into which store events.

The provider reads its own format (``EventWebhook.read``, in ``providers/``) into ``ReportedEvent``s;
two things are taken from them here:

- list events, for ``subscribers sync``: those that mean "stop mailing this
  address" (hard bounces, drops for a bounced or invalid address, spam reports,
  (group) unsubscribes). Each names its list through the ``list`` label
  every send carries; an event without one (a message sent another way) applies
  to every list.
- message events, for ``newsletter stats``: every report about a copy of an issue
  that carries the ``issue_id`` label (delivered, deferred, bounce hard
  or soft, dropped, open, click, spam report, unsubscribe), in the store's own
  words (``store.MESSAGE_KINDS``), with the reader key a click link of that issue
  carries instead of the address, and the receiving domain's group;
- batch reports, for ``newsletter resolve``: the events that prove the provider took
  a request (processed, delivered, deferred, bounce, dropped), counted per request
  by the run and batch labels every request carries (``providers.base``'s
  ``RUN_LABEL`` and ``BATCH_LABEL``).

``read_batch`` does everything to a batch that takes time (the signature, the
JSON, every address) in one call, which the service runs in a thread: a
large batch must not hold up every other request on the event loop.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from ..errors import NewsletterError
from ..lists import key_or_problem
from ..lists.domain_groups import stats_group
from ..providers.contract import EventWebhook, ReportedEvent
from .store import EVERY_LIST, BatchReport, Event, MessageEvent, stamp

ReaderOf = Callable[[str, str], str]  # (issue id, address) -> the reader key its click links carry


def message_events(reported: list[ReportedEvent], source: str, reader_of: ReaderOf, at: str) -> list[MessageEvent]:
    """The message events of the reports that name an issue (the ``issue_id`` label of a send)."""
    found = []
    for item in reported:
        if item.message is None or not item.issue:
            continue
        moment = stamp(dt.datetime.fromtimestamp(item.timestamp, dt.UTC)) if item.timestamp is not None else at
        email = item.email.strip()
        found.append(MessageEvent(issue=item.issue, kind=item.message, at=moment, reader=reader_of(item.issue, email),
                                  group=stats_group(item.email), variant=item.variant, detail=item.detail,
                                  source=source, source_id=item.source_id))
    return found


def batch_reports(reported: list[ReportedEvent], at: str) -> list[BatchReport]:
    """The events that prove the provider took a request, counted per (run, batch, kind) with the first and
    last time, for the events that carry a send's run and batch labels."""
    found: dict[tuple[str, str, str], BatchReport] = {}
    for item in reported:
        if item.request is None or not item.run or not item.batch:
            continue
        moment = stamp(dt.datetime.fromtimestamp(item.timestamp, dt.UTC)) if item.timestamp else at
        key = (item.run, item.batch, item.request)
        known = found.get(key)
        found[key] = BatchReport(*key, 1, moment, moment) if known is None else BatchReport(
            *key, known.events + 1, min(known.first_at, moment), max(known.last_at, moment))
    return list(found.values())


def list_events(reported: list[ReportedEvent], source: str, served: Collection[str], at: str) -> list[Event]:
    """The list events among a batch's reports."""
    events: list[Event] = []
    for item in reported:
        if item.departure is None:
            continue
        list_name = item.list_name
        if list_name is None:
            list_name = EVERY_LIST
        elif list_name not in served:
            continue  # another newsletter's (or list's) mail
        key = key_or_problem(item.email)[0] or item.email.strip().lower()
        events.append(Event(list_name=list_name, kind=item.departure, email=item.email.strip(), key=key, at=at,
                            source=source, source_id=item.source_id))
    return events


def batch_digest(timestamp: str, body: bytes) -> str:
    """What identifies a signed batch: a digest of the bytes the provider signs (its timestamp, then the body).

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


def read_batch(webhook: EventWebhook, source: str, verify: Callable[[bytes, str, str], bool], body: bytes,
               signature: str, timestamp: str, *, served: Collection[str], max_age: float, now: float, at: str,
               reader_of: ReaderOf | None = None) -> Batch | Refusal:
    """Check a webhook request (timestamp age, then signature) and read it with ``webhook``; the events are
    stored with ``source`` (the provider's name). CPU-bound, so run in a thread."""
    try:
        age = now - int(timestamp)
    except ValueError:
        return Refusal(403, "signature missing or not valid" if not timestamp else "bad timestamp")
    if not verify(body, signature, timestamp):
        return Refusal(403, "signature missing or not valid")
    if abs(age) > max_age:
        return Refusal(403, "stale batch")
    try:
        reported = webhook.read(body)
    except NewsletterError as err:
        return Refusal(400, str(err))
    return Batch(batch_digest(timestamp, body), list_events(reported, source, served, at),
                 message_events(reported, source, reader_of, at) if reader_of is not None else [],
                 batch_reports(reported, at))
