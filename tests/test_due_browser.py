"""The welcome series as a reader lives it: they confirm their sign-up through `newsletter serve` in a real
headless Chromium, and `newsletter send --due` (run as cron would, the clock moved with --now) sends them
the welcome step, then day 3 and day 10, each once; a reader who unsubscribes after day 3 gets nothing more.
Mail goes to a local aiosmtpd; the service runs under uvicorn on 127.0.0.1."""

from __future__ import annotations

import re
import time

import pytest
from due_helpers import DAY, due, make_sequence, subjects_of
from serve_helpers import start_world
from test_preview import BROWSER_ARGS, chromium_or_fail

SECRET = "test-secret-for-unsubscribe-links"
STAYS, LEAVES = "nova@example.com", "leo@example.com"


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
        opened = browser.new_context(java_script_enabled=False).new_page()
        opened.set_default_timeout(10_000)
        yield opened
        browser.close()


def _steps(world, address: str) -> list[str]:
    """The subjects of the sequence's mails ``address`` received (not the confirmation mail)."""
    return [s for s in subjects_of(world.mail, address) if not s.startswith("Confirm your subscription")]


def _sign_up(world, page, email: str, name: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{world.url}/subscribe/example")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Name").fill(name)
    page.get_by_role("button", name="Subscribe").click()
    [link] = world.links(email, "/confirm/")
    page.goto(link)
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("heading", name="You are subscribed")).to_be_visible()


def test_confirm_in_a_browser_then_welcome_day_3_and_day_10_each_once(world, page):
    from playwright.sync_api import expect

    make_sequence(world.root, "welcome", "example", [("Welcome", "0"), ("Day 3", "3d"), ("Day 10", "7d")],
                  trigger="confirmed")
    start = time.time()
    assert due(world.root).exit_code == 0  # the sequence starts: the readers already on the list are not enrolled
    _sign_up(world, page, STAYS, "Nova Reader")
    _sign_up(world, page, LEAVES, "Leo Reader")

    welcome = due(world.root)  # the sign-ups are brought into the list first, then the welcome step goes
    assert welcome.exit_code == 0, welcome.output
    assert "to 2 readers of list example: sent 2 of 2" in welcome.output
    for _ in range(2):
        assert due(world.root, start + 3 * DAY + 600).exit_code == 0
    assert _steps(world, STAYS) == _steps(world, LEAVES) == ["Welcome", "Day 3"]
    assert _steps(world, "ada@example.com") == []  # on the list before the sequence: no welcome

    day_3 = [r.message() for r in world.mail.received if r.rcpt_tos == (LEAVES,)][-1]
    link = re.search(r'href="([^"]+/unsubscribe/[^"]+)"', day_3.get_body(("html",)).get_content()).group(1)
    page.goto(link)
    page.get_by_role("button", name="Unsubscribe").click()
    expect(page.get_by_role("heading", name="You are unsubscribed")).to_be_visible()

    for _ in range(2):
        result = due(world.root, start + 10 * DAY + 1200)
        assert result.exit_code == 0, result.output
    assert _steps(world, STAYS) == ["Welcome", "Day 3", "Day 10"]
    assert _steps(world, LEAVES) == ["Welcome", "Day 3"]
