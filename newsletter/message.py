"""RFC 5322 messages built safely: no header can be smuggled in by a value.

Every header value is refused if it carries CR or LF, raw or hidden inside
an RFC 2047 encoded word, and each built message is parsed back to assert
it carries exactly the headers intended. Used for build samples, dry-run
samples and SMTP delivery alike, so all three produce the same bytes.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.header import decode_header
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
import datetime as dt

from .errors import NewsletterError

# Bodies are encoded with quoted-printable lines of at most 76 characters (RFC 2045; longer ones
# cost spam score). Headers are written out with RFC 5322's 998-character limit: folding a long
# List-Unsubscribe URL at 78 would turn it into encoded words, which clients do not read as a URL.
BODY_POLICY = email.policy.SMTP
POLICY = email.policy.SMTP.clone(max_line_length=998)
UTF8_POLICY = POLICY.clone(utf8=True)


@dataclass(frozen=True)
class Envelope:
    """Who a message is from and to, and the headers every recipient's copy shares."""

    from_address: str
    to_email: str
    to_name: str = ""
    reply_to: str = ""
    subject: str = ""
    list_unsubscribe: Sequence[str] = ()  # URLs: https://... and/or mailto:...
    one_click: bool = False
    extra_headers: Mapping[str, str] = field(default_factory=dict)


def needs_utf8(envelope: Envelope) -> bool:
    """True when an address (not a display name) has non-ASCII characters."""
    addresses = [parseaddr(envelope.from_address)[1], envelope.to_email, parseaddr(envelope.reply_to)[1]]
    return any(not address.isascii() for address in addresses)


def refuse_line_breaks(field_name: str, value: str) -> str:
    """Return ``value`` if it is safe in a header, else raise naming the field."""
    if "\r" not in value and "\n" not in value and "\x00" not in value and "=?" not in value:
        return value  # the common case, checked per recipient: four scans in C, nothing to decode
    candidates = [value]
    if "=?" in value:
        try:
            for part, charset in decode_header(value):
                if isinstance(part, bytes):
                    candidates.append(part.decode(charset or "ascii", errors="replace"))
        except Exception:
            pass
    for text in candidates:
        if "\r" in text or "\n" in text or "\x00" in text:
            raise NewsletterError(
                f"{field_name} contains a line break ({value!r}), which could forge mail headers",
                hint=f"remove the line break from the {field_name}",
            )
    return value


def _address(field_name: str, value: str, name: str = "") -> Address:
    refuse_line_breaks(field_name, value)
    refuse_line_breaks(f"{field_name} name", name)
    display, addr = parseaddr(value)
    display = name or display
    if "@" not in addr:
        raise NewsletterError(f"{field_name} is not an email address: {value!r}")
    local, _, domain = addr.rpartition("@")
    try:
        return Address(display_name=display, username=local, domain=domain)
    except Exception as err:  # email.errors.* for characters an address cannot hold
        raise NewsletterError(f"{field_name} is not a valid address: {value!r} ({err})") from None


def build_message(envelope: Envelope, text: str, html: str, *, date: dt.datetime | None = None,
                  message_id: str | None = None) -> EmailMessage:
    """A multipart/alternative message (text first, then HTML), verified after building."""
    sender = _address("From address", envelope.from_address)
    msg = EmailMessage(policy=BODY_POLICY)
    intended: dict[str, str] = {}

    def put(name: str, value: str) -> None:
        refuse_line_breaks(name, value)
        msg[name] = value
        intended[name.lower()] = value

    msg["From"] = sender
    intended["from"] = str(sender)
    recipient = _address("recipient", envelope.to_email, envelope.to_name)
    msg["To"] = recipient
    intended["to"] = str(recipient)
    if envelope.reply_to:
        reply_to = _address("Reply-To", envelope.reply_to)
        msg["Reply-To"] = reply_to
        intended["reply-to"] = str(reply_to)
    put("Subject", envelope.subject)
    put("Date", format_datetime(date or dt.datetime.now(dt.timezone.utc)))
    put("Message-ID", message_id or make_msgid(domain=sender.domain))
    if envelope.list_unsubscribe:
        put("List-Unsubscribe", ", ".join(f"<{url}>" for url in envelope.list_unsubscribe))
        if envelope.one_click:
            put("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
    for name, value in envelope.extra_headers.items():
        put(name, value)
    msg.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    for part in msg.iter_parts():
        del part["MIME-Version"]  # belongs on the message only
    # Bodies are encoded; from here on the policy only decides how headers are written. An address
    # with non-ASCII characters cannot be an encoded word (RFC 2047 forbids it): such a message
    # needs UTF-8 headers (RFC 6532), delivered with SMTPUTF8.
    msg.policy = UTF8_POLICY if needs_utf8(envelope) else POLICY
    intended["mime-version"] = "1.0"
    _verify(msg, intended)
    return msg


def _verify(msg: EmailMessage, intended: Mapping[str, str]) -> None:
    """Parse the message back and insist on exactly the intended top-level headers."""
    raw = msg.as_bytes()
    parsed = (email.message_from_string(raw.decode("utf-8"), policy=email.policy.default) if msg.policy.utf8
              else email.message_from_bytes(raw, policy=email.policy.default))
    names = [name.lower() for name in parsed.keys() if name.lower() != "content-type"]
    if sorted(names) != sorted(intended):
        extra = sorted(set(names) - set(intended))
        raise NewsletterError(f"built message has unexpected headers {extra or names}; refusing to send it")
    for name, value in intended.items():
        got = str(parsed[name])
        if name in ("from", "to", "reply-to"):
            if parseaddr(got)[1].lower() != parseaddr(value)[1].lower():
                raise NewsletterError(f"built message's {name} header changed to {got!r}; refusing to send it")
        elif " ".join(got.split()) != " ".join(value.split()):
            raise NewsletterError(f"built message's {name} header changed to {got!r}; refusing to send it")
