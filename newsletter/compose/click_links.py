"""An issue's links pointed at ``newsletter serve``'s click route, once per send (render once, personalize many).

Each distinct http(s) address in the HTML and text parts becomes link number 1, 2, ...
(in order of first appearance), and every occurrence of it becomes
``<service>/c/<link part>.<reader part>``: the link part made here, once, and the
reader part a merge token every recipient's value fills (``click_tokens.ReaderParts``).
A hidden, empty link (number 0, the honeypot) opens the HTML part: no reader sees or
clicks it, a program following every link does.

Never rewritten: links holding a merge token (the unsubscribe link: it is per recipient),
``mailto:`` and anything but http(s), links to the service itself (unsubscribe, sign-up),
the issue's own web version (the footer's "view in your browser"), and the addresses the
writer opts out in issue.md (``untracked_links:``, exact or ending in ``*`` for a prefix).
"""

from __future__ import annotations

import dataclasses
import html
import re
from collections.abc import Sequence

from ..config import Settings
from ..errors import NewsletterError
from .build import BuiltIssue
from .click_tokens import CLICK_FIELD, CLICK_ROUTE, HONEYPOT, ClickKeys
from .merge import TOKEN_PATTERN, TOKEN_PREFIX, MergeField

_HREF = re.compile(r'(<a\b[^>]*?\shref=")([^"]*)(")', re.IGNORECASE)
_BODY = re.compile(r"<body\b[^>]*>", re.IGNORECASE)
_TEXT_URL = re.compile(r"https?://[^\s<>\"]+")
_TRAILING = ".,;:!?)]}'"
HONEYPOT_LINK = ('<a href="{href}" style="display:none;font-size:0;line-height:0;max-height:0;overflow:hidden;'
                 'mso-hide:all" aria-hidden="true" tabindex="-1"></a>')


def click_service(settings: Settings) -> str:
    """The service's address that click links start with: where ``unsubscribe_url``'s ``/unsubscribe/{token}``
    is answered. A NewsletterError when clicks are on and there is no such service."""
    url = settings.unsubscribe_url
    base, marker, _ = url.partition("unsubscribe/{token}")
    if not marker or not base.endswith("/"):
        raise NewsletterError(
            "[stats] clicks = true, but newsletter.unsubscribe_url is not newsletter serve's "
            f"/unsubscribe/{{token}} ({url or 'not set'}): click links go to the same service",
            where=settings.path.name,
            hint='set unsubscribe_url = "https://<your service>/unsubscribe/{token}" and run newsletter serve '
                 "there, or set clicks = false under [stats]")
    return base


def _opted_out(url: str, untracked: Sequence[str]) -> bool:
    return any(url.startswith(pattern[:-1]) if pattern.endswith("*") else url == pattern for pattern in untracked)


class _Links:
    """The tracked addresses of one issue, numbered in order of first appearance."""

    def __init__(self, keys: ClickKeys, issue_id: str, service: str, reader_token: str, keep: tuple[str, ...],
                 untracked: Sequence[str]):
        self.keys, self.issue_id, self.service, self.reader_token = keys, issue_id, service, reader_token
        self.keep, self.untracked = keep, untracked
        self.numbers: dict[str, int] = {}

    def tracked(self, url: str) -> bool:
        return (url.startswith(("https://", "http://")) and TOKEN_PATTERN.search(url) is None
                and not url.startswith(self.keep) and not _opted_out(url, self.untracked))

    def href(self, url: str, index: int | None = None) -> str:
        if index is None:
            index = self.numbers.setdefault(url, len(self.numbers) + 1)
        return f"{self.service}{CLICK_ROUTE}{self.keys.link_part(self.issue_id, index, url)}.{self.reader_token}"


def _text_url(match: re.Match[str]) -> tuple[str, str]:
    """(the address, what followed it) of a URL found in text: sentence punctuation is not part of it."""
    found = match[0]
    url = found.rstrip(_TRAILING)
    after = found[len(url):]
    if after.startswith(")") and url.count("(") > url.count(")"):  # an address with its own parentheses
        url, after = url + ")", after[1:]
    return url, after


def _reader_fields(fields: tuple[MergeField, ...]) -> tuple[MergeField, MergeField]:
    last = max((int(f.token[len(TOKEN_PREFIX):len(TOKEN_PREFIX) + 4]) for f in fields), default=0)
    return (MergeField(f"{TOKEN_PREFIX}{last + 1:04d}H", CLICK_FIELD, "", "H"),
            MergeField(f"{TOKEN_PREFIX}{last + 2:04d}T", CLICK_FIELD, "", "T"))


def track_clicks(settings: Settings, built: BuiltIssue, issue_id: str, keys: ClickKeys,
                 untracked: Sequence[str] = ()) -> tuple[BuiltIssue, int]:
    """``built`` with its email parts' links pointed at the click route, and how many links are tracked."""
    service = click_service(settings)
    html_field, text_field = _reader_fields(built.fields)
    web = f"{settings.base_url}{built.issue.name}/" if settings.base_url else ""
    # the service's own pages (unsubscribe, sign-up, clicks) and the issue's web version stay as they are
    keep = (*(service + route for route in ("unsubscribe/", "subscribe/", "confirm/", CLICK_ROUTE)),
            *((web,) if web else ()))
    html_links = _Links(keys, issue_id, service, html_field.token, keep, untracked)

    def rewrite_href(match: re.Match[str]) -> str:
        url = html.unescape(match[2]).strip()
        return match[1] + html_links.href(url) + match[3] if html_links.tracked(url) else match[0]

    rewritten = _HREF.sub(rewrite_href, built.html)
    honeypot = HONEYPOT_LINK.format(href=html_links.href(settings.base_url or service, HONEYPOT))
    rewritten, found = _BODY.subn(lambda body: body[0] + honeypot, rewritten, count=1)
    if not found:
        rewritten = honeypot + rewritten
    text_links = _Links(keys, issue_id, service, text_field.token, keep, untracked)
    text_links.numbers = html_links.numbers  # one number per address across both parts

    def rewrite_text(match: re.Match[str]) -> str:
        url, after = _text_url(match)
        return text_links.href(url) + after if text_links.tracked(url) else match[0]

    text = _TEXT_URL.sub(rewrite_text, built.text)
    tracked = dataclasses.replace(built, html=rewritten, text=text,
                                  rendered=dataclasses.replace(built.rendered,
                                                               fields=(*built.fields, html_field, text_field)))
    return tracked, len(html_links.numbers)
