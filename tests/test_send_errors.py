"""Issue 13: OS errors in the send path are one clear error (path and fix, exit 2, with the summary so
far), and an SMTP server that echoes the password never gets it printed or journaled."""

from __future__ import annotations

import os
import resource
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from newsletter_helpers import ISSUE, set_option, write_list
from smtp_fixtures import SMTP_PASSWORD

from newsletter.cli import main


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def corrupt_journal(root: Path) -> Path:
    path = root / ".newsletter" / "journal.sqlite"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"this is not an SQLite database, it was damaged" * 100)
    return path


def test_a_full_disk_mid_send_is_an_error_with_the_summary_then_resume(sendgrid_newsletter: Path,
                                                                     sendgrid_standin):
    """The journal's file may grow no further (RLIMIT_FSIZE, as a full disk): the send stops with the
    journal's path and the fix, exit 2, after saying what it sent; the resume mails nobody twice."""
    expected = write_list(sendgrid_newsletter, "big", 2000)
    set_option(sendgrid_newsletter, "send", "batch_size = 50")

    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (700_000, 700_000))

    child = subprocess.run([sys.executable, "-m", "newsletter.cli", "send", ISSUE, "--list", "big", "--yes"],
                           cwd=sendgrid_newsletter, env={**os.environ}, capture_output=True, text=True,
                           preexec_fn=small_disk, timeout=120)
    output = child.stdout + child.stderr
    assert child.returncode == 2, output
    assert "Traceback" not in output
    assert ".newsletter/journal.sqlite: cannot write the send journal" in output
    assert "free some disk space" in output
    assert "sent " in child.stdout and " of 2000" in child.stdout  # the summary so far
    delivered = set(sendgrid_standin.counts())
    assert 0 < len(delivered) < len(expected)

    resumed = run("send", ISSUE, "--resume", "--yes")
    counts = sendgrid_standin.counts()
    assert max(counts.values()) == 1, "a recipient was mailed twice"
    db = sqlite3.connect(sendgrid_newsletter / ".newsletter" / "journal.sqlite")
    unknown = {e for (e,) in db.execute("SELECT email FROM deliveries WHERE status='unknown'")}
    db.close()
    assert set(counts) | unknown == expected
    assert resumed.exit_code == (1 if unknown else 0), resumed.output


def test_newsletter_folder_not_writable_is_one_error(sendgrid_newsletter: Path, sendgrid_standin):
    (sendgrid_newsletter / ".newsletter").write_text("a file where the journal's folder should be")
    result = CliRunner().invoke(main, ["send", ISSUE, "--list", "example", "--yes"])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert ".newsletter" in result.output and "writable" in result.output
    assert not sendgrid_standin.counts()


def test_a_corrupt_journal_under_dry_run_is_one_error(newsletter_root: Path):
    corrupt_journal(newsletter_root)
    result = CliRunner().invoke(main, ["send", ISSUE, "--list", "example", "--dry-run"])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert ".newsletter/journal.sqlite: the send journal is damaged" in result.output
    assert "never delete it" in result.output


def test_status_on_a_corrupt_journal_says_so(newsletter_root: Path):
    corrupt_journal(newsletter_root)
    result = CliRunner().invoke(main, ["status", ISSUE])
    assert result.exit_code == 2, result.output
    assert "has not been sent" not in result.output and "damaged" in result.output


def test_status_when_the_journal_is_a_folder(newsletter_root: Path):
    (newsletter_root / ".newsletter" / "journal.sqlite").mkdir(parents=True)
    result = CliRunner().invoke(main, ["status", ISSUE])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert ".newsletter/journal.sqlite: the send journal is a folder, not a file" in result.output


def test_an_smtp_reply_echoing_the_password_is_scrubbed(newsletter_root: Path, smtp_tls_server, monkeypatch):
    from newsletter_helpers import configure_smtp

    configure_smtp(newsletter_root, smtp_tls_server, monkeypatch)
    handler = smtp_tls_server.handler
    received = handler.handle_RCPT

    async def echo_credentials(server, session, envelope, address, rcpt_options):
        if address == "grace@example.org":  # a careless server quoting the login back
            return f"550 5.7.1 user {session.auth_data.login.decode()} pw {session.auth_data.password.decode()} denied"
        return await received(server, session, envelope, address, rcpt_options)

    handler.handle_RCPT = echo_credentials
    result = run("send", ISSUE, "--list", "example", "--provider", "smtp", "--yes")
    assert result.exit_code == 1, result.output
    assert "failed: grace@example.org: SMTP 550 5.7.1 user" in result.output
    assert SMTP_PASSWORD not in result.output and "[redacted]" in result.output
    journal = (newsletter_root / ".newsletter" / "journal.sqlite").read_bytes()
    wal = newsletter_root / ".newsletter" / "journal.sqlite-wal"
    assert SMTP_PASSWORD.encode() not in journal + (wal.read_bytes() if wal.exists() else b"")
    assert SMTP_PASSWORD not in run("status", ISSUE).output
