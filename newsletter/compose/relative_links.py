"""Where the relative addresses an article writes lead once the email is built.

The email has no base to resolve a relative address against, so rendering
makes each one absolute against the issue's web address (``base_url`` +
issue name + ``/``). That is right for a file of the issue folder
(``images/broom.png``: the web archive serves it), and wrong for an address a
web page wrote for its own site (``/img/seals.jpg``, ``../about/``): it then
points at the newsletter's own site, where nothing is. The importer keeps such
addresses as the page wrote them when it does not know the page's address;
``newsletter import`` and ``newsletter check`` both read them here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import lxml.html

from .markdown import is_absolute, to_html
from .merge import TOKEN_PREFIX


@dataclass(frozen=True)
class RelativeAddress:
    """A relative link (``a``) or image (``img``) address as written, and what it becomes."""

    tag: str
    url: str
    resolved: str  # the address in the email ("" when the newsletter has no base_url)
    local: Path | None  # the file of the issue folder it names, whether or not it exists

    @property
    def kind(self) -> str:
        return "image" if self.tag == "img" else "link"

    @property
    def on_own_site(self) -> bool:
        """True when it names no file of the issue folder: it lands on the newsletter's own site."""
        return self.local is None or (self.tag == "a" and not self.local.exists())


def written_addresses(markdown: str) -> list[tuple[str, str]]:
    """(tag, address) of every link and image in ``markdown``, as written (nothing made absolute)."""
    html = to_html(markdown)
    if not html.strip():
        return []
    root = lxml.html.fragment_fromstring(html, create_parent="div")
    return [(el.tag, (el.get("href") if el.tag == "a" else el.get("src")) or "") for el in root.iter("a", "img")]


def local_file(issue_dir: Path, url: str) -> Path | None:
    """The file of the issue folder a relative ``url`` names; None when it leaves the folder
    (``/...``, ``../...``)."""
    path = unquote(urlsplit(url).path)
    if not path or path.startswith("/"):
        return None
    folder = issue_dir.resolve()
    target = (folder / path).resolve()
    return target if target.is_relative_to(folder) and target != folder else None


def relative_addresses(markdown: str, issue_dir: Path, base: str) -> list[RelativeAddress]:
    """Each distinct relative address of ``markdown`` (fragments, scheme-relative ``//host`` and merge
    tokens and template expressions such as ``{{ web_url }}`` left out), with what it becomes against
    ``base``, the issue's web address."""
    found: dict[tuple[str, str], RelativeAddress] = {}
    for tag, url in written_addresses(markdown):
        url = url.strip()
        if not url or is_absolute(url) or url.startswith("//") or TOKEN_PREFIX in url or (tag, url) in found:
            continue
        if "{{" in unquote(url) or "{%" in unquote(url):
            continue
        found[(tag, url)] = RelativeAddress(tag, url, urljoin(base, url) if base else "", local_file(issue_dir, url))
    return list(found.values())
