"""Spam score: SpamAssassin scores the sample message locally; at or over the limit is an error.

These tests run SpamAssassin for real. They are never skipped: without it they fail and say how to
install it (CI installs it from Debian's packages).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from newsletter_helpers import write_issue

from newsletter.checks import ERROR, INFO, WARNING, CheckContext, Finding, run_checks_on, spam
from newsletter.checks.spam import parse_report, score_message
from newsletter.compose.build import build
from newsletter.compose.content import load_issue
from newsletter.config import load_settings


@pytest.fixture
def spamassassin(real_spamassassin: str) -> str:
    """The real SpamAssassin (the rest of the suite uses a stand-in): these tests are about its score."""
    return real_spamassassin


def context(settings, folder: Path) -> CheckContext:
    issue = load_issue(folder)
    return CheckContext(settings, issue, build(settings, issue))


def spam_findings(settings, folder: Path) -> list[Finding]:
    return run_checks_on(context(settings, folder), spam.CHECKS)


def test_example_issue_scores_under_two(spamassassin, settings, example_issue):
    ctx = context(settings, example_issue)
    report = score_message(ctx.message_bytes)
    assert report.score < 2.0, [str(r) for r in report.ranked_rules()]
    assert report.required == 5.0
    [finding] = run_checks_on(ctx, spam.CHECKS)
    assert finding.severity == INFO and finding.code == "spam-score"
    assert f"SpamAssassin score {report.score:g} (limit 5)" in finding.message


def test_score_at_or_over_the_threshold_is_an_error_listing_the_rules(spamassassin, newsletter_root):
    config = newsletter_root / "newsletter.toml"
    config.write_text(config.read_text(encoding="utf-8") + "\n[checks]\nspam_threshold = -50.0\n", encoding="utf-8")
    [finding] = spam_findings(load_settings(newsletter_root), write_issue(newsletter_root))
    assert finding.severity == ERROR and finding.code == "spam-score"
    assert "(the limit is -50)" in finding.message
    assert "HTML_MESSAGE" in finding.message  # the rules that fired, with their points and descriptions
    assert finding.where.endswith("2027-02-02-test/issue.md")


def test_spamassassin_leaves_no_trace_in_home(spamassassin, tmp_path, monkeypatch, settings, example_issue):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    score_message(context(settings, example_issue).message_bytes)
    assert list((tmp_path / "home").iterdir()) == []


def test_missing_spamassassin_is_a_warning_that_says_how_to_install(settings, newsletter_root, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH with no spamassassin on it
    [finding] = spam_findings(settings, write_issue(newsletter_root))
    assert finding.severity == WARNING and finding.code == "spam-not-checked"
    assert "not installed" in finding.message and "apt-get install spamassassin" in finding.fix


def test_parse_report_reads_score_rules_and_wrapped_descriptions():
    output = (b"X-Spam-Status: Yes, score=6.2 required=5.0 tests=FREE_MONEY,\n"
              b"\tHTML_MESSAGE,LOTS_OF_MONEY autolearn=disabled version=4.0.1\n"
              b"Subject: hi\n\n"
              b"Content analysis details:   (6.2 points, 5.0 required)\n\n"
              b" pts rule name              description\n"
              b"---- ---------------------- --------------------------------------------------\n"
              b" 3.0 FREE_MONEY             BODY: Talks about free money with a long\n"
              b"                            description\n"
              b" 0.0 HTML_MESSAGE           BODY: HTML included in message\n"
              b" 3.2 LOTS_OF_MONEY          Huge... sums of money\n\n")
    report = parse_report(output)
    assert (report.score, report.required) == (6.2, 5.0)
    assert [r.name for r in report.ranked_rules()] == ["LOTS_OF_MONEY", "FREE_MONEY", "HTML_MESSAGE"]
    assert str(report.rules[0]) == "FREE_MONEY (+3): BODY: Talks about free money with a long description"


def test_verdicts_are_remembered_per_message_content(spamassassin, settings, example_issue, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from newsletter.cli import main

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "fresh-cache"))
    folder = tmp_path / "fresh-cache" / "newsletter" / "spam"
    assert CliRunner().invoke(main, ["check", str(example_issue)]).exit_code == 0
    first = set(folder.glob("*.json"))
    assert len(first) == 1
    # Date, Message-ID and MIME boundaries differ on every build; the verdict is reused.
    assert CliRunner().invoke(main, ["check", str(example_issue)]).exit_code == 0
    assert set(folder.glob("*.json")) == first
    article = next(example_issue.glob("keeping-*.md"))
    article.write_text(article.read_text() + "\nOne more sentence changes the message.\n")
    assert CliRunner().invoke(main, ["check", str(example_issue)]).exit_code == 0
    assert len(set(folder.glob("*.json"))) == 2  # a changed issue is scored again
