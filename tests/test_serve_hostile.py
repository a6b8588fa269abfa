"""The subscriber service against hostile or careless requests (real uvicorn on 127.0.0.1, real aiosmtpd)."""

from __future__ import annotations

import base64
import re
import select
import socket
import time

import httpx
import pytest
from serve_helpers import start_world

from newsletter.compose.unsubscribe import make_token
from newsletter.serve.store import CONFIRMED, SUBSCRIBED

SECRET = "test-secret-for-hostile-requests"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    public = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", SECRET)
        patch.setenv("SENDGRID_WEBHOOK_PUBLIC_KEY", base64.b64encode(public).decode("ascii"))
        running = start_world(tmp_path_factory.mktemp("serve-hostile"), requests_per_ip="1000")
        yield running
        running.stop()


@pytest.fixture
def client(world):
    with httpx.Client(base_url=world.url, timeout=10) as opened:
        yield opened


def events_of(world, email: str, kind: str | None = None):
    return [e for e in world.store.unsynced("example") if e.key == email.lower() and (kind is None or e.kind == kind)]


def endless_post(url: str, path: str, *, limit_bytes: int = 64_000_000, seconds: float = 20.0) -> int | None:
    """POST a chunked body that never ends; the status the server answers with before ``limit_bytes``, else None."""
    host, port = url.removeprefix("http://").split(":")
    chunk = b"a" * 65536
    with socket.create_connection((host, int(port)), timeout=seconds) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n".encode())
        sent, deadline = 0, time.monotonic() + seconds
        while sent < limit_bytes and time.monotonic() < deadline:
            if select.select([sock], [], [], 0)[0]:
                break
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except OSError:  # the server answered and closed while we were still sending
                break
            sent += len(chunk)
        else:
            return None
        answer = sock.recv(200)
    match = re.match(rb"HTTP/1\.1 (\d{3})", answer)
    return int(match.group(1)) if match else None


@pytest.mark.parametrize("route", ["events/sendgrid", "unsubscribe/{token}", "subscribe/example"])
def test_an_endless_body_is_cut_off_with_a_413_not_read_into_memory(world, route):
    path = "/" + route.format(token=make_token(SECRET.encode(), "example", "ada@example.com"))

    assert endless_post(world.url, path) == 413
    assert not events_of(world, "ada@example.com")


def test_form_bytes_that_are_not_utf_8_are_a_bad_address_not_a_mail_to_a_mangled_one(world, client):
    answer = client.post("/subscribe/example", content=b"email=caf%E9@example.com&website=",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})

    assert answer.status_code == 400 and "check the address" in answer.text
    assert not [e for e in world.store.unsynced("example") if "caf" in e.key]
    assert not [m for m in world.mail.received if any("caf" in r for r in m.rcpt_tos)]


def test_an_address_smtp_cannot_reach_gets_a_400_that_says_why_not_a_503_to_retry(world, client):
    answer = client.post("/subscribe/example", data={"email": "josé@example.com", "website": ""})

    assert answer.status_code == 400
    assert "accented" in answer.text and "try again in a few minutes" not in answer.text.lower()
    assert not [e for e in world.store.unsynced("example") if e.kind == SUBSCRIBED and "jos" in e.key]


def test_an_old_unsubscribe_link_cannot_resubscribe_someone_who_left(world, client):
    """The unsubscribe link is in every issue and never expires: whoever holds an old (forwarded) issue
    must not be able to put a reader who left back on the list without the reader confirming."""
    token = make_token(SECRET.encode(), "example", "katherine@example.org")

    assert client.post(f"/resubscribe/{token}").status_code == 400
    assert not events_of(world, "katherine@example.org", CONFIRMED)

    done = client.post(f"/unsubscribe/{token}", data={})  # the reader leaves, from the page
    [action] = re.findall(r'action="(/resubscribe/[^"]+)"', done.text)
    assert token not in action  # the way back is a fresh, short-lived link, not the permanent one
    back = client.post(action)
    assert back.status_code == 200 and "Welcome back" in back.text
    assert [e.kind for e in events_of(world, "katherine@example.org")] == ["unsubscribed", CONFIRMED]
    assert client.post(f"/resubscribe/{token}").status_code == 400


def test_sync_without_an_event_store_says_so_instead_of_printing_nothing(tmp_path):
    """A writer who runs sync where the store is not (a fresh checkout: the SQLite file is git-ignored)
    must not take silence for "nothing changed"."""
    from click.testing import CliRunner
    from serve_helpers import example_copy, set_newsletter

    from newsletter.cli import main

    root = example_copy(tmp_path)
    set_newsletter(root, provider='"smtp"')

    result = CliRunner().invoke(main, ["--root", str(root), "subscribers", "sync", "--list", "example"])

    assert result.exit_code == 0 and "No event store yet" in result.output


def test_mistyped_paths_do_not_put_tokens_or_addresses_in_the_access_log(world, client, caplog):
    import logging

    token = make_token(SECRET.encode(), "example", "ada@example.com")
    paths = [f"//unsubscribe/{token}", f"/Unsubscribe/{token}", f"/unsubscribe/x/{token}",
             "/subscribe/reader@example.com", f"/{token}", "/confirm"]
    with caplog.at_level(logging.INFO, logger="newsletter.serve.access"):
        for path in paths:
            assert client.get(httpx.URL(world.url + path)).status_code in (404, 405)
        deadline = time.monotonic() + 5
        while len(caplog.records) < len(paths) and time.monotonic() < deadline:
            time.sleep(0.01)
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "newsletter.serve.access")
    assert logged.count(" 404 ") + logged.count(" 405 ") == len(paths)
    assert token not in logged and "@" not in logged
    assert "GET /healthz 200" in _logged_for(client, caplog, "/healthz")  # plain routes stay readable


def _logged_for(client, caplog, path: str) -> str:
    import logging

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="newsletter.serve.access"):
        client.get(path)
        deadline = time.monotonic() + 5
        while not caplog.records and time.monotonic() < deadline:
            time.sleep(0.01)
    return "\n".join(r.getMessage() for r in caplog.records)


def test_serve_refuses_a_list_name_no_list_can_have(tmp_path, monkeypatch):
    from click.testing import CliRunner
    from serve_helpers import example_copy, set_serve

    from newsletter.cli import main

    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", SECRET)
    root = example_copy(tmp_path)
    set_serve(root, lists='["example", "news/weekly"]')

    result = CliRunner().invoke(main, ["--root", str(root), "serve", "--port", "0"])

    assert result.exit_code == 2 and "news/weekly" in result.output and "serve.lists" in result.output


def test_leaving_and_coming_back_before_a_sync_keeps_the_name_the_reader_gave(tmp_path):
    """Sign up as "Browser Reader", confirm, press Unsubscribe, then Subscribe again (no name on that
    button), all before the writer syncs: the row still gets the name."""
    from serve_helpers import example_copy, list_rows

    from newsletter.config import load_settings
    from newsletter.serve.connect import open_store
    from newsletter.serve.store import UNSUBSCRIBED, Event
    from newsletter.serve.sync import sync_events

    settings = load_settings(example_copy(tmp_path))
    def at(n): return f"2026-11-26T10:00:0{n}.000000Z"
    common = {"list_name": "example", "email": "back@example.com", "key": "back@example.com"}
    store = open_store(settings)
    store.append([Event(kind=SUBSCRIBED, name="Browser Reader", at=at(1), **common),
                  Event(kind=CONFIRMED, name="Browser Reader", at=at(2), asked_at=at(1), **common),
                  Event(kind=UNSUBSCRIBED, at=at(3), **common),
                  Event(kind=CONFIRMED, at=at(4), asked_at=at(4), **common)])
    store.close()

    sync_events(settings, "example")

    row = list_rows(settings.list_path("example"))["back@example.com"]
    assert (row["status"], row["name"]) == ("subscribed", "Browser Reader")


def _readable(token: str) -> bytes:
    """Everything a token shows to whoever reads the URL: the text itself and each part base64-decoded."""
    shown = token.encode()
    for part in re.split(r"[.]", token):
        try:
            shown += b"\n" + base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        except ValueError:
            continue
    return shown


def test_confirmation_and_way_back_links_name_nobody_to_whoever_reads_the_url(world, client):
    """Like the unsubscribe links (AES-SIV), the service's own links must not carry the address or name
    in the clear: URLs end up in browser histories, link scanners and proxy logs."""
    client.post("/subscribe/example", data={"email": "private.reader@example.com", "name": "Private Reader",
                                            "website": ""})
    link = world.links("private.reader@example.com", "/confirm/")[-1]
    assert client.post(link).status_code == 200  # still a working link
    token = make_token(SECRET.encode(), "example", "private.reader@example.com")
    done = client.post(f"/unsubscribe/{token}", data={})
    [way_back] = re.findall(r'action="/resubscribe/([^"]+)"', done.text)

    assert client.post(f"/resubscribe/{link.rsplit('/', 1)[1]}").status_code == 400  # one purpose per token
    assert client.post(f"/confirm/{way_back}").status_code == 400
    for shown in (_readable(link.rsplit("/", 1)[1]), _readable(way_back)):
        assert b"private.reader" not in shown and b"Private Reader" not in shown


def test_the_name_field_cannot_carry_a_spammers_text_into_a_strangers_inbox(world, client):
    """Bots fill sign-up forms with a stranger's address and an advert as the name; the confirmation
    mail then carries the advert (in To:) to the stranger. The mail must not show what the form said."""
    advert = "Cheap pills at pills.example.net"
    assert client.post("/subscribe/example", data={"email": "stranger@example.org", "name": advert,
                                                   "website": ""}).status_code == 200
    [received] = [m for m in world.mail.received if "stranger@example.org" in m.rcpt_tos]

    assert "pills" not in received.message().as_string()


def test_a_store_file_deleted_under_the_running_service_is_a_503_not_a_200_into_nowhere(tmp_path, monkeypatch):
    """`git clean -fdX` (the store is git-ignored) or a careless `rm` while the service runs: SQLite keeps
    writing to the deleted file, and everything answered 200 after that is gone at the next start."""
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", SECRET)
    running = start_world(tmp_path)
    try:
        database = running.root / running.settings.serve.database
        for leftover in database.parent.glob(database.name + "*"):
            leftover.unlink()
        token = make_token(SECRET.encode(), "example", "ada@example.com")
        with httpx.Client(base_url=running.url, timeout=10) as client:
            answer = client.post(f"/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click")
            health = client.get("/healthz")
        assert (answer.status_code, health.status_code) == (503, 503)
    finally:
        running.stop()
