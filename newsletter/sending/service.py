"""What a send needs of the subscriber service (``newsletter serve``'s event store), as an interface this
package owns: ``serve/`` implements it (``serve/for_sending.py``) and the commands pass it in, so the
imports point down, from the service to the send, never from ``sending/`` up into ``serve/``.

``None`` where a ``SubscriberService`` is asked for means there is no service to ask (tests, benchmarks);
the CLI always passes one, which does nothing when no store is configured.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

# Signals as the providers' ``fetch_signals`` give them: {"bounces": [{"email", "status"}], "spam_reports": ...}
Signals = Mapping[str, Sequence[Mapping[str, str]]]


class SubscriberService(Protocol):
    """The event store's departures and signals, for one list at a time."""

    def apply_departures(self, list_name: str) -> None:
        """Before a live send selects anyone: mark in the list who left (unsubscribed, bounced, complained)
        since the last sync. Raises a NewsletterError when a configured store cannot be read."""

    def apply_events(self, list_name: str) -> str:
        """Before ``send --due`` reads a list: every unsynced event (sign-ups in, departures marked), as
        ``subscribers sync`` does; a line saying what changed ("" when nothing did)."""

    def signals_since(self, list_name: str, since: float) -> Signals:
        """The bounces and complaints recorded for the list since ``since`` (Unix seconds), in the
        providers' shape; empty when no store is configured."""
