"""The event store and `subscribers sync`, run once on SQLite and once on a real PostgreSQL."""

from __future__ import annotations

import socket
import sqlite3

import pytest
from click.testing import CliRunner
from serve_helpers import list_rows, set_newsletter, settings_with

from newsletter.cli import main
from newsletter.errors import NewsletterError
from newsletter.serve.connect import open_store
from newsletter.serve.store import (
    BOUNCED,
    COMPLAINED,
    CONFIRMED,
    EVERY_LIST,
    SUBSCRIBED,
    UNSUBSCRIBED,
    Event,
    now_utc,
    stamp,
)
from newsletter.serve.sync import apply_unsynced_departures, sync_events


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request, newsletter_root):
    """The example newsletter (sending over SMTP) with its event store on SQLite or on PostgreSQL."""
    set_newsletter(newsletter_root, provider='"smtp"')
    url = request.getfixturevalue("fresh_postgres_url") if request.param == "postgresql" else ""
    return settings_with(newsletter_root, database_url=url)


def event(kind: str, email: str, list_name: str = "example", **more) -> Event:
    return Event(list_name=list_name, kind=kind, email=email, key=email.lower(), at=more.pop("at", stamp(now_utc())),
                 **more)


def append(settings, *events: Event) -> int:
    store = open_store(settings)
    try:
        return store.append(events)
    finally:
        store.close()


def test_the_schema_is_created_on_first_open_and_reopening_keeps_the_events(settings):
    assert append(settings, event(SUBSCRIBED, "new@example.com")) == 1
    store = open_store(settings)  # second start: the schema exists, nothing is lost
    try:
        assert [(e.kind, e.email) for e in store.unsynced("example")] == [(SUBSCRIBED, "new@example.com")]
        store.ping()
    finally:
        store.close()


def test_events_since_a_moment_are_read_whether_or_not_a_sync_took_them(settings):
    """What a staged send judges after its wait: a sync during the wait must not hide a complaint."""
    append(settings, event(BOUNCED, "old@example.com", at="2026-01-01T00:00:00.000000Z"),
           event(COMPLAINED, "new@example.com", at="2026-06-01T00:00:00.000000Z"),
           event(COMPLAINED, "other@example.com", list_name="other", at="2026-06-01T00:00:00.000000Z"))
    store = open_store(settings)
    try:
        store.mark_synced("example", max(e.id for e in store.unsynced("example")))
        assert store.unsynced("example") == []
        assert [(e.kind, e.email) for e in store.events_since("example", "2026-03-01T00:00:00.000000Z")] == [
            (COMPLAINED, "new@example.com")]
    finally:
        store.close()


def test_a_store_from_a_newer_version_is_refused(settings):
    append(settings)
    if settings.serve.database_url:
        import psycopg

        with psycopg.connect(settings.serve.database_url, autocommit=True) as conn:
            conn.execute("INSERT INTO newsletter_schema_version VALUES (99)")
    else:
        with sqlite3.connect(settings.root / settings.serve.database) as db:
            db.execute("INSERT INTO schema_version VALUES (99)")
    with pytest.raises(NewsletterError, match=r"schema version 99.*upgrade"):
        open_store(settings)


def test_provider_events_are_stored_once_and_batches_remembered(settings):
    first = event(BOUNCED, "gone@example.com", source="sendgrid", source_id="sendgrid:abc")
    assert append(settings, first, event(COMPLAINED, "angry@example.com", source_id="sendgrid:def")) == 2
    assert append(settings, first) == 0  # SendGrid delivered the same event again
    store = open_store(settings)
    try:
        assert len(store.unsynced("example")) == 2
        now, old = stamp(now_utc()), "2000-01-01T00:00:00.000000Z"
        gone = event(BOUNCED, "later@example.com", source_id="sendgrid:ghi")
        assert store.append_batch("digest-1", [gone], now, old) == 1
        assert store.append_batch("digest-1", [gone], now, old) is None  # a replay: nothing appended
        assert len(store.unsynced("example")) == 3
        assert store.append_batch("digest-2", [], "2030-01-01T00:00:00.000000Z", "2029-01-01T00:00:00.000000Z") == 0
        assert store.append_batch("digest-1", [], now, old) == 0
    finally:
        store.close()


def test_confirmation_mails_are_counted_by_mailbox(settings):
    store = open_store(settings)
    try:
        asked = event(SUBSCRIBED, "Reader+1@example.com", at="2026-11-20T09:00:00.000000Z")
        store.record_confirmation(asked, "reader@example.com")
        store.record_confirmation(event(SUBSCRIBED, "reader+2@example.com", at="2026-11-21T09:00:00.000000Z"),
                                  "reader@example.com")
        assert store.confirmations_since("reader@example.com", "2026-11-20T00:00:00.000000Z") == 2
        assert store.confirmations_since("reader@example.com", "2026-11-21T00:00:00.000000Z") == 1
        assert store.confirmations_since("other@example.com", "2000-01-01T00:00:00.000000Z") == 0
        assert [e.email for e in store.unsynced("example")] == ["Reader+1@example.com", "reader+2@example.com"]
        store.heartbeat(stamp(now_utc()))
    finally:
        store.close()


def test_sync_adds_confirmed_readers_with_consent_dates_and_marks_who_left(settings):
    path = settings.list_path("example")
    asked, confirmed = "2026-11-20T09:00:00.000000Z", "2026-11-21T10:30:00.000000Z"
    append(settings,
           event(SUBSCRIBED, "new@example.com", name="New Reader", at=asked),
           event(CONFIRMED, "new@example.com", name="New Reader", at=confirmed, asked_at=asked),
           event(UNSUBSCRIBED, "ada@example.com"),
           event(BOUNCED, "grace@example.org", list_name=EVERY_LIST),  # a provider event naming no list
           event(UNSUBSCRIBED, "katherine@example.org", list_name="another-list"))
    before = list_rows(path)

    result = CliRunner().invoke(main, ["--root", str(settings.root), "subscribers", "sync", "--list", "example"])

    assert result.exit_code == 0, result.output
    rows = list_rows(path)
    assert rows["new@example.com"]["name"] == "New Reader" and rows["new@example.com"]["status"] == "subscribed"
    assert rows["new@example.com"]["subscribed_at"] == "2026-11-21"
    assert rows["new@example.com"]["consent_requested_at"] == asked
    assert rows["new@example.com"]["consent_confirmed_at"] == confirmed
    assert rows["ada@example.com"]["status"] == "unsubscribed"
    assert rows["grace@example.org"]["status"] == "bounced"
    assert rows["katherine@example.org"]["status"] == before["katherine@example.org"]["status"] == "subscribed"
    assert len(rows) == len(before) + 1
    assert "new@example.com: not on the list -> subscribed" in result.output
    assert "ada@example.com: subscribed -> unsubscribed" in result.output
    assert "grace@example.org: subscribed -> bounced" in result.output
    assert "changed 3 address(es)" in result.output

    text = path.read_bytes()
    again = CliRunner().invoke(main, ["--root", str(settings.root), "subscribers", "sync", "--list", "example"])
    assert again.exit_code == 0 and "0 new events" in again.output and "already agrees" in again.output
    assert path.read_bytes() == text


def test_the_latest_event_wins_and_leaving_stays_sticky(settings):
    path = settings.list_path("example")
    append(settings,
           event(UNSUBSCRIBED, "ada@example.com"), event(CONFIRMED, "ada@example.com"),  # left, came back
           event(CONFIRMED, "alan@example.com"),  # unsubscribed in the list, confirmed again: back on
           event(COMPLAINED, "katherine@example.org"),
           event(UNSUBSCRIBED, "katherine@example.org"))  # complained first: the list keeps "complained"
    set_rows = {"katherine@example.org": "complained"}
    from newsletter.lists import set_status
    set_status(path, set_rows)

    report = sync_events(settings, "example")

    rows = list_rows(path)
    assert rows["ada@example.com"]["status"] == "subscribed"
    assert rows["alan@example.com"]["status"] == "subscribed"
    assert rows["katherine@example.org"]["status"] == "complained"
    assert {(c.email, c.was, c.now) for c in report.changes} == {("alan@example.com", "unsubscribed", "subscribed")}


def test_dry_run_writes_nothing_and_keeps_the_cursor(settings):
    path = settings.list_path("example")
    append(settings, event(UNSUBSCRIBED, "ada@example.com"))
    before = path.read_bytes()
    report = sync_events(settings, "example", write=False)
    assert path.read_bytes() == before and "Dry run" in report.summary
    assert sync_events(settings, "example").changes  # still there to apply
    assert list_rows(path)["ada@example.com"]["status"] == "unsubscribed"


def test_a_live_send_applies_departures_but_leaves_sign_ups_to_sync(settings):
    path = settings.list_path("example")
    append(settings,
           event(UNSUBSCRIBED, "ada@example.com"),
           event(UNSUBSCRIBED, "grace@example.org"), event(CONFIRMED, "grace@example.org"),  # came back
           event(CONFIRMED, "new@example.com"))

    report = apply_unsynced_departures(settings, "example")

    rows = list_rows(path)
    assert rows["ada@example.com"]["status"] == "unsubscribed"
    assert rows["grace@example.org"]["status"] == "subscribed"
    assert "new@example.com" not in rows
    assert [(c.email, c.now) for c in report.changes] == [("ada@example.com", "unsubscribed")]
    later = sync_events(settings, "example")  # the cursor did not move: the sign-up still arrives
    assert "new@example.com" in list_rows(path) and later.events == 4


def test_without_a_store_there_is_nothing_to_apply(newsletter_root):
    settings = settings_with(newsletter_root)
    assert not apply_unsynced_departures(settings, "example").configured
    assert not (newsletter_root / settings.serve.database).exists()  # a send does not create one


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_postgresql_stops_a_live_send_with_a_clear_error(newsletter_root, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_DATABASE_PASSWORD", "pg-secret-never-shown")
    settings = settings_with(newsletter_root, database_url=f"postgresql://newsletter@127.0.0.1:{closed_port()}/db")
    with pytest.raises(NewsletterError) as caught:
        apply_unsynced_departures(settings, "example")
    message = str(caught.value)
    assert "cannot apply the subscriber service's unsubscribes before sending" in message
    assert "cannot reach the event store" in message and "nobody has been mailed" in message
    assert "pg-secret-never-shown" not in message


def test_a_password_in_the_database_url_is_refused(newsletter_root):
    settings = settings_with(newsletter_root, database_url="postgresql://newsletter:hunter2@127.0.0.1/db")
    with pytest.raises(NewsletterError) as caught:
        open_store(settings)
    assert "database_password_env" in str(caught.value) and "hunter2" not in str(caught.value)


def test_a_version_3_store_gains_batch_reports_which_add_up_per_request(settings):
    """Schema 4 (issue 20): what SendGrid reported of each request, counted per (run, batch, kind) across webhook
    batches, its first and last time kept; a store written by version 3 is brought up to date on open."""
    from newsletter.serve.store import BatchReport

    append(settings)
    if settings.serve.database_url:
        import psycopg

        with psycopg.connect(settings.serve.database_url, autocommit=True) as conn:
            conn.execute("DROP TABLE newsletter_batch_reports")
            conn.execute("DELETE FROM newsletter_schema_version WHERE version > 3")
    else:
        with sqlite3.connect(settings.root / settings.serve.database) as db:
            db.execute("DROP TABLE batch_reports")
            db.execute("DELETE FROM schema_version WHERE version > 3")
    store = open_store(settings)
    try:
        now, old = stamp(now_utc()), "2000-01-01T00:00:00.000000Z"
        early, late = "2026-12-08T09:00:00.000000Z", "2026-12-08T09:05:00.000000Z"
        assert store.append_batch("d1", [], now, old, reports=[
            BatchReport("run-a", "7-1", "processed", 100, late, late),
            BatchReport("run-b", "7-1", "processed", 5, early, early)]) == 0
        assert store.append_batch("d2", [], now, old, reports=[
            BatchReport("run-a", "7-1", "processed", 20, early, early),
            BatchReport("run-a", "7-1", "delivered", 98, late, late)]) == 0
        assert store.append_batch("d2", [], now, old, reports=[  # a replay adds nothing
            BatchReport("run-a", "7-1", "delivered", 98, late, late)]) is None
        assert store.batch_reports_of("run-a") == [BatchReport("run-a", "7-1", "delivered", 98, late, late),
                                                   BatchReport("run-a", "7-1", "processed", 120, early, late)]
        assert store.batch_reports_of("nobody") == []
    finally:
        store.close()
