"""Counting clicks without spying on readers (issue 23): a real send over SMTP, a real newsletter serve under
uvicorn, a real headless Chromium clicking a link from the received message, and the programs that fetch
links (a scanner within a second of delivery, HEAD and prefetch requests), which must not be counted."""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from click.testing import CliRunner
from conftest import EXAMPLE_ISSUE
from serve_helpers import start_world
from test_preview import BROWSER_ARGS, chromium_or_fail

from newsletter.cli import main

SECRET = "test-secret-for-click-links"
READER, SCANNED = "ada@example.com", "grace@example.org"
SCANNER_AGENT = "LinkScanner/4.2 (+mail-filter; marker-ua-7731)"
SCANNER_ADDRESS = "198.51.100.77"  # X-Forwarded-For from the proxy serve trusts (127.0.0.1)
BROWSER_ADDRESS, PREVIEW_ADDRESS = "192.0.2.44", "203.0.113.5"


class MovableClock:
    """The service's clock: now, plus however far the test has moved it (no sleeping)."""

    def __init__(self) -> None:
        self.offset = dt.timedelta()

    def __call__(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset


@contextmanager
def landing_site():
    """Where the issue's link leads: a page on 127.0.0.1 that counts its visitors."""
    hits: list[str] = []

    class Page(BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            body = b"<!doctype html><title>Landing</title><h1>You landed</h1>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/landing", hits
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def clock():
    return MovableClock()


@pytest.fixture
def world(tmp_path, monkeypatch, clock):
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", SECRET)
    running = start_world(tmp_path, clock=clock, stats={"clicks": "true", "human_after_seconds": "10"})
    yield running
    running.stop()


def add_link(world, url: str) -> None:
    """The issue's introduction links to ``url`` (a loopback page: no test reaches beyond this machine)."""
    path = world.root / "issues" / EXAMPLE_ISSUE / "issue.md"
    path.write_text(path.read_text(encoding="utf-8") + f"\nRead [the landing page]({url}) first.\n",
                    encoding="utf-8")


def send(world) -> None:
    result = CliRunner().invoke(main, ["--root", str(world.root), "send", str(world.root / "issues" / EXAMPLE_ISSUE),
                                       "--list", "example", "--provider", "smtp", "--yes"])
    assert result.exit_code == 0, result.output


def received_html(world, address: str) -> str:
    [message] = [r.message() for r in world.mail.received if r.rcpt_tos == (address,)]
    return message.get_body(("html",)).get_content()


def click_links(html: str, service: str) -> list[str]:
    return re.findall(rf'href="({re.escape(service)}/c/[^"]+)"', html)


def stats(world, *args: str) -> dict:
    result = CliRunner().invoke(main, ["--root", str(world.root), "stats", str(world.root / "issues" / EXAMPLE_ISSUE),
                                       "--format", "json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.fixture
def page():
    executable = chromium_or_fail()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=BROWSER_ARGS)
        # the reader's address as the proxy in front of the service reports it (serve trusts 127.0.0.1's)
        context = browser.new_context(java_script_enabled=False,
                                      extra_http_headers={"X-Forwarded-For": BROWSER_ADDRESS})
        # nothing beyond this machine, whatever a page links to
        context.route(re.compile(r"^https?://(?!127\.0\.0\.1[:/]).*"), lambda route: route.abort())
        opened = context.new_page()
        opened.set_default_timeout(10_000)
        yield opened
        browser.close()


def test_a_reader_clicking_in_chromium_is_counted_and_the_programs_fetching_links_are_not(world, clock, page,
                                                                                            tmp_path):
    with landing_site() as (landing, hits):
        add_link(world, landing)
        send(world)
        html = received_html(world, READER)
        links = click_links(html, world.url)
        assert links, "the received message's links point at the click route"
        # the unsubscribe link, the web version ("view in your browser") and mailto: are left as they are
        assert re.search(rf'href="{re.escape(world.url)}/unsubscribe/', html)
        assert re.search(rf'href="{re.escape(world.url)}/{EXAMPLE_ISSUE}/"', html)
        assert landing not in html  # the page's address travels only inside the authenticated token

        # A mail filter fetches every link of another reader's copy as it arrives (the hidden one too)...
        scanned = click_links(received_html(world, SCANNED), world.url)
        scanner = {"User-Agent": SCANNER_AGENT, "X-Forwarded-For": SCANNER_ADDRESS}
        clock.offset = dt.timedelta(seconds=0.5)
        for link in scanned:
            assert httpx.get(link, headers=scanner).status_code == 302
        # ... and later, link previews and prefetches of the reader's own copy
        clock.offset = dt.timedelta(minutes=5)
        preview = {"X-Forwarded-For": PREVIEW_ADDRESS}
        landing_link = next(link for link in links if httpx.head(link, headers=preview).headers["location"] == landing)
        assert httpx.get(landing_link, headers={"Sec-Purpose": "prefetch", **preview}).status_code == 302

        # The reader opens the message and clicks the link, in a browser.
        page.set_content(html)
        page.get_by_role("link", name="the landing page").click()
        page.wait_for_url(landing)
        assert page.get_by_role("heading", name="You landed").is_visible()
        assert hits == ["/landing"]  # the redirect led there once: the programs above did not follow it

    figures = stats(world)
    assert figures["unique_human_clickers"] == 1
    assert figures["delivered"] == 4 and figures["bounced"]["total"] == 0
    by_url = {link["url"]: link for link in figures["links"]}
    assert by_url[landing]["human_clicks"] == 1
    assert by_url[landing]["program_fetches"] == 3  # the scanner's, the HEAD and the prefetch
    assert sum(link["human_clicks"] for link in figures["links"]) == 1
    assert figures["program_fetches_not_counted"] == {"head": 2, "honeypot": 1, "prefetch": 1,
                                                      "too soon": len(scanned) - 1}
    text = CliRunner().invoke(main, ["--root", str(world.root), "stats", str(world.root / "issues" / EXAMPLE_ISSUE)])
    assert re.search(r"human clickers\s+1\s+\(25\.0% of delivered", text.output), text.output

    # Nothing the service stored holds a client address or a user agent (every table, every column).
    database = sqlite3.connect(world.root / world.settings.serve.database)
    tables = [name for (name,) in database.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    assert {"clicks", "message_events"} <= set(tables)
    stored = [str(value) for table in tables for row in database.execute(f"SELECT * FROM {table}") for value in row]
    database.close()
    assert stored, "the clicks were stored"
    for secret_of_the_reader in (SCANNER_ADDRESS, BROWSER_ADDRESS, PREVIEW_ADDRESS, SCANNER_AGENT,
                                 "marker-ua-7731", "HeadlessChrome", "Mozilla", "python-httpx"):
        assert not [value for value in stored if secret_of_the_reader in value], secret_of_the_reader


def test_the_honeypot_discounts_a_scanner_that_fetches_it_after_the_links(world, clock):
    """A scanner that comes late (past human_after_seconds) is caught by the hidden link it also follows,
    in whatever order it fetches them: clicks already recorded are struck off when it reaches the honeypot."""
    send(world)
    html = received_html(world, READER)
    honeypot = re.search(r'<a href="([^"]+)" style="display:none[^"]*" aria-hidden="true"', html)[1]
    visible = [link for link in click_links(html, world.url) if link != honeypot]
    clock.offset = dt.timedelta(minutes=2)
    scanner = {"User-Agent": SCANNER_AGENT, "X-Forwarded-For": SCANNER_ADDRESS}
    for link in [*visible[:2], honeypot, *visible[2:]]:
        httpx.get(link, headers=scanner)
    reader = {"User-Agent": "Mozilla/5.0 (a reader's phone)", "X-Forwarded-For": "203.0.113.9"}
    clock.offset = dt.timedelta(minutes=30)
    httpx.get(visible[0], headers=reader)

    figures = stats(world)
    assert figures["unique_human_clickers"] == 1 and figures["human_clicks"] == 1
    assert figures["program_fetches_not_counted"]["honeypot"] == len(visible) + 1


@pytest.mark.parametrize("change", ["flip a character", "cut short", "edit the reader part", "other secret",
                                    "another address in the token", "garbage"])
def test_a_forged_edited_or_truncated_token_redirects_nowhere_and_says_nothing(world, clock, change):
    from newsletter.compose.click_tokens import ClickKeys

    send(world)
    genuine = click_links(received_html(world, READER), world.url)[1].rsplit("/c/", 1)[1]
    link_part, reader_part = genuine.split(".")
    keys = ClickKeys(SECRET.encode())
    other_reader = click_links(received_html(world, SCANNED), world.url)[1].rsplit(".", 1)[1]
    forged = {
        "flip a character": (link_part[:-3] + ("A" if link_part[-3] != "A" else "B") + link_part[-2:] + "."
                             + reader_part),
        "cut short": genuine[: len(link_part) - 7],
        "edit the reader part": link_part + "." + other_reader[:-2] + ("AA" if other_reader[-2:] != "AA" else "BB"),
        "other secret": ClickKeys(b"not the secret").link_part(
            keys.read(genuine).issue, 1, "https://evil.example.net/") + "." + reader_part,
        # a genuine link part's bytes with the address replaced, its tag kept
        "another address in the token": _with_url(link_part, "https://evil.example.net/x") + "." + reader_part,
        "garbage": "not-a-token",
    }[change]
    clock.offset = dt.timedelta(minutes=5)
    answer = httpx.get(f"{world.url}/c/{forged}")
    assert answer.status_code == 400 and "location" not in answer.headers
    assert "This link does not work" in answer.text and "evil" not in answer.text
    garbage = httpx.get(f"{world.url}/c/x")
    assert answer.text == garbage.text  # the same page whatever is wrong: it reveals nothing
    assert world.store.clicks_of(keys.read(genuine).issue) == []  # and nothing is recorded


def _with_url(link_part: str, url: str) -> str:
    import base64

    data = base64.urlsafe_b64decode(link_part + "=" * (-len(link_part) % 4))
    length = data[3]
    body = data[:4 + length] + url.encode() + data[-16:]
    return base64.urlsafe_b64encode(body).decode().rstrip("=")


def test_links_are_rewritten_once_per_send_except_unsubscribe_mailto_web_version_and_opted_out(world):
    path = world.root / "issues" / EXAMPLE_ISSUE / "issue.md"
    text = path.read_text(encoding="utf-8")
    text = text.replace("number: 1\n", "number: 1\nuntracked_links:\n- http://127.0.0.1:9/private*\n", 1)
    text += ("\nWrite to [the editor](mailto:editor@example.com), see [my bank](http://127.0.0.1:9/private/acct) "
             "or [the shop](http://127.0.0.1:9/shop).\n")
    path.write_text(text, encoding="utf-8")
    send(world)
    html = received_html(world, READER)
    assert 'href="mailto:editor@example.com"' in html
    assert 'href="http://127.0.0.1:9/private/acct"' in html  # opted out by the writer
    assert "http://127.0.0.1:9/shop" not in html
    assert re.search(rf'href="{re.escape(world.url)}/unsubscribe/[A-Za-z0-9_-]+"', html)
    # one link part per address, shared by all readers; one reader part per reader, shared by all their links
    mine = [link.rsplit("/c/", 1)[1].split(".") for link in click_links(html, world.url)]
    theirs = [link.rsplit("/c/", 1)[1].split(".") for link in click_links(received_html(world, SCANNED), world.url)]
    assert [link for link, _ in mine] == [link for link, _ in theirs]
    assert len({reader for _, reader in mine}) == 1
    assert {reader for _, reader in mine} != {reader for _, reader in theirs}
    [message] = [r.message() for r in world.mail.received if r.rcpt_tos == (READER,)]
    plain = message.get_body(("plain",)).get_content()
    assert "http://127.0.0.1:9/shop" not in plain and f"{world.url}/c/" in plain
    assert message.get("List-Unsubscribe") and "/c/" not in message.get("List-Unsubscribe")

