"""The SMTP copy of each recipient is built by substituting into a MIME message encoded once per issue
(providers/smtp/wire.py WireTemplate): for a sample of recipients, ``email``'s own parse of the bytes must
give the headers and bodies that ``Message.email_for`` (built and verified by ``email``) gives."""

from __future__ import annotations

import email
import email.policy
from email.utils import parseaddr
from pathlib import Path

import pytest
from newsletter_helpers import ISSUE

from newsletter.compose.build import build_issue, make_message
from newsletter.compose.personalize import subscriber_values
from newsletter.config import load_settings
from newsletter.providers import registry
from newsletter.providers.base import Recipient
from newsletter.providers.smtp import encode

NAMES = ["Ada Lovelace", "Grace Hopper, Rear Admiral", 'Edsger "EWD" Dijkstra', "Zoë Ünlü", "李小龙",
         ".starts with a dot", "<b>not html</b> & co", "x" * 300, "", "trailing space "]


def parse(data: bytes):
    assert data.endswith(b"\r\n.\r\n")
    raw = data[:-3].replace(b"\r\n..", b"\r\n.")  # undo SMTP dot-stuffing, as the server does
    return email.message_from_bytes(raw, policy=email.policy.default)


def lf(text: str) -> str:
    return text.replace("\r\n", "\n")


@pytest.mark.parametrize("index", range(len(NAMES)))
def test_substituted_copy_parses_as_email_builds_it(newsletter_root: Path, index: int):
    settings = load_settings(newsletter_root)
    message = make_message(settings, build_issue(settings, newsletter_root / ISSUE), "example", registry.kind("smtp"))
    name = NAMES[index]
    address = f"reader{index}@example.com"
    recipient = Recipient(address, address, name, subscriber_values(
        address, name, {}, f"https://example.com/unsubscribe?t={index}.abc-_"))
    copy = encode(message, [recipient]).data[1][0]
    ours = parse(copy.data)
    reference = email.message_from_bytes(message.email_for(recipient).as_bytes(), policy=email.policy.default)
    for header in ("From", "Reply-To", "Subject", "List-Unsubscribe", "List-Unsubscribe-Post", "MIME-Version"):
        assert str(ours[header]) == str(reference[header]), header
    assert parseaddr(str(ours["To"])) == parseaddr(str(reference["To"]))
    assert ours["To"].addresses[0].display_name == name.strip() or ours["To"].addresses[0].display_name == name
    assert str(ours["Message-ID"]) == copy.message_id
    html, text = message.personalize(recipient)
    for kind, expected in (("plain", text), ("html", html)):
        got = ours.get_body((kind,)).get_content()
        assert lf(got) == lf(reference.get_body((kind,)).get_content())
        assert lf(got).rstrip("\n") == lf(expected).rstrip("\n")
    body_lines = copy.data.split(b"\r\n\r\n", 1)[1].split(b"\r\n")
    assert max(len(line) for line in body_lines if not line.startswith(b"..")) <= 76
    assert sorted(k.lower() for k in ours) == sorted(k.lower() for k in reference)


def _structure(message) -> list[tuple[int, str, str, str]]:
    """Each part's depth, type, Content-ID and disposition, in order."""
    def walk(part, depth):
        yield depth, part.get_content_type(), str(part["Content-ID"] or ""), str(part.get_content_disposition() or "")
        if part.is_multipart():
            for child in part.iter_parts():
                yield from walk(child, depth + 1)
    return list(walk(message, 0))


def test_a_copy_with_pictures_inside_parses_as_email_builds_it(newsletter_root: Path):
    """A test send's local images (compose/inline_images.py): the wire copy is the same MIME tree as
    ``email``'s, multipart/alternative of the text and a multipart/related of the HTML and pictures."""
    from newsletter_helpers import BROOM, LEAD

    settings = load_settings(newsletter_root)
    folder = newsletter_root / ISSUE
    (folder / "broom.png").write_bytes(BROOM)
    (folder / "lead.png").write_bytes(LEAD)
    article = folder / "keeping-a-newsletter-in-git.md"
    article.write_text(article.read_text(encoding="utf-8") + "\n![A broom](broom.png) ![The lead](lead.png)\n",
                       encoding="utf-8")
    message = make_message(settings, build_issue(settings, folder), "test", registry.kind("smtp"), inline_images=True)
    assert len(message.related) == 2
    recipient = Recipient("ed@example.com", "ed@example.com", "Ed", subscriber_values(
        "ed@example.com", "Ed", {}, "https://example.com/unsubscribe?t=1"))
    copy = encode(message, [recipient]).data[1][0]
    ours = parse(copy.data)
    reference = email.message_from_bytes(message.email_for(recipient).as_bytes(), policy=email.policy.default)
    assert _structure(ours) == _structure(reference)
    assert [d[1] for d in _structure(ours)] == ["multipart/alternative", "text/plain", "multipart/related",
                                                "text/html", "image/png", "image/png"]
    pictures = [part for part in ours.walk() if part.get_content_maintype() == "image"]
    assert [p.get_content() for p in pictures] == [BROOM, LEAD]
    assert lf(ours.get_body(("html",)).get_content()) == lf(reference.get_body(("html",)).get_content())
    body_lines = copy.data.split(b"\r\n\r\n", 1)[1].split(b"\r\n")
    assert max(len(line) for line in body_lines if not line.startswith(b"..")) <= 76
