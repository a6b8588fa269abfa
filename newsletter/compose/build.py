"""Build an issue: render once, inline once, and write the files a writer looks at.

``build_issue`` is the in-memory pipeline every other step (check, send,
preview, archive) starts from; ``write_build`` writes its outputs, filled in
for a sample recipient so they read naturally.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from ..config import Settings
from ..errors import NewsletterError
from ..themes import HTML_TEMPLATE
from .content import Issue, load_issue, require_complete
from .inline import inline_css
from .inline_images import carry_inline, local_images
from .merge import MergeField
from .message import InlineImage, list_id
from .outgoing import Message, ProviderTraits, Recipient
from .personalize import Personalizer, merge_values
from .render import RenderedIssue, render_issue
from .unsubscribe import provider_group, unsubscribe_url

SAMPLE_RECIPIENT = {"email": "reader@example.com", "name": "Sample Reader"}
SAMPLE_LIST = "sample"


@dataclass(frozen=True)
class BuiltIssue:
    """An issue rendered and inlined once; ``html`` and ``text`` still hold merge tokens."""

    rendered: RenderedIssue
    html: str
    text: str
    web_html: str  # browser version: no per-recipient data, CSS left in <style> (browsers read it)

    @property
    def issue(self) -> Issue:
        return self.rendered.issue

    @property
    def fields(self) -> tuple[MergeField, ...]:
        return self.rendered.fields

    @property
    def subject(self) -> str:
        return self.issue.subject

    def personalizers(self) -> tuple[Personalizer, Personalizer]:
        """(HTML, text) pre-split at their tokens, for filling many recipients fast."""
        return Personalizer(self.html, self.fields), Personalizer(self.text, self.fields)


def subscriber_columns(settings: Settings) -> set[str]:
    """Every column of every list in subscribers/: the merge fields a template may use."""
    from ..lists import list_columns

    columns: set[str] = set()
    folder = settings.subscribers_dir
    if folder.is_dir():
        for path in sorted(folder.glob("*.csv")):
            columns.update(list_columns(path))
    return columns


def build_issue(settings: Settings, issue_dir: Path, available_fields: Collection[str] | None = None) -> BuiltIssue:
    """Load, render and inline the issue in ``issue_dir``; a missing article is an error."""
    issue = load_issue(Path(issue_dir))
    require_complete(issue)
    return build(settings, issue, available_fields)


def build(settings: Settings, issue: Issue, available_fields: Collection[str] | None = None) -> BuiltIssue:
    """Render and inline a loaded issue; merge fields are checked against ``available_fields``
    (default: the columns of the lists in subscribers/)."""
    if available_fields is None:
        available_fields = subscriber_columns(settings)
    rendered = render_issue(settings, issue, available_fields)
    html = inline_css(rendered.html, source=str(rendered.theme_dir / HTML_TEMPLATE))
    web = Personalizer(rendered.web_html, rendered.fields).fill({})
    return BuiltIssue(rendered=rendered, html=html, text=rendered.text, web_html=web)


def sample_values(settings: Settings) -> dict[str, str]:
    """Merge values of the sample recipient that build output and previews are filled with."""
    url = unsubscribe_url(settings, SAMPLE_LIST, SAMPLE_RECIPIENT["email"], None)
    return merge_values(SAMPLE_RECIPIENT, url)


def issue_headers(settings: Settings, list_name: str) -> tuple[tuple[str, str], ...]:
    """Headers every copy of an issue to ``list_name`` carries, whatever the provider: List-Id."""
    return (("List-Id", list_id(settings.name, list_name, settings.from_address)),)


def make_message(settings: Settings, built: BuiltIssue, list_name: str, provider: ProviderTraits | None, *,
                 send_at: dt.datetime | None = None, sandbox: bool = False, subject_prefix: str = "",
                 inline_images: bool = False) -> Message:
    """The issue as it goes out to ``list_name``; ``inline_images``: the issue's own images travel
    inside the message instead of being linked from the web archive (a test send: see inline_images.py)."""
    group = provider_group(settings, provider)
    categories = provider.categories(settings) if provider is not None else ()
    html = built.html
    related: tuple[InlineImage, ...] = ()
    if inline_images:
        html, related = carry_inline(built.html, local_images(settings, built.rendered), settings.from_address)
    return Message(
        issue_name=built.issue.name, list_name=list_name, subject=subject_prefix + built.subject,
        html=html, text=built.text, fields=built.fields, from_address=settings.from_address,
        reply_to=settings.reply_to, unsubscribe_mailto="" if group is not None else settings.unsubscribe_mailto,
        send_at=send_at, sandbox=sandbox, categories=categories, unsubscribe_group=group,
        headers=issue_headers(settings, list_name), related=related,
    )


def sample_message(settings: Settings, built: BuiltIssue, values: dict[str, str] | None = None) -> EmailMessage:
    """The complete message the sample recipient would receive, built as a live send builds it."""
    values = values or sample_values(settings)
    message = make_message(settings, built, SAMPLE_LIST, None)
    email_address = values.get("subscriber.email", SAMPLE_RECIPIENT["email"])
    recipient = Recipient(email=email_address, key=email_address.lower(), name=values.get("subscriber.name", ""),
                          values=values)
    return message.email_for(recipient)


def default_build_dir(settings: Settings, issue: Issue) -> Path:
    return settings.root / "build" / issue.name


def write_build(settings: Settings, built: BuiltIssue, out_dir: Path) -> list[tuple[Path, int]]:
    """Write email.html, email.txt, message.eml and web.html; return (path, bytes) of each."""
    values = sample_values(settings)
    html_part, text_part = built.personalizers()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise NewsletterError(f"cannot create the output folder: {err.strerror}", where=out_dir) from None
    outputs = {
        "email.html": html_part.fill(values).encode("utf-8"),
        "email.txt": text_part.fill(values).encode("utf-8"),
        "message.eml": sample_message(settings, built, values).as_bytes(),
        "web.html": built.web_html.encode("utf-8"),
    }
    written = []
    for name, data in outputs.items():
        path = out_dir / name
        path.write_bytes(data)
        written.append((path, len(data)))
    return written
