"""A writer's loop (issue 20, findings 23 and 25): what a writer sees of a test send and of the web
pages before the archive is published, through the real parts: a test send received by aiosmtpd and
taken apart as MIME, the same send through the SendGrid stand-in (which validates every body against
SendGrid's schema and its attachment rules), and headless Chromium rendering what arrived.
"""

from __future__ import annotations

import base64
import email.policy
import re
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import lxml.html
import pytest
from browser_helpers import BROWSER_ARGS, chromium_or_fail
from click.testing import CliRunner
from newsletter_helpers import BROOM, LEAD, configure_smtp

from newsletter.cli import main
from newsletter.compose.build import build_issue, write_build
from newsletter.config import load_settings
from newsletter.looking.archive import write_archive

ISSUE = "issues/2027-02-02-garden"
WEB_URL = "https://newsletter.example.com/2027-02-02-garden/"
EDITOR = "editor@example.com"


ARTICLE = """---
title: The tidy shed
image: images/lead photo.png
image_alt: The shed at dawn
---

Our shed had a broom, a rake and no order at all.

![A broom against the wall](images/broom.png)

### What we kept

The broom twice, because it appears twice: ![The same broom](images/broom.png)

And a picture from elsewhere: ![A remote picture](https://images.example.org/remote.png)
"""

SECOND = """---
title: Seeds to sow in March
---

Peas, broad beans and sweet peas.
"""


@pytest.fixture
def garden(newsletter_root: Path) -> Path:
    """An issue of the example newsletter with local images (one shown twice, a lead image whose
    name has a space), a remote one, a level-3 heading and two articles (so a table of contents)."""
    folder = newsletter_root / ISSUE
    (folder / "images").mkdir(parents=True)
    (folder / "images" / "broom.png").write_bytes(BROOM)
    (folder / "images" / "lead photo.png").write_bytes(LEAD)
    (folder / "shed.md").write_text(ARTICLE, encoding="utf-8")
    (folder / "seeds.md").write_text(SECOND, encoding="utf-8")
    (folder / "issue.md").write_text(
        "---\nsubject: The tidy shed\npreheader: A broom, a rake and the seeds of March\ndate: 2027-02-02\n"
        "articles:\n- shed.md\n- seeds.md\n---\n\nHello {{ subscriber.name | default('gardener') }}.\n",
        encoding="utf-8")
    return folder


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_send(*args: str) -> None:
    result = run("send", ISSUE, "--test-to", EDITOR, *args)
    assert result.exit_code == 0, result.output


test_send.__test__ = False  # a helper, not a test


@pytest.fixture
def smtp_test_send(newsletter_root, garden, smtp_tls_server, monkeypatch) -> Iterator:
    """Send the garden issue with ``--test-to`` through SMTP; yields a function that sends (with extra
    arguments) and returns the one message aiosmtpd received."""
    configure_smtp(newsletter_root, smtp_tls_server, monkeypatch)

    def send(*args: str) -> EmailMessage:
        before = len(smtp_tls_server.handler.received)
        test_send("--provider", "smtp", *args)
        received = smtp_tls_server.handler.received[before:]
        assert [r.rcpt_tos for r in received] == [(EDITOR,)]
        return received[0].message()

    yield send


def images_shown(html: str) -> list[str]:
    return [img.get("src") for img in lxml.html.document_fromstring(html).iter("img")]


# -- finding 23: local images travel inside a test send -----------------------------------------------

def test_a_test_send_over_smtp_carries_its_local_images_inline(smtp_test_send):
    message = smtp_test_send()

    assert message.get_content_type() == "multipart/alternative"
    text, related = message.get_payload()
    assert text.get_content_type() == "text/plain" and related.get_content_type() == "multipart/related"
    assert related.get_param("type") == "text/html"  # RFC 2387: the type of the root part
    html_part, *pictures = related.get_payload()
    assert html_part.get_content_type() == "text/html"
    html = html_part.get_content()
    by_id = {part["Content-ID"].strip("<>"): part for part in pictures}

    shown = images_shown(html)
    cids = [src.removeprefix("cid:") for src in shown if src.startswith("cid:")]
    assert len(cids) == 3 and len(set(cids)) == 2  # the lead image, and the broom shown twice
    assert set(cids) == set(by_id)  # every picture shown is carried, and nothing else is
    carried = {by_id[cid].get_filename(): by_id[cid].get_content() for cid in set(cids)}
    assert carried == {"broom.png": BROOM, "lead photo.png": LEAD}
    assert all(part.get_content_disposition() == "inline" and part.get_content_type() == "image/png"
               for part in pictures)
    assert "https://images.example.org/remote.png" in shown  # a picture from elsewhere stays a link
    assert not [src for src in shown if src.startswith(WEB_URL)]  # nothing waits for the archive


def test_the_received_test_send_shows_its_images_in_chromium(smtp_test_send, tmp_path):
    """What arrived, opened by Chromium's own MIME reader (an MHTML file is a multipart/related, and
    Chromium resolves its cid: addresses as a mail client does): every local image is drawn."""
    message = smtp_test_send()
    related = next(part for part in message.walk() if part.get_content_type() == "multipart/related")
    archive = tmp_path / "received.mhtml"
    archive.write_bytes(b"MIME-Version: 1.0\r\n" + related.as_bytes(policy=email.policy.SMTP))  # CRLF, as sent

    executable = chromium_or_fail()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=BROWSER_ARGS)
        try:
            page = browser.new_page()
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                       else route.abort())  # nothing leaves this machine
            page.goto(archive.as_uri())
            drawn = page.evaluate("""() => [...document.images].map(img => ({
                alt: img.alt, src: img.src, complete: img.complete, width: img.naturalWidth,
                height: img.naturalHeight}))""")
        finally:
            browser.close()
    local = {image["alt"]: (image["width"], image["height"]) for image in drawn if image["src"].startswith("cid:")}
    assert local == {"The shed at dawn": (200, 100), "A broom against the wall": (120, 80),
                     "The same broom": (120, 80)}
    assert requested == [archive.as_uri()]  # drawn from the message itself, not fetched


def test_a_test_send_through_sendgrid_carries_its_local_images_as_inline_attachments(
        sendgrid_newsletter, garden, sendgrid_standin):
    test_send()

    [accepted] = sendgrid_standin.accepted  # valid against SendGrid's schema and attachment rules
    attachments = {a["content_id"]: a for a in accepted.attachments}
    cids = {src.removeprefix("cid:") for src in images_shown(accepted.html) if src.startswith("cid:")}
    assert cids == set(attachments) and len(cids) == 2
    assert {a["filename"]: base64.b64decode(a["content"]) for a in attachments.values()} == {
        "broom.png": BROOM, "lead photo.png": LEAD}
    assert {(a["disposition"], a["type"]) for a in attachments.values()} == {("inline", "image/png")}
    assert not [src for src in images_shown(accepted.html) if src.startswith(WEB_URL)]


def test_a_live_send_links_its_images_from_the_archive(sendgrid_newsletter, garden, sendgrid_standin):
    """Only a test send carries the pictures: every reader's copy stays small and links the archive."""
    (sendgrid_newsletter / "subscribers" / "garden.csv").write_text("email,name\nada@example.com,Ada\n")
    assert run("send", ISSUE, "--list", "garden", "--yes").exit_code == 0
    [accepted] = sendgrid_standin.accepted
    assert accepted.attachments == ()
    assert f"{WEB_URL}images/broom.png" in images_shown(accepted.html)


# -- finding 25: the test mark, headings, the table of contents, the web pages -------------------------

def test_a_test_send_says_test_in_its_subject_unless_told_not_to(smtp_test_send):
    assert smtp_test_send()["Subject"] == "[Test] The tidy shed"
    assert smtp_test_send("--test-prefix", "")["Subject"] == "The tidy shed"
    assert smtp_test_send("--test-prefix", "DRAFT: ")["Subject"] == "DRAFT: The tidy shed"


def test_a_subject_prefix_on_a_live_send_is_refused(sendgrid_newsletter, garden, sendgrid_standin):
    result = CliRunner().invoke(main, ["send", ISSUE, "--list", "example", "--yes", "--test-prefix", "[X] "])
    assert result.exit_code == 2 and "--test-to" in result.output
    assert sendgrid_standin.accepted == []


def test_the_text_part_shows_headings_without_markdown_marks(smtp_test_send):
    text = smtp_test_send().get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert "#" not in text
    assert "\nWhat we kept\n~~~~~~~~~~~~\n" in text


def test_the_table_of_contents_jumps_to_each_article_in_chromium(smtp_test_send):
    html = smtp_test_send().get_body(("html",)).get_content()
    document = lxml.html.document_fromstring(html)
    links = [(a.get("href"), a.text_content()) for a in document.find_class("toc-link")]
    assert [title for _, title in links] == ["The tidy shed", "Seeds to sow in March"]
    for href, _ in links:  # the target is an <a name> (Gmail, Outlook and Yahoo follow only those) with that id
        assert [a.get("id") for a in document.iter("a") if a.get("name") == href[1:]] == [href[1:]]

    executable = chromium_or_fail()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=BROWSER_ARGS)
        try:
            page = browser.new_context(viewport={"width": 600, "height": 500}, java_script_enabled=True).new_page()
            page.route("**/*", lambda route: route.abort())  # the email's own pictures are not needed here
            page.set_content(html)
            for href, title in links:
                page.evaluate("window.scrollTo(0, 0)")
                page.click(f"a.toc-link[href='{href}']")
                # scrolled so the article's heading is at the top, or as far as the page goes
                scrolled, wanted = page.evaluate("""title => {
                    const heading = [...document.querySelectorAll('.article-title')]
                        .find(h => h.textContent === title);
                    const top = heading.getBoundingClientRect().top + window.scrollY;
                    const end = document.documentElement.scrollHeight - window.innerHeight;
                    return [window.scrollY, Math.min(top, end)];
                }""", title)
                assert scrolled > 0 and abs(scrolled - wanted) <= 30, (title, scrolled, wanted)
        finally:
            browser.close()


def head_tags(html: str) -> tuple[dict[str, str], dict[str, str]]:
    document = lxml.html.document_fromstring(html)
    meta = {m.get("property") or m.get("name"): m.get("content") for m in document.iter("meta")}
    links = {link.get("rel"): link.get("href") for link in document.iter("link")}
    return meta, links


def subscribe_links(html: str) -> list[str]:
    return [a.get("href") for a in lxml.html.document_fromstring(html).iter("a")
            if (a.text_content() or "").strip().lower() == "subscribe"]


def test_web_pages_carry_a_social_card_and_a_subscribe_link(newsletter_root, garden, tmp_path):
    settings = load_settings(newsletter_root)
    write_build(settings, build_issue(settings, garden), tmp_path / "build")
    archive = write_archive(settings, tmp_path / "site", [garden], drafts=True)
    pages = {"build": (tmp_path / "build" / "web.html").read_text(encoding="utf-8"),
             "archive": archive.issues[0].page.read_text(encoding="utf-8")}
    for where, page in pages.items():
        meta, links = head_tags(page)
        assert links["canonical"] == meta["og:url"] == WEB_URL, where
        assert meta["og:title"] == "The tidy shed" and meta["og:site_name"] == "The Plain Files Dispatch"
        assert meta["og:description"] == meta["description"] == "A broom, a rake and the seeds of March"
        assert meta["og:image"] == f"{WEB_URL}images/lead%20photo.png" and meta["og:image:alt"] == "The shed at dawn"
        assert meta["twitter:card"] == "summary_large_image"
        # the example serves sign-ups with `newsletter serve` for its list "example"
        assert set(subscribe_links(page)) == {"https://newsletter.example.com/subscribe/example"}, where

    email_meta, email_links = head_tags((tmp_path / "build" / "email.html").read_text(encoding="utf-8"))
    assert "og:title" not in email_meta and "canonical" not in email_links  # the email is not a web page
    assert subscribe_links((tmp_path / "build" / "email.html").read_text(encoding="utf-8")) == []


def test_a_web_page_without_a_picture_gets_a_plain_card(newsletter_root, example_issue, tmp_path):
    settings = load_settings(newsletter_root)
    write_build(settings, build_issue(settings, example_issue), tmp_path)
    meta, _ = head_tags((tmp_path / "web.html").read_text(encoding="utf-8"))
    assert "og:image" not in meta and meta["twitter:card"] == "summary"
    assert re.match(r"https://newsletter\.example\.com/2026-11-25-first-dispatch/$", meta["og:url"])


def test_the_standin_refuses_the_inline_attachments_sendgrid_refuses(sendgrid_standin):
    """The stand-in the SendGrid test relies on applies SendGrid's documented attachment errors."""
    import json
    import urllib.error
    import urllib.request

    from sendgrid_standin import DEFAULT_KEY

    def post(attachment: dict) -> tuple[int, list[str]]:
        body = {"personalizations": [{"to": [{"email": EDITOR}]}], "from": {"email": "dispatch@example.com"},
                "subject": "s", "content": [{"type": "text/html", "value": "<img src=\"cid:a@b\">"}],
                "attachments": [attachment]}
        request = urllib.request.Request(sendgrid_standin.url + "/v3/mail/send", json.dumps(body).encode(),
                                         {"Authorization": f"Bearer {DEFAULT_KEY}",
                                          "Content-Type": "application/json"})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=10) as response:
                return response.status, []
        except urllib.error.HTTPError as err:
            return err.code, [e["message"] for e in json.loads(err.read())["errors"]]

    good = {"content": base64.b64encode(BROOM).decode(), "type": "image/png", "filename": "broom.png",
            "disposition": "inline", "content_id": "a@b"}
    assert post(good) == (202, [])
    assert post({**good, "content_id": ""}) == (400, ["The content_id parameter is required if disposition = "
                                                       "'inline'."])
    assert post({**good, "content": "not base64!"}) == (400, ["The attachment content must be base64 encoded."])
    assert post({**good, "filename": "a;b.png"})[0] == 400
    assert post({**good, "content_id": "a,b@c"})[0] == 400
