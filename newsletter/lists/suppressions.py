"""Bring a provider's suppressions home: mark who unsubscribed, bounced or complained in the list file.

A provider may keep its own record of addresses it will not deliver to (SendGrid: global
unsubscribes, bounces, spam reports, the unsubscribe group; ``ProviderKind.suppression_list``).
``sync_list`` copies those verdicts into ``subscribers/<list>.csv`` so the list, the dry
run and every other provider agree with it.

Statuses that stop mail have a precedence, the same here and in the
subscriber service's sync: complained over bounced over unsubscribed. A row
moves only up it (a subscribed row to any; an unsubscribed row to bounced or
complained; a complained row never back to unsubscribed), because the
stronger status says more about the address: a bounce followed by an
unsubscribe is still a dead address.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..config import Settings
from ..errors import NewsletterError, display_path
from .address_keys import key_or_problem
from .editor import StatusChange, set_status
from .list_names import check_list_name, require_list
from .select import iter_subscribers

DEPARTURE_PRECEDENCE = ("unsubscribed", "bounced", "complained")  # weakest first


def departure_rank(status: str) -> int:
    """Where ``status`` stands in DEPARTURE_PRECEDENCE; -1 for one that receives mail (or none)."""
    return DEPARTURE_PRECEDENCE.index(status) if status in DEPARTURE_PRECEDENCE else -1


def outranks(new: str, held: str) -> bool:
    """Whether departure ``new`` replaces ``held`` (a row's status or an earlier event): it is stronger,
    or ``held`` still receives mail."""
    return departure_rank(new) > departure_rank(held)


def mark_departures(path: Path, statuses: Mapping[str, str]) -> int:
    """Set each address's departure status (``key -> status``) where it outranks the row's, atomically per
    status; returns the rows changed. A row that changed since the caller read it keeps a stronger status."""
    changed = 0
    for rank, status in enumerate(DEPARTURE_PRECEDENCE):
        group = {key: wanted for key, wanted in statuses.items() if wanted == status}
        if group:
            changed += set_status(path, group, keep=DEPARTURE_PRECEDENCE[rank:])
    return changed


@dataclass(frozen=True)
class SyncReport:
    """What a sync found at the provider and changed in the list (or why it could not ask it)."""

    path: Path
    fetched: int  # addresses the provider suppresses
    changes: tuple[StatusChange, ...]  # one per address whose rows changed (or would, without writing)
    rows_changed: int
    not_on_list: int  # suppressed at the provider, absent from this list
    written: bool
    provider: str  # the provider's title ("SendGrid"), as the summary names it
    skipped: str = ""  # why the provider's suppressions were not read ("" = they were); the list is then untouched

    @property
    def summary(self) -> str:
        where = display_path(self.path)
        if self.skipped:
            return (f"Skipped {self.provider}'s suppressions, so {where} is not checked against them: {self.skipped}. "
                    "Fix that and run the sync again.")
        by_status = Counter(change.now for change in self.changes)
        detail = ", ".join(f"{n} {status}" for status, n in sorted(by_status.items()))
        head = f"{self.provider} suppresses {self.fetched} address{'es' if self.fetched != 1 else ''}"
        tail = f"{self.not_on_list} of them not on this list"
        if not self.changes:
            return f"{head}; {where} already agrees ({tail})."
        if not self.written:
            return (f"Dry run, nothing written to {where}: {len(self.changes)} address(es) would change "
                    f"({detail}); {tail}. Run without --dry-run to mark them.")
        return f"{head}; marked {len(self.changes)} address(es) in {where} ({detail}); {tail}."


def plan_changes(path: Path, suppressed: dict[str, str]) -> tuple[dict[str, str], list[StatusChange], int]:
    """(key -> new status, changes, addresses not on the list) for the provider's ``address -> status``."""
    wanted: dict[str, str] = {}
    for address, status in suppressed.items():
        key = key_or_problem(address)[0]
        if key:
            wanted[key] = status
    on_list: set[str] = set()
    updates: dict[str, str] = {}
    changes: list[StatusChange] = []
    for sub in iter_subscribers(path):
        if sub.key not in wanted:
            continue
        on_list.add(sub.key)
        if outranks(wanted[sub.key], sub.status) and sub.key not in updates:
            updates[sub.key] = wanted[sub.key]
            changes.append(StatusChange(sub.email, sub.status, wanted[sub.key]))
    return updates, changes, len(set(wanted) - on_list)


class SuppressionSource(Protocol):
    """Where the suppressions come from: the configured provider's kind (``providers.contract.ProviderKind``
    answers it), handed in by the command, so the lists never import a provider."""

    @property
    def title(self) -> str: ...

    def fetch_suppressions(self, settings: Settings) -> dict[str, str]: ...


def sync_list(settings: Settings, list_name: str, source: SuppressionSource, *, write: bool = True) -> SyncReport:
    """Fetch ``source``'s suppressions and mark those subscribers of ``list_name`` (atomically).

    When the provider cannot be asked (no API key set, the API refuses or is down) the report says why in
    ``skipped`` and nothing is changed: ``subscribers sync`` has by then applied the service's events, and
    must say which part was done rather than end on an error as if nothing had been.
    """
    path = require_list(settings.list_path(check_list_name(list_name)))
    try:
        suppressed = source.fetch_suppressions(settings)
    except NewsletterError as err:
        return SyncReport(path=path, fetched=0, changes=(), rows_changed=0, not_on_list=0, written=False,
                          provider=source.title, skipped=err.reason)
    updates, changes, absent = plan_changes(path, suppressed)
    # a row suppressed since it was read (say, unsubscribed by hand) keeps a stronger status
    rows = mark_departures(path, updates) if write and updates else 0
    return SyncReport(path=path, fetched=len(suppressed), changes=tuple(changes), rows_changed=rows,
                      not_on_list=absent, written=write, provider=source.title)
