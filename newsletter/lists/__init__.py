"""Subscriber lists, ``subscribers/<list>.csv``: the one public way to read, select, validate, edit and export them.

Everything outside this package imports from ``newsletter.lists`` only; the
modules inside each own one job:

- ``statuses``: the statuses a row can have;
- ``names``: the one check of a ``--list`` name, and "no such list" with suggestions;
- ``addresses``: an address's key (which rows are the same person);
- ``csvfile``: the CSV file itself: dialect, records with their lines, lock, atomic replace;
- ``read``: rows as Subscribers, and what each column means;
- ``select``: filters, the recipients of a send (as Subscribers, or as journal rows), counts;
- ``validate``: every problem of every row, with its line;
- ``editor``: every change to a list (add, upsert, statuses, removal), one locked atomic rewrite each;
- ``export``: rows out as spreadsheet-safe CSV or JSON;
- ``services``: other services' exports (Mailchimp, Substack, ...) merged in through the editor;
- ``suppressions``: SendGrid's suppressions marked in a list through the editor.

The names below are imported from their modules when first used (PEP 562), not when the package is:
``import newsletter.lists.statuses`` (the CLI's ``--status`` choices) must not load email-validator
and the CSV machinery at every start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .addresses import key_or_problem, normalize_key
    from .editor import Entry, UpsertReport, add_subscriber, remove_subscriber, set_status, unsubscribe, upsert
    from .export import export_subscribers, export_to_file, neutralize
    from .names import check_list_name, require_list
    from .read import BASE_COLUMNS, Subscriber, list_columns
    from .select import SKIP_REASONS, ListStats, iter_subscribers, list_stats, select_recipients, select_rows
    from .services import ImportReport, import_subscribers
    from .statuses import STATUSES, SUPPRESSED
    from .suppressions import DEPARTURE_PRECEDENCE, SyncReport, mark_departures, outranks, sync_list
    from .validate import ListProblems, Problem, validate_list

# public name -> the module of this package that defines it
_HOMES = {
    "key_or_problem": "addresses", "normalize_key": "addresses",
    "Entry": "editor", "UpsertReport": "editor", "add_subscriber": "editor", "remove_subscriber": "editor",
    "set_status": "editor", "unsubscribe": "editor", "upsert": "editor",
    "export_subscribers": "export", "export_to_file": "export", "neutralize": "export",
    "check_list_name": "names", "require_list": "names",
    "BASE_COLUMNS": "read", "Subscriber": "read", "list_columns": "read",
    "SKIP_REASONS": "select", "ListStats": "select", "iter_subscribers": "select", "list_stats": "select",
    "select_recipients": "select", "select_rows": "select",
    "ImportReport": "services", "import_subscribers": "services",
    "STATUSES": "statuses", "SUPPRESSED": "statuses",
    "SyncReport": "suppressions", "sync_list": "suppressions", "DEPARTURE_PRECEDENCE": "suppressions",
    "mark_departures": "suppressions", "outranks": "suppressions",
    "ListProblems": "validate", "Problem": "validate", "validate_list": "validate",
}

__all__ = [
    "BASE_COLUMNS", "DEPARTURE_PRECEDENCE", "SKIP_REASONS", "STATUSES", "SUPPRESSED",
    "Entry", "ImportReport", "ListProblems", "ListStats", "Problem", "Subscriber", "SyncReport",
    "UpsertReport",
    "add_subscriber", "check_list_name", "export_subscribers", "export_to_file", "import_subscribers",
    "iter_subscribers", "key_or_problem", "list_columns", "list_stats", "mark_departures", "neutralize",
    "normalize_key", "outranks",
    "remove_subscriber", "require_list", "select_recipients", "select_rows", "set_status",
    "sync_list", "unsubscribe", "upsert", "validate_list",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value  # once found, an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
