"""The live preview, driven as a writer uses it: in a real headless Chromium (Debian's), through Playwright.

Every test runs on a private copy of the example newsletter (conftest's
``newsletter_root``), so editing articles and templates never touches the
repository. Without Chromium these tests fail with a message saying how to
install it; they are never skipped.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import struct
import subprocess
import sys
import time
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_helpers import BROWSER_ARGS, chromium_or_fail
from journal_reading import preview_url

from newsletter.compose.content import load_issue
from newsletter.compose.unsubscribe import make_token
from newsletter.looking.browser_email import dark_variant, email_for_browser
from newsletter.looking.preview_server import PreviewServer, make_preview_server

LIVE_UPDATE_SECONDS = 3.0  # the issue asks for about a second; slack for a loaded CI machine


@pytest.fixture(scope="module")
def browser() -> Iterator:
    executable = chromium_or_fail()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the preview tests need Playwright for Python: pip install -e '.[test]' "
                    "(the browser itself comes from Debian; never run `playwright install`)", pytrace=False)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=BROWSER_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def server(settings, example_issue: Path) -> Iterator[PreviewServer]:
    running = make_preview_server(settings, example_issue, port=0, list_name="example").start()
    yield running
    running.close()


@pytest.fixture
def page(browser, server: PreviewServer) -> Iterator:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(10_000)
    yield opened
    context.close()


def expect():
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect


def last_article(issue_dir: Path):
    return load_issue(issue_dir).articles[-1]


def raw_get(server: PreviewServer, target: str, host: str | None = None) -> tuple[int, bytes]:
    """GET exactly ``target`` (no client-side normalisation of '..')."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.putrequest("GET", target, skip_host=True)
        connection.putheader("Host", host or f"127.0.0.1:{server.port}")
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


# --- in the browser -------------------------------------------------------------


def test_page_shows_the_email_its_headers_text_part_checks_and_size(page, server, example_issue):
    issue = load_issue(example_issue)
    page.goto(server.url)
    frame = page.frame_locator("#email")
    expect()(frame.locator(".article-title").last).to_have_text(issue.articles[-1].title)
    expect()(frame.locator(".masthead")).to_be_visible()
    expect()(page.locator("#h-subject")).to_have_text(issue.subject)
    expect()(page.locator("#h-preheader")).to_have_text(issue.preheader)
    expect()(page.locator("#h-from")).to_contain_text("dispatch@example.com")
    expect()(page.locator("#text")).to_contain_text(issue.articles[-1].title)
    expect()(page.locator("#size")).to_contain_text("Gmail clips messages over 102 KB")
    expect()(page.locator("#findings-summary")).to_contain_text(
        re.compile(r"\d+ errors?|No problems found"), timeout=60_000)  # the checks run a spam filter
    expect()(page.locator("#error")).to_be_hidden()
    assert page.title().startswith(issue.subject)
    assert frame.locator("title").text_content() == issue.subject


def test_phone_width_switch_narrows_the_frame_and_the_view_survives_a_reload(page, server):
    page.goto(server.url)
    frame = page.locator("#email")
    expect()(page.frame_locator("#email").locator(".masthead")).to_be_visible()
    assert frame.bounding_box()["width"] >= 600

    page.click("#view-phone")
    expect()(page.locator("#view-phone")).to_have_attribute("aria-pressed", "true")
    page.wait_for_function("document.getElementById('email').getBoundingClientRect().width === 375")
    assert "width=phone" in page.url

    page.reload()
    expect()(page.frame_locator("#email").locator(".masthead")).to_be_visible()
    assert frame.bounding_box()["width"] == 375

    page.click("#view-desktop")
    page.wait_for_function("document.getElementById('email').getBoundingClientRect().width >= 600")


def test_dark_switch_shows_the_themes_dark_mode(page, server):
    background = ("el => getComputedStyle(el).backgroundColor")
    page.goto(server.url)
    wrapper = page.frame_locator("#email").locator(".wrapper").first
    expect()(wrapper).to_be_visible()
    assert wrapper.evaluate(background) == "rgb(244, 241, 236)"  # the theme's light page colour
    page.click("#view-dark")
    expect()(page.locator("#view-dark")).to_have_attribute("aria-pressed", "true")
    page.wait_for_function("document.getElementById('email').src.includes('dark=1')")
    expect()(page.frame_locator("#email").locator(".wrapper").first).to_have_css(
        "background-color", "rgb(17, 20, 24)")  # its @media (prefers-color-scheme: dark) colour
    assert "dark=1" in page.url


def test_editing_an_article_updates_the_open_page_without_a_reload(page, server, example_issue):
    article = last_article(example_issue)
    page.goto(server.url)
    title = page.frame_locator("#email").locator(".article-title").last
    expect()(title).to_have_text(article.title)
    page.click("#view-phone")
    page.evaluate("window.notReloaded = true")

    text = article.path.read_text(encoding="utf-8")
    article.path.write_text(text.replace(f"title: {article.title}", "title: Edited while the preview ran", 1),
                            encoding="utf-8")
    started = time.monotonic()
    expect()(title).to_have_text("Edited while the preview ran", timeout=LIVE_UPDATE_SECONDS * 1000)
    assert time.monotonic() - started < LIVE_UPDATE_SECONDS
    assert page.evaluate("window.notReloaded") is True  # updated in place, not by reloading the page
    assert page.locator("#email").bounding_box()["width"] == 375  # the chosen view is kept
    expect()(page.locator("#text")).to_contain_text("Edited while the preview ran")


def test_a_template_error_shows_in_the_page_and_fixing_it_brings_the_preview_back(own_theme, page, server,
                                                                                  newsletter_root):
    template = newsletter_root / "templates" / "default" / "email.html.j2"
    good = template.read_text(encoding="utf-8")
    page.goto(server.url)
    expect()(page.frame_locator("#email").locator(".masthead")).to_be_visible()

    lines = good.splitlines(keepends=True)
    broken_line = next(i for i, line in enumerate(lines) if "masthead" in line)
    lines[broken_line] = lines[broken_line].replace("{{ newsletter.name }}", "{{ newsletter.name ")
    template.write_text("".join(lines), encoding="utf-8")

    error = page.locator("#error")
    expect()(error).to_be_visible(timeout=LIVE_UPDATE_SECONDS * 1000)
    expect()(page.locator("#error-where")).to_contain_text(f"email.html.j2:{broken_line + 1}")
    expect()(page.locator("#error-message")).to_contain_text("template syntax error")
    expect()(page.locator("#status")).to_have_attribute("data-state", "error")
    expect()(page.frame_locator("#email").locator(".masthead")).to_be_visible()  # the last good build stays

    template.write_text(good.replace("{{ newsletter.name }}", "{{ newsletter.name }} (fixed)", 1), encoding="utf-8")
    expect()(error).to_be_hidden(timeout=LIVE_UPDATE_SECONDS * 1000)
    expect()(page.frame_locator("#email").locator(".masthead")).to_contain_text("(fixed)")
    expect()(page.locator("#status")).to_have_attribute("data-state", "live")


def test_a_broken_front_matter_names_the_file_and_line(page, server, example_issue):
    issue_md = example_issue / "issue.md"
    good = issue_md.read_text(encoding="utf-8")
    page.goto(server.url)
    expect()(page.frame_locator("#email").locator(".masthead")).to_be_visible()
    issue_md.write_text(good.replace("subject:", "subject: [unclosed", 1), encoding="utf-8")
    expect()(page.locator("#error")).to_be_visible(timeout=LIVE_UPDATE_SECONDS * 1000)
    expect()(page.locator("#error-where")).to_contain_text(re.compile(r"issue\.md:\d+"))
    expect()(page.locator("#error-message")).to_contain_text("front matter is not valid YAML")
    issue_md.write_text(good, encoding="utf-8")
    expect()(page.locator("#error")).to_be_hidden(timeout=LIVE_UPDATE_SECONDS * 1000)


def test_recipient_picker_shows_each_recipients_personalized_email(page, server):
    page.goto(server.url)
    expect()(page.locator("#recipient-picker")).to_be_visible()
    intro = page.frame_locator("#email").locator(".intro")
    expect()(intro).to_contain_text("Hi Sample Reader")
    options = page.locator("#recipient option").all_text_contents()
    assert "Ada Lovelace <ada@example.com>" in options
    assert not any("alan@example.com" in o or "bounce@example.org" in o for o in options)  # not sent to them

    page.select_option("#recipient", label="Ada Lovelace <ada@example.com>")
    expect()(intro).to_contain_text("Hi Ada Lovelace")
    expect()(page.locator("#h-to")).to_have_text("ada@example.com")
    assert "r=0" in page.url
    page.reload()
    expect()(page.frame_locator("#email").locator(".intro")).to_contain_text("Hi Ada Lovelace")


# --- over HTTP --------------------------------------------------------------------


OUTSIDE = [
    "/../newsletter.toml",
    "/%2e%2e/newsletter.toml",
    "/%2E%2E%2Fnewsletter.toml",
    "//etc/passwd",
    "/etc/passwd",
    "/static/../../pyproject.toml",
    "/static/%2e%2e/__init__.py",
    "/static/preview.py",
    "/issue-files/../../../newsletter.toml",
    "/issue-files/%2e%2e/%2e%2e/%2e%2e/newsletter.toml",
    "/issue-files/..%2f..%2f..%2fnewsletter.toml",
    "/issue-files//etc/passwd",
    "/issue-files/%2fetc%2fpasswd",
    "/issue-files/issue.md",
    "http://127.0.0.1/etc/passwd",
]


def test_paths_outside_what_the_preview_serves_are_404(server):
    answers = {target: raw_get(server, target) for target in OUTSIDE}
    assert {t: status for t, (status, _) in answers.items() if status != 404} == {}
    assert not any(b"root:" in body or b"[newsletter]" in body for _, body in answers.values())
    assert raw_get(server, "/static/preview.js")[0] == 200


def test_image_files_of_the_issue_folder_are_served(server, example_issue):
    (example_issue / "pixel.png").write_bytes(PIXEL_PNG)
    status, body = raw_get(server, "/issue-files/pixel.png")
    assert status == 200 and body == PIXEL_PNG
    assert raw_get(server, "/issue-files/issue.md")[0] == 404  # only images, not the writer's sources


def test_requests_for_another_host_name_are_refused(server):
    """A web page cannot read the preview through DNS rebinding: the Host must be the loopback."""
    assert raw_get(server, "/", host="attacker.example:8025")[0] == 403
    assert raw_get(server, "/", host=f"localhost:{server.port}")[0] == 200


def test_recipient_links_are_not_their_real_unsubscribe_links(server, settings):
    """--list data stays on the local page; the unsubscribe link shown is signed with the sample secret."""
    real = make_token(os.environ["NEWSLETTER_UNSUBSCRIBE_SECRET"].encode(), "example", "ada@example.com")
    html = server.preview.email_html(0)
    assert "Hi Ada Lovelace" in html
    assert real not in html and real[-20:] not in html


def test_state_reports_checks_and_size(server):
    server.preview.wait_for_checks()
    with urllib.request.urlopen(server.url + "api/state") as response:
        state = json.load(response)
    assert state["error"] is None
    assert state["size_limit"] == 102 * 1024
    assert 0 < state["size"] < state["size_limit"]
    assert isinstance(state["findings"], list)
    assert all({"severity", "message", "location", "fix"} <= set(f) for f in state["findings"])


def test_wait_returns_when_the_issue_is_rebuilt(server):
    version = server.preview.snapshot.version
    server.preview.rebuild()
    with urllib.request.urlopen(f"{server.url}api/wait?since={version}", timeout=5) as response:
        assert json.load(response)["version"] > version


# --- the command ------------------------------------------------------------------


def test_cli_prints_the_url_and_serves_the_page(newsletter_root, example_issue):
    process = subprocess.Popen(
        [sys.executable, "-m", "newsletter.cli", "--root", str(newsletter_root), "preview", str(example_issue),
         "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        url = preview_url(process, timeout=30)
        with urllib.request.urlopen(url, timeout=10) as response:
            assert b'id="email"' in response.read()
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_cli_refuses_a_port_in_use(server, newsletter_root, example_issue):
    from click.testing import CliRunner

    from newsletter.cli import main

    result = CliRunner().invoke(main, ["--root", str(newsletter_root), "preview", str(example_issue),
                                       "--port", str(server.port)])
    assert result.exit_code == 2
    assert f"cannot listen on 127.0.0.1:{server.port}" in result.output
    assert "--port" in result.output


def test_cli_names_a_missing_list(newsletter_root, example_issue):
    from click.testing import CliRunner

    from newsletter.cli import main

    result = CliRunner().invoke(main, ["--root", str(newsletter_root), "preview", str(example_issue),
                                       "--port", "0", "--list", "exampel"])
    assert result.exit_code == 2
    assert "no such list" in result.output and "did you mean 'example'?" in result.output


# --- the email as the browser gets it ---------------------------------------------


def test_dark_variant_makes_the_dark_rules_unconditional():
    html = ("<html><head><style>a{color:red}@media (prefers-color-scheme: dark){a{color:blue}}"
            "@media screen and (prefers-color-scheme:light){a{color:green}}</style></head><body></body></html>")
    dark = dark_variant(html)
    assert "@media (min-width: 0px){a{color:blue}}" in dark
    assert "@media screen and (max-width: 0px){a{color:green}}" in dark
    assert dark.index("color-scheme: dark") < dark.index("</head>")


def test_issue_images_point_at_the_local_copy_until_published(settings, example_issue):
    issue = load_issue(example_issue)
    (example_issue / "pixel.png").write_bytes(PIXEL_PNG)
    published = f"{settings.base_url}{issue.name}/pixel.png"
    html = (f'<img src="{published}" alt=""><img src="pixel.png" alt="">'
            f'<img src="{settings.base_url}{issue.name}/missing.png" alt=""><img src="https://other.example/x.png">')
    local = email_for_browser(html, settings, issue, lambda path: f"/local/{path.name}")
    assert local.count('src="/local/pixel.png"') == 2
    assert "missing.png" in local and "https://other.example/x.png" in local


def _png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = b"".join(b"\0" + b"\x80\x80\x80" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


PIXEL_PNG = _png(1, 1)
