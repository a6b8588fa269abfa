"""Deliver through an SMTP server with smtplib: one connection, one transaction per recipient.

Each recipient gets a transaction of their own (MAIL, RCPT, DATA) carrying
their personalized copy (``wire.py``), sent step by step so that a fault can be placed:
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
import smtplib
import ssl
from collections.abc import Callable, Generator

from ...config import Settings, SmtpSettings
from ...errors import NewsletterError
from ...hosts import is_loopback
from ...redaction import hold, redact
from ...secret_names import unset_variable, variable_name
from ..base import (
    DEFERRED,
    FAILED,
    SENT,
    UNKNOWN,
    AuthError,
    Capabilities,
    Delivery,
    Payload,
    ProviderError,
    Status,
    TransientError,
)
from .connection import Connector, auth_hint, refusal, reply_text
from .wire import Copy, SmtpData, encode

MAX_BATCH = 50  # recipients per payload: one journal batch, one transaction each
ATTEMPTS = 3  # connections tried for one recipient when the server drops us before the final dot
SECURITY = ("starttls", "ssl", "none")
# One connection, one conversation at a time; no scheduling (cron or at(1) do that); our own unsubscribe links.
CAPABILITIES = Capabilities(max_batch=MAX_BATCH, max_concurrency=1, sequential=True)


class _Dropped(Exception):
    """The connection was lost before the final dot of DATA: nothing was delivered."""


class SmtpProvider:
    """Sends each recipient their own message over one reused SMTP connection."""

    name = "smtp"
    capabilities = CAPABILITIES
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
        self._connector = Connector(settings, password, ssl_context)
        self._attempts = max(1, attempts)
        self._smtp: smtplib.SMTP | None = None

    def __repr__(self) -> str:
        s = self.settings
        return f"SmtpProvider({s.host}:{s.port}, security={s.security!r}, username={s.username!r})"

    @property
    def where(self) -> str:
        return self._connector.where

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

    def deliver(self, payload: Payload[SmtpData]) -> Generator[list[Delivery], None, None]:
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
                reason = redact(f"interrupted by an error: {err}")
                yield [Delivery(copy.key, UNKNOWN, reason=reason),
                       *(Delivery(c.key, DEFERRED, reason=f"not sent: {err}") for c in copies[index + 1:])]
                return
            delivered = delivered or outcome.status in (SENT, UNKNOWN)
            yield [outcome]

    def probe(self, timeout: float) -> None:
        """NOOP on the connection (opening one if needed): delivers nothing."""
        self._check_idle_connection()
        self._connection().noop()

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

    def _transaction(self, smtp: smtplib.SMTP, sender: str, to: str, data: bytes) -> tuple[Status, str]:
        """(status, reason) for one MAIL/RCPT/DATA exchange; _Dropped when nothing can have been delivered."""
        code, reply = self._command(smtp, "MAIL", lambda: smtp.mail(sender))
        if not 200 <= code < 300:
            self._reset(smtp)
            raise refusal(f"{self.where} refused the sender {sender}", code, reply,
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
        return UNKNOWN, f"{self.where} answered the message with an unreadable reply ({code} {reply_text(reply)})"

    def _command(self, smtp: smtplib.SMTP, name: str, call: Callable[[], tuple[int, bytes]]) -> tuple[int, bytes]:
        """Run one command; a lost connection or a 421 before DATA's dot is a fault of the connection."""
        try:
            code, reply = call()
        except smtplib.SMTPException as err:  # lost, timed out, or an unreadable reply
            raise _Dropped(f"at {name}: {err}") from None
        if not 200 <= code < 600:
            raise _Dropped(f"at {name}: unreadable reply {code} {reply_text(reply)}")
        if code == 421:  # the server is closing the channel: nothing was accepted, and it wants us gone
            self._discard()
            raise TransientError(f"{self.where} is not taking mail now: SMTP 421 {reply_text(reply)}",
                                 status=421, body=reply_text(reply))
        if code == 530:
            self._discard()
            raise AuthError(f"{self.where} requires authentication: SMTP 530 {reply_text(reply)}",
                            status=530, body=reply_text(reply), hint=auth_hint(self.settings))
        return code, reply

    def _outcome(self, code: int, reply: bytes) -> tuple[Status, str]:
        reason = f"SMTP {code} {reply_text(reply)}"
        return (DEFERRED if 400 <= code < 500 else FAILED), reason

    def _refusal(self, what: str, code: int, reply: bytes, hint: str | None = None) -> ProviderError:
        kind = TransientError if 400 <= code < 500 else ProviderError
        return kind(f"{what}: SMTP {code} {reply_text(reply)}", status=code, body=reply_text(reply), hint=hint)

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
            self._smtp = self._connector.connect()
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
