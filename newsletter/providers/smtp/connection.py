"""Opening an SMTP session: connect, secure (implicit TLS or STARTTLS), greet and log in, every failure
translated into the project's errors naming host and port (and never the password)."""

from __future__ import annotations

import smtplib
import ssl

from ...config import SmtpSettings
from ...redaction import redact
from ...secret_names import variable_name
from ..base import AuthError, ProviderError, TransientError


def reply_text(reply: bytes | str) -> str:
    """A server's reply on one line, without the password however the server echoed it (any case,
    base64: redaction.py)."""
    if isinstance(reply, bytes):
        reply = reply.decode("utf-8", errors="replace")
    return redact(" ".join(reply.split()))


def refusal(what: str, code: int, reply: bytes | str, hint: str | None = None) -> ProviderError:
    """A whole-session refusal: worth trying again later on a 4xx, not on a 5xx."""
    kind = TransientError if 400 <= code < 500 else ProviderError
    return kind(f"{what}: SMTP {code} {reply_text(reply)}", status=code, body=reply_text(reply), hint=hint)


def auth_hint(settings: SmtpSettings) -> str:
    s = settings
    if not s.username:
        return "set smtp.username in newsletter.toml and the password in the environment variable " \
               f"{variable_name('smtp.password_env', s.password_env)}"
    return f"check smtp.username and the password in {variable_name('smtp.password_env', s.password_env)}"


class Connector:
    """Opens sessions with the server ``settings`` names, as its user."""

    def __init__(self, settings: SmtpSettings, password: str | None, ssl_context: ssl.SSLContext | None):
        self.settings = settings
        self.where = f"{settings.host}:{settings.port}"
        self._password = password
        self._context = ssl_context

    def _tls_context(self) -> ssl.SSLContext:
        if self._context is None:
            self._context = ssl.create_default_context()
        return self._context

    def connect(self) -> smtplib.SMTP:
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
                    raise ProviderError(f"{self.where} refused STARTTLS: SMTP {code} {reply_text(reply)}", status=code)
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
                raise refusal(f"{self.where} refused our greeting", code, reply)

    def _login(self, smtp: smtplib.SMTP) -> None:
        s = self.settings
        try:
            smtp.login(s.username, self._password or "")
        except smtplib.SMTPAuthenticationError as err:
            raise AuthError(
                f"{self.where} refused the login for user '{s.username}': "
                f"SMTP {err.smtp_code} {reply_text(err.smtp_error)}",
                status=err.smtp_code, body=reply_text(err.smtp_error), hint=auth_hint(self.settings),
            ) from None
        except smtplib.SMTPNotSupportedError:
            raise AuthError(
                f"{self.where} does not offer AUTH on this connection, so user '{s.username}' cannot log in",
                hint="check smtp.security (many servers offer AUTH only after STARTTLS), or clear smtp.username "
                     "for a relay that needs no login",
            ) from None
        except smtplib.SMTPException as err:  # no mechanism in common with the server
            raise AuthError(f"{self.where}: cannot log in as '{s.username}': {err}",
                            hint=auth_hint(self.settings)) from None

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
            return refusal(f"{where} refused the connection", err.smtp_code, err.smtp_error)
        if isinstance(err, smtplib.SMTPResponseException):
            return refusal(f"{where} refused the session", err.smtp_code, err.smtp_error)
        if isinstance(err, smtplib.SMTPServerDisconnected):
            return TransientError(f"{where} closed the connection while we were setting it up")
        if isinstance(err, smtplib.SMTPException):
            return ProviderError(f"{where}: {err}")
        detail = err.strerror or str(err) or type(err).__name__
        return TransientError(f"cannot connect to the SMTP server {where}: {detail}",
                              hint="is the server running? check smtp.host and smtp.port")

