"""Sending an issue: every subscribed recipient exactly once, counted at a stand-in SendGrid."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import main
from newsletter.config import load_settings
from newsletter.compose.content import write_issue_id
from newsletter.sending.lock import exclusive

ISSUE = "issues/2026-11-25-first-dispatch"
EXAMPLE_SUBSCRIBED = {"ada@example.com", "grace@example.org", "katherine@example.org", "edsger@example.com"}


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def set_option(root: Path, section: str, line: str) -> None:
    path = root / "newsletter.toml"
    text = path.read_text()
    if f"[{section}]" in text:
        text = text.replace(f"[{section}]", f"[{section}]\n{line}", 1)
    else:
        text += f"\n[{section}]\n{line}\n"
    path.write_text(text)


def write_list(root: Path, name: str, count: int, extra_rows: str = "") -> set[str]:
    rows = [f"reader{i}@example.com,Reader {i},subscribed" for i in range(count)]
    (root / "subscribers" / f"{name}.csv").write_text("email,name,status\n" + "\n".join(rows) + "\n" + extra_rows)
    return {f"reader{i}@example.com" for i in range(count)}


@pytest.fixture
def fast_retries(sendgrid_newsletter: Path) -> Path:
    set_option(sendgrid_newsletter, "send", "backoff_seconds = 0.01\nmax_backoff_seconds = 0.05")
    return sendgrid_newsletter


def journal_rows(root: Path) -> dict[str, str]:
    db = sqlite3.connect(root / ".newsletter" / "journal.sqlite")
    try:
        return dict(db.execute("SELECT email, status FROM deliveries"))
    finally:
        db.close()


# -- dry run -------------------------------------------------------------------------------------------


def test_dry_run_writes_samples_and_report_and_leaves_the_journal(newsletter_root: Path):
    result = run("send", ISSUE, "--list", "example", "--dry-run")
    assert result.exit_code == 0, result.output
    out = newsletter_root / "outbox" / "2026-11-25-first-dispatch"
    samples = sorted(out.glob("sample-*.eml"))
    assert len(samples) == 3
    assert "To: Ada Lovelace <ada@example.com>" in samples[0].read_text()
    report = json.loads((out / "report.json").read_text())
    assert report["to_send"] == 4 and report["sent"] == 4
    assert report["skipped"] == {"unsubscribed": 1, "duplicate": 1, "bounced": 1}
    assert report["batches"] == 1 and report["html_bytes"] > 10_000
    assert "Dry run: would send 4 of 4" in result.output
    assert "nothing was sent" in result.output
    assert not (newsletter_root / ".newsletter" / "journal.sqlite").exists()


def test_dry_run_counts_what_an_earlier_send_already_delivered(sendgrid_newsletter: Path, sendgrid_standin):
    assert run("send", ISSUE, "--list", "example", "--yes").exit_code == 0
    before = (sendgrid_newsletter / ".newsletter" / "journal.sqlite").read_bytes()
    result = run("send", ISSUE, "--list", "example", "--dry-run")
    assert "would send 0 of 0" in result.output and "4 already sent" in result.output
    assert (sendgrid_newsletter / ".newsletter" / "journal.sqlite").read_bytes() == before


# -- a live send --------------------------------------------------------------------------------------------


def test_send_delivers_each_subscribed_recipient_once(sendgrid_newsletter: Path, sendgrid_standin):
    result = run("send", ISSUE, "--list", "example", "--yes")
    assert result.exit_code == 0, result.output
    counts = sendgrid_standin.counts()
    assert set(counts) == EXAMPLE_SUBSCRIBED and max(counts.values()) == 1
    assert "sent 4 of 4" in result.output
    ada = next(a for a in sendgrid_standin.accepted if a.email == "ada@example.com")
    assert any("Ada Lovelace" in value for value in ada.substitutions.values())
    assert ada.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert ada.custom_args["issue"] == "2026-11-25-first-dispatch" and ada.custom_args["list"] == "example"
    # Running the same send again mails nobody twice.
    again = run("send", ISSUE, "--list", "example", "--yes")
    assert again.exit_code == 0 and "Nothing to send" in again.output
    assert max(sendgrid_standin.counts().values()) == 1
    status = run("status", ISSUE)
    assert "example: 4 sent" in status.output


def test_large_list_goes_in_batches_of_at_most_1000(sendgrid_newsletter: Path, sendgrid_standin):
    expected = write_list(sendgrid_newsletter, "big", 2500)
    result = run("send", ISSUE, "--list", "big", "--yes")
    assert result.exit_code == 0, result.output
    sizes = [r.recipients for r in sendgrid_standin.mail_requests()]
    assert sorted(sizes) == [500, 1000, 1000]  # up to [send] concurrency requests go out at once
    assert set(sendgrid_standin.counts()) == expected and max(sendgrid_standin.counts().values()) == 1


def test_rate_limits_and_server_errors_lose_and_duplicate_no_one(fast_retries: Path, sendgrid_standin):
    set_option(fast_retries, "send", "batch_size = 100")
    expected = write_list(fast_retries, "storm", 500)
    sendgrid_standin.rate_limit(times=3, reset_in=0.05)
    sendgrid_standin.answer(500, times=2)
    sendgrid_standin.answer(503, times=1)
    result = run("send", ISSUE, "--list", "storm", "--yes")
    assert result.exit_code == 0, result.output
    counts = sendgrid_standin.counts()
    assert set(counts) == expected and max(counts.values()) == 1


def test_lost_answer_is_unknown_and_never_resent_without_asking(fast_retries: Path, sendgrid_standin):
    set_option(fast_retries, "send", "batch_size = 2")
    sendgrid_standin.drop(deliver=True)  # SendGrid accepted the first batch, the answer never came back
    result = run("send", ISSUE, "--list", "example", "--yes")
    assert result.exit_code == 1
    assert "2 unknown" in result.output and "unknown: ada@example.com" in result.output
    assert set(sendgrid_standin.counts()) == EXAMPLE_SUBSCRIBED
    again = run("send", ISSUE, "--list", "example", "--yes")
    assert "Nothing to send" in again.output
    assert max(sendgrid_standin.counts().values()) == 1  # no duplicate by default
    assert "unknown" in run("status", ISSUE).output
    retried = run("send", ISSUE, "--list", "example", "--yes", "--retry-unknown")
    assert retried.exit_code == 0 and "sent 2 of 2" in retried.output


def test_bad_api_key_stops_the_whole_send_at_once(sendgrid_newsletter: Path, sendgrid_standin, monkeypatch):
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.wrong-key-that-must-never-be-printed")
    write_list(sendgrid_newsletter, "big", 3000)
    result = run("send", ISSUE, "--list", "big", "--yes")
    assert result.exit_code != 0
    assert "SENDGRID_API_KEY" in result.output
    assert "wrong-key-that-must-never-be-printed" not in result.output
    assert len(sendgrid_standin.mail_requests()) == 0 and not sendgrid_standin.counts()
    # refused before the first request: nothing went out, so the run left nothing in the journal to resume
    assert journal_rows(sendgrid_newsletter) == {}


def test_missing_api_key_names_the_variable(sendgrid_newsletter: Path, monkeypatch):
    monkeypatch.delenv("SENDGRID_API_KEY")
    result = run("send", ISSUE, "--list", "example", "--yes")
    assert result.exit_code == 2 and "SENDGRID_API_KEY" in result.output


def test_refused_address_fails_alone_and_the_rest_go_out(fast_retries: Path, sendgrid_standin):
    sendgrid_standin.refuse_address("grace@example.org", "The email address is not valid.")
    result = run("send", ISSUE, "--list", "example", "--yes")
    assert result.exit_code == 1
    assert "failed: grace@example.org" in result.output and "The email address is not valid." in result.output
    assert set(sendgrid_standin.counts()) == EXAMPLE_SUBSCRIBED - {"grace@example.org"}
    assert journal_rows(fast_retries)["grace@example.org"] == "failed"


def test_header_injection_in_a_name_fails_that_recipient_only(fast_retries: Path, sendgrid_standin):
    write_list(fast_retries, "evil", 3, '"Eve\r\nBcc: victim@example.org",x,subscribed\n')
    (fast_retries / "subscribers" / "evil.csv").write_text(
        "email,name,status\nreader0@example.com,Reader,subscribed\n"
        'eve@example.com,"Eve\nBcc: victim@example.org",subscribed\n')
    result = run("send", ISSUE, "--list", "evil", "--yes")
    assert result.exit_code == 1
    assert "failed: eve@example.com" in result.output and "line break" in result.output
    assert set(sendgrid_standin.counts()) == {"reader0@example.com"}
    assert all("victim" not in json.dumps(a.headers) for a in sendgrid_standin.accepted)


def test_unsubscribed_since_the_last_attempt_is_not_sent(fast_retries: Path, sendgrid_standin):
    set_option(fast_retries, "send", "batch_size = 1\noutage_seconds = 0.5")
    sendgrid_standin.answer(500, times=100)  # first attempt: nothing goes out, the send pauses
    first = run("send", ISSUE, "--list", "example", "--yes")
    assert first.exit_code == 1 and "paused" in first.output.lower()
    assert not sendgrid_standin.counts()
    assert run("subscribers", "unsubscribe", "katherine@example.org", "--list", "example").exit_code == 0
    sendgrid_standin.reset()
    second = run("send", ISSUE, "--list", "example", "--yes")
    assert second.exit_code == 0, second.output
    assert set(sendgrid_standin.counts()) == EXAMPLE_SUBSCRIBED - {"katherine@example.org"}
    # The journal still holds her pending row from the first run; status says why it will not go out.
    status = run("status", ISSUE).output
    assert "example: 3 sent, 1 not selected" in status, status
    assert "not selected: katherine@example.org: not selected by the latest send (unsubscribed" in status


def test_a_second_send_of_the_same_issue_is_refused(sendgrid_newsletter: Path, sendgrid_standin):
    settings = load_settings(sendgrid_newsletter)
    write_issue_id(sendgrid_newsletter / ISSUE, "issue-one")
    with exclusive(settings.journal_path, "issue-one", "example", "2026-11-25-first-dispatch"):
        result = run("send", ISSUE, "--list", "example", "--yes")
    assert result.exit_code == 2, result.output
    assert "another send of 2026-11-25-first-dispatch to list 'example' is running (pid" in result.output
    assert not sendgrid_standin.counts()


def test_without_a_terminal_a_live_send_needs_yes(sendgrid_newsletter: Path, sendgrid_standin):
    result = run("send", ISSUE, "--list", "example")
    assert result.exit_code == 2 and "--yes" in result.output
    assert not sendgrid_standin.counts()


def test_checks_with_errors_refuse_a_live_send(sendgrid_newsletter: Path, sendgrid_standin):
    issue_md = sendgrid_newsletter / ISSUE / "issue.md"
    issue_md.write_text(issue_md.read_text().replace('subject: "The First Dispatch', 'preheader2: "x'))
    issue_md.write_text(issue_md.read_text().replace("preheader2", "preheader", 1))
    result = run("send", ISSUE, "--list", "example", "--yes")
    assert result.exit_code != 0 and not sendgrid_standin.counts()


def test_test_to_sends_only_there_and_leaves_the_journal(sendgrid_newsletter: Path, sendgrid_standin):
    result = run("send", ISSUE, "--test-to", "editor@example.com", "--test-prefix", "[TEST] ")
    assert result.exit_code == 0, result.output
    assert set(sendgrid_standin.counts()) == {"editor@example.com"}
    assert sendgrid_standin.accepted[0].subject.startswith("[TEST] The First Dispatch")
    assert not (sendgrid_newsletter / ".newsletter" / "journal.sqlite").exists()


def test_schedule_and_sandbox_reach_sendgrid(sendgrid_newsletter: Path, sendgrid_standin):
    import datetime as dt

    when = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=2)).replace(microsecond=0)
    result = run("send", ISSUE, "--list", "example", "--yes", "--provider-at", when.isoformat())
    assert result.exit_code == 0, result.output
    assert {a.send_at for a in sendgrid_standin.accepted} == {int(when.timestamp())}


def test_provider_held_schedule_is_refused_for_smtp_and_beyond_72_hours(newsletter_root: Path):
    """SendGrid's own send_at (--provider-at); `--at`, which newsletter holds itself, works with every provider
    (tests/test_due_schedules.py)."""
    smtp = run("send", ISSUE, "--list", "example", "--yes", "--provider", "smtp",
               "--provider-at", "2030-01-01T09:00+00:00")
    assert smtp.exit_code == 2 and "smtp sends at once" in smtp.output and "--at" in smtp.output
    far = run("send", ISSUE, "--list", "example", "--yes", "--provider-at", "2099-01-01T09:00+00:00")
    assert far.exit_code == 2 and "72 hours" in far.output
