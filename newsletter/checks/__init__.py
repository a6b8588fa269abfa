"""Preflight checks: findings a writer can act on before anything is sent.

The package, from the bottom up: ``framework`` (Finding, severities,
CheckOptions, CheckContext and its one way to locate a source line), one
module per kind of check (``basic``, ``shipping``, ``client_support``,
``accessibility``, ``links``, ``spam``, ``clicks``; ``stylesheet`` and ``colors`` read CSS for
them), ``acknowledged`` (a theme's checks.toml), ``checklist`` (every check, in order, run on an
issue) and ``formatting`` (findings as text and JSON). Nothing below imports this file; it only
re-exports what the rest of the package (send, build, preview, the CLI) uses.
"""

from __future__ import annotations

from .basic import GMAIL_CLIP_BYTES, MAX_SUBJECT, check_size
from .checklist import all_checks, check_issue, run_checks_on
from .formatting import count, format_finding, format_report, has_errors, report_json, split_theme_notes, summary_line
from .framework import (
    ARTICLES,
    ERROR,
    INFO,
    ISSUE,
    SEVERITIES,
    THEME,
    WARNING,
    Check,
    CheckContext,
    CheckOptions,
    Finding,
    Place,
    line_of,
)

__all__ = [
    "ARTICLES", "ERROR", "GMAIL_CLIP_BYTES", "INFO", "ISSUE", "MAX_SUBJECT", "SEVERITIES", "THEME", "WARNING",
    "Check", "CheckContext", "CheckOptions", "Finding", "Place", "all_checks", "check_issue", "check_size",
    "count", "format_finding", "format_report", "has_errors", "line_of", "report_json", "run_checks_on",
    "split_theme_notes", "summary_line",
]
