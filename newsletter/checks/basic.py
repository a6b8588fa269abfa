"""Basic checks: what every email must have (subject, unsubscribe link, postal address), articles
that exist, addresses a mail client can follow, and a size Gmail does not clip."""

from __future__ import annotations

import html as html_lib
from collections.abc import Iterator
from pathlib import Path

import lxml.html

from ..compose.markdown import is_absolute
from ..compose.merge import TOKEN_PREFIX
from ..compose.personalize import UNSUBSCRIBE_FIELD
from ..errors import display_path
from ..providers import registry
from .framework import ERROR, INFO, WARNING, Check, CheckContext, Finding

GMAIL_CLIP_BYTES = 102 * 1024
MAX_SUBJECT = 78


def check_subject(ctx: CheckContext) -> Iterator[Finding]:
    where = display_path(ctx.issue_file)
    subject = ctx.issue.subject
    if not subject:
        yield Finding(ERROR, "no-subject", "the issue has no subject", where,
                      fix="add 'subject: ...' to the front matter")
    elif len(subject) > MAX_SUBJECT:
        yield Finding(WARNING, "long-subject", f"the subject is {len(subject)} characters; mail clients cut it "
                      f"around {MAX_SUBJECT}", *ctx.place_in(ctx.issue_file, "subject:"),
                      fix="shorten the subject")
    if not ctx.issue.preheader:
        yield Finding(WARNING, "no-preheader", "the issue has no preheader, so inboxes show the first text of "
                      "the email as its preview", where, fix="add 'preheader: ...' (one sentence) to the front matter")
def _unsubscribe_in_html(ctx: CheckContext) -> bool:
    url = ctx.sample_values.get(UNSUBSCRIBE_FIELD, "")
    return bool(url) and any(a.get("href") == url for a in ctx.document.iter("a"))


def check_unsubscribe(ctx: CheckContext) -> Iterator[Finding]:
    uses_link = any(f.name == UNSUBSCRIBE_FIELD for f in ctx.built.fields)
    grouping = [kind for kind in registry.kinds() if kind.group_unsubscribe_setting]  # a provider hosts the link
    configured = bool(ctx.settings.unsubscribe_url) or any(
        kind.unsubscribe_group(ctx.settings) is not None for kind in grouping)
    if not configured:
        yield Finding(ERROR, "no-unsubscribe-url", "no unsubscribe address is configured; bulk mail must carry "
                      "an unsubscribe link by law (CAN-SPAM, GDPR) and Gmail and Yahoo require one",
                      display_path(ctx.settings.path),
                      fix="set newsletter.unsubscribe_url = \"https://.../unsubscribe?token={token}\""
                          + "".join(f" or {kind.group_unsubscribe_setting}" for kind in grouping))
    elif uses_link and ctx.settings.unsubscribe_url and "{token}" not in ctx.settings.unsubscribe_url and \
            ctx.sample_values.get(UNSUBSCRIBE_FIELD, "") == ctx.settings.unsubscribe_url:
        yield Finding(ERROR, "unsubscribe-url-no-token", "newsletter.unsubscribe_url has no {token}, so every "
                      "reader gets the same link and the page it opens cannot tell who asked to leave",
                      *ctx.place_in(ctx.settings.path, "unsubscribe_url"),
                      fix="put {token} where the page reads it, e.g. \"https://.../unsubscribe?token={token}\"")
    elif not uses_link or not _unsubscribe_in_html(ctx):
        yield Finding(ERROR, "no-unsubscribe-link", "the email has no unsubscribe link", ctx.template_path,
                      fix="add <a href=\"{{ unsubscribe_url }}\">Unsubscribe</a> to the footer")
    elif ctx.sample_values.get(UNSUBSCRIBE_FIELD, "") not in ctx.text:
        yield Finding(WARNING, "no-unsubscribe-text", "the plain-text part has no unsubscribe link",
                      ctx.text_template_path, fix="add 'Unsubscribe: {{ unsubscribe_url }}' to the text template")


def _visible_text(document: lxml.html.HtmlElement) -> str:
    body = document.find("body")
    return " ".join((body if body is not None else document).text_content().split())


def check_postal_address(ctx: CheckContext) -> Iterator[Finding]:
    address = " ".join(html_lib.unescape(ctx.settings.postal_address).split())
    if address not in _visible_text(ctx.document):
        yield Finding(ERROR, "no-postal-address", "the email does not show the postal address, which bulk mail "
                      "must carry by law (CAN-SPAM)", ctx.template_path,
                      fix="print {{ newsletter.postal_address }} in the footer")


def _article_findings(ctx: CheckContext, path: Path, doc: lxml.html.HtmlElement) -> Iterator[Finding]:
    for img in doc.iter("img"):
        src = img.get("src", "")
        if not (img.get("alt") or "").strip():
            yield Finding(ERROR, "image-no-alt", f"image {src} has no alt text; readers with images off or "
                          "a screen reader get nothing", *ctx.place_in(path, src.rsplit("/", 1)[-1]),
                          fix="describe the image: ![what it shows](" + src + ")")
    for element, attribute in [*((a, "href") for a in doc.iter("a")), *((i, "src") for i in doc.iter("img"))]:
        url = element.get(attribute)
        if url is not None and not is_absolute(url):
            yield Finding(ERROR, "relative-url", f"relative {'link' if attribute == 'href' else 'image'} "
                          f"'{url}' cannot be made absolute", *ctx.place_in(path, url),
                          fix="set base_url in newsletter.toml, or use a full https:// address")


def check_articles(ctx: CheckContext) -> Iterator[Finding]:
    for name in ctx.issue.missing_articles:
        yield Finding(ERROR, "missing-article", f"article '{name}' is listed but the file does not exist",
                      *ctx.place_in(ctx.issue_file, name),
                      fix=f"create {name} in the issue folder, or remove it from 'articles'")
    for path, doc in ctx.article_documents:
        yield from _article_findings(ctx, path, doc)
    for rendered in ctx.built.rendered.articles:
        article = rendered.article
        if article.image and article.image_alt is None:
            yield Finding(ERROR, "image-no-alt", "the article's image has no image_alt",
                          *ctx.place_in(article.path, "image:"),
                          fix="add 'image_alt: <what the image shows>' (or image_alt: \"\" if purely decorative)")
        if article.image and not is_absolute(rendered.image):
            yield Finding(ERROR, "relative-url", f"image '{article.image}' cannot be made absolute",
                          *ctx.place_in(article.path, "image:"),
                          fix="set base_url in newsletter.toml, or use a full https:// address")


def check_template_urls(ctx: CheckContext) -> Iterator[Finding]:
    """Links and images the template itself writes (article content is checked per article)."""
    article_urls = {el.get(attr) for _, doc in ctx.article_documents
                    for el, attr in [*((a, "href") for a in doc.iter("a")), *((i, "src") for i in doc.iter("img"))]}
    seen = set()
    for element in ctx.document.iter("a", "img"):
        attribute = "href" if element.tag == "a" else "src"
        url = element.get(attribute)
        if url is None or url in article_urls or url in seen:
            continue
        seen.add(url)
        if not url:
            yield Finding(ERROR, "empty-url", f"a <{element.tag}> in the template has an empty {attribute}",
                          ctx.template_path, fix="set base_url in newsletter.toml or remove the link")
        elif not is_absolute(url) and TOKEN_PREFIX not in url:
            yield Finding(ERROR, "relative-url", f"template {'link' if element.tag == 'a' else 'image'} '{url}' "
                          "is relative", ctx.template_path, fix="set base_url in newsletter.toml or use a full URL")
        if element.tag == "img" and element.get("alt") is None:
            yield Finding(ERROR, "image-no-alt", f"template image {url} has no alt attribute", ctx.template_path,
                          fix="add alt=\"...\" (alt=\"\" for decorative images)")


def check_size(ctx: CheckContext) -> Iterator[Finding]:
    size = len(ctx.html.encode("utf-8"))
    total = len(ctx.message_bytes)
    if size > GMAIL_CLIP_BYTES:
        yield Finding(WARNING, "html-too-large", f"the HTML is {size / 1024:.0f} KB; Gmail clips messages over "
                      "102 KB and hides the rest, including the unsubscribe link", ctx.template_path,
                      fix="shorten the issue, or send long articles as links with a summary")
    elif total > GMAIL_CLIP_BYTES:
        yield Finding(WARNING, "message-too-large", f"the whole message is {total / 1024:.0f} KB (HTML "
                      f"{size / 1024:.0f} KB, plus the text part and encoding); Gmail may clip it near 102 KB",
                      ctx.template_path, fix="shorten the issue, or send long articles as links with a summary")
    yield Finding(INFO, "size", f"HTML {size / 1024:.1f} KB of Gmail's 102 KB; whole message {total / 1024:.1f} KB")


CHECKS: list[Check] = [check_subject, check_unsubscribe, check_postal_address, check_articles,
                       check_template_urls, check_size]
