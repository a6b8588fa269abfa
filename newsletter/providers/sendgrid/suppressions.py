"""What SendGrid recorded about addresses, read page by page: its suppressions (for ``subscribers sync``)
and the bounces, blocks and spam reports since a time (for a staged send's circuit breaker)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from ...config import Settings
from ..base import TransientError
from .client import SendGridProvider, from_settings, json_list, scrub

SUPPRESSION_KINDS = {  # endpoint -> status written to the list
    "suppression/unsubscribes": "unsubscribed",
    "suppression/bounces": "bounced",
    "suppression/spam_reports": "complained",
}
_STATUS_RANK = {"unsubscribed": 0, "bounced": 1, "complained": 2}  # the more specific status wins
SIGNAL_KINDS = {  # what the breaker reads -> SendGrid endpoint
    "bounces": "suppression/bounces",
    "blocks": "suppression/blocks",
    "spam_reports": "suppression/spam_reports",
}


def fetch_suppressions(provider: SendGridProvider, *, page_size: int = 500, attempts: int = 3) -> dict[str, str]:
    """Every address SendGrid will not deliver to: address -> unsubscribed | bounced | complained.

    Reads the global unsubscribes, bounces, spam reports and (when
    configured) the unsubscribe group's suppressions, page by page.
    """
    found: dict[str, str] = {}

    def note(address: Any, status: str) -> None:
        if isinstance(address, str) and "@" in address:
            address = address.strip()
            if _STATUS_RANK[status] >= _STATUS_RANK.get(found.get(address, ""), -1):
                found[address] = status

    for path, status in SUPPRESSION_KINDS.items():
        for item in _pages(provider, path, page_size, attempts):
            note(item.get("email") if isinstance(item, dict) else None, status)
    group = provider.settings.unsubscribe_group
    if group is not None:
        for item in _pages(provider, f"asm/groups/{int(group)}/suppressions", page_size, attempts):
            note(item if isinstance(item, str) else item.get("email") if isinstance(item, dict) else None,
                 "unsubscribed")
    return found


def _pages(provider: SendGridProvider, path: str, page_size: int, attempts: int) -> Iterator[Any]:
    """Items of a paged GET endpoint; stops on a short page, or one that repeats what came before."""
    offset = 0
    seen: set[str] = set()
    while True:
        response = _with_retries(attempts, _reading(provider, path, {"limit": page_size, "offset": offset}))
        items = json_list(response, path)
        fresh = [i for i in items if json.dumps(i, sort_keys=True) not in seen]
        yield from fresh
        if len(items) < page_size or not fresh:  # the last page, or an endpoint that ignores paging
            return
        seen.update(json.dumps(i, sort_keys=True) for i in fresh)
        offset += len(items)


def _reading(provider: SendGridProvider, path: str, query: dict[str, int]) -> Callable[[], Any]:
    """One GET of ``/v3/<path>`` with ``query``, as a request ``_with_retries`` can repeat."""
    timeout = provider.settings.timeout
    return lambda: provider.call(f"reading /v3/{path}", lambda c: c._(path).get(query_params=query, timeout=timeout),
                                 idempotent=True)


def _with_retries(attempts: int, request: Callable[[], Any]) -> Any:
    for attempt in range(1, attempts + 1):
        try:
            return request()
        except TransientError as err:
            if attempt == attempts:
                raise
            time.sleep(min(err.retry_after if err.retry_after is not None else 2.0 ** attempt, 30.0))
    raise AssertionError("unreachable")


def fetch_signals(settings: Settings, *, since: float, until: float | None = None, page_size: int = 500,
                  attempts: int = 3) -> dict[str, list[dict[str, Any]]]:
    """Bounces, blocks and spam reports SendGrid recorded from ``since`` (to ``until``), Unix seconds.

    Plain data for ``sending/stage_rules.py``: ``{"bounces": [{"email", "created", "status", "reason"}, ...],
    "blocks": [...], "spam_reports": [{"email", "created"}, ...]}``, read page by page with SendGrid's
    ``start_time``/``end_time`` filter, so a stage sees what came back after it was sent.
    """
    provider = from_settings(settings)
    found: dict[str, list[dict[str, Any]]] = {}
    try:
        for kind, path in SIGNAL_KINDS.items():
            found[kind] = list(_signal_pages(provider, path, since, until, page_size, attempts))
    finally:
        provider.close()
    return found


def _signal_pages(provider: SendGridProvider, path: str, since: float, until: float | None, page_size: int,
                  attempts: int) -> Iterator[dict[str, Any]]:
    offset = 0
    while True:
        query = {"start_time": int(since), "limit": page_size, "offset": offset}
        if until is not None:
            query["end_time"] = int(until)
        items = json_list(_with_retries(attempts, _reading(provider, path, query)), path)
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("email"), str):
                yield {"email": item["email"].strip(), "created": int(item.get("created") or 0),
                       "status": str(item.get("status") or ""), "reason": scrub(str(item.get("reason") or ""))}
        if len(items) < page_size:
            return
        offset += len(items)
