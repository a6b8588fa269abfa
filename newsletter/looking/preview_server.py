"""The preview's HTTP side: a small stdlib server bound to 127.0.0.1 with a fixed set of routes (the page,
its script and style, the built email, JSON state, the issue folder's images, the stats page) and nothing
else, so a path with ``..`` or an absolute path never reaches the disk; a Host check keeps other sites'
pages out by DNS rebinding. What it serves comes from a ``Preview`` (preview.py)."""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Callable, Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ..config import Settings
from ..errors import NewsletterError
from ..hosts import is_loopback
from .browser_email import IMAGE_TYPES, safe_file
from .preview import ISSUE_FILES_ROUTE, Preview, Snapshot

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8025
PAGE_FILES = {  # route -> (file in newsletter/static, content type)
    "/": ("preview.html", "text/html; charset=utf-8"),
    "/static/preview.css": ("preview.css", "text/css; charset=utf-8"),
    "/static/preview.js": ("preview.js", "text/javascript; charset=utf-8"),
}
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}
STATS_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"  # inline CSS and SVG charts, nothing else
PAGE_POLICY = ("default-src 'self'; img-src 'self' data:; frame-src 'self'; object-src 'none'; "
               "base-uri 'none'; form-action 'none'")
EMAIL_POLICY = ("default-src 'none'; img-src * data:; style-src 'unsafe-inline'; font-src * data:; "
                "script-src 'none'; base-uri 'none'; form-action 'none'")


def _page_file(name: str) -> bytes:
    return resources.files("newsletter").joinpath("static", name).read_bytes()


class PreviewHandler(BaseHTTPRequestHandler):
    """Serves the fixed routes of the preview; every other path is a 404."""

    server: PreviewServer
    protocol_version = "HTTP/1.1"
    server_version = "newsletter-preview"

    def log_message(self, format: str, *args: Any) -> None:  # the page polls: stay quiet
        pass

    def do_GET(self) -> None:
        if not self.server.host_allowed(self.headers.get("Host", "")):
            self._send(HTTPStatus.FORBIDDEN, b"unexpected Host header\n", "text/plain; charset=utf-8")
            return
        path, _, query_text = self.path.partition("?")
        query = parse_qs(query_text)
        preview = self.server.preview
        if path in PAGE_FILES:
            name, content_type = PAGE_FILES[path]
            policy = PAGE_POLICY if name.endswith(".html") else None
            self._send(HTTPStatus.OK, _page_file(name), content_type, policy)
        elif path == "/api/state":
            self._json(preview.state(_int(query, "r")))
        elif path == "/api/wait":
            self._json({"version": preview.wait(_int(query, "since") or 0)})
        elif path == "/email":
            html = preview.email_html(_int(query, "r"), dark=_int(query, "dark") == 1)
            if html is None:
                body = b"<!doctype html><title>No build yet</title><p>The issue has not built yet.</p>"
                self._send(HTTPStatus.OK, body, "text/html; charset=utf-8", EMAIL_POLICY)
            else:
                self._send(HTTPStatus.OK, html.encode("utf-8"), "text/html; charset=utf-8", EMAIL_POLICY)
        elif path == "/stats":  # what the issue did once sent (newsletter stats), from the journal and serve's store
            from ..config import load_settings
            from ..stats.page import issue_page

            self._send(HTTPStatus.OK, issue_page(load_settings(preview.root), preview.issue_dir).encode("utf-8"),
                       "text/html; charset=utf-8", STATS_POLICY)
        elif path.startswith(ISSUE_FILES_ROUTE):
            file = safe_file(preview.issue_dir, unquote(path[len(ISSUE_FILES_ROUTE):]), IMAGE_TYPES)
            if file is None:
                self._not_found()
            else:
                self._send(HTTPStatus.OK, file.read_bytes(), IMAGE_TYPES[file.suffix.lower()])
        else:
            self._not_found()

    def _not_found(self) -> None:
        self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8")

    def _json(self, data: Any) -> None:
        self._send(HTTPStatus.OK, json.dumps(data).encode("utf-8"), "application/json")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str, policy: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        if policy:
            self.send_header("Content-Security-Policy", policy)
        self.end_headers()
        self.wfile.write(body)


def _int(query: dict[str, list[str]], key: str) -> int | None:
    try:
        return int(query[key][0])
    except (KeyError, IndexError, ValueError):
        return None


class PreviewServer(ThreadingHTTPServer):
    """The HTTP server and the watcher thread of one preview; ``close()`` stops both."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, preview: Preview, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT):
        self.preview = preview
        self.host = host
        if ":" in host:
            import socket

            self.address_family = socket.AF_INET6
        try:
            super().__init__((host, port), PreviewHandler)
        except OSError as err:
            hint = (f"another program (maybe another preview) uses port {port}; pass --port with another number"
                    if getattr(err, "errno", None) == 98 else "check --host and --port")
            raise NewsletterError(f"cannot listen on {host}:{port}: {err.strerror or err}", hint=hint) from None
        self._thread: threading.Thread | None = None

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup of the host, which can stall on a bad resolver."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.host, self.server_address[1]

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A page closed mid-answer (a reload during a long poll) is normal; anything else is reported."""
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        host = self.host if self.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/"

    def host_allowed(self, header: str) -> bool:
        """Refuse pages of other sites that reach a loopback preview by DNS rebinding."""
        if not is_loopback(self.host):
            return True
        name = urlsplit(f"//{header}").hostname or ""
        return name in LOOPBACK_NAMES or is_loopback(name)

    def start(self) -> PreviewServer:
        """Serve and watch in background threads (for tests and embedding); returns self."""
        self.preview.start_watching()
        self._thread = threading.Thread(target=self.serve_forever, name="newsletter-preview-http", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self.preview.close()
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout=5)
        self.server_close()


def make_preview_server(settings: Settings, issue_dir: Path, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                        list_name: str | None = None,
                        on_rebuild: Callable[[Snapshot, Iterable[str]], None] | None = None) -> PreviewServer:
    """Build the issue once and bind the server; call ``serve_forever`` (or ``start``) next.

    An issue folder or list that does not exist is an error here; a build that
    fails is not: the page shows it until the writer fixes the file.
    """
    issue_dir = Path(issue_dir)
    if not (issue_dir / "issue.md").is_file():
        from ..compose.content import load_issue

        load_issue(issue_dir)  # raises the precise error: no folder, or no issue.md in it
    if list_name:
        from ..lists import check_list_name, require_list

        list_name = check_list_name(list_name)
        require_list(settings.list_path(list_name))
    preview = Preview(settings.root, issue_dir, list_name, on_rebuild)
    server = PreviewServer(preview, host, port)  # bind first: a busy port is the first thing to report
    preview.rebuild()
    return server
