"""Messages are built safely: no value can add a header, and every address survives intact."""

from __future__ import annotations

import email
import email.policy

import pytest

from newsletter.compose.message import Envelope, build_message
from newsletter.errors import NewsletterError


def parse(msg):
    """Parse as a mail client would: UTF-8 headers (RFC 6532) decoded as UTF-8."""
    return email.message_from_string(msg.as_bytes().decode("utf-8"), policy=email.policy.default)


@pytest.mark.parametrize("field, value", [
    ("subject", "Hello\r\nBcc: victim@example.org"),
    ("subject", "Hello\nBcc: victim@example.org"),
    ("to_name", "Eve\r\nBcc: victim@example.org"),
    ("to_name", "=?utf-8?q?Eve=0D=0ABcc=3A_victim=40example=2Eorg?="),  # a line break hidden in an encoded word
    ("to_email", "eve@example.com\r\nBcc: victim@example.org"),
])
def test_line_breaks_in_any_value_are_refused(field, value):
    values = {"from_address": "News <news@example.com>", "to_email": "reader@example.com", "subject": "S",
              field: value}
    with pytest.raises(NewsletterError, match="line break"):
        build_message(Envelope(**values), "text", "<p>html</p>")


def test_message_carries_exactly_the_intended_headers():
    msg = build_message(Envelope("News <news@example.com>", "ann@example.com", 'Ann & "Bob"', subject="Hi",
                                 reply_to="editor@example.com",
                                 list_unsubscribe=["https://example.com/u?t=1", "mailto:u@example.com"],
                                 one_click=True), "text", "<p>html</p>")
    parsed = parse(msg)
    assert sorted(k.lower() for k in parsed) == sorted(
        ["from", "to", "reply-to", "subject", "date", "message-id", "list-unsubscribe", "list-unsubscribe-post",
         "mime-version", "content-type"])
    assert parsed["To"].addresses[0].display_name == 'Ann & "Bob"'
    assert str(parsed["List-Unsubscribe"]) == "<https://example.com/u?t=1>, <mailto:u@example.com>"


def test_non_ascii_addresses_use_utf8_headers_not_encoded_words():
    msg = build_message(Envelope("News <news@example.com>", "zoë@exämple.com", "Zoë", subject="Grüße"),
                        "text", "<p>html</p>")
    raw = msg.as_bytes()
    assert "zoë@exämple.com".encode() in raw and b"=?utf-8?q?zo" not in raw
    assert parse(msg)["To"].addresses[0].addr_spec == "zoë@exämple.com"


def test_long_list_unsubscribe_is_not_folded_into_encoded_words_and_bodies_keep_short_lines():
    url = "https://example.com/unsubscribe?token=" + "x" * 150
    msg = build_message(Envelope("News <news@example.com>", "a@example.com", subject="S", list_unsubscribe=[url]),
                        "word " * 200, "<p>" + "word " * 200 + "</p>")
    raw = msg.as_bytes().decode()
    assert f"List-Unsubscribe: <{url}>" in raw
    body = raw.split("\r\n\r\n", 1)[1]
    assert max(len(line) for line in body.split("\r\n")) <= 78
