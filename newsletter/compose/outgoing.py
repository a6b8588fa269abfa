"""The issue as it goes out to a list, and each recipient of it: what composing hands to a provider.

``Message`` is rendered and inlined once and shared by every recipient; ``Recipient`` carries one
addressee's merge values. They are composing's output, so they live here, below the providers that
encode them (``providers/base.py`` hands them on under their old names); what a message needs to know
of the provider it goes through (an unsubscribe group, categories) it asks of ``ProviderTraits``, which
every provider's kind answers, so composing never imports a provider.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from functools import cached_property
from types import MappingProxyType
from typing import TYPE_CHECKING, NamedTuple, Protocol
from urllib.parse import quote

from .merge import MergeField
from .message import Envelope, InlineImage, build_message
from .personalize import Personalizer

if TYPE_CHECKING:  # the settings are read only by the provider's kind; --help need not load them
    from ..config import Settings


class ProviderTraits(Protocol):
    """What composing asks of the provider a message goes through (``providers.contract.ProviderKind``
    answers it): whether it hosts the unsubscribe link itself, and the categories it tags mail with."""

    @property
    def group_unsubscribe_link(self) -> str: ...

    def unsubscribe_group(self, settings: Settings) -> int | None: ...

    def categories(self, settings: Settings) -> tuple[str, ...]: ...


class Recipient(NamedTuple):
    """One addressee of a send, with the merge values their copy is filled with.

    A tuple rather than a dataclass: one is made per recipient per send, and a
    million-recipient send feels the difference.
    """

    email: str
    key: str  # normalized address: the journal's and the de-duplication's key
    name: str = ""
    values: Mapping[str, str] = MappingProxyType({})  # "subscriber.<col>" and "unsubscribe_url"

    @property
    def unsubscribe_url(self) -> str:
        return self.values.get("unsubscribe_url", "")


@dataclass(frozen=True)
class Message:
    """The issue as it goes out: rendered and inlined once, shared by every recipient."""

    issue_name: str
    list_name: str
    subject: str
    html: str  # inlined HTML holding merge tokens
    text: str  # plain text holding merge tokens
    fields: tuple[MergeField, ...]
    from_address: str
    reply_to: str = ""
    unsubscribe_mailto: str = ""  # address for the mailto: List-Unsubscribe target, "" for none
    send_at: dt.datetime | None = None
    sandbox: bool = False
    categories: tuple[str, ...] = ()
    unsubscribe_group: int | None = None  # SendGrid ASM group; then SendGrid adds the unsubscribe headers
    headers: tuple[tuple[str, str], ...] = ()  # further headers every copy carries (List-Id...), in order
    related: tuple[InlineImage, ...] = ()  # pictures carried inside the message, shown by ``html`` as cid:
    # what a provider that reports events for each copy hands back with them (the issue id, an A/B variant):
    # stats reads them from newsletter serve's event store
    labels: tuple[tuple[str, str], ...] = ()

    @cached_property
    def html_personalizer(self) -> Personalizer:
        return Personalizer(self.html, self.fields)

    @cached_property
    def text_personalizer(self) -> Personalizer:
        return Personalizer(self.text, self.fields)

    def personalize(self, recipient: Recipient) -> tuple[str, str]:
        """(html, text) filled with the recipient's values, escaped for each part."""
        return self.html_personalizer.fill(recipient.values), self.text_personalizer.fill(recipient.values)

    def email_for(self, recipient: Recipient) -> EmailMessage:
        """The complete message ``recipient`` receives: their copy, their To, their unsubscribe links."""
        html, text = self.personalize(recipient)
        targets = self.list_unsubscribe(recipient)
        envelope = Envelope(
            from_address=self.from_address, to_email=recipient.email, to_name=recipient.name,
            reply_to=self.reply_to, subject=self.subject, list_unsubscribe=targets,
            one_click=any(target.startswith("https://") for target in targets),
            extra_headers=dict(self.headers),
        )
        return build_message(envelope, text, html, related=self.related)

    def list_unsubscribe(self, recipient: Recipient) -> list[str]:
        """List-Unsubscribe targets for this recipient: their HTTPS link and the mailto."""
        targets = self.unsubscribe_links([recipient])
        if self.unsubscribe_mailto:
            targets.append(self.unsubscribe_mailto_prefix + quote_addresses([recipient.email])[0])
        return [target for target in targets if target]

    def unsubscribe_links(self, recipients: Sequence[Recipient]) -> list[str]:
        """Each recipient's HTTPS List-Unsubscribe target, "" for none (a batch at a time: an
        encoder writes them for every recipient)."""
        links = [values.get("unsubscribe_url", "") for _, _, _, values in recipients]
        return [link if link.startswith("https://") else "" for link in links]

    @property
    def unsubscribe_mailto_prefix(self) -> str:
        """The mailto List-Unsubscribe target up to the recipient's address (which follows it
        percent-encoded: ``quote_addresses``); "" when there is none."""
        return f"mailto:{self.unsubscribe_mailto}?subject=unsubscribe%20" if self.unsubscribe_mailto else ""


_PLAIN_ADDRESSES = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_@ "


def quote_addresses(emails: Sequence[str]) -> list[str]:
    """Each address percent-encoded for a URL query, as ``quote(email, safe="")`` would.

    The common case, addresses of letters, digits, ".-_" and "@", needs only its "@" encoded: one
    check (deleting those characters leaves nothing) and one replacement over the batch joined by
    spaces (a space is in no such address).
    """
    joined = " ".join(emails)
    if (joined.isascii() and not joined.encode("ascii").translate(None, _PLAIN_ADDRESSES)
            and joined.count(" ") == len(emails) - 1):
        return joined.replace("@", "%40").split(" ")
    return [quote(email, safe="") for email in emails]
