"""What the provider saw of each request in the grey zone, and what that says of its recipients.

Every request carries its run's uid and its batch label to the provider (``Payload.labels``;
SendGrid: ``custom_args``), which hands them back with every event about its mail. SendGrid takes
or refuses a request whole, so any processed, delivered, deferred, bounce or dropped event about
one of its copies proves it took the request: the batch is *sent* (accepted by the provider, as the
journal means it). No report proves nothing (events may be late, or not configured): such a batch
is for the writer to settle, told what is known (``Judged.said``).

``BatchEvidence`` is the interface to wherever the reports are kept: the CLI fills it from
``newsletter serve``'s event store (``serve/for_sending.py``); nothing in ``sending/`` imports ``serve/``.
Pure: no journal, no I/O (``resolution.py`` does that).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

NO_BATCH = ""  # the unknown rows of journals written before requests kept their label: asked, never settled


class ProviderReport(Protocol):
    """How many events of one kind the provider reported about the copies one request (or one part of it)
    carried, and when the first and last of them happened (Unix seconds). A Protocol: the event store's
    rows have this shape without importing this module (``serve/for_sending.py``)."""

    @property
    def batch(self) -> str:
        """The request's batch label as it carried it; "<label>#<i>/<n>" for part i of n."""

    @property
    def kind(self) -> str:
        """processed, delivered, deferred, bounced or dropped."""

    @property
    def events(self) -> int: ...

    @property
    def first_at(self) -> float: ...

    @property
    def last_at(self) -> float: ...


class BatchEvidence(Protocol):
    """What the provider reported of each request of a run (``newsletter serve``'s event store)."""

    def reports_of(self, run: str) -> Sequence[ProviderReport] | None:
        """Every report about the requests of the run with uid ``run``; None when there is nowhere to look
        (no event store: the webhook was never served)."""


@dataclass(frozen=True)
class UnknownBatch:
    """The unknown recipients one request left: its label, the run that made it, and when."""

    label: str
    run: str  # the run's uid ("" if the journal does not know it)
    sequential: bool  # a request whose recipients were tried one by one (SMTP): only the first can be unknown
    recipients: int
    started: float | None


@dataclass(frozen=True)
class Judged:
    """A batch and what the evidence says of it: ``accepted`` (settled as sent) or not (asked), and why."""

    batch: UnknownBatch
    accepted: bool
    said: str

    def line(self) -> str:
        """One line for the writer: the batch, its recipients, when it was requested, what is known."""
        name = f"batch {self.batch.label}" if self.batch.label else "recipients with no batch recorded"
        when = f", requested {_shown(self.batch.started)}" if self.batch.started else ""
        count = f"{self.batch.recipients} recipient" + ("" if self.batch.recipients == 1 else "s")
        return f"{name}: {count}{when}: {self.said}"


def _shown(moment: float) -> str:
    return dt.datetime.fromtimestamp(moment, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}es"


def judge(batch: UnknownBatch, reports: Sequence[ProviderReport] | None) -> Judged:
    """What ``reports`` (every report about the batch's run; None: no event store) say of ``batch``."""
    if batch.sequential:
        return Judged(batch, False, "sent one message at a time, each answer journaled before the next: only the "
                                    "message under way is unknown, and the server's log says whether it took it")
    if not batch.label or not batch.run:
        return Judged(batch, False, "the journal did not record which request carried them")
    feed = f"newsletter_batch = {batch.label} (newsletter_run = {batch.run})"
    if reports is None:
        return Judged(batch, False, "no event store to look in (newsletter serve records the provider's events); "
                                    f"its activity feed shows {feed}")
    own = [r for r in reports if r.batch == batch.label or r.batch.startswith(batch.label + "#")]
    whole = [r for r in own if r.batch == batch.label]
    parts = _parts(batch.label, own)
    if whole or (parts is not None and parts[0] == set(range(1, parts[1] + 1))):
        kinds: dict[str, int] = {}
        for report in own:
            kinds[report.kind] = kinds.get(report.kind, 0) + report.events
        first = min(r.first_at for r in own)
        order = ("processed", "delivered", "deferred", "bounced", "dropped")
        told = ", ".join(f"{count} {kind}" for kind, count in sorted(
            kinds.items(), key=lambda k: order.index(k[0]) if k[0] in order else len(order)))
        return Judged(batch, True, f"the provider reported it ({told}; first at {_shown(first)}): settled as sent")
    if parts is not None:
        seen = ", ".join(str(p) for p in sorted(parts[0]))
        return Judged(batch, False, f"sent as {parts[1]} requests, and the provider reported on part {seen} only")
    others = {r.batch.partition("#")[0] for r in reports}
    if others:
        last = max(r.last_at for r in reports)
        return Judged(batch, False, f"no event from the provider for it, though it reported on "
                                    f"{_plural(len(others), 'batch')} of this run (the last event at {_shown(last)}): "
                                    "most likely the provider never took it")
    return Judged(batch, False, "no event from the provider for this run yet (events can take minutes; is the "
                                f"event webhook set up?); its activity feed shows {feed}")


def _parts(label: str, own: Sequence[ProviderReport]) -> tuple[set[int], int] | None:
    """The parts of a batch sent as several requests that the provider reported on, and how many there were."""
    seen: set[int] = set()
    count = 0
    for report in own:
        part, _, of = report.batch[len(label) + 1:].partition("/")
        if report.batch.startswith(label + "#") and part.isdigit() and of.isdigit():
            seen.add(int(part))
            count = int(of)
    return (seen, count) if count else None


__all__ = ["BatchEvidence", "Judged", "ProviderReport", "UnknownBatch", "judge"]
