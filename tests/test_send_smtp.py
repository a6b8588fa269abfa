"""`newsletter send --provider smtp` end to end: STARTTLS, AUTH, a real aiosmtpd server on 127.0.0.1."""

from __future__ import annotations

from click.testing import CliRunner
from newsletter_helpers import EXAMPLE_SUBSCRIBED, ISSUE, configure_smtp, write_list
from smtp_fixtures import SMTP_PASSWORD

from newsletter.cli import main


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_smtp_send_over_starttls_with_auth_delivers_each_once(newsletter_root, smtp_tls_server, monkeypatch):
    configure_smtp(newsletter_root, smtp_tls_server, monkeypatch)
    result = run("send", ISSUE, "--list", "example", "--provider", "smtp", "--yes")
    assert result.exit_code == 0, result.output
    assert SMTP_PASSWORD not in result.output
    received = smtp_tls_server.handler.received
    assert sorted(smtp_tls_server.handler.recipients()) == sorted(EXAMPLE_SUBSCRIBED)
    assert all(len(r.message()["To"].addresses) == 1 for r in received)
    assert all(r.tls for r in received)
    ada = next(r.message() for r in received if r.rcpt_tos == ("ada@example.com",))
    assert "Hi Ada Lovelace," in ada.get_body(("plain",)).get_content()
    assert ada["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    again = run("send", ISSUE, "--list", "example", "--provider", "smtp", "--yes")
    assert "Nothing to send" in again.output and len(smtp_tls_server.handler.received) == 4


def test_smtp_temporary_and_permanent_refusals(newsletter_root, smtp_tls_server, monkeypatch):
    configure_smtp(newsletter_root, smtp_tls_server, monkeypatch)
    expected = write_list(newsletter_root, "mixed", 30)
    smtp_tls_server.handler.answer("reader3@example.com", "550 5.1.1 mailbox unavailable")
    smtp_tls_server.handler.answer("reader7@example.com", "451 4.7.1 try again later", times=1)
    result = run("send", ISSUE, "--list", "mixed", "--provider", "smtp", "--yes")
    assert result.exit_code == 1
    assert "failed: reader3@example.com: SMTP 550 5.1.1 mailbox unavailable" in result.output
    got = smtp_tls_server.handler.recipients()
    assert sorted(got) == sorted(expected - {"reader3@example.com"})  # reader7 retried and delivered once


def test_server_dropping_the_connection_mid_send_loses_and_duplicates_no_one(newsletter_root, smtp_tls_server,
                                                                              monkeypatch):
    configure_smtp(newsletter_root, smtp_tls_server, monkeypatch)
    expected = write_list(newsletter_root, "drop", 40)
    smtp_tls_server.handler.drop_connection(after=10, stage="mail", times=2)
    result = run("send", ISSUE, "--list", "drop", "--provider", "smtp", "--yes")
    assert result.exit_code == 0, result.output
    got = smtp_tls_server.handler.recipients()
    assert sorted(got) == sorted(expected)


def test_wrong_smtp_password_stops_and_never_shows_it(newsletter_root, smtp_tls_server, monkeypatch):
    configure_smtp(newsletter_root, smtp_tls_server, monkeypatch)
    monkeypatch.setenv("SMTP_PASSWORD", "not-the-password-zz9")
    result = run("send", ISSUE, "--list", "example", "--provider", "smtp", "--yes")
    assert result.exit_code != 0
    assert "not-the-password-zz9" not in result.output and "SMTP_PASSWORD" in result.output
    assert not smtp_tls_server.handler.received


def test_one_unknown_recipient_is_one_recipient_in_what_the_writer_reads(newsletter_root, smtp_tls_server,
                                                                       monkeypatch):
    """A message received but never answered is unknown; the summary, the question and the outcome of
    ``resolve`` say "1 recipient", not "1 recipients"."""
    configure_smtp(newsletter_root, smtp_tls_server, monkeypatch)
    write_list(newsletter_root, "one", 3)
    smtp_tls_server.handler.drop_connection(after=1, stage="data")  # the second message: kept, never answered
    result = run("send", ISSUE, "--list", "one", "--provider", "smtp", "--yes")
    assert result.exit_code != 0, result.output
    assert "1 recipient's delivery is unknown" in result.output, result.output
    listing = CliRunner().invoke(main, ["resolve", ISSUE, "--list", "one", "--as", "sent"], input="n\n")
    assert "Record this 1 recipient as sent?" in listing.output, listing.output
    settled = run("resolve", ISSUE, "--list", "one", "--as", "sent", "--yes")
    assert settled.exit_code == 0 and "1 recipient: recorded as sent." in settled.output, settled.output


def test_a_long_outage_pauses_the_send_after_a_thousand_quick_retries_without_a_traceback(
        newsletter_root, smtp_tls_server, monkeypatch):
    """The server goes away for good after the first message: the send retries with back-off until the
    outage limit, then pauses with its resume command. (The back-off doubled per failure without
    bound: the 1,025th failure in a row crashed with an OverflowError.)"""
    configure_smtp(newsletter_root, smtp_tls_server, monkeypatch)
    config = newsletter_root / "newsletter.toml"
    config.write_text(config.read_text().replace("backoff_seconds = 0.01\nmax_backoff_seconds = 0.05",
                                                 "backoff_seconds = 0\nmax_backoff_seconds = 0\noutage_seconds = 4"))
    write_list(newsletter_root, "gone", 5)
    smtp_tls_server.handler.drop_connection(after=1, stage="mail", times=None, stop_listening=True)
    result = CliRunner().invoke(main, ["send", ISSUE, "--list", "gone", "--provider", "smtp", "--yes"])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 1, result.output
    assert "Paused" in result.output and "--resume" in result.output, result.output
    assert len(smtp_tls_server.handler.recipients()) == 1
