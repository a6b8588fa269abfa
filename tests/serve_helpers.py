"""Helpers for the subscriber service tests: settings edits, a uvicorn in a thread, list rows."""

from __future__ import annotations

import csv
import logging
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from doctor_dns import point_doctor_at_standin
from uvicorn_thread import ReadyServer, serve_in_thread

from newsletter.config import Settings, load_settings

REPO = Path(__file__).resolve().parent.parent
ACCESS_LOG = "newsletter.serve.access"  # the logger of the service's access lines


def set_newsletter(root: Path, **values: str) -> None:
    """Replace ``key = ...`` lines of [newsletter] (they come before any other table in the example)."""
    path = root / "newsletter.toml"
    text = path.read_text(encoding="utf-8")
    for key, value in values.items():
        text, count = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text, count=1)
        assert count == 1, key
    path.write_text(text, encoding="utf-8")


def set_serve(root: Path, **values: str) -> None:
    """Set keys of [serve] (the example's last table): TOML-literal values, replaced or appended."""
    path = root / "newsletter.toml"
    head, marker, serve = path.read_text(encoding="utf-8").partition("\n[serve]\n")
    assert marker, "the example newsletter.toml has a [serve] table"
    for key, value in values.items():
        serve, count = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", serve)
        if not count:
            serve = serve.rstrip("\n") + f"\n{key} = {value}\n"
    path.write_text(head + marker + serve, encoding="utf-8")


def settings_with(root: Path, database_url: str = "", **serve: str) -> Settings:
    if database_url:
        serve["database_url"] = f'"{database_url}"'
    set_serve(root, **serve)
    return load_settings(root)


def list_rows(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return {row["email"].lower(): row for row in csv.DictReader(handle)}


class LogCounter(logging.Handler):
    """Counts the records one logger emits, so a test waits for the lines uvicorn's threads log as they answer."""

    def __init__(self) -> None:
        super().__init__()
        self._changed = threading.Condition()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        with self._changed:
            self.count += 1
            self._changed.notify_all()

    def wait_for(self, count: int, timeout: float = 5.0) -> bool:
        """Whether ``count`` records have come within ``timeout`` seconds."""
        with self._changed:
            return self._changed.wait_for(lambda: self.count >= count, timeout)


@contextmanager
def counting_logs(name: str) -> Iterator[LogCounter]:
    """A LogCounter on the logger ``name`` while the block runs (the logger's level is the caller's to set)."""
    logger = logging.getLogger(name)
    counter = LogCounter()
    logger.addHandler(counter)
    try:
        yield counter
    finally:
        logger.removeHandler(counter)


def bound_socket() -> socket.socket:
    """A socket on 127.0.0.1 with a port the system chose (port 0), for uvicorn to listen on."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class ServiceThread:
    """The service under a real uvicorn on an already bound loopback socket, in a background thread.

    With ``settings``, uvicorn is configured as ``newsletter serve`` configures it (server.uvicorn_config:
    the limits on slow clients, ``slow_clients`` or the defaults); without, as uvicorn comes.
    """

    def __init__(self, app, sock: socket.socket, settings: Settings | None = None, slow_clients=None):
        from newsletter.serve.server import uvicorn_config

        self.sock = sock
        host, port = sock.getsockname()[:2]
        self.url = f"http://{host}:{port}"
        if settings is None:
            config = uvicorn.Config(app, access_log=False, log_level="warning", lifespan="off")
        else:
            config = uvicorn_config(app, settings, host, port, slow_clients, log_level="warning", lifespan="off")
        self.server = ReadyServer(config)
        self.thread: threading.Thread | None = None

    def start(self) -> ServiceThread:
        self.thread = serve_in_thread(self.server, self.sock, name="newsletter-serve")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=10)
        self.sock.close()


def example_copy(folder: Path) -> Path:
    """A private copy of the repository's example newsletter."""
    root = folder / "letter"
    root.mkdir()
    shutil.copy(REPO / "newsletter.toml", root / "newsletter.toml")
    for name in ("templates", "subscribers", "issues"):
        shutil.copytree(REPO / name, root / name)
    point_doctor_at_standin(root)
    return root


def start_mail_server():
    """A real aiosmtpd on 127.0.0.1 that records what arrives: (controller, RecordingHandler)."""
    from aiosmtpd.controller import Controller
    from smtp_fixtures import RecordingHandler, _free_port

    handler = RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port(), server_hostname="mx.example.com",
                            ready_timeout=5.0)
    controller.start()
    return controller, handler


def point_smtp_at(root: Path, port: int) -> None:
    path = root / "newsletter.toml"
    text = re.sub(r"(?ms)^\[smtp\]\n.*?(?=^\[)", f'[smtp]\nhost = "127.0.0.1"\nport = {port}\n'
                  'security = "none"\ntimeout = 5.0\n\n', path.read_text(encoding="utf-8"))
    path.write_text(text, encoding="utf-8")


@dataclass
class World:
    """A newsletter folder, its mail server, its running service and the store behind it."""

    root: Path
    settings: Settings
    mail: object  # RecordingHandler
    service: ServiceThread
    store: object
    controller: object

    @property
    def url(self) -> str:
        return self.service.url

    def stop(self) -> None:
        self.service.stop()
        self.store.close()
        self.controller.stop()

    def links(self, address: str, path: str) -> list[str]:
        """Every link to ``path`` in the plain-text mail that arrived for ``address``, oldest first."""
        found = []
        for received in list(self.mail.received):
            if address.lower() in (r.lower() for r in received.rcpt_tos):
                text = received.message().get_body(("plain",)).get_content()
                found += re.findall(rf"{re.escape(self.url)}{path}[^\s>\"]+", text)
        return found


def set_stats(root: Path, **values: str) -> None:
    """Append a [stats] table with these TOML-literal values."""
    path = root / "newsletter.toml"
    lines = "".join(f"{key} = {value}\n" for key, value in values.items())
    path.write_text(path.read_text(encoding="utf-8").rstrip("\n") + f"\n\n[stats]\n{lines}", encoding="utf-8")


def start_world(folder: Path, *, database_url: str = "", slow_clients=None, webhook_verifier=None, clock=None,
                stats: dict[str, str] | None = None, **serve: str) -> World:
    """The example newsletter sending over SMTP to a local aiosmtpd, served by a real uvicorn configured as
    ``newsletter serve`` configures it, on a store opened as it opens it (``clock``: the service's, for
    clicks; ``stats``: a [stats] table)."""
    from newsletter.serve.app import DEFAULT_SLOW_CLIENTS, create_app
    from newsletter.serve.connect import SERVICE_WAIT_SECONDS, open_store

    root = example_copy(folder)
    controller, handler = start_mail_server()
    sock = bound_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    set_newsletter(root, provider='"smtp"', base_url=f'"{url}/"', unsubscribe_url=f'"{url}/unsubscribe/{{token}}"')
    point_smtp_at(root, controller.port)
    if database_url:
        serve["database_url"] = f'"{database_url}"'
    set_serve(root, **serve)
    if stats:  # after [serve], which set_serve takes to be the last table
        set_stats(root, **stats)
    settings = load_settings(root)
    store = open_store(settings, wait=SERVICE_WAIT_SECONDS)
    slow_clients = slow_clients or DEFAULT_SLOW_CLIENTS
    app = create_app(settings, store, secret=os.environ["NEWSLETTER_UNSUBSCRIBE_SECRET"].encode(),
                     slow_clients=slow_clients, webhook_verifier=webhook_verifier,
                     **({"clock": clock} if clock is not None else {}))
    return World(root, settings, handler, ServiceThread(app, sock, settings, slow_clients).start(), store, controller)


class StoppablePostgres:
    """A throwaway PostgreSQL cluster of one test's own (postgres_fixtures.throwaway_cluster), which the test
    can stop and start again on the same port: the shared session cluster must never go down."""

    def __init__(self):
        from postgres_fixtures import throwaway_cluster

        self._cluster = throwaway_cluster(fsync=False)
        self.url = ""

    def __enter__(self) -> StoppablePostgres:
        import psycopg

        self.url = self._cluster.__enter__()
        with psycopg.connect(self.url, autocommit=True) as conn:
            self.data = conn.execute("SHOW data_directory").fetchone()[0]
        return self

    def __exit__(self, *exc) -> None:
        self._cluster.__exit__(*exc)

    def _pg_ctl(self, *args: str) -> None:
        import subprocess

        from postgres_fixtures import _as_owner, _binaries

        owner = Path(self.data).owner()
        command = [f"{_binaries()}/pg_ctl", "-D", self.data, *args]
        subprocess.run(_as_owner(command, owner if os.geteuid() == 0 else None), check=True, capture_output=True,
                       timeout=120)

    def stop(self) -> None:
        """Stop the server (fast shutdown: sessions are ended, new connections refused); returns once stopped."""
        self._pg_ctl("-m", "fast", "-w", "stop")

    def start(self) -> None:
        """Start it again with the options it had, on the same port; returns once it accepts connections."""
        from urllib.parse import urlsplit

        folder = os.path.dirname(self.data)
        options = f"-h {urlsplit(self.url).hostname} -p {urlsplit(self.url).port} -k {folder} -F"
        self._pg_ctl("-l", os.path.join(folder, "log"), "-w", "-o", options, "start")


def webhook_key_pair():
    """(private key, the base64 public key SendGrid would show) for signing Event Webhook batches."""
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, base64.b64encode(public).decode("ascii")


def sign_batch(private, body: bytes, timestamp: int | None = None) -> tuple[bytes, str]:
    """(DER signature, timestamp) as SendGrid signs a batch: ECDSA P-256 with SHA-256 over timestamp + body."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return private.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256())), stamp


def webhook_headers(signature: bytes | str, stamp: str) -> dict[str, str]:
    import base64

    text = signature if isinstance(signature, str) else base64.b64encode(signature).decode()
    return {"X-Twilio-Email-Event-Webhook-Signature": text, "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
            "Content-Type": "application/json"}


def malleated(signature: bytes) -> bytes:
    """The same ECDSA signature with s replaced by n - s: other bytes, and just as valid."""
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

    p256_order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    r, s = decode_dss_signature(signature)
    return encode_dss_signature(r, p256_order - s)
