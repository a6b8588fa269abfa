"""``newsletter review``: what a pull request changes, built, checked and photographed in one folder.

A newsletter kept in git is edited in pull requests; the reviewer wants to see
each changed issue as subscribers will, and to know that it would pass the
send's checks, without installing anything. This finds the issue folders (and
sequence steps) a change touches, and writes for each, under one folder that a
CI job uploads as an artifact:

    <out>/<issue>/email.html, email.txt, message.eml, web.html   (what ``build`` writes)
    <out>/<issue>/check.txt, check.json                           (what ``check`` says)
    <out>/<issue>/<issue>-<width>.png                             (what ``screenshot`` takes)

A change to the theme or the settings touches every issue not sent yet (one
without a ``sent:`` record).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .checks import CheckContext, report_json, run_checks_on
from .checks.report import format_report
from .compose.build import build_issue, write_build
from .compose.content import ISSUE_FILE
from .config import CONFIG_FILE, Settings
from .errors import NewsletterError, display_path

ISSUE_FOLDERS = ("issues",)  # issues/<issue>/
STEP_FOLDERS = ("sequences",)  # sequences/<name>/<step>/
EVERYTHING = ("templates/", CONFIG_FILE)  # a change here touches every unsent issue


@dataclass
class Reviewed:
    """One issue's review: where its files went, and what the checks said."""

    folder: Path
    out: Path
    errors: int
    warnings: int
    pictures: list[Path] = field(default_factory=list)


def issue_folders(settings: Settings) -> list[Path]:
    """Every issue folder and sequence step of the newsletter."""
    found = [p.parent for top in ISSUE_FOLDERS for p in sorted((settings.root / top).glob(f"*/{ISSUE_FILE}"))]
    found += [p.parent for top in STEP_FOLDERS for p in sorted((settings.root / top).glob(f"*/*/{ISSUE_FILE}"))]
    return found


def unsent_folders(settings: Settings, folders: list[Path] | None = None) -> list[Path]:
    """The issue folders (of ``folders``, default all) without a ``sent:`` record: not sent to any list yet."""
    from .sending.sent_record import read_record

    return [folder for folder in (issue_folders(settings) if folders is None else folders)
            if not read_record(folder)]


def changed_since(settings: Settings, since: str) -> list[Path]:
    """The issue folders (and sequence steps) that differ from git revision ``since``: committed, staged or not."""
    try:
        result = subprocess.run(["git", "diff", "--name-only", "--relative", since, "--"], cwd=settings.root,
                                capture_output=True, text=True, timeout=60)
        untracked = subprocess.run(["git", "ls-files", "--others", "--exclude-standard"], cwd=settings.root,
                                   capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise NewsletterError(f"cannot ask git what changed: {err}", where=display_path(settings.root),
                              hint="install git, or leave out --since to review every issue not sent yet") from None
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["git diff failed"])[0]
        raise NewsletterError(f"cannot compare with {since!r}: {detail}", where=display_path(settings.root),
                              hint="give a revision git knows (fetch it first in CI: actions/checkout with "
                                   "fetch-depth: 0), or leave out --since")
    paths = result.stdout.splitlines() + untracked.stdout.splitlines()
    folders = issue_folders(settings)
    if any(path.startswith(EVERYTHING) for path in paths):
        return unsent_folders(settings, folders)
    touched = {folder for folder in folders for path in paths
               if path.startswith(folder.relative_to(settings.root).as_posix() + "/")}
    return [folder for folder in folders if folder in touched]


def review(settings: Settings, folders: list[Path], out: Path, *, pictures: bool = True) -> list[Reviewed]:
    """Build, check and (``pictures``) photograph each folder into ``out/<name>/``."""
    from .screenshot import screenshot_issue

    results = []
    for folder in folders:
        built = build_issue(settings, folder)
        target = out / folder.name
        write_build(settings, built, target)
        findings = run_checks_on(CheckContext(settings, built.issue, built))
        (target / "check.txt").write_text(format_report(findings, verbose=True) + "\n", encoding="utf-8")
        (target / "check.json").write_text(report_json(findings) + "\n", encoding="utf-8")
        shots = [shot.path for shot in screenshot_issue(settings, folder, target)] if pictures else []
        results.append(Reviewed(folder, target, sum(f.severity == "error" for f in findings),
                                sum(f.severity == "warning" for f in findings), shots))
    return results


def any_errors(results: list[Reviewed]) -> bool:
    return any(result.errors for result in results)


__all__ = ["Reviewed", "any_errors", "changed_since", "issue_folders", "review", "unsent_folders"]
