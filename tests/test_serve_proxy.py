"""What the service tells its proxy and load balancer: health that proves a write, fast honest 503s with
Retry-After, limits on slow clients, security headers, redirects that ignore the Host header.

Real uvicorn configured as ``newsletter serve`` configures it, real SQLite and PostgreSQL (a cluster of the
test's own where the test stops it). Slow clients are real sockets; every wait is on a socket or a server's
answer, never a sleep.
"""

from __future__ import annotations

import secrets
import socket
import sqlite3
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from serve_helpers import StoppablePostgres, start_world

from newsletter.compose.unsubscribe import make_token
from newsletter.serve.http_limits import SlowClientLimits

SECRET = "test-secret-for-the-proxy-tests"
ONE_CLICK = {"content": b"List-Unsubscribe=One-Click",
             "headers": {"Content-Type": "application/x-www-form-urlencoded"}}
PATIENCE = 5.0  # seconds a client waits for an answer: the service answers a store failure well within 1


@pytest.fixture
def secret_env(monkeypatch):
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", SECRET)


def one_click(client: httpx.Client, email: str = "ada@example.com") -> httpx.Response:
    return client.post(f"/unsubscribe/{make_token(SECRET.encode(), 'example', email)}", **ONE_CLICK)


def assert_unavailable(answer: httpx.Response) -> None:
    assert answer.status_code == 503, answer.text
    assert int(answer.headers["Retry-After"]) > 0


# --- 15: /healthz proves a write ---------------------------------------------------------------------


def test_healthz_is_503_while_another_process_holds_the_sqlite_store_locked(tmp_path, secret_env):
    """A `sqlite3` shell or a backup left in a write transaction: reads still work (WAL), nothing can be
    recorded. /healthz must say so, so the balancer takes the instance out."""
    world = start_world(tmp_path)
    blocker = sqlite3.connect(world.root / world.settings.serve.database, isolation_level=None)
    try:
        with httpx.Client(base_url=world.url, timeout=PATIENCE) as client:
            assert client.get("/healthz").status_code == 200
            blocker.execute("BEGIN IMMEDIATE")  # holds the write lock

            health = client.get("/healthz")
            unsubscribed = one_click(client)

            assert_unavailable(health)
            assert_unavailable(unsubscribed)
            blocker.execute("ROLLBACK")
            assert client.get("/healthz").status_code == 200
            assert one_click(client).status_code == 200
    finally:
        blocker.close()
        world.stop()


def _as_role(url: str, role: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port}"))


def test_healthz_is_503_when_postgresql_fails_over_to_a_read_only_server(tmp_path, secret_env, postgres_url,
                                                                        fresh_postgres_url):
    """After a fail-over to a read-only server (a standby, or default_transaction_read_only), every session
    answers SELECT 1 and refuses every write: a health check that only reads keeps the instance in."""
    import psycopg

    role = f"serve_{secrets.token_hex(4)}"
    schema = fresh_postgres_url.rsplit("%3D", 1)[1]
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN")
        admin.execute(f"GRANT USAGE, CREATE ON SCHEMA {schema} TO {role}")
    world = start_world(tmp_path, database_url=_as_role(fresh_postgres_url, role))
    try:
        with httpx.Client(base_url=world.url, timeout=PATIENCE) as client:
            assert client.get("/healthz").status_code == 200
            with psycopg.connect(postgres_url, autocommit=True) as admin:  # the fail-over
                admin.execute(f"ALTER ROLE {role} SET default_transaction_read_only = on")
                admin.execute("SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE usename = %s",
                              (role,))
            with psycopg.connect(_as_role(fresh_postgres_url, role)) as seen:  # what new sessions are
                assert seen.execute("SHOW default_transaction_read_only").fetchone()[0] == "on"

            assert_unavailable(one_click(client))  # the first may meet a connection the fail-over ended
            answers = [client.get("/healthz") for _ in range(3)] + [one_click(client)]

            for answer in answers:
                assert_unavailable(answer)
    finally:
        world.stop()


# --- 16: a store that is down answers 503 at once, with Retry-After ----------------------------------


def test_postgresql_down_gets_503_with_retry_after_at_once_and_the_service_recovers(tmp_path, secret_env):
    with StoppablePostgres() as postgres:
        world = start_world(tmp_path, database_url=postgres.url)
        try:
            with httpx.Client(base_url=world.url, timeout=PATIENCE) as client:
                assert client.get("/healthz").status_code == 200
                postgres.stop()

                # each within PATIENCE (the pool's own 10 s wait was every request's before)
                down = [client.get("/healthz"), one_click(client),
                        client.post("/subscribe/example", data={"email": "late@example.com", "website": ""})]

                for answer in down:
                    assert_unavailable(answer)
                assert "nothing has changed" in down[1].text
                assert not world.links("late@example.com", "/confirm/")  # no mail for an uncounted request
                postgres.start()
                # The balancer's way of finding out: ask until it says ok (each answer comes within 1 s).
                health = [client.get("/healthz").status_code for _ in range(40)]
                assert 200 in health, health
                assert one_click(client).status_code == 200
        finally:
            world.stop()


# --- 21: slow clients, security headers, redirects ------------------------------------------------------


QUICK = SlowClientLimits(head_seconds=1.0, body_seconds=1.0, max_connections=20)


@pytest.fixture
def quick(tmp_path, secret_env):
    world = start_world(tmp_path, slow_clients=QUICK)
    yield world
    world.stop()


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)  # a generous bound on a wait, not a pause
    return sock


def _answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def test_half_open_requests_are_answered_408_and_closed_and_do_not_hold_the_service(tmp_path, secret_env):
    """A flood of connections that never finish their headers (slowloris): over the connection limit a new
    request gets a 503 at once rather than waiting; each half-open one is closed after the head deadline;
    then the service answers as before."""
    world = start_world(tmp_path, slow_clients=SlowClientLimits(head_seconds=3.0, max_connections=20))
    flood = []
    try:
        for _ in range(200):  # ten times the limit
            sock = _connect(world.url)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            flood.append(sock)
        with httpx.Client(base_url=world.url, timeout=PATIENCE) as client:
            # accepted after the flood (the kernel's queue and the server's are in order): over the limit
            assert client.get("/healthz").status_code == 503

            answers = [_answer(sock) for sock in flood]  # each returns only when the server closes it

            assert all(answer.startswith(b"HTTP/1.1 408 ") for answer in answers), {a[:40] for a in answers}
            assert client.get("/healthz").status_code == 200
    finally:
        for sock in flood:
            sock.close()
        world.stop()


@pytest.mark.parametrize("route", ["unsubscribe", "subscribe"])
def test_a_stalled_body_is_answered_408_not_waited_for(quick, route):
    path = {"unsubscribe": f"/unsubscribe/{make_token(SECRET.encode(), 'example', 'ada@example.com')}",
            "subscribe": "/subscribe/example"}[route]
    with _connect(quick.url) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded"
                     "\r\nContent-Length: 100\r\n\r\nList-Unsub".encode())

        answer = _answer(sock)  # returns only when the server closes the connection

    assert answer.startswith(b"HTTP/1.1 408 "), answer[:80]
    assert not [e for e in quick.store.unsynced("example") if e.key == "ada@example.com"]


def test_a_slow_body_on_the_webhook_is_answered_408(tmp_path, secret_env):
    world = start_world(tmp_path, slow_clients=QUICK, webhook_verifier=lambda body, signature, stamp: True)
    try:
        with _connect(world.url) as sock:
            sock.sendall(b"POST /events/sendgrid HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 5000\r\n\r\n[{\"email\": ")
            assert _answer(sock).startswith(b"HTTP/1.1 408 ")
    finally:
        world.stop()


SECURITY = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


def test_every_answer_carries_the_security_headers(quick):
    with httpx.Client(base_url=quick.url, timeout=PATIENCE) as client:
        answers = {
            "form": client.get("/subscribe/example"),
            "no such list": client.get("/subscribe/nope"),
            "no such page": client.get("/nothing-here"),
            "bad link": client.get("/confirm/nonsense"),
            "bad address": client.post("/subscribe/example", data={"email": "x", "website": ""}),
            "unsubscribe page": client.get(f"/unsubscribe/{make_token(SECRET.encode(), 'example', 'a@example.com')}"),
            "one-click": one_click(client, "edsger@example.com"),
            "health": client.get("/healthz"),
            "stylesheet": client.get("/theme.css"),
            "webhook closed": client.post("/events/sendgrid", content=b"[]"),
            "method": client.delete("/healthz"),
        }
    for name, answer in answers.items():
        for header, value in SECURITY.items():
            assert answer.headers.get(header) == value, (name, header, answer.headers)
        policy = answer.headers.get("content-security-policy", "")
        assert "frame-ancestors 'none'" in policy and "default-src 'none'" in policy, (name, policy)
        assert "script-src" not in policy  # no script may run: the pages have none


def test_a_trailing_slash_redirect_goes_to_the_public_address_whatever_the_host_header_says(quick):
    with httpx.Client(base_url=quick.url, timeout=PATIENCE) as client:
        answer = client.get("/subscribe/example/", headers={"Host": "evil.example.com"})
        elsewhere = client.get("//evil.example.com/", headers={"Host": "evil.example.com"})

    assert answer.status_code in (301, 308)
    assert answer.headers["location"] == f"{quick.url}/subscribe/example"
    assert elsewhere.status_code == 404 and "location" not in elsewhere.headers
