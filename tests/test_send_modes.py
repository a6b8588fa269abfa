"""The send's mode (live, dry run, test send) is chosen once from the command line and carried as an object,
and a send never changes the options it was given (sending/modes.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from newsletter_helpers import ISSUE, run

from newsletter.config import load_settings
from newsletter.errors import NewsletterError
from newsletter.sending import engine, modes
from newsletter.sending.modes import LIVE, DryRun, choose_mode


def test_the_command_lines_flags_choose_one_mode():
    assert choose_mode() is LIVE
    assert choose_mode(test_to=("me@example.com",)) == modes.TestSend(("me@example.com",), None)
    dry = choose_mode(dry_run=True, samples=5, out_dir=Path("out"))
    assert dry == DryRun(5, Path("out"), None) and not dry.records and not dry.delivers
    both = choose_mode(dry_run=True, test_to=("me@example.com",), test_prefix="")
    assert isinstance(both, DryRun) and both.addresses == ("me@example.com",) and both.subject_prefix == ""
    with pytest.raises(NewsletterError, match="--test-prefix marks the subject of a test send"):
        choose_mode(test_prefix="[Draft] ")


def test_a_dry_run_of_a_test_send_writes_the_test_message_and_sends_nothing(sendgrid_newsletter: Path,
                                                                           sendgrid_standin):
    result = run("send", ISSUE, "--test-to", "editor@example.com", "--dry-run")

    assert result.exit_code == 0, result.output
    assert not sendgrid_standin.counts()
    [sample] = sorted((sendgrid_newsletter / "outbox" / "2026-11-25-first-dispatch").glob("sample-*.eml"))
    text = sample.read_text()
    assert "To: editor@example.com" in text and "Subject: [Test] " in text
    assert not (sendgrid_newsletter / ".newsletter" / "journal.sqlite").exists()


def test_a_send_leaves_the_options_it_was_given_as_they_were(sendgrid_newsletter: Path, sendgrid_standin):
    settings = load_settings(sendgrid_newsletter)
    assert engine.send(settings, Path(ISSUE), engine.SendOptions(list_name="example", confirmed=True)).ok
    resume = engine.SendOptions(resume=True, confirmed=True)  # the list is found in the journal
    given = dataclasses.replace(resume)

    report = engine.send(settings, Path(ISSUE), resume)

    assert report.list_name == "example" and report.to_send == 0
    assert resume == given and resume.list_name == ""
    with pytest.raises(dataclasses.FrozenInstanceError):
        resume.list_name = "example"  # type: ignore[misc]
