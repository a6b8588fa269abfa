"""``newsletter review``: the issues a change touches, built, checked and photographed for a pull request."""

from __future__ import annotations

import subprocess
from pathlib import Path

from click.testing import CliRunner

from newsletter.cli import main

from test_send import ISSUE


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout


def committed(root: Path) -> Path:
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "-c", "user.name=T", "-c", "user.email=t@example.com", "commit", "-qm", "start")
    return root


def run(root: Path, *args: str):
    return CliRunner().invoke(main, ["--root", str(root), *args], catch_exceptions=False)


def test_a_changed_issue_is_built_checked_and_photographed(newsletter_root: Path) -> None:
    committed(newsletter_root)
    issue_md = newsletter_root / ISSUE / "issue.md"
    issue_md.write_text(issue_md.read_text().replace("Thank you for reading.", "Thank you for reading, again."))
    new = newsletter_root / "issues" / "2027-01-01-next"
    new.mkdir()
    (new / "issue.md").write_text("---\nsubject: Next\npreheader: Soon\ndate: 2027-01-01\narticles: []\n---\n\nHello.\n")
    result = run(newsletter_root, "review", "--since", "main", "--out", "review")
    assert result.exit_code == 0, result.output
    out = newsletter_root / "review"
    assert sorted(p.name for p in out.iterdir()) == ["2026-11-25-first-dispatch", "2027-01-01-next"]
    folder = out / "2026-11-25-first-dispatch"
    assert "Thank you for reading, again." in (folder / "email.html").read_text()
    import json

    report = json.loads((folder / "check.json").read_text())
    assert report["errors"] == 0 and {f["code"] for f in report["findings"]} >= {"archive-not-published"}
    assert "0 errors, 1 warning" in (folder / "check.txt").read_text()
    pictures = sorted(folder.glob("*.png"))
    assert len(pictures) == 2 and all(p.read_bytes().startswith(b"\x89PNG") for p in pictures)
    assert "Reviewed 2 issues changed since main" in result.output


def test_nothing_changed_reviews_nothing_and_a_theme_change_reviews_every_unsent_issue(newsletter_root: Path):
    committed(newsletter_root)
    quiet = run(newsletter_root, "review", "--since", "HEAD", "--no-screenshots")
    assert quiet.exit_code == 0 and "Reviewed 0 issues" in quiet.output
    (newsletter_root / "templates" / "note.txt").write_text("a change to the theme folder")
    every = run(newsletter_root, "review", "--since", "HEAD", "--no-screenshots")
    assert every.exit_code == 0 and "Reviewed 1 issue changed since HEAD" in every.output


def test_an_issue_with_check_errors_fails_the_review(newsletter_root: Path) -> None:
    committed(newsletter_root)
    issue_md = newsletter_root / ISSUE / "issue.md"
    import re

    issue_md.write_text(re.sub(r"(?m)^subject: .*$", 'subject: ""', issue_md.read_text(), count=1))
    result = run(newsletter_root, "review", "--since", "HEAD", "--no-screenshots")
    assert result.exit_code == 1 and re.search(r": [1-9]\d* errors", result.output), result.output


def test_an_unknown_revision_is_named_with_the_fix(newsletter_root: Path) -> None:
    committed(newsletter_root)
    result = CliRunner().invoke(main, ["--root", str(newsletter_root), "review", "--since", "origin/nowhere"])
    assert result.exit_code == 2 and "cannot compare with 'origin/nowhere'" in result.output
    assert "fetch-depth: 0" in result.output
