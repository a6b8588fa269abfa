"""An SMTP copy of the issue for each recipient, as the bytes DATA sends: pure, so worker processes,
the dry run and tests can call it without a network."""

from __future__ import annotations

import os
import re
from binascii import b2a_qp
from collections.abc import Mapping, Sequence
from email.utils import parseaddr
from typing import NamedTuple

from ...compose.personalize import Personalizer
from ...errors import NewsletterError
from ..base import Message, Payload, Recipient


class Copy(NamedTuple):
    """One recipient's message, ready for DATA."""

    key: str
    email: str
    message_id: str
    data: bytes



SmtpData = tuple[str, tuple[Copy, ...]]  # the envelope sender, and each recipient's copy


def _qp(text: str) -> bytes:
    """Quoted-printable with CRLF line ends, dot-stuffed for DATA (every piece starts a line)."""
    encoded = b2a_qp(text.encode("utf-8"), istext=True).replace(b"\n", b"\r\n")
    if encoded.startswith(b".") or b"\n." in encoded:
        encoded = re.sub(rb"(?m)^\.", b"..", encoded)
    return encoded


class _EncodedPart:
    """A body part quoted-printable encoded once, between its merge tokens: each recipient's copy
    joins these with their values (each encoded on lines of its own, between soft line breaks,
    so no line grows past 76 characters)."""

    __slots__ = ("fields", "pieces")

    def __init__(self, personalizer: Personalizer):
        pieces, fields = personalizer.pieces
        self.fields = fields
        self.pieces = [_qp(piece) for piece in pieces]
        for i in range(len(self.pieces) - 1):  # a soft break after every piece followed by a token...
            if not self.pieces[i].endswith(b"\r\n"):
                self.pieces[i] += b"=\r\n"
        if self.pieces[-1] and not self.pieces[-1].endswith(b"\r\n"):
            self.pieces[-1] += b"\r\n"  # the part ends with a line break, as email's set_content writes it

    def fill(self, values: Mapping[str, str]) -> list[bytes]:
        out = [self.pieces[0]]
        last = len(self.fields) - 1
        for i, (field, piece) in enumerate(zip(self.fields, self.pieces[1:], strict=True)):
            value = _qp(field.render(values.get(field.name)))
            if value and not value.endswith(b"\r\n"):
                value += b"\r\n" if i == last and not piece else b"=\r\n"  # ...and after every value
            out.append(value)
            out.append(piece)
        return out


class WireTemplate:
    """The MIME message of an issue built once; each recipient's copy is bytes substituted into it.

    Building and verifying an ``EmailMessage`` per recipient was most of an SMTP send's time.
    Here the headers every copy shares (From, Reply-To, Subject, extra headers) are built and
    folded once by ``email`` itself, and both bodies are quoted-printable encoded once between
    their merge tokens; per recipient only To, Date, Message-ID and the unsubscribe headers are
    written and the values encoded. The boundary cannot occur in quoted-printable text (a bare
    ``=`` is always escaped there). ``tests/test_smtp_wire.py`` compares copies with what
    ``email`` parses from them and from ``Message.email_for`` for a sample of recipients.
    """

    def __init__(self, message: Message):
        from email.message import EmailMessage as _Shared

        from ...compose.message import POLICY, image_part, refuse_line_breaks

        self.message = message
        shared = _Shared(policy=POLICY)
        shared["From"] = message.from_address
        if message.reply_to:
            shared["Reply-To"] = message.reply_to
        shared["Subject"] = refuse_line_breaks("subject", message.subject)
        for name, value in message.headers:
            shared[name] = refuse_line_breaks(name, value)
        self.shared = shared.as_bytes().rstrip(b"\r\n") + b"\r\n"
        self.domain = parseaddr(message.from_address)[1].rpartition("@")[2] or "localhost"
        self.boundary = f"=_nl_{os.urandom(12).hex()}"
        b = self.boundary.encode()
        part = b'Content-Type: text/%s; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'
        self.head = (b"MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"" + b + b"\"\r\n\r\n--"
                     + b + b"\r\n" + part % b"plain")
        self.middle = b"\r\n--" + b + b"\r\n" + part % b"html"
        self.tail = b"\r\n--" + b + b"--\r\n"
        if message.related:  # the HTML and its pictures as one multipart/related, as build_message makes it
            r = f"=_nl_r_{os.urandom(12).hex()}".encode()
            self.middle = (b"\r\n--" + b + b"\r\nContent-Type: multipart/related; type=\"text/html\";\r\n boundary=\""
                           + r + b"\"\r\n\r\n--" + r + b"\r\n" + part % b"html")
            self.tail = (b"".join(b"\r\n--" + r + b"\r\n" + image_part(image).rstrip(b"\r\n")
                                  for image in message.related)
                         + b"\r\n--" + r + b"--\r\n" + self.tail)
        self.text = _EncodedPart(message.text_personalizer)
        self.html = _EncodedPart(message.html_personalizer)

    def copy(self, recipient: Recipient, date: str) -> tuple[str, bytes]:
        """(Message-ID, the complete message as DATA: CRLF line ends, dot-stuffed, without the final dot)."""
        from email.utils import formataddr

        from ...compose.message import refuse_line_breaks

        message = self.message
        to = formataddr((refuse_line_breaks("recipient name", recipient.name),
                         refuse_line_breaks("recipient", recipient.email)), "utf-8")
        message_id = f"<{os.urandom(16).hex()}@{self.domain}>"
        out = [self.shared, b"To: ", to.encode("ascii"), b"\r\nDate: ", date.encode("ascii"),
               b"\r\nMessage-ID: ", message_id.encode("ascii"), b"\r\n"]
        targets = message.list_unsubscribe(recipient)
        if targets:
            unsubscribe = ", ".join(f"<{t}>" for t in targets)
            refuse_line_breaks("List-Unsubscribe", unsubscribe)
            out += [b"List-Unsubscribe: ", unsubscribe.encode("ascii"), b"\r\n"]
            if targets[0].startswith("https://"):
                out.append(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
        out.append(self.head)
        out += self.text.fill(recipient.values)
        out.append(self.middle)
        out += self.html.fill(recipient.values)
        out.append(self.tail)
        return message_id, b"".join(out)


_TEMPLATES: dict[int, WireTemplate] = {}


def _template(message: Message) -> WireTemplate:
    """The template of ``message``, made once per issue (a send encodes many batches of the same message)."""
    template = _TEMPLATES.get(id(message))
    if template is None or template.message is not message:
        _TEMPLATES.clear()
        template = _TEMPLATES[id(message)] = WireTemplate(message)
    return template


def encode(message: Message, recipients: Sequence[Recipient]) -> Payload[SmtpData]:
    """Each recipient's complete message as wire bytes; an address SMTP cannot carry is refused alone."""
    from email.utils import formatdate

    template = _template(message)
    date = formatdate(localtime=False, usegmt=True)
    copies: list[Copy] = []
    refused: list[tuple[str, str]] = []
    for recipient in recipients:
        if not recipient.email.isascii():
            refused.append((recipient.key, f"address {recipient.email!r} has non-ASCII characters, which need "
                                           "SMTPUTF8; the SMTP provider sends to ASCII addresses only"))
            continue
        try:
            message_id, data = template.copy(recipient, date)
        except (NewsletterError, UnicodeEncodeError) as err:
            refused.append((recipient.key, str(err)))
            continue
        copies.append(Copy(recipient.key, recipient.email, message_id, data + b".\r\n"))
    return Payload(tuple(c.key for c in copies), (parseaddr(message.from_address)[1], tuple(copies)),
                   tuple(refused))
