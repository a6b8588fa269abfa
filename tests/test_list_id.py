"""Every copy of an issue names its list in a List-Id header (RFC 2919), whichever way it leaves:
the build's sample, dry-run samples, SMTP and SendGrid."""

from __future__ import annotations

import email
import email.policy
from email.header import decode_header, make_header

from click.testing import CliRunner
from newsletter_helpers import EXAMPLE_SUBSCRIBED, ISSUE, configure_smtp

from newsletter.cli import main
from newsletter.compose.message import list_id

EXAMPLE_LIST_ID = '"The Plain Files Dispatch" <l50d858e098.the-plain-files-dispatch.example.com>'


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def read_eml(path) -> email.message.EmailMessage:
    return email.message_from_bytes(path.read_bytes(), policy=email.policy.default)


def test_list_id_names_the_newsletter_and_its_domain_and_a_digest_of_the_list():
    assert list_id("The Plain Files Dispatch", "example", "Dispatch <dispatch@Example.COM>") == EXAMPLE_LIST_ID
    assert list_id('Say "hi"', "Main List", "a@example.org") == r'"Say \"hi\"" <l87c96f95ab.say-hi.example.org>'
    long_name = "Über die Grenzen — Ein Rundbrief " * 3
    value = list_id(long_name, "leser", "post@example.org")
    encoded_words = [word for word in value.split() if word.startswith("=?")]  # RFC 2047
    assert value.isascii() and all(len(word) <= 75 for word in encoded_words)
    assert str(make_header(decode_header(value))).startswith("Über die Grenzen — Ein Rundbrief Über")
    assert value.endswith(" <l346fced89f.uber-die-grenzen-ein-rundbrief-uber-die-grenzen-ein-rundbrief-u.example.org>")
    # one id per list, the same for every issue
    assert list_id("N", "readers", "a@example.org") == list_id("N", "readers", "a@example.org")
    assert list_id("N", "readers", "a@example.org") != list_id("N", "readers-2", "a@example.org")


def test_build_and_dry_run_samples_carry_the_list_id(newsletter_root, tmp_path):
    assert run("build", ISSUE, "--out", str(tmp_path / "out")).exit_code == 0
    built = read_eml(tmp_path / "out" / "message.eml")
    assert built["List-Id"] == '"The Plain Files Dispatch" <laf2bdbe1aa.the-plain-files-dispatch.example.com>'

    assert run("send", ISSUE, "--list", "example", "--dry-run", "--samples", "2").exit_code == 0
    samples = sorted((newsletter_root / "outbox" / "2026-11-25-first-dispatch").glob("*.eml"))
    assert len(samples) == 2
    assert all(read_eml(sample)["List-Id"] == EXAMPLE_LIST_ID for sample in samples)


def test_smtp_copies_carry_the_list_id(newsletter_root, smtp_tls_server, monkeypatch):
    configure_smtp(newsletter_root, smtp_tls_server, monkeypatch)
    assert run("send", ISSUE, "--list", "example", "--provider", "smtp", "--yes").exit_code == 0
    received = smtp_tls_server.handler.received
    assert sorted(smtp_tls_server.handler.recipients()) == sorted(EXAMPLE_SUBSCRIBED)
    assert all(r.message()["List-Id"] == EXAMPLE_LIST_ID for r in received)
    assert all(len(r.message().get_all("List-Id")) == 1 for r in received)


def test_sendgrid_requests_carry_the_list_id(sendgrid_newsletter, sendgrid_standin):
    assert run("send", ISSUE, "--list", "example", "--yes").exit_code == 0
    accepted = sendgrid_standin.accepted
    assert {a.email for a in accepted} == EXAMPLE_SUBSCRIBED
    for recipient in accepted:
        assert recipient.headers["List-Id"] == EXAMPLE_LIST_ID
        assert recipient.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"  # still per recipient


# -- what a reader sees: the newsletter's name, never the writer's own name for the list --------------

INTERNAL_LIST = "lapsed-donors"  # a name for the writer's eyes: readers on it must never see it


def _rename_example_list(root, name: str = INTERNAL_LIST) -> None:
    (root / "subscribers" / "example.csv").rename(root / "subscribers" / f"{name}.csv")


def _shown(value: str) -> str:
    """A header as a mail client shows it: encoded words decoded."""
    return str(make_header(decode_header(value)))


def test_no_header_of_a_delivered_copy_names_the_internal_list(newsletter_root, smtp_tls_server, monkeypatch):
    """Issue 20, finding 25: readers saw the writer's name for the list (in the List-Id Gmail and
    Thunderbird show). Every header of a copy received over SMTP is looked at."""
    configure_smtp(newsletter_root, smtp_tls_server, monkeypatch)
    _rename_example_list(newsletter_root)
    result = run("send", ISSUE, "--list", INTERNAL_LIST, "--provider", "smtp", "--yes")
    assert result.exit_code == 0, result.output
    received = smtp_tls_server.handler.received
    assert len(received) == len(EXAMPLE_SUBSCRIBED)
    for copy in received:
        message = copy.message()
        for name, value in message.items():
            assert "lapsed" not in _shown(str(value)).lower(), f"{name}: {value}"
        assert _shown(message["List-Id"]).startswith('"The Plain Files Dispatch" <')
        assert message["From"].addresses[0].display_name == "The Plain Files Dispatch"


def test_no_header_of_a_sendgrid_request_names_the_internal_list(sendgrid_newsletter, sendgrid_standin):
    _rename_example_list(sendgrid_newsletter)
    assert run("send", ISSUE, "--list", INTERNAL_LIST, "--yes").exit_code == 0
    accepted = sendgrid_standin.accepted
    assert {a.email for a in accepted} == EXAMPLE_SUBSCRIBED
    for recipient in accepted:
        shown = [recipient.subject, *recipient.headers.values()]  # SendGrid writes From and To from the request
        assert not [value for value in shown if "lapsed" in _shown(value).lower()]
        assert _shown(recipient.headers["List-Id"]).startswith('"The Plain Files Dispatch" <')
