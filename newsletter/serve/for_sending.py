"""``sending.service.SubscriberService`` implemented on the event store: what a send asks of the service;
and ``sending.evidence.BatchEvidence``: what SendGrid reported of each request, for ``newsletter resolve``.

The commands make one (``ServiceForSending(settings)``) and hand it to ``engine.send`` and ``run_due``;
``sending/`` knows only the interface. It matches the ``Protocol`` by its shape (mypy checks it where the
commands pass it), so neither package imports the other.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ..config import Settings
from .connect import open_store, store_is_configured
from .store import BOUNCED, COMPLAINED, stamp
from .sync import apply_unsynced_departures, sync_events


class ServiceForSending:
    """The configured event store (SQLite file or PostgreSQL), opened for each question and closed after."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def apply_departures(self, list_name: str) -> None:
        apply_unsynced_departures(self.settings, list_name)

    def apply_events(self, list_name: str) -> str:
        result = sync_events(self.settings, list_name)
        return result.summary if result.changes else ""

    def signals_since(self, list_name: str, since: float) -> dict[str, list[dict[str, str]]]:
        """Bounces and complaints the store recorded for the list since ``since``, synced or not (a sync
        during a staged send's wait hides nothing); nothing when no store is configured; a NewsletterError
        when it is configured but down."""
        if not store_is_configured(self.settings):
            return {}
        after = stamp(dt.datetime.fromtimestamp(since, dt.UTC))
        store = open_store(self.settings, create=False)
        try:
            recent = store.events_since(list_name, after)
        finally:
            store.close()
        return {"bounces": [{"email": e.email, "status": "5.0.0"} for e in recent if e.kind == BOUNCED],
                "spam_reports": [{"email": e.email} for e in recent if e.kind == COMPLAINED]}

    def reports_of(self, run: str) -> list[ReportInSeconds] | None:
        """What SendGrid reported of each request of the run ``run`` (its uid): the events the webhook counted
        per request (``events.batch_reports``); None when no store is configured (nothing was ever served)."""
        if not store_is_configured(self.settings):
            return None
        store = open_store(self.settings, create=False)
        try:
            return [ReportInSeconds(r.batch, r.kind, r.events, _seconds(r.first_at), _seconds(r.last_at))
                    for r in store.batch_reports_of(run)]
        finally:
            store.close()


@dataclass(frozen=True)
class ReportInSeconds:
    """A ``store.BatchReport`` with its times in Unix seconds: the shape of ``sending.evidence.ProviderReport``."""

    batch: str
    kind: str
    events: int
    first_at: float
    last_at: float


def _seconds(moment: str) -> float:
    """Unix seconds of a store stamp (``store.stamp``)."""
    return dt.datetime.strptime(moment, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC).timestamp()
