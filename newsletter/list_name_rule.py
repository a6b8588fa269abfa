"""The rule for a list's name, below both the settings and the lists: ``Settings.list_path`` applies it
to every name before a path is made, and ``lists/`` applies it to ``--list``, so neither imports the other
for it.

A list name becomes a file name under ``subscribers/``; a name with a slash or ``..`` would let
``send --list ../../elsewhere/x`` read (or an edit write) a CSV anywhere on the disk, so only plain
names pass.
"""

from __future__ import annotations

import re

from .errors import NewsletterError

_LIST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")


def check_list_name(name: str) -> str:
    """``name`` if it is a list name (letters, digits, '.', '_', '-', no leading dot), else NewsletterError.

    The name is used as it is, never rewritten: the send journal and the
    unsubscribe tokens are keyed on it, so 'news' and 'news.csv' must not
    both reach subscribers/news.csv under two different names.
    """
    if name.endswith(".csv") and _LIST_NAME.match(name):
        raise NewsletterError(f"'{name}' is a file name, not a list name",
                              hint=f"write the list's name without .csv: --list {name.removesuffix('.csv')}")
    if not _LIST_NAME.match(name):
        raise NewsletterError(f"'{name}' is not a list name",
                              hint="use letters, digits, '.', '_' or '-', like 'weekly' for subscribers/weekly.csv; "
                                   "a list lives in subscribers/, so no '/' or '..'")
    return name
