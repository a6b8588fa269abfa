"""A world for counting clicks, shared by the stats tests: ``newsletter serve`` under uvicorn with click
counting on, the service's clock moved by the test (``click_clock``), a real send over SMTP, a landing page
on 127.0.0.1, and headless Chromium that reaches nothing beyond this machine (``click_page``).

A pytest plugin (conftest.py's ``pytest_plugins``): its fixtures are named ``click_*`` because several test
modules have a ``world``, ``clock`` or ``page`` of their own.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from browser_helpers import BROWSER_ARGS, chromium_or_fail
from click.testing import CliRunner
from conftest import EXAMPLE_ISSUE
from serve_helpers import start_world

from newsletter.cli import main

SECRET = "test-secret-for-click-links"
READER = "ada@example.com"
BROWSER_ADDRESS = "192.0.2.44"  # the reader's address as the proxy in front of the service reports it


class MovableClock:
    """The service's clock: now, plus however far the test has moved it (no sleeping)."""

    def __init__(self) -> None:
        self.offset = dt.timedelta()

    def __call__(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset


@contextmanager
def landing_site() -> Iterator[tuple[str, list[str]]]:
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
def click_clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def click_world(tmp_path, monkeypatch, click_clock):
    """A copy of the example newsletter, its subscriber service running with click counting on."""
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", SECRET)
    running = start_world(tmp_path, clock=click_clock, stats={"clicks": "true", "human_after_seconds": "10"})
    yield running
    running.stop()


def add_link(world, url: str) -> None:
    """The issue's introduction links to ``url`` (a loopback page: no test reaches beyond this machine)."""
    path = world.root / "issues" / EXAMPLE_ISSUE / "issue.md"
    path.write_text(path.read_text(encoding="utf-8") + f"\nRead [the landing page]({url}) first.\n",
                    encoding="utf-8")


def send(world) -> None:
    """The example issue sent to the example list over SMTP (the world's aiosmtpd)."""
    result = CliRunner().invoke(main, ["--root", str(world.root), "send", str(world.root / "issues" / EXAMPLE_ISSUE),
                                       "--list", "example", "--provider", "smtp", "--yes"])
    assert result.exit_code == 0, result.output


def received_html(world, address: str) -> str:
    """The HTML part of the message ``address`` received."""
    [message] = [r.message() for r in world.mail.received if r.rcpt_tos == (address,)]
    return message.get_body(("html",)).get_content()


def click_links(html: str, service: str) -> list[str]:
    """The message's links that go through the service's click route."""
    return re.findall(rf'href="({re.escape(service)}/c/[^"]+)"', html)


@pytest.fixture
def click_page():
    """A page of headless Chromium with JavaScript off, as a reader's mail client shows a link."""
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
