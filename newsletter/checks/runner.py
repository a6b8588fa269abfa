"""Running the checks: every kind in a fixed order, the theme's acknowledgements applied, sorted.

``newsletter check``, ``build``, ``preview`` and every send run the checks
through here, so a send can never skip them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable
from pathlib import Path

from ..compose.build import build
from ..config import Settings
from ..compose.content import load_issue
from . import accessibility, basic, clicks, client_support, links, shipping, spam
from .acknowledged import acknowledge
from .framework import SEVERITIES, Check, CheckContext, CheckOptions, Finding


def all_checks() -> list[Check]:
    """Every check, one module per kind: basic, what would ship broken, client support,
    accessibility, links, spam score."""
    return [*basic.CHECKS, *shipping.CHECKS, *client_support.CHECKS, *accessibility.CHECKS, *links.CHECKS,
            *spam.CHECKS, *clicks.CHECKS]


def _order(finding: Finding) -> tuple:
    rank = SEVERITIES.index(finding.severity) if finding.severity in SEVERITIES else len(SEVERITIES)
    return rank, finding.where, finding.line or 0


def run_checks_on(ctx: CheckContext, checks: Iterable[Check] = ()) -> list[Finding]:
    """Run ``checks`` (default: all of them) on a built issue; findings sorted errors first."""
    findings: list[Finding] = []
    for check in (checks or all_checks()):
        findings.extend(check(ctx))
    return sorted(acknowledge(findings, ctx.settings), key=_order)


def check_issue(settings: Settings, issue_dir: Path, available_fields: Collection[str] | None = None,
                options: CheckOptions | None = None) -> tuple[CheckContext, list[Finding]]:
    """Build the issue (even with articles missing) and run every check on it."""
    issue = load_issue(Path(issue_dir))
    built = build(settings, dataclasses.replace(issue, missing_articles=()), available_fields)
    ctx = CheckContext(settings, issue, built, options or CheckOptions())
    return ctx, run_checks_on(ctx)
