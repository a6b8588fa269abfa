"""How findings are shown: grouped text for people, JSON for scripts, one summary line.

Reports are quiet by default: notes about the shipped theme's own files (the
features it uses on purpose) are counted in one line, and ``verbose`` lists
them. Errors and warnings are always listed in full.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from .acknowledged import about_shipped_theme
from .framework import ERROR, INFO, SEVERITIES, WARNING, Finding

VERBOSE_HINT = "`--verbose` lists them"


def has_errors(findings: Iterable[Finding]) -> bool:
    return any(f.severity == ERROR for f in findings)


def count(findings: Iterable[Finding], severity: str) -> int:
    return sum(1 for f in findings if f.severity == severity)


def format_finding(finding: Finding) -> str:
    location = finding.location()
    text = f"{finding.severity}: {location + ': ' if location else ''}{finding.message}"
    return f"{text}\n    fix: {finding.fix}" if finding.fix else text


def summary_line(findings: list[Finding]) -> str:
    errors, warnings, infos = (count(findings, s) for s in SEVERITIES)
    return (f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}"
            + (f", {infos} note{'s' * (infos != 1)}" if infos else ""))


def split_theme_notes(findings: Iterable[Finding], verbose: bool = False) -> tuple[list[Finding], int]:
    """(the findings to list, how many notes about the shipped theme were left out)."""
    if verbose:
        return list(findings), 0
    shown = [f for f in findings if not about_shipped_theme(f)]
    return shown, sum(1 for f in findings if about_shipped_theme(f))


def theme_notes_line(hidden: int) -> str:
    return f"{hidden} note{'s' * (hidden != 1)} about the theme: {VERBOSE_HINT}"


def format_report(findings: list[Finding], verbose: bool = False) -> str:
    """Findings grouped by severity (errors first), each naming its file and line, then a summary line;
    notes about the shipped theme counted in one line unless ``verbose``."""
    titles = {ERROR: "Errors", WARNING: "Warnings", INFO: "Notes"}
    shown, hidden = split_theme_notes(findings, verbose)
    blocks = []
    for severity in SEVERITIES:
        group = [f for f in shown if f.severity == severity]
        lines = ["  " + format_finding(f).replace("\n", "\n  ") for f in group]
        if severity == INFO and hidden:
            lines.append("  " + theme_notes_line(hidden))
        if lines:
            blocks.append(f"{titles[severity]} ({count(findings, severity)}):\n" + "\n".join(lines))
    blocks.append(summary_line(findings))
    return "\n\n".join(blocks)


def report_json(findings: list[Finding]) -> str:
    """``{"findings": [...], "errors": N, "warnings": N}`` for scripts and CI (always every finding)."""
    return json.dumps({"findings": [f.to_dict() for f in findings], "errors": count(findings, ERROR),
                       "warnings": count(findings, WARNING)}, indent=2, ensure_ascii=False)
