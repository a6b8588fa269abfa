"""Bring SendGrid's suppressions home: mark who unsubscribed, bounced or complained in the list file.

SendGrid keeps its own record of addresses it will not deliver to (global
unsubscribes, bounces, spam reports, the unsubscribe group). ``sync_list``
copies those verdicts into ``subscribers/<list>.csv`` so the list, the dry
run and every other provider agree with SendGrid. Only rows still marked
``subscribed`` change; a row already unsubscribed, bounced or complained
keeps the status the list gives it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..config import Settings
from ..errors import display_path
from .addresses import key_or_problem
from .editor import set_status
from .names import check_list_name, require_list
from .select import iter_subscribers
from .statuses import SUPPRESSED


@dataclass(frozen=True)
class Change:
    email: str  # as the list writes it (first row of that address)
    was: str
    now: str


@dataclass(frozen=True)
class SyncReport:
    """What a sync found at SendGrid and changed in the list."""

    path: Path
    fetched: int  # addresses SendGrid suppresses
    changes: tuple[Change, ...]  # one per address whose rows changed (or would, without writing)
    rows_changed: int
    not_on_list: int  # suppressed at SendGrid, absent from this list
    written: bool

    @property
    def summary(self) -> str:
        where = display_path(self.path)
        by_status = Counter(change.now for change in self.changes)
        detail = ", ".join(f"{n} {status}" for status, n in sorted(by_status.items()))
        head = f"SendGrid suppresses {self.fetched} address{'es' if self.fetched != 1 else ''}"
        tail = f"{self.not_on_list} of them not on this list"
        if not self.changes:
            return f"{head}; {where} already agrees ({tail})."
        if not self.written:
            return (f"Dry run, nothing written to {where}: {len(self.changes)} address(es) would change "
                    f"({detail}); {tail}. Run without --dry-run to mark them.")
        return f"{head}; marked {len(self.changes)} address(es) in {where} ({detail}); {tail}."


def plan_changes(path: Path, suppressed: dict[str, str]) -> tuple[dict[str, str], list[Change], int]:
    """(key -> new status, changes, addresses not on the list) for SendGrid's ``address -> status``."""
    wanted: dict[str, str] = {}
    for address, status in suppressed.items():
        key = key_or_problem(address)[0]
        if key:
            wanted[key] = status
    on_list: set[str] = set()
    updates: dict[str, str] = {}
    changes: list[Change] = []
    for sub in iter_subscribers(path):
        if sub.key not in wanted:
            continue
        on_list.add(sub.key)
        if sub.status == "subscribed" and sub.key not in updates:
            updates[sub.key] = wanted[sub.key]
            changes.append(Change(sub.email, sub.status, wanted[sub.key]))
    return updates, changes, len(set(wanted) - on_list)


def sync_list(settings: Settings, list_name: str, *, write: bool = True) -> SyncReport:
    """Fetch SendGrid's suppressions and mark those subscribers of ``list_name`` (atomically)."""
    from ..providers.sendgrid import from_settings

    path = require_list(settings.list_path(check_list_name(list_name)))
    provider = from_settings(settings)
    try:
        suppressed = provider.fetch_suppressions()
    finally:
        provider.close()
    updates, changes, absent = plan_changes(path, suppressed)
    # keep: a row suppressed since it was read (say, unsubscribed by hand) is not overwritten.
    rows = set_status(path, updates, keep=SUPPRESSED) if write and updates else 0
    return SyncReport(path=path, fetched=len(suppressed), changes=tuple(changes), rows_changed=rows,
                      not_on_list=absent, written=write)
