"""The subscriber service over HTTP: a real uvicorn on 127.0.0.1, a real SMTP server, an HTTP client."""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import re
import time

import httpx
import pytest
from click.testing import CliRunner
from serve_helpers import list_rows, start_world

from newsletter.cli import main
from newsletter.compose.unsubscribe import make_token
from newsletter.errors import NewsletterError
from newsletter.serve.server import check_exposure
from newsletter.serve.store import CONFIRMED, SUBSCRIBED, UNSUBSCRIBED

SECRET = "test-secret-for-unsubscribe-links"
ONE_CLICK = {"content": b"List-Unsubscribe=One-Click",
             "headers": {"Content-Type": "application/x-www-form-urlencoded"}}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", SECRET)
        running = start_world(tmp_path_factory.mktemp("serve-http"), requests_per_ip="1000",
                              requests_per_address="5", confirmations_per_day="3", lists='["example", "vip"]')
        yield running
        running.stop()


@pytest.fixture
def client(world):
    with httpx.Client(base_url=world.url, timeout=10) as opened:
        yield opened


def events_of(world, email: str, kind: str | None = None):
    every = world.store.unsynced("example") + world.store.unsynced("vip")
    return [e for e in every if e.key == email.lower() and (kind is None or e.kind == kind)]


def altered(token: str) -> str:
    """``token`` with one character of its signature changed (not the last: in base64 it may carry only
    padding bits, and changing it then leaves the signature as it was)."""
    return token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]


def subscribe(client, email: str, name: str = "", list_name: str = "example", **extra) -> httpx.Response:
    return client.post(f"/subscribe/{list_name}", data={"email": email, "name": name, "website": "", **extra})


def test_the_sign_up_page_is_a_plain_themed_form(client):
    page = client.get("/subscribe/example")
    assert page.status_code == 200
    html = page.text
    assert "<script" not in html and 'name="viewport"' in html and '<html lang="en">' in html
    assert '<label for="email">' in html and 'type="email"' in html and 'method="post"' in html
    assert '<link rel="stylesheet" href="/theme.css">' in html
    assert ".masthead" in client.get("/theme.css").text  # the email theme's own stylesheet
    assert client.get("/subscribe/no-such-list").status_code == 404


def test_subscribing_answers_the_same_whoever_asks_and_mails_one_confirmation(world, client):
    answers = {email: subscribe(client, email) for email in
               ("first.reader@example.com", "ada@example.com", "alan@example.com")}  # new, subscribed, left
    assert {r.status_code for r in answers.values()} == {200}
    assert len({r.text for r in answers.values()}) == 1 and "Check your inbox" in answers["ada@example.com"].text
    for email in answers:
        assert len(world.links(email, "/confirm/")) == 1, email
        assert len(events_of(world, email, SUBSCRIBED)) == 1
        assert not events_of(world, email, CONFIRMED)
    received = next(r for r in world.mail.received if "first.reader@example.com" in r.rcpt_tos).message()
    assert received["Subject"] == "Confirm your subscription to The Plain Files Dispatch"
    assert received["From"] == world.settings.from_address and received.get("List-Unsubscribe") is None


def test_opening_the_confirmation_link_does_not_confirm_pressing_the_button_does(world, client):
    subscribe(client, "scanned@example.com", "Scanned Reader")
    link = world.links("scanned@example.com", "/confirm/")[-1]
    page = client.get(link)  # what a mail scanner does
    assert page.status_code == 200 and "<button" in page.text and 'method="post"' in page.text
    assert not events_of(world, "scanned@example.com", CONFIRMED)

    done = client.post(link)

    assert done.status_code == 200 and "You are subscribed" in done.text
    [confirmed] = events_of(world, "scanned@example.com", CONFIRMED)
    [asked] = events_of(world, "scanned@example.com", SUBSCRIBED)
    assert confirmed.name == "Scanned Reader" and confirmed.asked_at == asked.at < confirmed.at


def test_forged_or_expired_confirmation_links_get_a_400(world, client):
    from newsletter.serve.tokens import ConfirmTokens, SignUp

    expired = ConfirmTokens(SECRET.encode(), 48 * 3600).make(
        SignUp("example", "late@example.com", "", "2026-01-01T00:00:00.000000Z"), made_at=time.time() - 49 * 3600)
    subscribe(client, "forger@example.com")
    good = world.links("forger@example.com", "/confirm/")[-1].rsplit("/", 1)[1]
    for token in (expired, good[:-3], altered(good), "nonsense"):
        assert client.get(f"/confirm/{token}").status_code == 400
        assert client.post(f"/confirm/{token}").status_code == 400
    assert not events_of(world, "late@example.com") and not events_of(world, "forger@example.com", CONFIRMED)


def test_one_click_unsubscribe_rfc_8058(world, client):
    token = make_token(SECRET.encode(), "example", "grace@example.org")
    first = client.post(f"/unsubscribe/{token}", **ONE_CLICK)
    again = client.post(f"/unsubscribe/{token}", **ONE_CLICK)  # repeating it is harmless
    assert first.status_code == again.status_code == 200
    assert [e.source for e in events_of(world, "grace@example.org", UNSUBSCRIBED)] == ["one-click", "one-click"]

    result = CliRunner().invoke(main, ["--root", str(world.root), "subscribers", "sync", "--list", "example"])

    assert result.exit_code == 0, result.output
    assert list_rows(world.settings.list_path("example"))["grace@example.org"]["status"] == "unsubscribed"
    assert result.output.count("grace@example.org: subscribed -> unsubscribed") == 1


def test_the_unsubscribe_page_names_the_list_asks_and_offers_the_way_back(world, client):
    token = make_token(SECRET.encode(), "vip", "katherine@example.org")
    page = client.get(f"/unsubscribe/{token}")
    assert page.status_code == 200 and "(vip)" in page.text and "<button" in page.text
    assert not events_of(world, "katherine@example.org")  # looking is not leaving

    done = client.post(f"/unsubscribe/{token}", data={})

    assert done.status_code == 200 and "You are unsubscribed" in done.text
    [way_back] = re.findall(r'action="(/resubscribe/[^"]+)"', done.text)
    back = client.post(way_back)
    assert back.status_code == 200 and "Welcome back" in back.text
    assert [e.kind for e in events_of(world, "katherine@example.org")] == [UNSUBSCRIBED, CONFIRMED]
    assert all(e.list_name == "vip" for e in events_of(world, "katherine@example.org"))


def test_forged_truncated_and_cross_list_unsubscribe_tokens_get_the_same_400(world, client):
    good = make_token(SECRET.encode(), "example", "ada@example.com")
    tokens = [
        good[:-4],  # truncated
        altered(good),
        make_token(b"another secret", "example", "ada@example.com"),  # forged
        make_token(SECRET.encode(), "not-served", "ada@example.com"),  # another list's link
        "x",
    ]
    before = len(world.store.unsynced("example"))
    bodies = set()
    for token in tokens:
        for answer in (client.get(f"/unsubscribe/{token}"), client.post(f"/unsubscribe/{token}", **ONE_CLICK),
                       client.post(f"/resubscribe/{token}")):
            assert answer.status_code == 400
            assert "ada@example.com" not in answer.text
            bodies.add(answer.text)
    assert len(bodies) == 1
    assert len(world.store.unsynced("example")) == before


def test_abuse_honeypot_bad_address_and_the_daily_cap(world, client):
    trapped = subscribe(client, "bot@example.com", website="http://spam.example.com")
    assert trapped.status_code == 400
    assert client.post("/subscribe/example", data={"email": "not an address"}).status_code == 400
    assert client.post("/subscribe/example", content=b"\x00" * 10, headers={"Content-Type": "multipart/form-data"}
                       ).status_code == 400
    answers = [subscribe(client, "eager@example.com") for _ in range(6)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429, 429]  # three confirmation mails a day
    assert "as many confirmation emails as we send in a day" in answers[3].text
    assert "too many sign-up requests" in answers[5].text  # five requests an hour for one address
    assert len(world.links("eager@example.com", "/confirm/")) == 3
    assert not world.links("bot@example.com", "/confirm/") and not events_of(world, "bot@example.com")


def test_per_client_rate_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", SECRET)
    small = start_world(tmp_path, requests_per_ip="3")
    try:
        with httpx.Client(base_url=small.url, timeout=10) as client:
            codes = [subscribe(client, f"reader{n}@example.com").status_code for n in range(4)]
        assert codes == [200, 200, 200, 429]
    finally:
        small.stop()


def test_nothing_is_claimed_when_the_store_is_down(tmp_path, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", SECRET)
    broken = start_world(tmp_path)
    try:
        with httpx.Client(base_url=broken.url, timeout=10) as client:
            assert client.get("/healthz").text == "ok\n"
            broken.store.close()
            assert client.get("/healthz").status_code == 503
            token = make_token(SECRET.encode(), "example", "ada@example.com")
            assert client.post(f"/unsubscribe/{token}", **ONE_CLICK).status_code == 503
            down = subscribe(client, "late@example.com")
            assert down.status_code == 503 and "nothing has changed" in down.text
        assert not broken.links("late@example.com", "/confirm/")  # no mail for an unrecorded request
    finally:
        broken.service.stop()
        broken.controller.stop()


def test_access_logs_hold_no_address_and_no_token(world, client, caplog):
    token = make_token(SECRET.encode(), "example", "ada@example.com")
    with caplog.at_level(logging.INFO, logger="newsletter.serve.access"):
        subscribe(client, "private.person@example.com")
        link = world.links("private.person@example.com", "/confirm/")[-1]
        client.get(link)
        client.post(f"/unsubscribe/{token}", **ONE_CLICK)
        client.get(f"/unsubscribe/{token}?email=ada@example.com")
        deadline = time.monotonic() + 5
        while len(caplog.records) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
    lines = [r.getMessage() for r in caplog.records if r.name == "newsletter.serve.access"]
    logged = "\n".join(lines)
    assert "POST /subscribe/example 200" in logged and "POST /unsubscribe/… 200" in logged
    assert "GET /confirm/… 200" in logged
    assert token not in logged and link.rsplit("/", 1)[1] not in logged
    assert "@" not in logged


# --- SendGrid's signed Event Webhook ----------------------------------------------------------


@pytest.fixture(scope="module")
def webhook_keys():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, base64.b64encode(public).decode("ascii")


@pytest.fixture(scope="module")
def hooked(tmp_path_factory, webhook_keys):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", SECRET)
        patch.setenv("SENDGRID_WEBHOOK_PUBLIC_KEY", webhook_keys[1])
        running = start_world(tmp_path_factory.mktemp("serve-hook"), webhook_max_age_seconds="300")
        yield running
        running.stop()


def signed(private, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = private.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {"X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp, "Content-Type": "application/json"}


def batch(*events: dict) -> bytes:
    return json.dumps(list(events)).encode()


def test_a_signed_event_batch_is_recorded_and_sync_marks_the_list(hooked, webhook_keys):
    body = batch(
        {"email": "ada@example.com", "event": "bounce", "type": "bounce", "sg_event_id": "e1", "list": "example"},
        {"email": "grace@example.org", "event": "spamreport", "sg_event_id": "e2", "list": "example"},
        {"email": "katherine@example.org", "event": "group_unsubscribe", "sg_event_id": "e3", "list": "example"},
        {"email": "x@example.com", "event": "dropped", "reason": "Invalid", "sg_event_id": "e4"},  # no list: all
        {"email": "ada@example.com", "event": "open", "sg_event_id": "e5", "list": "example"},  # not a change
        {"email": "soft@example.com", "event": "bounce", "type": "blocked", "sg_event_id": "e6", "list": "example"},
        {"email": "other@example.com", "event": "bounce", "sg_event_id": "e7", "list": "someone-elses"},
    )
    answer = httpx.post(f"{hooked.url}/events/sendgrid", content=body, headers=signed(webhook_keys[0], body))
    assert answer.status_code == 200, answer.text
    kinds = {(e.email, e.kind, e.list_name) for e in hooked.store.unsynced("example")}
    assert kinds == {("ada@example.com", "bounced", "example"), ("grace@example.org", "complained", "example"),
                     ("katherine@example.org", "unsubscribed", "example"), ("x@example.com", "bounced", "*")}

    result = CliRunner().invoke(main, ["--root", str(hooked.root), "subscribers", "sync", "--list", "example"])
    rows = list_rows(hooked.settings.list_path("example"))
    assert result.exit_code == 0, result.output
    assert (rows["ada@example.com"]["status"], rows["grace@example.org"]["status"],
            rows["katherine@example.org"]["status"]) == ("bounced", "complained", "unsubscribed")


def test_unsigned_tampered_stale_and_replayed_batches_are_refused(hooked, webhook_keys):
    private = webhook_keys[0]
    url = f"{hooked.url}/events/sendgrid"
    body = batch({"email": "alan@example.com", "event": "spamreport", "sg_event_id": "r1", "list": "example"})
    before = len(hooked.store.unsynced("example"))

    unsigned = httpx.post(url, content=body, headers={"Content-Type": "application/json"})
    headers = signed(private, body)
    tampered = httpx.post(url, content=body.replace(b"alan", b"ada_"), headers=headers)
    stale_headers = signed(private, body, timestamp=int(time.time()) - 3600)
    stale = httpx.post(url, content=body, headers=stale_headers)
    from cryptography.hazmat.primitives.asymmetric import ec

    foreign = httpx.post(url, content=body, headers=signed(ec.generate_private_key(ec.SECP256R1()), body))
    assert [r.status_code for r in (unsigned, tampered, stale, foreign)] == [403, 403, 403, 403]
    assert len(hooked.store.unsynced("example")) == before

    accepted = httpx.post(url, content=body, headers=headers)
    replayed = httpx.post(url, content=body, headers=headers)
    assert (accepted.status_code, replayed.status_code) == (200, 403)
    assert len(hooked.store.unsynced("example")) == before + 1


def test_without_a_webhook_key_the_route_is_closed(world):
    assert httpx.post(f"{world.url}/events/sendgrid", content=b"[]").status_code == 503


# --- starting it ------------------------------------------------------------------------------


def test_serve_refuses_a_public_host_without_https(newsletter_root):
    from serve_helpers import set_newsletter

    set_newsletter(newsletter_root, base_url='"http://newsletter.example.com/"')
    result = CliRunner().invoke(main, ["--root", str(newsletter_root), "serve", "--host", "0.0.0.0", "--port", "0"])
    assert result.exit_code == 2
    assert "refusing to serve on 0.0.0.0" in result.output and "https://" in result.output


def test_the_example_may_listen_publicly_because_its_base_url_is_https(settings):
    check_exposure(settings, "0.0.0.0")  # https://newsletter.example.com/
    assert settings.unsubscribe_url == "https://newsletter.example.com/unsubscribe/{token}"
    with pytest.raises(NewsletterError, match="not over https"):
        check_exposure(dataclasses.replace(settings, base_url="http://x.example.com/"), "192.0.2.1")


def test_serve_settings_are_checked(newsletter_root):
    from serve_helpers import set_serve

    set_serve(newsletter_root, databse_url='"x"')
    result = CliRunner().invoke(main, ["--root", str(newsletter_root), "serve"])
    assert result.exit_code == 2 and "did you mean 'database_url'?" in result.output
    set_serve(newsletter_root)
    text = (newsletter_root / "newsletter.toml").read_text().replace('databse_url = "x"', 'database_url = "mysql://x"')
    (newsletter_root / "newsletter.toml").write_text(text)
    result = CliRunner().invoke(main, ["--root", str(newsletter_root), "serve"])
    assert result.exit_code == 2 and "must be a postgresql:// URL" in result.output
