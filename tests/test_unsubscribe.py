"""Unsubscribe links: signed per list and address, verified before anyone is unsubscribed."""

from __future__ import annotations

import csv
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.errors import NewsletterError
from newsletter.unsubscribe import make_token, verify_token

SECRET = b"test-secret-for-unsubscribe-links"  # conftest exports it as NEWSLETTER_UNSUBSCRIBE_SECRET


def status_of(root, email: str) -> str:
    with open(root / "subscribers" / "example.csv", encoding="utf-8") as f:
        return next(row["status"] for row in csv.DictReader(f) if row["email"] == email)


def test_token_round_trip_and_tampering():
    token = make_token(SECRET, "example", "ada@example.com")
    assert verify_token(SECRET, "example", token) == "ada@example.com"
    with pytest.raises(NewsletterError, match="not valid for list 'other'"):
        verify_token(SECRET, "other", token)
    forged = make_token(b"someone else's secret", "example", "ada@example.com")
    with pytest.raises(NewsletterError):
        verify_token(SECRET, "example", forged)
    with pytest.raises(NewsletterError, match="malformed"):
        verify_token(SECRET, "example", "not-a-token")


def test_the_link_in_a_sent_sample_unsubscribes_its_reader(newsletter_root):
    runner = CliRunner()
    assert runner.invoke(main, ["send", "issues/2026-11-25-first-dispatch", "--list", "example",
                                "--dry-run"]).exit_code == 0
    sample = (newsletter_root / "outbox" / "2026-11-25-first-dispatch" / "sample-1.eml").read_text()
    link = next(line.split("<", 1)[1].split(">", 1)[0] for line in sample.splitlines()
                if line.startswith("List-Unsubscribe:"))
    assert link.startswith("https://newsletter.example.com/unsubscribe/")  # the route of `newsletter serve`
    token = urlsplit(link).path.rsplit("/", 1)[1]
    assert status_of(newsletter_root, "ada@example.com") == "subscribed"
    result = runner.invoke(main, ["subscribers", "unsubscribe", "--list", "example", "--token", token])
    assert result.exit_code == 0, result.output
    assert status_of(newsletter_root, "ada@example.com") == "unsubscribed"


def test_a_forged_token_changes_nothing(newsletter_root):
    forged = make_token(b"guessed", "example", "grace@example.org")
    result = CliRunner().invoke(main, ["subscribers", "unsubscribe", "--list", "example", "--token", forged])
    assert result.exit_code == 2 and "not valid" in result.output
    assert status_of(newsletter_root, "grace@example.org") == "subscribed"


def test_without_the_secret_the_error_names_the_variable(newsletter_root, monkeypatch):
    monkeypatch.delenv("NEWSLETTER_UNSUBSCRIBE_SECRET")
    token = make_token(SECRET, "example", "ada@example.com")
    result = CliRunner().invoke(main, ["subscribers", "unsubscribe", "--list", "example", "--token", token])
    assert result.exit_code == 2 and "NEWSLETTER_UNSUBSCRIBE_SECRET" in result.output
    assert "test-secret" not in result.output
