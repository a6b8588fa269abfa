"""The daily cap on confirmation mails counts mails sent, per inbox (real uvicorn, real aiosmtpd, both stores)."""

from __future__ import annotations

import httpx
import pytest
from serve_helpers import start_world

from newsletter.serve.limits import mailbox_key
from newsletter.serve.store import SUBSCRIBED

SECRET = "test-secret-for-sign-ups"


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request, tmp_path, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", SECRET)
    url = request.getfixturevalue("fresh_postgres_url") if request.param == "postgresql" else ""
    running = start_world(tmp_path, database_url=url, requests_per_ip="1000", requests_per_address="100",
                          confirmations_per_day="3", lists='["example", "vip"]')
    yield running
    running.stop()


def subscribe(client: httpx.Client, email: str, list_name: str = "example") -> httpx.Response:
    return client.post(f"/subscribe/{list_name}", data={"email": email, "name": "", "website": ""})


def mails_to(world, mailbox: str) -> int:
    return sum(1 for m in world.mail.received for r in m.rcpt_tos if mailbox_key(r.lower()) == mailbox)


def test_a_confirmation_mail_that_failed_does_not_use_up_the_readers_cap(world):
    """Three tries while the mail provider refuses must not lock the reader out for a day."""
    world.mail.answer("reader@example.com", "451 4.3.0 Temporary failure, try again later")  # every time
    with httpx.Client(base_url=world.url, timeout=10) as client:
        during = [subscribe(client, "reader@example.com") for _ in range(3)]
        world.mail.replies.clear()  # the provider is back

        after = [subscribe(client, "reader@example.com") for _ in range(4)]

    assert [a.status_code for a in during] == [503, 503, 503]
    assert all(int(a.headers["Retry-After"]) > 0 and "could not send" in a.text for a in during)
    assert [a.status_code for a in after] == [200, 200, 200, 429]  # the cap counts the three mails sent
    assert mails_to(world, "reader@example.com") == 3
    asked = [e for e in world.store.unsynced("example") if e.kind == SUBSCRIBED]
    assert len(asked) == 3  # "asked to subscribe" is recorded for the mails that went out, not the tries


def test_sub_addresses_and_case_share_one_inboxs_cap(world):
    """reader+1@, Reader+2@, READER@ ... all reach one inbox: at most confirmations_per_day mails a day,
    across lists too."""
    tries = ["reader+1@example.com", "Reader+2@example.com", "READER@example.com", "reader+news@example.com",
             "reader+a+b@example.com", "reader+3@EXAMPLE.com", "reader+4@example.com", "reader+5@example.com"]
    with httpx.Client(base_url=world.url, timeout=10) as client:
        answers = [subscribe(client, email, "vip" if n % 2 else "example") for n, email in enumerate(tries)]
        other = subscribe(client, "reader2@example.com")  # another inbox is not affected

    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429, 429, 429, 429]
    assert mails_to(world, "reader@example.com") == 3
    assert other.status_code == 200


def test_the_per_address_rate_limit_is_per_inbox(tmp_path, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", SECRET)
    world = start_world(tmp_path, requests_per_ip="1000", requests_per_address="2", confirmations_per_day="100")
    try:
        with httpx.Client(base_url=world.url, timeout=10) as client:
            codes = [subscribe(client, f"reader+{n}@example.com").status_code for n in range(3)]
        assert codes == [200, 200, 429]
    finally:
        world.stop()


def test_which_addresses_are_one_inbox():
    assert mailbox_key("reader+tag@example.com") == mailbox_key("reader@example.com") == "reader@example.com"
    assert mailbox_key("r.e.a.d.e.r+x@googlemail.com") == "reader@gmail.com"  # Gmail ignores dots
    assert mailbox_key("r.eader@example.com") == "r.eader@example.com"  # elsewhere dots matter
    assert mailbox_key("+tag@example.com") == "+tag@example.com"  # nothing before the +: an address of its own
