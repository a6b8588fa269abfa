"""``newsletter journal copy``: an existing SQLite journal moved into PostgreSQL, and back, through the CLI; the
sends go on from the copy exactly where they were (nobody mailed twice)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from journal_fixtures import fresh_schema_url
from newsletter_helpers import ISSUE, set_option, write_list

from newsletter.cli import main


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_a_sqlite_journal_moves_to_postgresql_and_back_and_the_send_goes_on(sendgrid_newsletter: Path,
                                                                           sendgrid_standin, postgres_url: str):
    expected = write_list(sendgrid_newsletter, "forty", 40)
    assert run("send", ISSUE, "--list", "forty", "--yes").exit_code == 0
    url = fresh_schema_url(postgres_url)
    copied = run("journal", "copy", "--to", url)
    assert copied.exit_code == 0, copied.output
    assert "Copied 1 sends (40 recipients, 1 runs) from sqlite:.newsletter/journal.sqlite to postgresql://" \
        in copied.output and "journal_url" in copied.output
    set_option(sendgrid_newsletter, "send", f'journal_url = "{url}"')
    (sendgrid_newsletter / ".newsletter" / "journal.sqlite").rename(sendgrid_newsletter / "moved-away.sqlite")
    more = expected | write_list(sendgrid_newsletter, "forty", 45)  # five more readers since
    again = run("send", ISSUE, "--list", "forty", "--yes")  # the sent record's run is in the copy: allowed
    assert again.exit_code == 0 and "sent 5 of 5" in again.output, again.output

    back = run("journal", "copy", "--to", "back.sqlite")
    assert back.exit_code == 0 and "Copied 1 sends (45 recipients, 2 runs)" in back.output, back.output
    status = run("status", ISSUE, "--list", "forty")
    assert "45 sent" in status.output
    counts = sendgrid_standin.counts()
    assert set(counts) == more and max(counts.values()) == 1


def test_copying_onto_an_existing_file_or_itself_is_refused(sendgrid_newsletter: Path, sendgrid_standin):
    write_list(sendgrid_newsletter, "forty", 3)
    assert run("send", ISSUE, "--list", "forty", "--yes").exit_code == 0
    (sendgrid_newsletter / "taken.sqlite").write_text("")
    refused = CliRunner().invoke(main, ["journal", "copy", "--to", "taken.sqlite"])
    assert refused.exit_code == 2 and "exists already" in refused.output and "never overwrite" in refused.output
    itself = CliRunner().invoke(main, ["journal", "copy", "--to", ".newsletter/journal.sqlite"])
    assert itself.exit_code == 2 and "is the journal to copy from" in itself.output
