"""Subscriber lists, ``subscribers/<list>.csv``: the one public way to read, select, validate, edit and export them.

Everything outside this package imports from ``newsletter.lists`` only; the
modules inside each own one job:

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
"""

from __future__ import annotations

from .addresses import key_or_problem, normalize_key
from .editor import Entry, UpsertReport, add_subscriber, remove_subscriber, set_status, unsubscribe, upsert
from .export import export_subscribers, export_to_file, neutralize
from .names import check_list_name, require_list
from .read import BASE_COLUMNS, STATUSES, SUPPRESSED, Subscriber, list_columns
from .select import SKIP_REASONS, ListStats, iter_subscribers, list_stats, select_recipients, select_rows
from .services import ImportReport, import_subscribers
from .suppressions import DEPARTURE_PRECEDENCE, SyncReport, mark_departures, outranks, sync_list
from .validate import ListProblems, Problem, validate_list

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
