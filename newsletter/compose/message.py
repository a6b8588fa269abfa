"""RFC 5322 messages built safely: no header can be smuggled in by a value.

Every header value is refused if it carries CR or LF, raw or hidden inside
an RFC 2047 encoded word, and each built message is parsed back to assert
it carries exactly the headers intended. Used for build samples, dry-run
samples and SMTP delivery alike, so all three produce the same bytes.
"""

from __future__ import annotations

import datetime as dt
import email
import email.base64mime
import email.errors
import email.policy
import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.headerregistry import Address
from email.message import EmailMessage, MIMEPart
from email.utils import format_datetime, make_msgid, parseaddr

from ..errors import NewsletterError

# Bodies are encoded with quoted-printable lines of at most 76 characters (RFC 2045; longer ones
# cost spam score). Headers are written out with RFC 5322's 998-character limit: folding a long
# List-Unsubscribe URL at 78 would turn it into encoded words, which clients do not read as a URL.
BODY_POLICY = email.policy.SMTP
POLICY = email.policy.SMTP.clone(max_line_length=998)
UTF8_POLICY = POLICY.clone(utf8=True)


@dataclass(frozen=True)
class InlineImage:
    """A picture carried inside the message (RFC 2387 multipart/related), which the HTML shows as
    ``cid:<content_id>`` (RFC 2392): a test send's local images, before the archive serves them."""

    content_id: str  # an addr-spec without angle brackets: no ';', ',' or line breaks (SendGrid refuses them)
    filename: str
    content_type: str  # "image/png"
    data: bytes


def _picture(image: InlineImage) -> MIMEPart:
    """One picture's MIME part: base64, ``Content-ID``, shown inline, with its file name."""
    maintype, _, subtype = image.content_type.partition("/")
    part = MIMEPart(policy=BODY_POLICY)
    part.set_content(image.data, maintype, subtype, cid=f"<{image.content_id}>", disposition="inline",
                     filename=image.filename)
    return part


def image_part(image: InlineImage) -> bytes:
    """One picture's MIME part as it goes on the wire (CRLF line ends, base64 body), for a message
    whose bytes are put together by hand (the SMTP provider's ``WireTemplate``)."""
    return _picture(image).as_bytes(policy=BODY_POLICY)


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


_LABEL_UNSAFE = re.compile(r"[^a-z0-9]+")


def _label(text: str, fallback: str) -> str:
    """``text`` as one DNS-style label: lower case letters, digits and hyphens, at most 63 characters
    (accents dropped: "Über" gives "uber")."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return _LABEL_UNSAFE.sub("-", ascii_text.lower()).strip("-")[:63].strip("-") or fallback


def list_id(newsletter_name: str, list_name: str, from_address: str) -> str:
    """The List-Id header (RFC 2919) of one list: ``"Newsletter Name" <l0123456789.newsletter.domain>``.

    Mail clients and filters group a list's messages by it (Gmail's "filter messages like
    these", Outlook's rules, mailing-list folders), and it must stay the same from issue to
    issue: the id is built from the list, the newsletter's name and the From address's
    domain (a namespace its owner controls), never from anything that changes per issue.
    Readers see it (Gmail's "mailing list:" line and its filter suggestion, Thunderbird's
    header pane), so it shows the newsletter's name and never the writer's own name for the
    list (``lapsed-donors``): the phrase is the newsletter's name and the list's part of the
    id is a digest of the list's name (``_list_label``). The phrase is ASCII: a name with
    other characters becomes an RFC 2047 encoded word, so every provider can carry the
    header as it is.
    """
    domain = parseaddr(from_address)[1].rpartition("@")[2].strip().lower()
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        domain = _label(domain, "invalid")
    identifier = f"{_list_label(list_name)}.{_label(newsletter_name, 'newsletter')}.{domain or 'invalid'}"
    name = " ".join(newsletter_name.split())
    if not name:
        return f"<{identifier}>"
    if name.isascii():
        phrase = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    else:
        phrase = _encoded_words(name)
    return f"{phrase} <{identifier}>"


def _list_label(list_name: str) -> str:
    """The list's part of a List-Id: the same for every issue to the list and different for each
    list, yet nothing a reader can read the list's name from (an "l" and 10 hex digits of SHA-256)."""
    return "l" + hashlib.sha256(list_name.encode("utf-8")).hexdigest()[:10]


def _encoded_words(text: str) -> str:
    """``text`` as RFC 2047 encoded words of at most 75 characters each (45 UTF-8 bytes in base64)."""
    words, chunk = [], ""
    for char in text:
        if len((chunk + char).encode("utf-8")) > 45:
            words.append(email.base64mime.header_encode(chunk, "utf-8"))
            chunk = ""
        chunk += char
    words.append(email.base64mime.header_encode(chunk, "utf-8"))
    return " ".join(words)


def needs_utf8(envelope: Envelope) -> bool:
    """True when an address (not a display name) has non-ASCII characters."""
    addresses = [parseaddr(envelope.from_address)[1], envelope.to_email, parseaddr(envelope.reply_to)[1]]
    return any(not address.isascii() for address in addresses)


def may_break_lines(values: Iterable[str]) -> bool:
    """False when no value holds anything ``refuse_line_breaks`` looks at: one scan of them all, joined
    (by a character that is none of those, nor part of "=?"), instead of four scans per value. Checked
    per batch of recipients; only a batch where it is True needs checking value by value."""
    joined = "\x01".join(values)
    return "\r" in joined or "\n" in joined or "\x00" in joined or "=?" in joined


# What decoding RFC 2047 encoded words raises for ones that are not valid: a malformed word (email.errors,
# binascii.Error, a ValueError), an unknown charset (LookupError), bytes the charset cannot decode.
_UNDECODABLE = (email.errors.MessageError, LookupError, ValueError)


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
        except _UNDECODABLE:
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
    except (ValueError, email.errors.MessageError) as err:  # characters an address cannot hold
        raise NewsletterError(f"{field_name} is not a valid address: {value!r} ({err})") from None


def build_message(envelope: Envelope, text: str, html: str, *, date: dt.datetime | None = None,
                  message_id: str | None = None, related: Sequence[InlineImage] = ()) -> EmailMessage:
    """A multipart/alternative message (text first, then HTML), verified after building; with
    ``related`` pictures the HTML is a multipart/related of the HTML and them (the structure Apple
    Mail and Thunderbird write, which every client shows inline)."""
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
    put("Date", format_datetime(date or dt.datetime.now(dt.UTC)))
    put("Message-ID", message_id or make_msgid(domain=sender.domain))
    if envelope.list_unsubscribe:
        put("List-Unsubscribe", ", ".join(f"<{url}>" for url in envelope.list_unsubscribe))
        if envelope.one_click:
            put("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
    for name, value in envelope.extra_headers.items():
        put(name, value)
    msg.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    if related:
        html_part = next(part for part in msg.iter_parts() if part.get_content_type() == "text/html")
        html_part.make_related()  # the HTML becomes the first part of a multipart/related
        for image in related:
            html_part.attach(_picture(image))
        html_part.set_param("type", "text/html")  # RFC 2387: the type of the related's root part
    for part in msg.walk():
        if part is not msg:
            del part["MIME-Version"]  # belongs on the message only
    # Bodies are encoded; from here on the policy only decides how headers are written. An address
    # with non-ASCII characters cannot be an encoded word (RFC 2047 forbids it): such a message
    # needs UTF-8 headers (RFC 6532), delivered with SMTPUTF8.
    msg.policy = UTF8_POLICY if needs_utf8(envelope) else POLICY
    intended["mime-version"] = "1.0"
    _verify(msg, intended)
    return msg


def _decoded(value: str) -> str:
    """A header value as a reader sees it: RFC 2047 encoded words decoded (parsing decodes them too)."""
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except _UNDECODABLE:  # not valid encoded words: compared as written
        return value


def _verify(msg: EmailMessage, intended: Mapping[str, str]) -> None:
    """Parse the message back and insist on exactly the intended top-level headers."""
    raw = msg.as_bytes()
    utf8 = isinstance(msg.policy, email.policy.EmailPolicy) and msg.policy.utf8
    parsed = (email.message_from_string(raw.decode("utf-8"), policy=email.policy.default) if utf8
              else email.message_from_bytes(raw, policy=email.policy.default))
    names = [name.lower() for name in parsed if name.lower() != "content-type"]
    if sorted(names) != sorted(intended):
        extra = sorted(set(names) - set(intended))
        raise NewsletterError(f"built message has unexpected headers {extra or names}; refusing to send it")
    for name, value in intended.items():
        got = str(parsed[name])
        if name in ("from", "to", "reply-to"):
            if parseaddr(got)[1].lower() != parseaddr(value)[1].lower():
                raise NewsletterError(f"built message's {name} header changed to {got!r}; refusing to send it")
        elif " ".join(got.split()) != " ".join(_decoded(value).split()):
            raise NewsletterError(f"built message's {name} header changed to {got!r}; refusing to send it")
