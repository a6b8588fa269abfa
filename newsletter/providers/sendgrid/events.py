"""SendGrid's Event Webhook format: which of its events mean what, in the words of the contract.

A batch is a JSON array of events. Each is read for two things: whether the address leaves the list
(hard bounces, drops for a bounced or invalid address, spam reports, (group) unsubscribes), and what
it says about a copy of an issue (delivered, deferred, bounce hard or soft, dropped, open, click, spam
report, unsubscribe), and whether it proves SendGrid took the request that carried the copy (processed,
delivered, deferred, bounce, dropped). The send labels every copy with custom arguments (``list``,
``issue_id``, an A/B ``variant``, the request's ``newsletter_run`` and ``newsletter_batch``), which come
back on each event. SendGrid's event names are read here and nowhere else.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ...errors import NewsletterError
from ..base import BATCH_LABEL, RUN_LABEL
from ..contract import (
    BOUNCED,
    CLICKED,
    COMPLAINED,
    DEFERRED,
    DELIVERED,
    DROPPED,
    HARD,
    OPENED,
    PROCESSED,
    SOFT,
    UNSUBSCRIBED,
    ReportedEvent,
)

_DEPARTURES = {"bounce": BOUNCED, "spamreport": COMPLAINED, "unsubscribe": UNSUBSCRIBED,
               "group_unsubscribe": UNSUBSCRIBED}
_DROPPED_FOR = ("bounced address", "invalid")  # a drop for these reasons means the address does not take mail
_MESSAGES = {"delivered": DELIVERED, "deferred": DEFERRED, "bounce": BOUNCED, "dropped": DROPPED,
             "open": OPENED, "click": CLICKED, "spamreport": COMPLAINED, "unsubscribe": UNSUBSCRIBED,
             "group_unsubscribe": UNSUBSCRIBED}
_REQUEST_TAKEN = {"processed": PROCESSED, "delivered": DELIVERED, "deferred": DEFERRED, "bounce": BOUNCED,
                  "dropped": DROPPED}  # events that come only for a request SendGrid took


def departure_of(item: dict[str, Any]) -> str | None:
    """Whether one SendGrid event takes the address off the list (BOUNCED, ...), or None."""
    name = item.get("event")
    if name == "bounce" and item.get("type") == "blocked":  # a temporary block, not a dead address
        return None
    if name == "dropped":
        reason = str(item.get("reason", "")).lower()
        return BOUNCED if any(r in reason for r in _DROPPED_FOR) else None
    return _DEPARTURES.get(name) if isinstance(name, str) else None


def _source_id(item: dict[str, Any]) -> str:
    return "sendgrid:" + str(item.get("sg_event_id") or hashlib.sha256(
        json.dumps(item, sort_keys=True).encode("utf-8")).hexdigest())


def _items(body: bytes) -> list[dict[str, Any]]:
    try:
        items = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise NewsletterError("the event batch is not JSON") from None
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise NewsletterError("the event batch is not a JSON array of events")
    return items


def read_events(body: bytes) -> list[ReportedEvent]:
    """The events of one webhook body that say anything, in order; a NewsletterError if the body is not
    SendGrid's JSON array."""
    found = []
    for item in _items(body):
        email = item.get("email")
        if not isinstance(email, str):
            continue
        departure = departure_of(item)
        message = _MESSAGES.get(str(item.get("event")))
        request = _REQUEST_TAKEN.get(str(item.get("event")))
        if departure is None and message is None and request is None:
            continue
        detail = ""
        if message == BOUNCED:
            detail = SOFT if item.get("type") == "blocked" else HARD  # blocked: refused for now, not a dead address
        list_name, issue = item.get("list"), item.get("issue_id")  # a list that is not a name matches none
        variant = str(item.get("variant", ""))
        when = item.get("timestamp")
        found.append(ReportedEvent(
            email=email, source_id=_source_id(item), departure=departure, message=message, detail=detail,
            list_name=None if list_name is None else list_name if isinstance(list_name, str) else "",
            issue=issue if isinstance(issue, str) else "", variant=int(variant) if variant.isdigit() else 0,
            timestamp=when if isinstance(when, int) and when > 0 else None, request=request,
            run=_text(item.get(RUN_LABEL)), batch=_text(item.get(BATCH_LABEL))))
    return found


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
