"""What would ship broken: problems no mail client reports, that every reader would see.

- a local image (``images/broom.png``) whose file is not in the issue folder (error);
- a relative address that names no file of the issue folder (``/img/seals.jpg``, as a web page
  imported without ``--url`` wrote it): rendering made it absolute against the newsletter's own
  site, where nothing is (warning; see ``newsletter/compose/relative_links.py``);
- the introduction ``newsletter new`` writes, left untouched (warning);
- an image without a ``width`` attribute, which Outlook for Windows shows at the file's size (warning);
- links into the issue's web archive (the "View in browser" link, local images) while the archive
  is not published (warning): one finding for the issue's page, and one naming each local image
  with its line, since every reader would get that image broken. Locally, "published" means
  ``newsletter archive`` has written the issue's folder (``site/<issue>/index.html``, with its
  images); uploading ``site/`` to ``base_url`` is the writer's step, which no local check can see.
"""

from __future__ import annotations

import datetime as dt
import shlex
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..compose.content import PLACEHOLDER_INTRO
from ..compose.relative_links import RelativeAddress, relative_addresses
from ..compose.render import issue_base_url
from ..errors import display_path
from ..themes.layout import content_width
from .framework import ERROR, WARNING, Check, CheckContext, Finding, Place

ARCHIVE_FOLDER = "site"  # where `newsletter archive` writes by default
ARCHIVE_PAGE = "index.html"


def _sources(ctx: CheckContext) -> list[tuple[Path, str]]:
    """The Markdown the writer wrote: the introduction (issue.md), then each article."""
    return [(ctx.issue_file, ctx.issue.intro),
            *((ra.article.path, ra.article.body) for ra in ctx.built.rendered.articles)]


def _address_finding(ctx: CheckContext, path: Path, address: RelativeAddress, place: Place) -> Finding | None:
    if address.tag == "img" and address.local is not None and not address.local.is_file():
        return Finding(ERROR, "missing-image", f"image '{address.url}' is not in the issue folder, so every "
                       "reader gets a broken image", *place,
                       fix=f"put the image at {display_path(address.local)}, or correct the address "
                           "(an image from a web page needs its full https:// address)")
    if address.on_own_site and address.resolved:
        return Finding(WARNING, "own-site-url", f"{address.kind} '{address.url}' is relative and names no file "
                       f"of the issue folder, so in the email it points to {address.resolved} on the "
                       "newsletter's own site", *place,
                       fix="if the article was imported from a web page, import it again with --url <the page's "
                           "web address> (newsletter import PAGE --issue ISSUE --url https://...); otherwise "
                           "write the full https:// address")
    return None


def check_relative_addresses(ctx: CheckContext) -> Iterator[Finding]:
    """Missing local images, and relative addresses that land on the newsletter's own site."""
    base = issue_base_url(ctx.settings, ctx.issue)
    for path, markdown in _sources(ctx):
        for address in relative_addresses(markdown, ctx.issue.path, base):
            tail = urlsplit(address.url).path.rsplit("/", 1)[-1]
            if address.on_own_site and _archive_path(ctx, address.resolved) is not None:
                continue  # a page of the web archive (its index, another issue): check_archive_published
            finding = _address_finding(ctx, path, address, ctx.place_in(path, f"({address.url}", address.url, tail))
            if finding:
                yield finding
    for rendered in ctx.built.rendered.articles:
        image = rendered.article.image
        if image:
            for address in relative_addresses(f"![]({image})", ctx.issue.path, base):
                finding = _address_finding(ctx, rendered.article.path, address,
                                           ctx.place_in(rendered.article.path, "image:"))
                if finding:
                    yield finding


def check_placeholder_intro(ctx: CheckContext) -> Iterator[Finding]:
    words = PLACEHOLDER_INTRO.rstrip(".")
    if words in " ".join(ctx.issue.intro.split()):
        yield Finding(WARNING, "placeholder-intro", "the introduction is still the placeholder that "
                      "`newsletter new` wrote", *ctx.place_in(ctx.issue_file, words),
                      fix="write your own introduction below the front matter of issue.md (or delete the "
                          "placeholder for an issue without one)")


def _missing_images(ctx: CheckContext) -> set[str]:
    """The email addresses of local images whose file is missing: check_relative_addresses reports them."""
    base = issue_base_url(ctx.settings, ctx.issue)
    images = [f"![]({ra.article.image})" for ra in ctx.built.rendered.articles if ra.article.image]
    return {address.resolved for _, markdown in [*_sources(ctx), *((None, image) for image in images)]
            for address in relative_addresses(markdown, ctx.issue.path, base)
            if address.tag == "img" and address.local is not None and not address.local.is_file()}


def check_image_widths(ctx: CheckContext) -> Iterator[Finding]:
    seen = _missing_images(ctx)
    column = content_width(ctx.built.rendered.theme_dir)
    for img in ctx.document.iter("img"):
        src = (img.get("src") or "").strip()
        if (img.get("width") or "").strip() or src in seen:
            continue
        seen.add(src)
        yield Finding(WARNING, "image-no-width", f"image {src} has no width attribute, so Outlook for Windows "
                      "shows it at the size of the file (a 1600 px photo spills out of the email)",
                      *ctx.place_of_address(src),
                      fix=f'write it as HTML with its display width, e.g. <img src="{src}" alt="..." '
                          f'width="{column}"> ({column} px fills the theme\'s column)')


def archive_folder(ctx: CheckContext) -> Path:
    """Where `newsletter archive` writes the web archive: the option, else <newsletter>/site."""
    return ctx.options.archive_dir or ctx.settings.root / ARCHIVE_FOLDER


def _archive_path(ctx: CheckContext, url: str) -> str | None:
    """The path inside the web archive that ``url`` names (a page of this or another issue, or the
    index: "" ), or None when it is not an address of the archive."""
    base_url = ctx.settings.base_url
    if not base_url or not url.startswith(base_url):
        return None
    rest = unquote(urlsplit(url).path[len(urlsplit(base_url).path):])
    issue_name = rest.split("/", 1)[0]
    if rest in ("", ARCHIVE_PAGE) or (issue_name and (ctx.settings.issues_dir / issue_name).is_dir()):
        return rest
    return None


def _place_of_image(ctx: CheckContext, url: str) -> Place:
    """Where an image of the email is written; an article's lead image by its ``image:`` line, also
    when the inliner wrote its address percent-encoded ("lead%20photo.png")."""
    for rendered in ctx.built.rendered.articles:
        if rendered.image and unquote(rendered.image) == unquote(url):
            return ctx.place_in(rendered.article.path, "image:")
    return ctx.place_of_address(url)


def check_archive_published(ctx: CheckContext) -> Iterator[Finding]:
    """Links into the web archive while `newsletter archive` has not written what they point at."""
    web_url = issue_base_url(ctx.settings, ctx.issue)
    uses: dict[str, tuple[str, str]] = {}
    for element in ctx.document.iter("a", "img"):
        url = ((element.get("href") if element.tag == "a" else element.get("src")) or "").strip()
        inside = _archive_path(ctx, url) if web_url else None
        if inside is not None:
            uses.setdefault(url, ("link" if element.tag == "a" else "image", inside))
    if not uses:
        return
    site = archive_folder(ctx)
    folder = site / ctx.issue.name
    # The archive leaves out drafts and future-dated issues unless told otherwise (archive.select_published).
    unpublished = ctx.issue.draft or (ctx.issue.date is not None and ctx.issue.date > dt.date.today())
    command = "newsletter archive --drafts" if unpublished else "newsletter archive"
    fix = (f"run `{command}` (it writes {display_path(site)}/), then publish {display_path(site)}/ at "
           f"{ctx.settings.base_url} before the email goes out (archived elsewhere with --out DIR? "
           "newsletter check --archive DIR)")
    if not (folder / ARCHIVE_PAGE).is_file():
        images = {url: inside for url, (kind, inside) in uses.items() if kind == "image"}
        others = sum(1 for url in uses if url not in images
                     and url.split("#")[0].split("?")[0] not in (web_url, web_url + ARCHIVE_PAGE))
        also = f" and {others} other address{'es' * (others != 1)} in it" if others else ""
        if len(images) < len(uses):
            yield Finding(WARNING, "archive-not-published", f"the email links to its web archive ({web_url}{also}), "
                          f"which is not published: {display_path(folder)}/ does not exist",
                          display_path(ctx.issue_file), fix=fix)
        for url, inside in images.items():
            yield Finding(WARNING, "archive-not-published", f"image {unquote(urlsplit(url).path.rsplit('/', 1)[-1])} "
                          f"is not published, so every reader gets it broken: the email shows it from {url}, "
                          "where nothing is until the archive is uploaded", *_place_of_image(ctx, url),
                          fix=f"run `{command}` (it copies the image to {display_path(site / inside)}), then upload "
                              f"{display_path(site)}/ to {ctx.settings.base_url} before the email goes out; a test "
                              f"send (newsletter send {shlex.quote(display_path(ctx.issue.path))} --test-to "
                              "you@example.com) carries the image inside the message meanwhile")
        return
    for url, (kind, inside) in uses.items():
        target = site / inside
        if inside == "" or inside.endswith("/"):
            target = target / ARCHIVE_PAGE
        if not target.exists():
            yield Finding(WARNING, "archive-not-published", f"{kind} {url} is not in the published archive: "
                          f"{display_path(target)} does not exist", *ctx.place_of_address(url), fix=fix)


CHECKS: list[Check] = [check_relative_addresses, check_placeholder_intro, check_image_widths,
                       check_archive_published]
