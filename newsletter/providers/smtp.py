"""Deliver through an SMTP server with smtplib: one connection, one transaction per recipient.

Each recipient gets a transaction of their own (MAIL, RCPT, DATA) carrying
their personalized copy, sent step by step so that a fault can be placed:
a connection lost before the final dot of DATA means the server cannot have
accepted the message, so the recipient is tried again on a new connection;
lost after the dot and before the reply, the server may have accepted it,
so the recipient is reported UNKNOWN and never resent automatically.

A fault that concerns the whole connection (refused, TLS, login, the sender
refused) is raised as a ProviderError while nothing of the batch can have
been delivered; once something has been, the rest of the batch is reported
DEFERRED instead, so the orchestrator never resends a delivered message.
"""

from __future__ import annotations

import os
from binascii import b2a_qp
import re
import smtplib
import ssl
from collections.abc import Iterator, Sequence
from email.utils import parseaddr
from typing import NamedTuple

from ..config import Settings, SmtpSettings
from ..errors import NewsletterError
from ..hosts import is_loopback
from ..redaction import hold, redact
from ..secret_names import unset_variable, variable_name
from .base import (
    DEFERRED,
    FAILED,
    SENT,
    UNKNOWN,
    AuthError,
    Capabilities,
    Delivery,
    Message,
    Payload,
    ProviderError,
    Recipient,
    TransientError,
)

MAX_BATCH = 50  # recipients per send_batch call: one journal batch, one transaction each
ATTEMPTS = 3  # connections tried for one recipient when the server drops us before the final dot
SECURITY = ("starttls", "ssl", "none")
# One connection, one conversation at a time; no scheduling (cron or at(1) do that); our own unsubscribe links.
CAPABILITIES = Capabilities(max_batch=MAX_BATCH, max_concurrency=1, sequential=True)


def _scrub(text: str) -> str:
    """``text`` without the password, however the server echoed it (any case, base64: redaction.py)."""
    return redact(text)


class Copy(NamedTuple):
    """One recipient's message, ready for DATA."""

    key: str
    email: str
    message_id: str
    data: bytes


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

    __slots__ = ("pieces", "fields")

    def __init__(self, personalizer):
        pieces, fields = personalizer.pieces
        self.fields = fields
        self.pieces = [_qp(piece) for piece in pieces]
        for i in range(len(self.pieces) - 1):  # a soft break after every piece followed by a token...
            if not self.pieces[i].endswith(b"\r\n"):
                self.pieces[i] += b"=\r\n"
        if self.pieces[-1] and not self.pieces[-1].endswith(b"\r\n"):
            self.pieces[-1] += b"\r\n"  # the part ends with a line break, as email's set_content writes it

    def fill(self, values) -> list[bytes]:
        out = [self.pieces[0]]
        last = len(self.fields) - 1
        for i, (field, piece) in enumerate(zip(self.fields, self.pieces[1:])):
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

        from ..compose.message import POLICY, image_part, refuse_line_breaks

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

        from ..compose.message import refuse_line_breaks

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


def encode(message: Message, recipients: Sequence[Recipient]) -> Payload:
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


def fetch_signals(settings, *, since: float) -> dict[str, list[dict]]:
    """Nothing: an SMTP server has no API for bounces. Its 5xx answers are in the journal, and later
    bounces reach ``newsletter serve``'s event store, which a staged send also reads."""
    return {}


def is_hard_refusal(reason: str) -> bool:
    """A 5xx answer to RCPT or DATA (``_outcome``'s "SMTP 550 ..."): the receiving server refused the
    address for good, a hard bounce."""
    return reason.startswith("SMTP 5")


def check_schedule(send_at) -> None:
    if send_at is not None:
        raise NewsletterError("--provider-at needs a provider that holds mail until a time; smtp sends at once",
                              hint="schedule it with --at instead: newsletter holds it and `send --due` sends it")


def _text(reply: bytes | str) -> str:
    if isinstance(reply, bytes):
        reply = reply.decode("utf-8", errors="replace")
    return _scrub(" ".join(reply.split()))


class _Dropped(Exception):
    """The connection was lost before the final dot of DATA: nothing was delivered."""


class SmtpProvider:
    """Sends each recipient their own message over one reused SMTP connection."""

    name = "smtp"
    capabilities = CAPABILITIES
    max_batch = MAX_BATCH
    encode = staticmethod(encode)

    def __init__(self, settings: SmtpSettings, *, password: str | None,
                 ssl_context: ssl.SSLContext | None = None, attempts: int = ATTEMPTS):
        if settings.security not in SECURITY:
            raise NewsletterError(f"smtp.security must be one of {', '.join(SECURITY)}, not {settings.security!r}")
        if settings.username and not password:
            raise NewsletterError(
                f"no password for SMTP user '{settings.username}' on {settings.host}:{settings.port}",
                hint=f"export {variable_name('smtp.password_env', settings.password_env)}=<the password>",
            )
        if settings.security == "none" and settings.username and not is_loopback(settings.host):
            raise NewsletterError(
                f"smtp.security is 'none', which would send the password for '{settings.username}' "
                f"to {settings.host}:{settings.port} in clear text",
                hint="set smtp.security = \"starttls\" (port 587) or \"ssl\" (port 465); "
                     "'none' is for a relay on this machine",
            )
        self.settings = settings
        self.timeout = settings.timeout
        if password:  # a server that echoes credentials must not get them printed: in any case, or as AUTH sent them
            hold(password, f"\0{settings.username}\0{password}")
        self._password = password
        self._context = ssl_context
        self._attempts = max(1, attempts)
        self._smtp: smtplib.SMTP | None = None

    def __repr__(self) -> str:
        s = self.settings
        return f"SmtpProvider({s.host}:{s.port}, security={s.security!r}, username={s.username!r})"

    @property
    def where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    # -- the Provider interface ------------------------------------------------

    def open(self) -> None:
        """Connect, secure and log in, unless a connection is already open: a refused login, a certificate
        or TLS setup that cannot work fails here, before the first batch. A failure that may pass (the
        connection refused or dropped, a 4xx greeting) is left for the first batch, where the send loop
        retries it with back-off until ``[send] outage_seconds`` (as SendGrid's ``open`` does)."""
        try:
            self._connection()
        except TransientError:
            pass

    def deliver(self, payload: Payload) -> Iterator[list[Delivery]]:
        """One transaction per recipient, each outcome yielded as its reply arrives.

        Raises only while nothing of this payload can have been delivered; once something
        may have been, a fault of the connection makes the rest DEFERRED instead.
        """
        sender, copies = payload.data
        self._check_idle_connection()
        delivered = False
        for index, copy in enumerate(copies):
            try:
                outcome = self._deliver(sender, copy)
            except ProviderError as err:
                self._discard()
                if not delivered:
                    raise
                yield [Delivery(c.key, DEFERRED, reason=f"not sent: {err}") for c in copies[index:]]
                return
            except Exception as err:  # a bug, not a reply: this recipient may have been mid-transaction
                self._discard()
                if not delivered:
                    raise
                reason = _scrub(f"interrupted by an error: {err}")
                yield [Delivery(copy.key, UNKNOWN, reason=reason),
                       *(Delivery(c.key, DEFERRED, reason=f"not sent: {err}") for c in copies[index + 1:])]
                return
            delivered = delivered or outcome.status in (SENT, UNKNOWN)
            yield [outcome]

    def probe(self, timeout: float) -> None:
        """NOOP on the connection (opening one if needed): delivers nothing."""
        self._check_idle_connection()
        self._connection().noop()

    def send_batch(self, message: Message, recipients: Sequence[Recipient]) -> list[Delivery]:
        """``encode`` then ``deliver``, waiting for every outcome: for tests and one-off calls."""
        from .base import deliver_all

        return deliver_all(self, message, recipients)

    def close(self) -> None:
        """Say QUIT politely if the connection is still up, and forget it."""
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()

    # -- one recipient ---------------------------------------------------------

    def _deliver(self, sender: str, copy: Copy) -> Delivery:
        message_id, data = copy.message_id, copy.data
        lost = ""
        for _ in range(self._attempts):
            smtp = self._connection()
            try:
                status, reason = self._transaction(smtp, sender, copy.email, data)
            except _Dropped as err:
                self._discard()
                lost = str(err)
                continue
            return Delivery(copy.key, status, message_id=message_id if status in (SENT, UNKNOWN) else "",
                            reason=reason)
        # The server, not this recipient, is the trouble: stop hammering it and let send.py back off.
        raise TransientError(f"the connection to {self.where} was lost before the message was sent, "
                             f"{self._attempts} times in a row ({lost})")

    def _transaction(self, smtp: smtplib.SMTP, sender: str, to: str, data: bytes) -> tuple[str, str]:
        """(status, reason) for one MAIL/RCPT/DATA exchange; _Dropped when nothing can have been delivered."""
        code, reply = self._command(smtp, "MAIL", lambda: smtp.mail(sender))
        if not 200 <= code < 300:
            self._reset(smtp)
            raise self._refusal(f"{self.where} refused the sender {sender}", code, reply,
                                hint="check the newsletter's from address is allowed to send through this server")
        code, reply = self._command(smtp, "RCPT", lambda: smtp.rcpt(to))
        if not 200 <= code < 300:
            self._reset(smtp)
            return self._outcome(code, reply)
        code, reply = self._command(smtp, "DATA", lambda: smtp.docmd("DATA"))
        if code != 354:
            self._reset(smtp)
            return self._outcome(code, reply)
        try:
            smtp.send(data)
        except smtplib.SMTPServerDisconnected as err:
            # sendall() failed, so the final dot was not (wholly) written: the server holds no message.
            raise _Dropped(f"while sending the message: {err}") from None
        try:
            code, reply = smtp.getreply()
        except smtplib.SMTPException as err:  # lost, timed out, or an unreadable reply
            self._discard()
            return UNKNOWN, (f"the connection to {self.where} was lost after the message was sent and before "
                             f"the server confirmed it ({err}); it may have been delivered, so it is not "
                             "resent automatically")
        if code == 421:
            self._discard()
        if 200 <= code < 300:
            return SENT, ""
        if 400 <= code < 600:
            return self._outcome(code, reply)
        self._discard()
        return UNKNOWN, f"{self.where} answered the message with an unreadable reply ({code} {_text(reply)})"

    def _command(self, smtp: smtplib.SMTP, name: str, call) -> tuple[int, bytes]:
        """Run one command; a lost connection or a 421 before DATA's dot is a fault of the connection."""
        try:
            code, reply = call()
        except smtplib.SMTPException as err:  # lost, timed out, or an unreadable reply
            raise _Dropped(f"at {name}: {err}") from None
        if not 200 <= code < 600:
            raise _Dropped(f"at {name}: unreadable reply {code} {_text(reply)}")
        if code == 421:  # the server is closing the channel: nothing was accepted, and it wants us gone
            self._discard()
            raise TransientError(f"{self.where} is not taking mail now: SMTP 421 {_text(reply)}",
                                 status=421, body=_text(reply))
        if code == 530:
            self._discard()
            raise AuthError(f"{self.where} requires authentication: SMTP 530 {_text(reply)}",
                            status=530, body=_text(reply), hint=self._auth_hint())
        return code, reply

    def _outcome(self, code: int, reply: bytes) -> tuple[str, str]:
        reason = f"SMTP {code} {_text(reply)}"
        return (DEFERRED if 400 <= code < 500 else FAILED), reason

    def _refusal(self, what: str, code: int, reply: bytes, hint: str | None = None) -> ProviderError:
        kind = TransientError if 400 <= code < 500 else ProviderError
        return kind(f"{what}: SMTP {code} {_text(reply)}", status=code, body=_text(reply), hint=hint)

    def _reset(self, smtp: smtplib.SMTP) -> None:
        """RSET after a refused step, so the next transaction starts clean; drop the connection if that fails."""
        try:
            code, _ = smtp.rset()
        except (smtplib.SMTPException, OSError):
            code = 0
        if code != 250:
            self._discard()

    # -- the connection --------------------------------------------------------

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is None or self._smtp.sock is None:
            self._smtp = None
            self._smtp = self._connect()
        return self._smtp

    def _check_idle_connection(self) -> None:
        """A connection idle since the last batch may have been closed by the server (often with a
        421 waiting to be read): ask with NOOP, and start afresh if it does not answer 250."""
        if self._smtp is None:
            return
        try:
            code, _ = self._smtp.noop()
        except (smtplib.SMTPException, OSError):
            code = 0
        if code != 250:
            self._discard()

    def _discard(self) -> None:
        """Forget the connection without a QUIT (it is broken or in an unknown state)."""
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            smtp.close()

    def _tls_context(self) -> ssl.SSLContext:
        if self._context is None:
            self._context = ssl.create_default_context()
        return self._context

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        smtp: smtplib.SMTP | None = None
        try:
            if s.security == "ssl":
                smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=self._tls_context())
            else:
                smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            self._hello(smtp)
            if s.security == "starttls":
                if not smtp.has_extn("starttls"):
                    raise ProviderError(
                        f"{self.where} does not offer STARTTLS, and smtp.security = \"starttls\" requires it; "
                        "refusing to send mail or a password unencrypted",
                        hint="use the server's submission port (587), or smtp.security = \"ssl\" for port 465",
                    )
                code, reply = smtp.starttls(context=self._tls_context())
                if code != 220:
                    raise ProviderError(f"{self.where} refused STARTTLS: SMTP {code} {_text(reply)}", status=code)
                self._hello(smtp)
            if s.username:
                self._login(smtp)
            return smtp
        except BaseException as err:
            if smtp is not None:
                smtp.close()
            if isinstance(err, (ProviderError, OSError)):  # smtplib's and ssl's errors are OSErrors
                raise self._connect_error(err) from None
            raise

    def _hello(self, smtp: smtplib.SMTP) -> None:
        code, reply = smtp.ehlo()
        if code != 250:
            code, reply = smtp.helo()
            if code != 250:
                raise self._refusal(f"{self.where} refused our greeting", code, reply)

    def _login(self, smtp: smtplib.SMTP) -> None:
        s = self.settings
        try:
            smtp.login(s.username, self._password or "")
        except smtplib.SMTPAuthenticationError as err:
            raise AuthError(
                f"{self.where} refused the login for user '{s.username}': SMTP {err.smtp_code} {_text(err.smtp_error)}",
                status=err.smtp_code, body=_text(err.smtp_error), hint=self._auth_hint(),
            ) from None
        except smtplib.SMTPNotSupportedError:
            raise AuthError(
                f"{self.where} does not offer AUTH on this connection, so user '{s.username}' cannot log in",
                hint="check smtp.security (many servers offer AUTH only after STARTTLS), or clear smtp.username "
                     "for a relay that needs no login",
            ) from None
        except smtplib.SMTPException as err:  # no mechanism in common with the server
            raise AuthError(f"{self.where}: cannot log in as '{s.username}': {err}", hint=self._auth_hint()) from None

    def _auth_hint(self) -> str:
        s = self.settings
        if not s.username:
            return "set smtp.username in newsletter.toml and the password in the environment variable " \
                   f"{variable_name('smtp.password_env', s.password_env)}"
        return f"check smtp.username and the password in {variable_name('smtp.password_env', s.password_env)}"

    def _connect_error(self, err: ProviderError | OSError) -> ProviderError:
        """Translate a failure while connecting into the project's errors, naming host and port."""
        where = self.where
        if isinstance(err, ProviderError):
            return err
        if isinstance(err, ssl.SSLCertVerificationError):
            return ProviderError(
                f"the TLS certificate of {where} could not be verified: {err.verify_message or err.reason}",
                hint="check smtp.host is the name on the server's certificate",
            )
        if isinstance(err, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
            return TransientError(f"{where} closed the connection during the TLS handshake")
        if isinstance(err, ssl.SSLError):
            return ProviderError(
                f"TLS with {where} failed: {err.reason or err}",
                hint="smtp.security = \"ssl\" is for implicit TLS (usually port 465), \"starttls\" for port 587",
            )
        if isinstance(err, smtplib.SMTPConnectError):
            return self._refusal(f"{where} refused the connection", err.smtp_code, err.smtp_error)
        if isinstance(err, smtplib.SMTPResponseException):
            return self._refusal(f"{where} refused the session", err.smtp_code, err.smtp_error)
        if isinstance(err, smtplib.SMTPServerDisconnected):
            return TransientError(f"{where} closed the connection while we were setting it up")
        if isinstance(err, smtplib.SMTPException):
            return ProviderError(f"{where}: {err}")
        detail = err.strerror or str(err) or type(err).__name__
        return TransientError(f"cannot connect to the SMTP server {where}: {detail}",
                              hint="is the server running? check smtp.host and smtp.port")


def from_settings(settings: Settings, *, ssl_context: ssl.SSLContext | None = None) -> SmtpProvider:
    """The SMTP provider for ``newsletter.toml``, with the password read from the variable it names."""
    smtp = settings.smtp
    password = os.environ.get(smtp.password_env) or None
    if smtp.username and password is None:
        raise unset_variable("smtp.password_env", smtp.password_env,
                             f"the password for SMTP user '{smtp.username}' on {smtp.host}:{smtp.port}",
                             example="SMTP_PASSWORD", placeholder="the password",
                             more=", or change smtp.password_env to the variable that holds it")
    return SmtpProvider(smtp, password=password, ssl_context=ssl_context)
