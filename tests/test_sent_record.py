"""A sent issue knows it was sent, in git: a clone, a CI job or a second editor never re-mails it.

The first live send of an issue to a list writes a ``sent:`` record into issue.md; a live send from a
journal that does not hold the recorded run is refused before anything goes out; ``--journal-lost``
sends only to readers who joined since. Counted at the SendGrid stand-in.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import yaml
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.sending import journal as jn
from newsletter.sending.sent_record import SentEntry, read_record, write_entry

from test_send import EXAMPLE_SUBSCRIBED, ISSUE, set_option

FIFTY = [f"reader{i}@example.com" for i in range(50)]


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _fifty(root: Path, dated: bool = True) -> None:
    rows = [f"{email},Reader {i},subscribed,{'2026-01-01' if dated else ''}" for i, email in enumerate(FIFTY)]
    (root / "subscribers" / "fifty.csv").write_text("email,name,status,subscribed_at\n" + "\n".join(rows) + "\n")


def _clone(root: Path, to: Path) -> Path:
    """What ``git clone`` gives a second machine: every committed file, and no .newsletter/ (ignored by git)."""
    shutil.copytree(root, to, ignore=shutil.ignore_patterns(".newsletter", "outbox", "build"))
    return to


def _front_matter(path: Path) -> dict:
    text = path.read_text()
    return yaml.safe_load(text.split("---\n")[1])


def test_the_first_live_send_records_itself_in_issue_md_and_says_to_commit_it(sendgrid_newsletter: Path,
                                                                               sendgrid_standin) -> None:
    _fifty(sendgrid_newsletter)
    issue_md = sendgrid_newsletter / ISSUE / "issue.md"
    result = run("send", ISSUE, "--list", "fifty", "--yes")
    assert result.exit_code == 0, result.output
    [entry] = _front_matter(issue_md)["sent"]
    assert entry["list"] == "fifty" and entry["recipients"] == 50 and entry["sent"] == 50
    assert entry["journal"] == "sqlite:.newsletter/journal.sqlite"
    assert abs(dt.datetime.fromisoformat(entry["at"].replace("Z", "+00:00")) - dt.datetime.now(dt.UTC)) \
        < dt.timedelta(minutes=10)
    journal = jn.Journal.read_only(jn.Location("sqlite", path=sendgrid_newsletter / ".newsletter/journal.sqlite"),
                                   _front_matter(issue_md)["id"], "fifty")
    assert journal.runs.holds_uid(entry["run"])
    journal.close()
    assert f"{ISSUE}/issue.md now records this send" in result.output and "git commit" in result.output
    # the record is the body's neighbour, not a rewrite: the Markdown body is byte for byte as it was
    assert issue_md.read_text().split("---\n", 2)[2] == (Path(__file__).parent.parent / ISSUE / "issue.md"
                                                         ).read_text().split("---\n", 2)[2]

    again = run("send", ISSUE, "--list", "fifty", "--yes")  # nothing left: no second line, nothing sent
    assert again.exit_code == 0 and "Nothing to send" in again.output
    assert len(_front_matter(issue_md)["sent"]) == 1
    assert max(sendgrid_standin.counts().values()) == 1


def test_a_sent_issue_in_a_fresh_clone_is_refused_and_nobody_is_mailed_again(sendgrid_newsletter: Path,
                                                                             sendgrid_standin, tmp_path: Path) -> None:
    """The re-mail of issue 19: 50 delivered, then the same send from a clone (no .newsletter/)."""
    _fifty(sendgrid_newsletter)
    assert run("send", ISSUE, "--list", "fifty", "--yes").exit_code == 0
    assert sum(sendgrid_standin.counts().values()) == 50
    clone = _clone(sendgrid_newsletter, tmp_path / "clone")

    for extra in ((), ("--dry-run",)):
        result = CliRunner().invoke(main, ["--root", str(clone), "send", str(clone / ISSUE), "--list", "fifty",
                                           "--yes", *extra])
        assert result.exit_code == 2, result.output
        message = result.output
        assert "issue.md" in message and "already sent to list 'fifty'" in message
        assert "to 50 recipients" in message and "journal sqlite:.newsletter/journal.sqlite" in message
        assert "journal_url" in message and "restore .newsletter/journal.sqlite" in message
        assert "--journal-lost" in message
    assert sum(sendgrid_standin.counts().values()) == 50  # nobody mailed again
    assert not (clone / ".newsletter" / "journal.sqlite").exists() or \
        not jn.lists_of(jn.Location("sqlite", path=clone / ".newsletter/journal.sqlite"), "x")


def test_another_list_is_not_refused(sendgrid_newsletter: Path, sendgrid_standin, tmp_path: Path) -> None:
    _fifty(sendgrid_newsletter)
    assert run("send", ISSUE, "--list", "fifty", "--yes").exit_code == 0
    clone = _clone(sendgrid_newsletter, tmp_path / "clone")
    result = CliRunner().invoke(main, ["--root", str(clone), "send", str(clone / ISSUE), "--list", "example",
                                       "--yes"])
    assert result.exit_code == 0, result.output
    assert {email for email, n in sendgrid_standin.counts().items() if email not in FIFTY} == EXAMPLE_SUBSCRIBED
    assert [e.list for e in read_record(clone / ISSUE)] == ["fifty", "example"]


def test_journal_lost_sends_only_to_readers_who_joined_since(sendgrid_newsletter: Path, sendgrid_standin,
                                                            tmp_path: Path) -> None:
    _fifty(sendgrid_newsletter)
    assert run("send", ISSUE, "--list", "fifty", "--yes").exit_code == 0
    sent_at = read_record(sendgrid_newsletter / ISSUE)[0].moment
    clone = _clone(sendgrid_newsletter, tmp_path / "clone")
    later = (sent_at + dt.timedelta(days=1)).date().isoformat()
    same_moment = sent_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    just_after = (sent_at + dt.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    with open(clone / "subscribers" / "fifty.csv", "a") as listing:
        listing.write(f"new1@example.com,New One,subscribed,{later}\n")  # joined the next day
        listing.write(f"new2@example.com,New Two,subscribed,{just_after}\n")  # minutes after the send
        listing.write(f"same@example.com,Same Moment,subscribed,{same_moment}\n")  # not later
        listing.write(f"sameday@example.com,Same Day,subscribed,{sent_at.date().isoformat()}\n")  # may be before
        listing.write("undated@example.com,No Date,subscribed,\n")  # counted as already mailed
    before = sendgrid_standin.counts()

    result = CliRunner().invoke(main, ["--root", str(clone), "send", str(clone / ISSUE), "--list", "fifty", "--yes",
                                       "--journal-lost"])
    assert result.exit_code == 0, result.output
    new = sendgrid_standin.counts() - before
    assert set(new) == {"new1@example.com", "new2@example.com"} and max(new.values()) == 1
    assert "52 joined before the recorded send (--journal-lost)" in result.output
    assert "1 no subscribed_at: counted as already mailed (--journal-lost)" in result.output
    entries = read_record(clone / ISSUE)
    assert [e.journal_lost for e in entries] == [False, True] and entries[1].recipients == 2
    status = run("--root", str(clone), "status", str(clone / ISSUE))
    assert "journal lost (--journal-lost): only readers who joined after" in status.output

    # From then on the clone's journal holds the record's latest run: an ordinary send goes on, mailing nobody.
    again = CliRunner().invoke(main, ["--root", str(clone), "send", str(clone / ISSUE), "--list", "fifty", "--yes"])
    assert again.exit_code == 0 and "Nothing to send" in again.output, again.output
    assert sendgrid_standin.counts() - before == new


def test_journal_lost_is_refused_when_nothing_is_lost(sendgrid_newsletter: Path, sendgrid_standin) -> None:
    _fifty(sendgrid_newsletter)
    refused = run("send", ISSUE, "--list", "fifty", "--yes", "--journal-lost")
    assert refused.exit_code == 2 and "records no send of this issue to list 'fifty'" in refused.output
    assert run("send", ISSUE, "--list", "fifty", "--yes").exit_code == 0
    refused = run("send", ISSUE, "--list", "fifty", "--yes", "--journal-lost")
    assert refused.exit_code == 2 and "holds the recorded send" in refused.output
    assert sum(sendgrid_standin.counts().values()) == 50


def test_a_shared_postgresql_journal_lets_a_clone_go_on_without_mailing_anyone_twice(
        sendgrid_newsletter: Path, sendgrid_standin, tmp_path: Path, postgres_url: str, monkeypatch) -> None:
    from journal_fixtures import fresh_schema_url

    url = fresh_schema_url(postgres_url)
    set_option(sendgrid_newsletter, "send", f'journal_url = "{url}"')
    _fifty(sendgrid_newsletter)
    assert run("send", ISSUE, "--list", "fifty", "--yes").exit_code == 0
    [entry] = read_record(sendgrid_newsletter / ISSUE)
    assert entry.journal.startswith("postgresql://newsletter@127.0.0.1:")
    clone = _clone(sendgrid_newsletter, tmp_path / "clone")
    with open(clone / "subscribers" / "fifty.csv", "a") as listing:
        listing.write("late@example.com,Late Reader,subscribed,\n")
    result = CliRunner().invoke(main, ["--root", str(clone), "send", str(clone / ISSUE), "--list", "fifty", "--yes"])
    assert result.exit_code == 0, result.output
    counts = sendgrid_standin.counts()
    assert counts["late@example.com"] == 1 and max(counts.values()) == 1 and sum(counts.values()) == 51
    assert len(read_record(clone / ISSUE)) == 1  # the same send, gone on: no second entry


def test_a_hand_broken_record_is_named_with_its_fix(sendgrid_newsletter: Path, sendgrid_standin) -> None:
    issue_md = sendgrid_newsletter / ISSUE / "issue.md"
    text = issue_md.read_text()
    issue_md.write_text(text.replace("\n---\n", "\nsent: yesterday\n---\n", 1))
    result = run("send", ISSUE, "--list", "example", "--yes")
    assert result.exit_code == 2 and "issue.md" in result.output and "'sent' must be a list" in result.output
    assert not sendgrid_standin.counts()


def test_the_record_keeps_windows_line_endings_and_a_bom(tmp_path: Path) -> None:
    folder = tmp_path / "issue"
    folder.mkdir()
    original = "\ufeff---\r\nsubject: Hi\r\nid: abc\r\n---\r\n\r\nBody\r\n"
    (folder / "issue.md").write_bytes(original.encode("utf-8"))
    entry = SentEntry("readers", "0123456789abcdef", "2026-12-01T09:00:00Z", 3, "sqlite:.newsletter/journal.sqlite")
    write_entry(folder, entry)
    write_entry(folder, SentEntry(**{**entry.__dict__, "sent": 3}))  # the same run's line, updated in place
    data = (folder / "issue.md").read_bytes().decode("utf-8")
    assert data == ("\ufeff---\r\nsubject: Hi\r\nid: abc\r\nsent:\r\n" + SentEntry(**{**entry.__dict__, "sent": 3})
                    .line() + "\r\n---\r\n\r\nBody\r\n")
    assert read_record(folder) == [SentEntry(**{**entry.__dict__, "sent": 3})]


def test_a_send_started_in_one_clone_is_finished_from_another_through_the_shared_journal(
        sendgrid_newsletter: Path, sendgrid_standin, tmp_path: Path, postgres_url: str) -> None:
    """Both clones' issue.md end with the same record line (the run that started the send), so merging
    them is a matter of the sent count at most; nobody is mailed twice and nobody is skipped."""
    from journal_fixtures import fresh_schema_url

    set_option(sendgrid_newsletter, "send", f'journal_url = "{fresh_schema_url(postgres_url)}"\n'
                                            "batch_size = 10\nconcurrency = 1\nbackoff_seconds = 0.01\nmax_backoff_seconds = 0.02\n"
                                            "outage_seconds = 0.2")
    _fifty(sendgrid_newsletter)
    other = _clone(sendgrid_newsletter, tmp_path / "other")  # cloned before anything was sent
    from sendgrid_standin import Reply

    sendgrid_standin.script(Reply(), Reply())  # two batches accepted, then the provider is down: the send pauses
    sendgrid_standin.answer(500, times=1000)
    first = run("send", ISSUE, "--list", "fifty", "--yes")
    assert first.exit_code == 1 and "sent 20 of 50" in first.output, first.output
    # Before the pull, the other clone's issue.md has no id: sending it would be a new issue to the journal.
    early = CliRunner().invoke(main, ["--root", str(other), "send", str(other / ISSUE), "--list", "fifty", "--yes"])
    assert early.exit_code == 2 and "has no 'id:' yet" in early.output and "pull the commit" in early.output
    assert "\nid:" not in (other / ISSUE / "issue.md").read_text()  # nothing written by the refusal
    shutil.copy(sendgrid_newsletter / ISSUE / "issue.md", other / ISSUE / "issue.md")  # commit, push, pull
    sendgrid_standin.script()  # nothing more scripted: answered as usual from now on
    sendgrid_standin.reset()
    result = CliRunner().invoke(main, ["--root", str(other), "send", str(other / ISSUE), "--resume", "--yes"])
    assert result.exit_code == 0 and "sent 30 of 30" in result.output, result.output
    assert set(sendgrid_standin.counts()) == set(FIFTY[20:]) and max(sendgrid_standin.counts().values()) == 1
    mine, theirs = read_record(sendgrid_newsletter / ISSUE), read_record(other / ISSUE)
    assert [(e.run, e.at, e.recipients) for e in mine] == [(e.run, e.at, e.recipients) for e in theirs]
    assert (mine[0].sent, theirs[0].sent) == (20, 50)
