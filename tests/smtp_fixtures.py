"""A real SMTP server on 127.0.0.1 (aiosmtpd) that records what it receives and misbehaves on request.

Fixtures:

- ``smtp_certificate`` (session): a test CA and a server certificate for
  localhost / 127.0.0.1, written to files; ``.client_context()`` trusts it.
- ``start_smtp_server``: a factory,
  ``start_smtp_server(starttls=..., auth=..., implicit_tls=..., idle_timeout=...)``.
- ``smtp_server``: plain SMTP, no TLS, no login (a local relay).
- ``smtp_tls_server``: STARTTLS required, then AUTH required (user SMTP_USER, password SMTP_PASSWORD).
- ``smtp_ssl_server``: implicit TLS (SMTPS), AUTH required.

Each yields an ``SmtpServer``: ``.host``, ``.port``, ``.handler`` (a
``RecordingHandler``: ``.received``, ``.recipients()``, ``.answer(...)``,
``.drop_connection(...)``, ``.delay_reply(...)``, ``.login_refusal``), ``.settings(**overrides)``
(SmtpSettings for it) and ``.provider(password=None, **overrides)`` (an
SmtpProvider that trusts the test CA). Register with
``pytest_plugins = ["smtp_fixtures"]`` (tests/ is on sys.path); needs ``cryptography``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import ipaddress
import secrets
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from newsletter.config import SmtpSettings

HOST = "127.0.0.1"
SMTP_USER = "dispatch@example.com"
SMTP_PASSWORD = f"test-pw-{secrets.token_hex(8)}"  # distinctive, so a test can look for leaks


# -- a test certificate -------------------------------------------------------


@dataclass(frozen=True)
class Certificate:
    ca_path: Path
    cert_path: Path
    key_path: Path

    def client_context(self) -> ssl.SSLContext:
        """What a client that trusts only the test CA uses (host name checked, as in production)."""
        return ssl.create_default_context(cafile=str(self.ca_path))

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(self.cert_path), str(self.key_path))
        return context


def make_certificate(folder: Path) -> Certificate:
    """A CA and a server certificate for localhost and 127.0.0.1, as PEM files in ``folder``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "newsletter test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    paths = Certificate(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    paths.ca_path.write_bytes(ca_cert.public_bytes(pem))
    paths.cert_path.write_bytes(cert.public_bytes(pem))
    paths.key_path.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
    return paths


# -- the handler --------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """One message the server accepted (or swallowed before dropping the connection)."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes  # exactly what arrived, dots un-stuffed
    peer: tuple  # (host, port) of the client: one per connection
    tls: bool
    login: str | None

    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)


@dataclass
class _Drop:
    after: int  # drop once this many messages have been received
    stage: str  # "mail" | "data" | "data-lost"
    times: int | None  # None: every time
    stop_listening: bool  # and refuse new connections from then on


@dataclass
class Hold:
    """A message held without an answer (``RecordingHandler.hold``)."""

    after: int
    reached: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


@dataclass
class RecordingHandler:
    """Records every message; can refuse chosen addresses and drop connections mid-send."""

    received: list[Received] = field(default_factory=list)
    replies: dict[tuple[str, str], str] = field(default_factory=dict)  # (stage, address) -> reply
    reply_times: dict[tuple[str, str], int] = field(default_factory=dict)  # answers left, when limited
    drops: list[_Drop] = field(default_factory=list)
    connections_dropped: int = 0
    logins: list[str] = field(default_factory=list)
    delays: list[list] = field(default_factory=list)  # [after, seconds, times left]
    require_login: bool = False  # answer 530 to MAIL FROM before a successful AUTH
    # (login, password) -> the 535 reply to every AUTH: a server that refuses and quotes what it got
    login_refusal: Callable[[str, str], str] | None = None
    listener: Any = None  # the asyncio server accepting connections, set once started
    lock: threading.Lock = field(default_factory=threading.Lock)
    holds: list[Hold] = field(default_factory=list)

    # -- what a test asks for

    def answer(self, address: str, reply: str, *, at: str = "RCPT", times: int | None = None) -> None:
        """Answer ``reply`` (e.g. "550 5.1.1 mailbox unavailable") for ``address`` at RCPT or after DATA,
        ``times`` times (None: always)."""
        assert at in ("RCPT", "DATA")
        self.replies[(at, address.lower())] = reply
        if times is not None:
            self.reply_times[(at, address.lower())] = times

    def _reply(self, at: str, address: str) -> str | None:
        key = (at, address.lower())
        reply = self.replies.get(key)
        if reply and key in self.reply_times:
            self.reply_times[key] -= 1
            if self.reply_times[key] <= 0:
                del self.replies[key], self.reply_times[key]
        return reply

    def drop_connection(self, *, after: int, stage: str = "mail", times: int | None = 1,
                        stop_listening: bool = False) -> None:
        """Close the connection once ``after`` messages have arrived.

        ``stage``: "mail" closes at the next MAIL FROM (nothing of the next message sent);
        "data" receives the next message, records it, and closes instead of answering;
        "data-lost" receives it, forgets it, and closes instead of answering.
        ``times``: how many connections to drop so (None: every one); ``stop_listening``:
        also stop accepting connections, as a server that went away does.
        """
        assert stage in ("mail", "data", "data-lost")
        self.drops.append(_Drop(after, stage, times, stop_listening))

    def _close(self, server, drop: _Drop) -> None:
        if drop.stop_listening and self.listener is not None:
            self.listener.close()
        server.transport.close()

    def delay_reply(self, *, after: int, seconds: float, times: int = 1) -> None:
        """Receive the message after the first ``after`` ones, keep it, and wait ``seconds`` before answering."""
        self.delays.append([after, seconds, times])

    def hold(self, *, after: int) -> Hold:
        """Receive the message after the first ``after`` ones, record it, and answer only once the test says
        ``release`` (``reached`` is set when it arrives): a client stopped there is killed mid-request."""
        hold = Hold(after)
        self.holds.append(hold)
        return hold

    def recipients(self) -> list[str]:
        return [rcpt for message in self.received for rcpt in message.rcpt_tos]

    # -- aiosmtpd hooks

    def _due_drop(self, stage: str) -> _Drop | None:
        for drop in self.drops:
            if drop.stage == stage and len(self.received) >= drop.after and drop.times != 0:
                if drop.times is not None:
                    drop.times -= 1
                self.connections_dropped += 1
                return drop
        return None

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        with self.lock:
            drop = self._due_drop("mail")
        if drop is not None:
            self._close(server, drop)
            return "421 4.4.2 (never seen by the client: the connection is closed)"
        if self.require_login and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self._reply("RCPT", address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        record = Received(
            mail_from=envelope.mail_from,
            rcpt_tos=tuple(envelope.rcpt_tos),
            data=bytes(envelope.original_content),
            peer=tuple(session.peer),
            tls=server.transport.get_extra_info("ssl_object") is not None,
            login=session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None,
        )
        with self.lock:
            drop = self._due_drop("data") or self._due_drop("data-lost")
            refused = [self.replies[("DATA", a.lower())] for a in envelope.rcpt_tos
                       if ("DATA", a.lower()) in self.replies]
            if drop is None and refused:
                return refused[0]
            if drop is None or drop.stage == "data":
                self.received.append(record)
            delay = 0.0
            for pending in self.delays:
                if drop is None and len(self.received) - 1 >= pending[0] and pending[2] > 0:
                    pending[2] -= 1
                    delay = pending[1]
        if drop is not None:
            self._close(server, drop)
            return "250 (never seen by the client: the connection is closed)"
        if delay:
            await asyncio.sleep(delay)
        for hold in self.holds:
            if len(self.received) - 1 >= hold.after and not hold.reached.is_set():
                hold.reached.set()
                await asyncio.to_thread(hold.release.wait, 60)
        return "250 2.0.0 OK queued"

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        if self.login_refusal is not None and isinstance(auth_data, LoginPassword):
            reply = self.login_refusal(auth_data.login.decode(), auth_data.password.decode())
            return AuthResult(success=False, handled=False, message=reply)
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == SMTP_USER
              and auth_data.password.decode() == SMTP_PASSWORD)
        if ok:
            self.logins.append(SMTP_USER)
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


# -- the server ---------------------------------------------------------------


@dataclass
class SmtpServer:
    host: str
    port: int
    handler: RecordingHandler
    security: str  # what a client should use: "none" | "starttls" | "ssl"
    username: str = ""
    certificate: Certificate | None = None

    def settings(self, **overrides) -> SmtpSettings:
        values = {"host": self.host, "port": self.port, "security": self.security, "username": self.username,
                  "password_env": "NEWSLETTER_TEST_SMTP_PASSWORD", "timeout": 5.0}
        values.update(overrides)
        return SmtpSettings(**values)

    def provider(self, *, password: str | None = None, **overrides):
        """An SmtpProvider for this server that trusts the test CA; password defaults to the right one."""
        from newsletter.providers.smtp import SmtpProvider

        settings = self.settings(**overrides)
        if password is None and settings.username:
            password = SMTP_PASSWORD
        context = self.certificate.client_context() if self.certificate else None
        return SmtpProvider(settings, password=password, ssl_context=context)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def smtp_certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("smtp-tls"))


@pytest.fixture
def start_smtp_server(smtp_certificate: Certificate) -> Iterator[Callable[..., SmtpServer]]:
    """Start aiosmtpd servers for one test:
    ``start_smtp_server(starttls=False, auth=False, implicit_tls=False, idle_timeout=300)``."""
    controllers: list[Controller] = []

    def start(*, starttls: bool = False, auth: bool = False, implicit_tls: bool = False,
              idle_timeout: float = 300) -> SmtpServer:
        handler = RecordingHandler()
        kwargs: dict[str, Any] = {"hostname": HOST, "port": _free_port(), "server_hostname": "mx.example.com",
                                  "ready_timeout": 5.0, "timeout": idle_timeout}
        if implicit_tls:
            kwargs["ssl_context"] = smtp_certificate.server_context()
        if starttls:
            kwargs.update(tls_context=smtp_certificate.server_context(), require_starttls=True)
        if auth:
            # aiosmtpd knows only of TLS it negotiated itself (STARTTLS), so with implicit TLS
            # (or none) it must offer AUTH "without TLS", and the handler insists on a login instead.
            kwargs.update(authenticator=handler.authenticate, auth_required=starttls, auth_require_tls=starttls)
            handler.require_login = True
        controller = Controller(handler, **kwargs)
        controller.start()
        handler.listener = controller.server
        controllers.append(controller)
        security = "ssl" if implicit_tls else "starttls" if starttls else "none"
        return SmtpServer(HOST, controller.port, handler, security, SMTP_USER if auth else "",
                          smtp_certificate if (implicit_tls or starttls) else None)

    yield start
    for controller in controllers:
        controller.stop()


@pytest.fixture
def smtp_server(start_smtp_server) -> SmtpServer:
    return start_smtp_server()


@pytest.fixture
def smtp_tls_server(start_smtp_server) -> SmtpServer:
    return start_smtp_server(starttls=True, auth=True)


@pytest.fixture
def smtp_ssl_server(start_smtp_server) -> SmtpServer:
    return start_smtp_server(implicit_tls=True, auth=True)
