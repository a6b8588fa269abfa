"""A test send's local images carried inside the message, so it shows them before the archive is up.

An issue's own images (files of the issue folder) are linked from the email at
their web address (``base_url`` + issue + file), where ``newsletter archive``
publishes them; every reader's copy then stays small. A ``send --test-to`` goes
out before that, while those addresses serve nothing, and showed broken images.
So a test send carries each local image inside the message instead: a
multipart/related part with a Content-ID, which the HTML shows as ``cid:...``
(RFC 2387, RFC 2392), as SMTP and SendGrid (an ``inline`` attachment with a
``content_id``) both deliver. Live sends and dry runs are left as they are.
"""

from __future__ import annotations

import hashlib
import html as html_lib
import mimetypes
import re
from collections.abc import Mapping
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..config import Settings
from ..errors import NewsletterError, display_path
from .message import InlineImage
from .relative_links import local_file, relative_addresses
from .render import RenderedIssue, issue_base_url

# What a test message may carry inline, base64 included (x 4/3): Gmail takes 25 MB, SendGrid 30 MB.
MAX_INLINE_BYTES = 15 * 1024 * 1024
_IMG = re.compile(r"""<img\b(?:[^>"']|"[^"]*"|'[^']*')*>""", re.IGNORECASE)  # a tag; '>' may sit in quotes
_SRC = re.compile(r"""(\ssrc\s*=\s*)(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE)
_UNSAFE_NAME = re.compile(r"""[;,"\\\r\n\x00-\x1f]""")  # SendGrid refuses ';' ',' and line breaks in a filename


def local_images(settings: Settings, rendered_issue: RenderedIssue) -> dict[str, Path]:
    """Each address the email's HTML shows an image of the issue folder at -> that file (existing
    files only: a missing one is ``check``'s error, not something to carry)."""
    issue = rendered_issue.issue
    base = issue_base_url(settings, issue)
    found: dict[str, Path] = {}
    for markdown in (issue.intro, *(rendered.article.body for rendered in rendered_issue.articles)):
        for address in relative_addresses(markdown, issue.path, base):
            if address.tag == "img" and address.local is not None and address.local.is_file():
                found[address.resolved or address.url] = address.local
    for rendered in rendered_issue.articles:  # lead images, as front matter wrote them
        written = rendered.article.image.strip()
        parts = urlsplit(written)
        path = None if parts.scheme or parts.netloc or not written else local_file(issue.path, written)
        if path is not None and path.is_file() and rendered.image:
            found[rendered.image] = path
    return found


def _content_type(path: Path) -> str | None:
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed if guessed and guessed.startswith("image/") else None


def _domain(from_address: str) -> str:
    domain = parseaddr(from_address)[1].rpartition("@")[2].strip().lower()
    return domain if domain and domain.isascii() and re.fullmatch(r"[a-z0-9.-]+", domain) else "newsletter.invalid"


def carry_inline(html: str, images: Mapping[str, Path], from_address: str) -> tuple[str, tuple[InlineImage, ...]]:
    """``html`` with every ``<img src>`` among ``images`` pointing at ``cid:`` instead, and the
    pictures to carry (one per file, however often it is shown). Raises when they are too large
    to travel in one message."""
    domain = _domain(from_address)
    carried: dict[Path, InlineImage] = {}
    # compared decoded: the inliner writes "lead photo.png" as "lead%20photo.png", and & as &amp;
    by_address = {unquote(address): path for address, path in images.items()}

    def inline(path: Path) -> InlineImage | None:
        if path not in carried:
            content_type = _content_type(path)
            if content_type is None:
                return None
            try:
                data = path.read_bytes()
            except OSError as err:
                raise NewsletterError(f"cannot read the image: {err.strerror}", where=path) from None
            digest = hashlib.sha256(data).hexdigest()[:16]
            name = _UNSAFE_NAME.sub("_", path.name) or "image"
            carried[path] = InlineImage(f"{len(carried) + 1}.{digest}@{domain}", name, content_type, data)
        return carried[path]

    def swap(tag: re.Match[str]) -> str:
        text = tag.group(0)
        src = _SRC.search(text)
        if src is None:
            return text
        value = src.group(2) if src.group(2) is not None else src.group(3)
        path = by_address.get(unquote(html_lib.unescape(value).strip()))
        image = inline(path) if path is not None else None
        if image is None:
            return text
        return f'{text[:src.start()]}{src.group(1)}"cid:{image.content_id}"{text[src.end():]}'

    swapped = _IMG.sub(swap, html)
    pictures = tuple(carried.values())
    total = sum(len(image.data) for image in pictures)
    if total > MAX_INLINE_BYTES:
        largest = max(carried, key=lambda path: len(carried[path].data))
        raise NewsletterError(
            f"the issue's images come to {total / 1024 / 1024:.1f} MB, more than a test message carries "
            f"({MAX_INLINE_BYTES // 1024 // 1024} MB); the largest is {display_path(largest)}",
            hint="make the images smaller: a photo for a 600 px wide email needs a few hundred KB at most")
    return swapped, pictures
