"""Nothing is recorded until something is sent (issue 20, finding 6).

A send refused before its first request (a missing API key, a tag or column nobody has), declined at
its question, or with nobody to send to leaves nothing behind: no run, no selected rows in the journal,
no ``sent:`` record in issue.md. So it blocks nothing later (a dry run through another provider, a send
to another audience) and says what the selection matched. Each test runs on both homes of the journal
(a SQLite file and the test PostgreSQL), against the SendGrid stand-in.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from journal_fixtures import fresh_schema_url
from test_send import EXAMPLE_SUBSCRIBED, ISSUE, set_option

from newsletter.cli import main
from newsletter.config import load_settings
from newsletter.errors import NewsletterError
from newsletter.sending import engine
from newsletter.sending import journal as jn


@pytest.fixture(params=["sqlite", "postgresql"])
def home(request: pytest.FixtureRequest, sendgrid_newsletter: Path) -> Path:
    """The example newsletter sending to the stand-in, its journal in a SQLite file or in PostgreSQL."""
    if request.param == "postgresql":
        url = fresh_schema_url(request.getfixturevalue("postgres_url"))
        set_option(sendgrid_newsletter, "send", f'journal_url = "{url}"')
    return sendgrid_newsletter


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def journal_holds(root: Path) -> dict[str, int]:
    """How many sends, runs and delivery rows the newsletter's journal holds, read as another process would."""
    location = jn.location_of(load_settings(root))
    if not location.may_exist():
        return {"sends": 0, "runs": 0, "deliveries": 0}
    db = jn.open_database(location)
    try:
        return {table: int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
                for table in ("sends", "runs", "deliveries")}
    finally:
        db.close()


NOTHING = {"sends": 0, "runs": 0, "deliveries": 0}


def sent_record_of(root: Path) -> bool:
    return "\nsent:" in (root / ISSUE / "issue.md").read_text()


def test_a_send_without_its_api_key_leaves_nothing_and_a_dry_run_through_smtp_goes_ahead(
        home: Path, sendgrid_standin, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SENDGRID_API_KEY")
    refused = run("send", ISSUE, "--list", "example", "--yes")
    assert refused.exit_code == 2 and "SENDGRID_API_KEY is not set" in refused.output, refused.output
    assert journal_holds(home) == NOTHING and not sent_record_of(home)
    assert "has not been sent" in run("status", ISSUE).output

    # Switching to SMTP: once an "unfinished send ... provider smtp instead of sendgrid"; now nothing stands in the way.
    dry = run("send", ISSUE, "--list", "example", "--provider", "smtp", "--dry-run", "--yes")
    assert dry.exit_code == 0 and "would send 4 of 4" in dry.output, dry.output
    assert journal_holds(home) == NOTHING and not sendgrid_standin.counts()


def test_a_tag_nobody_has_is_said_with_the_tags_the_list_has_and_leaves_nothing(home: Path, sendgrid_standin) -> None:
    for extra in ((), ("--dry-run",)):
        result = run("send", ISSUE, "--list", "example", "--tag", "nosuchtag", "--yes", *extra)
        assert result.exit_code == 2, result.output
        assert "no recipient of list 'example' has tag nosuchtag" in result.output
        assert "the list's tags are: founders, readers" in result.output
        assert "already settled" not in result.output
    assert journal_holds(home) == NOTHING and not sent_record_of(home) and not sendgrid_standin.counts()
    # and the send the writer meant goes ahead as a fresh one
    sent = run("send", ISSUE, "--list", "example", "--tag", "readers", "--yes")
    assert sent.exit_code == 0 and "sent 3 of 3" in sent.output, sent.output


def test_a_column_nobody_has_names_the_lists_columns_and_leaves_nothing(home: Path, sendgrid_standin) -> None:
    result = run("send", ISSUE, "--list", "example", "--where", "nosuchfield=x", "--yes")
    assert result.exit_code == 2, result.output
    assert ("no row has a column 'nosuchfield' to filter on: the list's columns are email, name, status, tags, "
            "subscribed_at, city") in result.output
    assert journal_holds(home) == NOTHING and not sent_record_of(home)


def test_a_filter_matching_only_readers_who_left_says_so_and_leaves_nothing(home: Path, sendgrid_standin) -> None:
    result = run("send", ISSUE, "--list", "example", "--where", "city=Manchester", "--yes")
    assert result.exit_code == 0, result.output
    assert ("Nothing to send: none of the 1 row with city=Manchester of list 'example' can be sent it "
            "(1 unsubscribed).") in result.output
    assert journal_holds(home) == NOTHING and not sent_record_of(home)


def test_a_send_declined_at_its_question_leaves_nothing_and_never_held_the_journal(home: Path,
                                                                                  sendgrid_standin) -> None:
    settings = load_settings(home)
    location = jn.location_of(settings)
    asked: list[int] = []

    def decline(plan, report) -> bool:
        asked.append(report.to_send)
        if location.dialect == "sqlite":  # another sender may write the journal while the writer thinks
            other = sqlite3.connect(location.path, timeout=0, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
            other.close()
        assert journal_holds(home) == NOTHING
        return False

    report = engine.send(settings, Path(ISSUE), engine.SendOptions(list_name="example"), confirm=decline)
    assert asked == [4] and not report.recorded and report.sent == 0
    assert journal_holds(home) == NOTHING and not sent_record_of(home) and not sendgrid_standin.counts()

    # Said yes, the send is selected again (the journal was not held meanwhile) and goes out.
    report = engine.send(settings, Path(ISSUE), engine.SendOptions(list_name="example"),
                         confirm=lambda plan, report: True)
    assert report.sent == 4 and report.recorded and sent_record_of(home)
    assert set(sendgrid_standin.counts()) == EXAMPLE_SUBSCRIBED
    assert journal_holds(home)["runs"] == 1


def test_a_list_that_changes_while_the_question_is_asked_is_refused(home: Path, sendgrid_standin) -> None:
    settings = load_settings(home)

    def yes_after_a_new_reader_joined(plan, report) -> bool:
        with open(home / "subscribers" / "example.csv", "a") as listing:
            listing.write("late@example.com,Late Reader,subscribed,readers,2026-05-01,\n")
        return True

    with pytest.raises(NewsletterError, match="list 'example' changed while the question was asked: "
                                              "5 recipients to send now, not 4; nothing was sent"):
        engine.send(settings, Path(ISSUE), engine.SendOptions(list_name="example"),
                    confirm=yes_after_a_new_reader_joined)
    assert journal_holds(home) == NOTHING and not sendgrid_standin.counts()


def test_a_resume_with_nobody_left_finishes_the_send_it_resumes(home: Path, sendgrid_standin) -> None:
    """The one run kept without sending: an unfinished send whose remaining readers all left since. Its resume
    finishes it (they are no longer selected), so another audience or provider is not refused later."""
    sendgrid_standin.answer(401)  # the first request is refused: the run is on record, nobody sent
    first = run("send", ISSUE, "--list", "example", "--yes")
    assert first.exit_code == 2 and journal_holds(home)["runs"] == 1, first.output
    path = home / "subscribers" / "example.csv"
    path.write_text(path.read_text().replace(",subscribed,", ",unsubscribed,"))
    resumed = run("send", ISSUE, "--list", "example", "--resume", "--yes")
    assert resumed.exit_code == 0 and "Nothing to send" in resumed.output, resumed.output
    dry = run("send", ISSUE, "--list", "example", "--provider", "smtp", "--dry-run", "--yes")
    assert dry.exit_code == 0 and "unfinished send" not in dry.output, dry.output
    assert not sendgrid_standin.counts()
