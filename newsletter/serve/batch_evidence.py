"""``sending.evidence.BatchEvidence`` from the event store: what SendGrid reported of each request of a run.

The service counts the events that prove SendGrid took a request (``events.batch_reports``) by the run and
batch every request carries; ``newsletter resolve`` reads them here, through the interface ``sending/``
defines, so that ``sending/`` never imports ``serve/``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

from ..config import Settings
from ..sending.evidence import ProviderReport
from .connect import open_store, store_is_configured
from .store import EventStore


def _seconds(stamp: str) -> float:
    return dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC).timestamp()


class StoreEvidence:
    """The batch reports of an open event store."""

    def __init__(self, store: EventStore):
        self.store = store

    def reports_of(self, run: str) -> list[ProviderReport]:
        return [ProviderReport(r.batch, r.kind, r.events, _seconds(r.first_at), _seconds(r.last_at))
                for r in self.store.batch_reports_of(run)]


@contextmanager
def store_evidence(settings: Settings) -> Iterator[StoreEvidence | None]:
    """The configured event store's reports, or None when there is no store (the webhook was never served)."""
    if not store_is_configured(settings):
        yield None
        return
    store = open_store(settings, create=False)
    try:
        yield StoreEvidence(store)
    finally:
        store.close()
