"""A live send honours the subscriber service's unsubscribes before it picks recipients (issue 14, item 5).

These go through ``newsletter send`` itself, to a real aiosmtpd: the other tests call
``apply_unsynced_departures`` directly, which says nothing about whether a send calls it.
"""

from __future__ import annotations

import socket

import pytest
from click.testing import CliRunner
from serve_helpers import example_copy, point_smtp_at, set_newsletter, set_serve, start_mail_server

from newsletter.cli import main
from newsletter.config import load_settings
from newsletter.serve.connect import open_store
from newsletter.serve.store import UNSUBSCRIBED, Event, now_utc, stamp

ISSUE = "issues/2026-11-25-first-dispatch"

@pytest.fixture
def letter(tmp_path, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", "test-secret-for-the-send-gate")
    root = example_copy(tmp_path)
    controller, handler = start_mail_server()
    set_newsletter(root, provider='"smtp"')
    point_smtp_at(root, controller.port)
    yield root, handler
    controller.stop()


def send(root) -> object:
    return CliRunner().invoke(main, ["--root", str(root), "send", str(root / ISSUE), "--list", "example", "--yes"])


def test_a_reader_who_left_through_the_service_is_not_mailed_by_the_next_send(letter):
    root, mail = letter
    store = open_store(load_settings(root))
    store.append([Event(list_name="example", kind=UNSUBSCRIBED, email="ada@example.com", key="ada@example.com",
                        at=stamp(now_utc()), source="one-click")])
    store.close()

    result = send(root)

    assert result.exit_code == 0, result.output
    mailed = {rcpt.lower() for message in mail.received for rcpt in message.rcpt_tos}
    assert "grace@example.org" in mailed and "ada@example.com" not in mailed


def test_a_send_refuses_when_the_configured_store_is_down(letter):
    root, mail = letter
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    set_serve(root, database_url=f'"postgresql://newsletter@127.0.0.1:{closed}/db"')

    result = send(root)

    assert result.exit_code == 2 and "event store" in result.output
    assert not mail.received
