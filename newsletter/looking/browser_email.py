"""The email as a browser shows it before it is published: the issue folder's images served locally,
and the dark-mode variant a frame cannot ask for. The preview and the screenshots both show it so."""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..compose.content import Issue
from ..compose.markdown import is_absolute
from ..compose.render import issue_base_url
from ..config import Settings

IMAGE_TYPES = {
    ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
    ".webp": "image/webp", ".svg": "image/svg+xml", ".avif": "image/avif",
}

_DARK_QUERY = re.compile(r"\(\s*prefers-color-scheme\s*:\s*(dark|light)\s*\)", re.IGNORECASE)
_STYLE_BLOCK = re.compile(r"(<style\b[^>]*>)(.*?)(</style\s*>)", re.IGNORECASE | re.DOTALL)
_IMG_SRC = re.compile(r"(<img\b[^>]*?\bsrc\s*=\s*)([\"'])(.*?)\2", re.IGNORECASE | re.DOTALL)
_HEAD_END = re.compile(r"</head\s*>", re.IGNORECASE)


def dark_variant(html: str) -> str:
    """The email as a dark-mode mail client shows it, in any browser and any iframe.

    A frame cannot be told that the reader prefers dark mode, so the theme's
    ``@media (prefers-color-scheme: dark)`` rules are made unconditional: the
    condition becomes one that always holds, the light one one that never does,
    and ``color-scheme: dark`` darkens whatever the theme does not colour.
    """
    def rewrite(match: re.Match[str]) -> str:
        css = _DARK_QUERY.sub(lambda m: "(min-width: 0px)" if m.group(1).lower() == "dark" else "(max-width: 0px)",
                              match.group(2))
        return match.group(1) + css + match.group(3)

    dark = _STYLE_BLOCK.sub(rewrite, html)
    marker = '<style data-preview="dark">:root { color-scheme: dark; }</style>'
    head_end = _HEAD_END.search(dark)
    return dark[: head_end.start()] + marker + dark[head_end.start():] if head_end else marker + dark


def local_image(src: str, settings: Settings, issue: Issue) -> Path | None:
    """The file in the issue folder an image URL stands for, if it exists there.

    Articles name images relative to the issue (``photo.jpg``); the build makes
    them absolute against ``base_url``, where they appear only once published.
    """
    src = html_lib.unescape(src.strip())
    base = issue_base_url(settings, issue)
    if base and src.startswith(base):
        relative = src[len(base):]
    elif not is_absolute(src) and not src.startswith("/"):
        relative = src
    else:
        return None
    relative = unquote(urlsplit(relative).path)
    return safe_file(issue.path, relative, IMAGE_TYPES)


def email_for_browser(html: str, settings: Settings, issue: Issue, local_url: Callable[[Path], str]) -> str:
    """``html`` with images of the issue folder pointed at ``local_url(path)``, so they show before publishing."""
    def rewrite(match: re.Match[str]) -> str:
        path = local_image(match.group(3), settings, issue)
        if path is None:
            return match.group(0)
        return f"{match.group(1)}{match.group(2)}{html_lib.escape(local_url(path))}{match.group(2)}"

    return _IMG_SRC.sub(rewrite, html)


def safe_file(folder: Path, relative: str, types: Iterable[str]) -> Path | None:
    """``folder/relative`` when it is a file of an allowed type inside ``folder``; None otherwise.

    No segment may be empty, ``.`` or ``..``, and the resolved path (after
    symbolic links) must still lie inside the folder.
    """
    segments = relative.split("/")
    if any(s in ("", ".", "..") or "\\" in s or "\0" in s for s in segments):
        return None
    root = folder.resolve()
    try:
        path = root.joinpath(*segments).resolve()
        path.relative_to(root)
    except (ValueError, OSError):
        return None
    if path.suffix.lower() not in set(types) or not path.is_file():
        return None
    return path
