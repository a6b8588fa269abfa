"""What providers report of each copy, through SendGrid's signed Event Webhook, in `newsletter stats`; and the
service's stores keep no client address or user agent. On SQLite and on a real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import re

import httpx
import psycopg
import pytest
from click.testing import CliRunner
from conftest import EXAMPLE_ISSUE
from serve_helpers import sign_batch, start_world, webhook_headers, webhook_key_pair
from test_stats_clicks import MovableClock, click_links, received_html, send

from newsletter.cli import main
from newsletter.compose.content import load_issue

SECRET = "test-secret-for-provider-events"


@pytest.fixture(scope="module")
def keys():
    return webhook_key_pair()


@pytest.fixture(params=["sqlite", "postgresql"])
def hooked(request, tmp_path, monkeypatch, keys):
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", SECRET)
    monkeypatch.setenv("SENDGRID_WEBHOOK_PUBLIC_KEY", keys[1])
    url = request.getfixturevalue("fresh_postgres_url") if request.param == "postgresql" else ""
    clock = MovableClock()
    running = start_world(tmp_path, database_url=url, clock=clock, stats={"clicks": "true"},
                          webhook_max_age_seconds="300")
    running.clock, running.database_url = clock, url
    yield running
    running.stop()


def post(world, private, events: list[dict]) -> httpx.Response:
    body = json.dumps(events).encode()
    der, stamp = sign_batch(private, body)
    return httpx.post(f"{world.url}/events/sendgrid", content=body, headers=webhook_headers(der, stamp), timeout=10)


def stats(world) -> dict:
    result = CliRunner().invoke(main, ["--root", str(world.root), "stats", str(world.root / "issues" / EXAMPLE_ISSUE),
                                       "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_every_sendgrid_event_type_is_counted_by_newsletter_stats(hooked, keys):
    send(hooked)
    issue_id = load_issue(hooked.root / "issues" / EXAMPLE_ISSUE).id
    when = int(dt.datetime.now(dt.UTC).timestamp())

    def event(email: str, kind: str, number: int, **more) -> dict:
        return {"email": email, "event": kind, "sg_event_id": f"ev{number}", "timestamp": when + number,
                "list": "example", "issue": EXAMPLE_ISSUE, "issue_id": issue_id, **more}

    batch = [event("ada@example.com", "processed", 1), event("ada@example.com", "delivered", 2),
             event("grace@example.org", "delivered", 3), event("katherine@example.org", "delivered", 4),
             event("edsger@example.com", "deferred", 5, response="451 try later"),
             event("edsger@example.com", "bounce", 6, type="bounce", status="5.1.1"),
             event("katherine@example.org", "bounce", 7, type="blocked", status="4.7.1"),
             event("nobody@example.net", "dropped", 8, reason="Bounced Address"),
             event("ada@example.com", "open", 9), event("ada@example.com", "open", 10),
             event("grace@example.org", "open", 11), event("ada@example.com", "click", 12, url="https://x.example/"),
             event("grace@example.org", "spamreport", 13), event("katherine@example.org", "unsubscribe", 14),
             event("ada@example.com", "group_unsubscribe", 15, asm_group_id=7),
             {"email": "other@example.com", "event": "delivered", "sg_event_id": "ev16"}]  # not this issue's
    answer = post(hooked, keys[0], batch)
    assert answer.status_code == 200, answer.text
    assert post(hooked, keys[0], batch).status_code == 403  # a replay records nothing twice

    figures = stats(hooked)
    assert (figures["delivered"], figures["delivered_source"]) == (3, "delivered events from the provider")
    assert figures["bounced"] == {"hard": 1, "soft": 1, "total": 2}
    assert (figures["deferred"], figures["dropped"], figures["complaints"]) == (1, 1, 1)
    assert figures["unsubscribed"] == 2
    assert figures["opens_inflated_by_privacy_proxies"] == 2 and figures["provider_clicks"] == 1
    text = CliRunner().invoke(main, ["--root", str(hooked.root), "stats", str(hooked.root / "issues" / EXAMPLE_ISSUE)])
    assert "opens, inflated by privacy proxies" in text.output


def test_nothing_the_service_stores_holds_a_client_address_or_user_agent(hooked, keys):
    send(hooked)
    links = click_links(received_html(hooked, "ada@example.com"), hooked.url)
    hooked.clock.offset = dt.timedelta(minutes=10)
    for agent, address in (("Mozilla/5.0 marker-agent-one", "192.0.2.61"), ("curl/8 marker-agent-two", "198.51.100.8")):
        for link in links:
            httpx.get(link, headers={"User-Agent": agent, "X-Forwarded-For": address})
    assert post(hooked, keys[0], [{"email": "ada@example.com", "event": "click", "sg_event_id": "c1", "list": "example",
                                   "issue_id": load_issue(hooked.root / "issues" / EXAMPLE_ISSUE).id,
                                   "ip": "192.0.2.62", "useragent": "marker-agent-three"}]).status_code == 200
    stored = every_value(hooked)
    assert any("/" in value for value in stored)  # the clicks are there (their target addresses)
    for marker in ("192.0.2.61", "198.51.100.8", "192.0.2.62", "marker-agent"):
        assert not [value for value in stored if marker in value], marker
    assert not [value for value in stored if re.search(r"ada@example\.com", value) and "click" in value]


def every_value(world) -> list[str]:
    """Every value of every row of every table of the service's store."""
    if world.database_url:
        with psycopg.connect(world.database_url) as conn:
            tables = [name for (name,) in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")]
            assert "newsletter_clicks" in tables and "newsletter_message_events" in tables
            return [str(value) for table in tables for row in conn.execute(f"SELECT * FROM {table}").fetchall()
                    for value in row]
    import sqlite3

    database = sqlite3.connect(world.root / world.settings.serve.database)
    try:
        tables = [name for (name,) in database.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return [str(value) for table in tables for row in database.execute(f"SELECT * FROM {table}") for value in row]
    finally:
        database.close()


def test_a_sendgrid_send_carries_each_readers_click_value_and_the_issue_id(sendgrid_newsletter, sendgrid_standin):
    """Through the real sendgrid client to the stand-in (which validates every body): one shared body whose
    links point at the click route, each personalization filling in its own reader part."""
    from serve_helpers import set_newsletter, set_stats

    from newsletter.compose.click_tokens import ClickKeys

    set_stats(sendgrid_newsletter, clicks="true")  # the service on a loopback port nobody answers: check only warns
    set_newsletter(sendgrid_newsletter, unsubscribe_url='"http://127.0.0.1:9/unsubscribe/{token}"')
    result = CliRunner().invoke(main, ["send", f"issues/{EXAMPLE_ISSUE}", "--list", "example", "--yes"])
    assert result.exit_code == 0, result.output
    issue_id = load_issue(sendgrid_newsletter / "issues" / EXAMPLE_ISSUE).id
    accepted = {a.email: a for a in sendgrid_standin.accepted}
    keys = ClickKeys(b"test-secret-for-unsubscribe-links")
    readers = set()
    for address in ("ada@example.com", "grace@example.org"):
        copy = accepted[address]
        assert copy.custom_args["issue_id"] == issue_id
        html = copy.html
        for token, value in copy.substitutions.items():
            html = html.replace(token, value)
        tokens = re.findall(r'href="http://127\.0\.0\.1:9/c/([^"]+)"', html)
        clicks = [keys.read(token) for token in tokens]
        assert tokens and all(clicks) and {c.issue for c in clicks} == {issue_id}
        readers |= {c.reader for c in clicks}
    assert len(readers) == 2  # one reader key each, the same on all of a reader's links
