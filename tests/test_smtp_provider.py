"""Sending the example issue through a real SMTP server on 127.0.0.1, and counting what arrived."""

from __future__ import annotations

import dataclasses
import shutil
import socket
import traceback
from collections import Counter
from pathlib import Path

import pytest
from provider_helpers import send_batch
from smtp_fixtures import SMTP_PASSWORD, SMTP_USER, SmtpServer  # a plugin (conftest.py): its asserts are rewritten

from newsletter.compose.build import BuiltIssue, build_issue
from newsletter.compose.personalize import merge_values
from newsletter.compose.unsubscribe import unsubscribe_url
from newsletter.config import Settings, SmtpSettings, load_settings
from newsletter.errors import NewsletterError
from newsletter.providers import registry
from newsletter.providers.base import (
    DEFERRED,
    FAILED,
    SENT,
    UNKNOWN,
    AuthError,
    Message,
    ProviderError,
    Recipient,
    TransientError,
)
from newsletter.providers.smtp import SmtpProvider, from_settings

ROOT = Path(__file__).resolve().parent.parent
ISSUE = "2026-11-25-first-dispatch"
LIST = "example"
SECRET = b"test unsubscribe secret"
SCRIPT_NAME = "Mallory <script>alert(1)</script>"


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, BuiltIssue]:
    """A copy of the example newsletter with its first issue built (rendered and inlined once)."""
    root = tmp_path_factory.mktemp("newsletter")
    shutil.copy(ROOT / "newsletter.toml", root / "newsletter.toml")
    for folder in ("templates", "issues", "subscribers"):
        shutil.copytree(ROOT / folder, root / folder)
    settings = load_settings(root)
    return settings, build_issue(settings, root / "issues" / ISSUE)


@pytest.fixture(scope="module")
def message(example) -> Message:
    settings, built = example
    return Message(
        issue_name=built.issue.name, list_name=LIST, subject=built.subject, html=built.html, text=built.text,
        fields=built.fields, from_address=settings.from_address, reply_to=settings.reply_to,
        unsubscribe_mailto=settings.unsubscribe_mailto,
    )


def recipient(settings: Settings, email: str, name: str, **columns: str) -> Recipient:
    values = merge_values({"email": email, "name": name, **columns},
                          unsubscribe_url(settings, LIST, email, SECRET, registry.kind("smtp")))
    return Recipient(email=email, key=email.lower(), name=name, values=values)


@pytest.fixture(scope="module")
def readers(example) -> list[Recipient]:
    """Twenty subscribers, one of them with markup in their name."""
    settings, _ = example
    people = [recipient(settings, f"reader{n:02d}@example{'.com' if n % 2 else '.org'}", f"Reader {n:02d}",
                        city="Springfield") for n in range(19)]
    people.insert(7, recipient(settings, "mallory@example.com", SCRIPT_NAME, city="Nowhere"))
    return people


def send(provider: SmtpProvider, message: Message, recipients: list[Recipient], batch: int | None = None):
    """Send in batches of the provider's size, as send.py does, over one provider session."""
    batch = batch or provider.capabilities.max_batch
    deliveries = []
    provider.open()
    try:
        for start in range(0, len(recipients), batch):
            deliveries.extend(send_batch(provider, message, recipients[start:start + batch]))
    finally:
        provider.close()
    assert [d.key for d in deliveries] == [r.key for r in recipients]
    return deliveries


def arrivals(server: SmtpServer) -> Counter:
    """How many messages each address received at the server."""
    return Counter(rcpt.lower() for rcpt in server.handler.recipients())


def test_twenty_subscribers_each_get_their_own_copy_over_one_connection(smtp_server, message, readers):
    provider = smtp_server.provider()
    deliveries = send(provider, message, readers, batch=8)  # three batches, one connection

    assert [d.status for d in deliveries] == [SENT] * 20
    received = smtp_server.handler.received
    assert len(received) == 20
    assert arrivals(smtp_server) == Counter(r.key for r in readers)
    assert len({m.peer for m in received}) == 1, "one connection is reused across messages and batches"

    by_address = {m.rcpt_tos[0]: m for m in received}
    for reader, delivery in zip(readers, deliveries, strict=True):
        got = by_address[reader.email]
        assert got.mail_from == "dispatch@example.com"
        assert got.rcpt_tos == (reader.email,)
        msg = got.message()
        assert len(msg.get_all("To")) == 1 and len(msg["To"].addresses) == 1
        assert msg["To"].addresses[0].addr_spec == reader.email
        assert msg["To"].addresses[0].display_name == reader.name
        assert msg["Message-ID"] == delivery.message_id
        assert msg["Subject"] == message.subject
        assert msg["Reply-To"] == "editor@example.com"
        assert msg.get_content_type() == "multipart/alternative"
        assert [part.get_content_type() for part in msg.iter_parts()] == ["text/plain", "text/html"]
        text = msg.get_body(("plain",)).get_content()
        html = msg.get_body(("html",)).get_content()
        assert f"Hi {reader.name}," in text
        assert "NLMRG" not in text and "NLMRG" not in html, "every merge token is filled"
        assert reader.unsubscribe_url in text
        mailto = f"mailto:unsubscribe@example.com?subject=unsubscribe%20{reader.email.replace('@', '%40')}"
        assert " ".join(msg["List-Unsubscribe"].split()) == f"<{reader.unsubscribe_url}>, <{mailto}>"
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        if reader.name == SCRIPT_NAME:
            assert "<script>" not in html and "Hi Mallory &lt;script&gt;alert(1)&lt;/script&gt;," in html
            assert "Hi Mallory <script>alert(1)</script>," in text
        else:
            assert f"Hi {reader.name}," in html


def test_starttls_and_login_deliver_without_the_password_showing_anywhere(
        smtp_tls_server, message, readers, capsys, caplog):
    provider = smtp_tls_server.provider()
    deliveries = send(provider, message, readers)

    assert [d.status for d in deliveries] == [SENT] * 20
    assert arrivals(smtp_tls_server) == Counter(r.key for r in readers)
    assert all(m.tls and m.login == SMTP_USER for m in smtp_tls_server.handler.received)
    assert smtp_tls_server.handler.logins == [SMTP_USER], "logged in once, on one connection"
    out = capsys.readouterr()
    shown = out.out + out.err + caplog.text + repr(provider) + "".join(d.reason for d in deliveries)
    assert SMTP_PASSWORD not in shown


def test_implicit_tls_delivers(smtp_ssl_server, message, readers):
    deliveries = send(smtp_ssl_server.provider(), message, readers[:3])
    assert [d.status for d in deliveries] == [SENT] * 3
    assert all(m.tls and m.login == SMTP_USER for m in smtp_ssl_server.handler.received)


def test_password_comes_from_the_variable_newsletter_toml_names(
        smtp_tls_server, smtp_certificate, example, message, readers, monkeypatch):
    settings, _ = example
    settings = dataclasses.replace(settings, smtp=smtp_tls_server.settings(password_env="DISPATCH_SMTP_PW"))
    monkeypatch.delenv("DISPATCH_SMTP_PW", raising=False)
    with pytest.raises(NewsletterError, match="DISPATCH_SMTP_PW") as missing:
        from_settings(settings)
    assert "is not set" in str(missing.value) and SMTP_USER in str(missing.value)

    monkeypatch.setenv("DISPATCH_SMTP_PW", SMTP_PASSWORD)
    provider = from_settings(settings, ssl_context=smtp_certificate.client_context())
    assert [d.status for d in send(provider, message, readers[:2])] == [SENT, SENT]


def test_wrong_password_stops_with_an_auth_error_naming_server_and_user(smtp_tls_server, message, readers):
    wrong = "not-the-password-7d1f"
    provider = smtp_tls_server.provider(password=wrong)
    with pytest.raises(AuthError) as refused:
        provider.open()
    text = str(refused.value)
    assert f"{smtp_tls_server.host}:{smtp_tls_server.port}" in text
    assert SMTP_USER in text and "535" in text
    assert "NEWSLETTER_TEST_SMTP_PASSWORD" in text, "the hint names the variable to fix"
    everything = text + repr(refused.value) + "".join(traceback.format_exception(refused.value))
    assert wrong not in everything and SMTP_PASSWORD not in everything

    with pytest.raises(AuthError):  # and a batch never starts
        send_batch(provider, message, readers[:3])
    assert smtp_tls_server.handler.received == []


def test_starttls_is_required_when_configured(smtp_server, message, readers):
    provider = smtp_server.provider(security="starttls", username=SMTP_USER, password=SMTP_PASSWORD)
    with pytest.raises(ProviderError, match="does not offer STARTTLS") as refused:
        send_batch(provider, message, readers[:2])
    assert not isinstance(refused.value, TransientError)
    assert SMTP_PASSWORD not in str(refused.value)
    assert smtp_server.handler.received == [] and smtp_server.handler.logins == []


def test_a_certificate_that_cannot_be_verified_is_refused(smtp_tls_server, message, readers):
    provider = SmtpProvider(smtp_tls_server.settings(), password=SMTP_PASSWORD)  # trusts only the system CAs
    with pytest.raises(ProviderError, match="certificate") as refused:
        provider.open()
    assert not isinstance(refused.value, TransientError)
    assert smtp_tls_server.handler.logins == []


def test_clear_text_password_to_a_remote_host_is_refused():
    settings = SmtpSettings(host="smtp.example.com", port=25, security="none", username=SMTP_USER)
    with pytest.raises(NewsletterError, match="clear text"):
        SmtpProvider(settings, password=SMTP_PASSWORD)


def test_nothing_listening_is_a_transient_error(message, readers):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = SmtpProvider(SmtpSettings(host="127.0.0.1", port=port, security="none"), password=None)
    with pytest.raises(TransientError, match=f"cannot connect to the SMTP server 127.0.0.1:{port}"):
        send_batch(provider, message, readers[:2])


def test_4xx_defers_and_5xx_fails_only_that_recipient(smtp_server, message, readers):
    busy, gone, spam = readers[3], readers[11], readers[15]
    smtp_server.handler.answer(busy.email, "451 4.3.0 Mailbox busy, try again later")
    smtp_server.handler.answer(gone.email, "550 5.1.1 mailbox unavailable")
    smtp_server.handler.answer(spam.email, "554 5.7.1 Message rejected as spam", at="DATA")

    deliveries = {d.key: d for d in send(smtp_server.provider(), message, readers)}

    assert deliveries[busy.key].status == DEFERRED
    assert deliveries[busy.key].reason == "SMTP 451 4.3.0 Mailbox busy, try again later"
    assert deliveries[gone.key].status == FAILED
    assert deliveries[gone.key].reason == "SMTP 550 5.1.1 mailbox unavailable"
    assert deliveries[spam.key].status == FAILED
    assert deliveries[spam.key].reason == "SMTP 554 5.7.1 Message rejected as spam"
    others = [r for r in readers if r not in (busy, gone, spam)]
    assert all(deliveries[r.key].status == SENT for r in others)
    assert arrivals(smtp_server) == Counter(r.key for r in others)
    assert len({m.peer for m in smtp_server.handler.received}) == 1, "a refusal does not cost the connection"


def test_connection_dropped_before_a_message_is_reopened_and_nothing_is_sent_twice(smtp_server, message, readers):
    smtp_server.handler.drop_connection(after=7, stage="mail")
    smtp_server.handler.drop_connection(after=15, stage="mail")

    deliveries = send(smtp_server.provider(), message, readers)

    assert [d.status for d in deliveries] == [SENT] * 20
    assert arrivals(smtp_server) == Counter(r.key for r in readers), "each exactly once, none lost"
    assert smtp_server.handler.connections_dropped == 2
    assert len({m.peer for m in smtp_server.handler.received}) == 3


@pytest.mark.parametrize("stage", ["data", "data-lost"])
def test_connection_dropped_after_the_data_is_unknown_and_never_resent(smtp_server, message, readers, stage):
    """The server got the whole message but its answer never came: maybe delivered, so not sent again."""
    smtp_server.handler.drop_connection(after=7, stage=stage)

    deliveries = send(smtp_server.provider(), message, readers)

    unsure = readers[7]
    statuses = {d.key: d.status for d in deliveries}
    assert statuses == {r.key: (UNKNOWN if r is unsure else SENT) for r in readers}
    unknown = next(d for d in deliveries if d.status == UNKNOWN)
    assert "not resent" in unknown.reason and unknown.message_id
    expected = Counter(r.key for r in readers if stage == "data" or r is not unsure)
    assert arrivals(smtp_server) == expected, "nobody twice, nobody lost but the one reported unknown"


def test_a_server_that_keeps_dropping_is_left_alone_after_bounded_attempts(smtp_server, message, readers):
    smtp_server.handler.drop_connection(after=5, stage="mail", times=3)
    provider = smtp_server.provider()

    deliveries = send_batch(provider, message, readers)

    assert [d.status for d in deliveries] == [SENT] * 5 + [DEFERRED] * 15
    assert "lost before the message was sent, 3 times in a row" in deliveries[5].reason
    assert smtp_server.handler.connections_dropped == 3
    assert arrivals(smtp_server) == Counter(r.key for r in readers[:5])

    retried = send_batch(provider, message, readers[5:])  # what send.py does with DEFERRED, later
    provider.close()
    assert [d.status for d in retried] == [SENT] * 15
    assert arrivals(smtp_server) == Counter(r.key for r in readers), "each exactly once in the end"


def test_a_batch_that_cannot_start_raises_instead_of_deferring(smtp_server, message, readers):
    smtp_server.handler.drop_connection(after=0, stage="mail", times=None)
    with pytest.raises(TransientError, match="3 times in a row"):
        send_batch(smtp_server.provider(), message, readers[:4])
    assert smtp_server.handler.received == []


def test_a_421_stops_the_batch_without_losing_what_was_sent(smtp_server, message, readers):
    smtp_server.handler.answer(readers[3].email, "421 4.7.0 Too many messages, closing connection")
    provider = smtp_server.provider()

    deliveries = send_batch(provider, message, readers[:10])

    assert [d.status for d in deliveries] == [SENT] * 3 + [DEFERRED] * 7
    assert "SMTP 421 4.7.0 Too many messages" in deliveries[3].reason
    assert arrivals(smtp_server) == Counter(r.key for r in readers[:3])
    provider.close()


def test_a_connection_the_server_closed_while_idle_is_reopened(start_smtp_server, message, readers):
    server = start_smtp_server(idle_timeout=0.5)
    provider = server.provider()
    first = send_batch(provider, message, readers[:5])
    # send.py backing off, say: the server hangs up on the idle connection
    assert server.handler.wait_until(lambda handler: handler.received[0].peer in handler.closed, 30)
    second = send_batch(provider, message, readers[5:10])
    provider.close()

    assert [d.status for d in first + second] == [SENT] * 10
    assert arrivals(server) == Counter(r.key for r in readers[:10])
    assert len({m.peer for m in server.handler.received}) >= 2


def test_no_answer_in_time_after_the_data_is_unknown(start_smtp_server, message, readers):
    server = start_smtp_server()
    server.handler.delay_reply(after=2, seconds=3.0)
    provider = server.provider(timeout=1.0)

    deliveries = send(provider, message, readers[:6])

    assert [d.status for d in deliveries] == [SENT, SENT, UNKNOWN, SENT, SENT, SENT]
    assert "may have been delivered" in deliveries[2].reason
    assert arrivals(server) == Counter(r.key for r in readers[:6]), "delivered once, and not resent"


def test_a_server_requiring_a_login_we_lack_is_an_auth_error(smtp_ssl_server, message, readers):
    provider = smtp_ssl_server.provider(username="")
    with pytest.raises(AuthError, match="requires authentication: SMTP 530") as refused:
        send_batch(provider, message, readers[:2])
    assert "smtp.username" in str(refused.value)


def test_a_server_that_goes_away_mid_batch_defers_the_rest_then_reports_it(smtp_server, message, readers):
    smtp_server.handler.drop_connection(after=5, stage="mail", stop_listening=True)
    provider = smtp_server.provider()

    deliveries = send_batch(provider, message, readers)

    assert [d.status for d in deliveries] == [SENT] * 5 + [DEFERRED] * 15
    assert all("cannot connect" in d.reason for d in deliveries[5:])
    assert arrivals(smtp_server) == Counter(r.key for r in readers[:5])
    with pytest.raises(TransientError):  # the next batch: nothing can be delivered, so say so
        send_batch(provider, message, readers[5:])
    provider.close()


def test_a_line_break_in_a_name_fails_that_recipient_and_no_header_is_forged(
        smtp_server, example, message, readers):
    settings, _ = example
    eve = recipient(settings, "eve@example.org", "Eve\r\nBcc: x@example.org")
    hidden = recipient(settings, "hidden@example.org", "=?utf-8?q?Eve=0D=0ABcc=3A_x=40example=2Eorg?=")
    batch = [*readers[:4], eve, *readers[4:8], hidden]

    deliveries = {d.key: d for d in send(smtp_server.provider(), message, batch)}

    for bad in (eve, hidden):
        assert deliveries[bad.key].status == FAILED
        assert "line break" in deliveries[bad.key].reason
    assert all(deliveries[r.key].status == SENT for r in readers[:8])
    assert arrivals(smtp_server) == Counter(r.key for r in readers[:8])
    for got in smtp_server.handler.received:
        assert "x@example.org" not in got.rcpt_tos
        assert got.message()["Bcc"] is None and b"Bcc" not in got.data


def test_an_address_needing_smtputf8_fails_only_that_recipient(smtp_server, example, message, readers):
    settings, _ = example
    zoe = recipient(settings, "zoë@example.org", "Zoë")
    deliveries = send(smtp_server.provider(), message, [zoe, readers[0]])
    assert [d.status for d in deliveries] == [FAILED, SENT]
    assert "SMTPUTF8" in deliveries[0].reason
    assert arrivals(smtp_server) == Counter([readers[0].key])
