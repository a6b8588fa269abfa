"""SendGrid's signed Event Webhook against a real uvicorn: which status a row ends with, replays, and a large
batch that must not hold up everyone else. On SQLite and on a real PostgreSQL."""

from __future__ import annotations

import base64
import json
import threading

import httpx
import pytest
from click.testing import CliRunner
from serve_helpers import list_rows, malleated, sign_batch, start_world, webhook_headers, webhook_key_pair

from newsletter.cli import main
from newsletter.lists import set_status
from newsletter.providers.sendgrid import event_webhook_verifier
from newsletter.serve.sync import apply_unsynced_departures

SECRET = "test-secret-for-webhook-events"


@pytest.fixture(scope="module")
def keys():
    return webhook_key_pair()


@pytest.fixture(params=["sqlite", "postgresql"])
def hooked(request, tmp_path, monkeypatch, keys):
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", SECRET)
    monkeypatch.setenv("SENDGRID_WEBHOOK_PUBLIC_KEY", keys[1])
    url = request.getfixturevalue("fresh_postgres_url") if request.param == "postgresql" else ""
    running = start_world(tmp_path, database_url=url, webhook_max_age_seconds="300")
    yield running
    running.stop()


def post_batch(world, private, *events: dict, signature=None) -> httpx.Response:
    body = json.dumps(list(events)).encode()
    der, stamp = sign_batch(private, body)
    return httpx.post(f"{world.url}/events/sendgrid", content=body,
                      headers=webhook_headers(signature(der) if signature else der, stamp), timeout=10)


def sync(world) -> str:
    result = CliRunner().invoke(main, ["--root", str(world.root), "subscribers", "sync", "--list", "example"])
    assert result.exit_code == 0, result.output
    return result.output


def event(email: str, kind: str, number: int, **more) -> dict:
    return {"email": email, "event": kind, "sg_event_id": f"ev{number}", "list": "example", **more}


# --- 19: complained > bounced > unsubscribed ------------------------------------------------------------


def test_a_bounce_then_an_unsubscribe_in_one_batch_leaves_the_row_bounced(hooked, keys):
    answer = post_batch(hooked, keys[0],
                        event("ada@example.com", "bounce", 1, type="bounce"),
                        event("ada@example.com", "unsubscribe", 2),
                        event("grace@example.org", "spamreport", 3),
                        event("grace@example.org", "bounce", 4, type="bounce"),
                        event("grace@example.org", "group_unsubscribe", 5),
                        event("edsger@example.com", "unsubscribe", 6),
                        event("edsger@example.com", "bounce", 7, type="bounce"))
    assert answer.status_code == 200, answer.text

    output = sync(hooked)

    rows = list_rows(hooked.settings.list_path("example"))
    assert (rows["ada@example.com"]["status"], rows["grace@example.org"]["status"],
            rows["edsger@example.com"]["status"]) == ("bounced", "complained", "bounced")
    assert "ada@example.com: subscribed -> bounced" in output


def test_the_order_of_syncs_does_not_change_the_outcome(hooked, keys):
    """An unsubscribe synced before a bounce arrives ends as bounced too; a complaint is never lowered."""
    path = hooked.settings.list_path("example")
    set_status(path, {"katherine@example.org": "complained"})
    post_batch(hooked, keys[0], event("ada@example.com", "unsubscribe", 11),
               event("katherine@example.org", "bounce", 12, type="bounce"))
    sync(hooked)
    assert list_rows(path)["ada@example.com"]["status"] == "unsubscribed"

    post_batch(hooked, keys[0], event("ada@example.com", "bounce", 13, type="bounce"),
               event("alan@example.com", "spamreport", 14))  # alan: unsubscribed in the list
    output = sync(hooked)

    rows = list_rows(path)
    assert (rows["ada@example.com"]["status"], rows["alan@example.com"]["status"],
            rows["katherine@example.org"]["status"]) == ("bounced", "complained", "complained")
    assert "ada@example.com: unsubscribed -> bounced" in output


def test_a_live_sends_departures_follow_the_same_precedence(hooked, keys):
    post_batch(hooked, keys[0], event("ada@example.com", "bounce", 21, type="bounce"),
               event("ada@example.com", "unsubscribe", 22))

    apply_unsynced_departures(hooked.settings, "example")

    assert list_rows(hooked.settings.list_path("example"))["ada@example.com"]["status"] == "bounced"


# --- 20: replays keyed on the payload; large batches off the event loop -------------------------------


def test_a_replay_with_a_malleated_or_re_encoded_signature_is_refused(hooked, keys):
    body = json.dumps([event("ada@example.com", "bounce", 31, type="bounce")]).encode()
    der, stamp = sign_batch(keys[0], body)
    text = base64.b64encode(der).decode()
    url = f"{hooked.url}/events/sendgrid"
    variants = {
        "malleated (s -> n - s)": webhook_headers(malleated(der), stamp),
        "re-encoded (characters base64 skips)": webhook_headers(text[:8] + "!" + text[8:], stamp),
        "the same bytes again": webhook_headers(der, stamp),
    }
    verify = event_webhook_verifier(keys[1])
    assert all(verify(body, h["X-Twilio-Email-Event-Webhook-Signature"], stamp) for h in variants.values())

    first = httpx.post(url, content=body, headers=webhook_headers(der, stamp))
    replays = {name: httpx.post(url, content=body, headers=headers) for name, headers in variants.items()}

    assert first.status_code == 200 and "recorded 1 event" in first.text
    for name, answer in replays.items():
        assert (answer.status_code, answer.text) == (403, "replayed batch\n"), name
    assert len(hooked.store.unsynced("example")) == 1


def test_a_new_batch_with_the_same_events_is_not_a_replay(hooked, keys):
    """SendGrid may send an event again in a later batch (its own retry): that batch is new, its events are
    stored once."""
    assert post_batch(hooked, keys[0], event("ada@example.com", "bounce", 41, type="bounce")).status_code == 200
    again = post_batch(hooked, keys[0], event("ada@example.com", "bounce", 41, type="bounce"),
                       event("grace@example.org", "bounce", 42, type="bounce"))
    assert again.status_code == 200 and "recorded 1 event" in again.text


def test_another_request_is_answered_while_a_batch_is_verified_and_parsed(tmp_path, monkeypatch, keys):
    """The check of a batch runs in a thread: a request that arrives meanwhile is answered at once."""
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", SECRET)
    real = event_webhook_verifier(keys[1])
    started, answered_meanwhile = threading.Event(), threading.Event()
    seen: list[bool] = []

    def verify_once_the_other_request_is_answered(body: bytes, signature: str, stamp: str) -> bool:
        started.set()
        seen.append(answered_meanwhile.wait(timeout=30))  # on the event loop this would wait the 30 s out
        return real(body, signature, stamp)

    world = start_world(tmp_path, webhook_verifier=verify_once_the_other_request_is_answered)
    try:
        events = [event(f"reader{n}@example.com", "bounce", 1000 + n, type="bounce") for n in range(5000)]
        posting = threading.Thread(target=lambda: seen.append(post_batch(world, keys[0], *events).status_code))
        posting.start()
        assert started.wait(timeout=30)

        health = httpx.get(f"{world.url}/healthz", timeout=10)  # 10 s: not a race, the verifier waits 30
        answered_meanwhile.set()
        posting.join(timeout=60)

        assert health.status_code == 200
        assert seen == [True, 200]
        assert len(world.store.unsynced("example")) == 5000
    finally:
        answered_meanwhile.set()
        world.stop()
