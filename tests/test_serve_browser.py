"""A reader's whole story in a real headless Chromium: subscribe, confirm, receive an issue, unsubscribe.

The service runs under uvicorn on 127.0.0.1, mail goes to a local aiosmtpd,
and the list file changes only when the writer runs `subscribers sync`.
"""

from __future__ import annotations

import re
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner
from conftest import EXAMPLE_ISSUE
from serve_helpers import list_rows, start_world
from test_preview import BROWSER_ARGS, chromium_or_fail

from newsletter.cli import main

SECRET = "test-secret-for-unsubscribe-links"
READER = "new.reader@example.com"


@pytest.fixture
def world(tmp_path, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", SECRET)
    running = start_world(tmp_path)
    yield running
    running.stop()


@pytest.fixture
def page():
    executable = chromium_or_fail()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=BROWSER_ARGS)
        context = browser.new_context(viewport={"width": 390, "height": 844}, java_script_enabled=False)  # a phone
        opened = context.new_page()
        opened.set_default_timeout(10_000)
        yield opened
        browser.close()


def sync(world) -> str:
    result = CliRunner().invoke(main, ["--root", str(world.root), "subscribers", "sync", "--list", "example"])
    assert result.exit_code == 0, result.output
    return result.output


def test_subscribe_confirm_receive_and_unsubscribe_in_a_browser(world, page):
    from playwright.sync_api import expect

    page.goto(f"{world.url}/subscribe/example")
    page.get_by_label("Email address").fill(READER)
    page.get_by_label("Name").fill("Nova Reader")
    page.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()

    [link] = world.links(READER, "/confirm/")  # the confirmation mail arrived at the SMTP server
    page.goto(link)
    expect(page.get_by_role("heading", name="Confirm your subscription")).to_be_visible()
    assert READER not in list_rows(world.settings.list_path("example"))  # opening the link is not confirming
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("heading", name="You are subscribed")).to_be_visible()

    assert f"{READER}: not on the list -> subscribed" in sync(world)
    row = list_rows(world.settings.list_path("example"))[READER]
    assert (row["name"], row["status"]) == ("Nova Reader", "subscribed") and row["consent_confirmed_at"]

    sent = CliRunner().invoke(main, ["--root", str(world.root), "send", str(world.root / "issues" / EXAMPLE_ISSUE),
                                     "--list", "example", "--provider", "smtp", "--yes"])
    assert sent.exit_code == 0, sent.output
    issue = [r.message() for r in world.mail.received if r.rcpt_tos == (READER,)][-1]
    html = issue.get_body(("html",)).get_content()
    footer_link = re.search(r'href="([^"]+/unsubscribe/[^"]+)"', html).group(1)
    assert footer_link.startswith(f"{world.url}/unsubscribe/")

    page.goto(footer_link)
    expect(page.get_by_text("Stop receiving The Plain Files Dispatch (example)?")).to_be_visible()
    page.get_by_role("button", name="Unsubscribe").click()
    expect(page.get_by_role("heading", name="You are unsubscribed")).to_be_visible()
    expect(page.get_by_role("button", name="Subscribe again")).to_be_visible()

    assert f"{READER}: subscribed -> unsubscribed" in sync(world)
    assert list_rows(world.settings.list_path("example"))[READER]["status"] == "unsubscribed"


def test_the_pages_work_under_their_content_security_policy_and_cannot_be_framed(world, page):
    """The policy forbids everything the pages do not use: Chromium must still apply both stylesheets and
    post the form, report no violation, and refuse to show a page inside another site's frame."""
    from playwright.sync_api import expect

    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.goto(f"{world.url}/subscribe/example")
    assert page.locator(".trap").evaluate("e => getComputedStyle(e).position") == "absolute"  # pages.css
    assert page.locator(".masthead").evaluate("e => getComputedStyle(e).fontFamily") != \
        page.locator("label[for=email]").evaluate("e => getComputedStyle(e).fontFamily")  # theme.css too
    page.get_by_label("Email address").fill("framed.reader@example.com")
    page.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
    assert not [text for text in console if "Content Security Policy" in text], console

    # another site's page (another origin on this machine, with no policy of its own) framing the form
    with framing_site(f'<iframe src="{world.url}/subscribe/example"></iframe>') as other, \
            page.expect_event("framenavigated", predicate=lambda frame: frame.parent_frame is not None) as framed:
        page.goto(other)
    assert framed.value.url.startswith("chrome-error://")  # Chromium showed its error page, not the form
    assert "Subscribe to" not in framed.value.content()


@contextmanager
def framing_site(html: str):
    """A page on 127.0.0.1 at a port of its own (another origin), served by the standard library."""
    body = html.encode()

    class Page(BaseHTTPRequestHandler):
        def do_GET(self):
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
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
