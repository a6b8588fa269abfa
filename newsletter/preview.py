"""A local preview of an issue that rebuilds itself while the writer edits.

``PreviewServer`` is a small stdlib HTTP server bound to 127.0.0.1. It serves a
fixed set of routes (the page, its script and style, the built email, JSON
state, and image files of the issue folder) and nothing else, so a path with
``..`` or an absolute path never reaches the disk. A background thread watches
the issue, the templates, the settings and the chosen subscriber list with
watchfiles and rebuilds on every change; the page long-polls ``/api/wait`` for
the build number and refreshes itself, keeping the view the writer chose. A
build that fails keeps the server running and shows the file, line and message.

Subscriber data picked with ``--list`` stays in this process and the local
page: the unsubscribe links shown are signed with the sample secret, so they
are not the recipient's real links.
"""

from __future__ import annotations

import contextlib
import dataclasses
import html as html_lib
import itertools
import json
import re
import socketserver
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from .compose.build import SAMPLE_RECIPIENT, BuiltIssue, sample_values
from .config import Settings, load_settings
from .compose.content import Issue, load_issue
from .errors import NewsletterError, display_path
from .compose.markdown import is_absolute
from .compose.personalize import Personalizer, merge_values
from .compose.render import issue_base_url
from .compose.unsubscribe import unsubscribe_url
from .hosts import is_loopback

if TYPE_CHECKING:
    from .checks import Finding

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8025
MAX_RECIPIENTS = 500  # the picker lists this many of the list's recipients
WAIT_SECONDS = 20.0  # longest a /api/wait request is held open
IMAGE_TYPES = {
    ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
    ".webp": "image/webp", ".svg": "image/svg+xml", ".avif": "image/avif",
}
PAGE_FILES = {  # route -> (file in newsletter/static, content type)
    "/": ("preview.html", "text/html; charset=utf-8"),
    "/static/preview.css": ("preview.css", "text/css; charset=utf-8"),
    "/static/preview.js": ("preview.js", "text/javascript; charset=utf-8"),
}
ISSUE_FILES_ROUTE = "/issue-files/"
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}
STATS_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"  # inline CSS and SVG charts, nothing else
PAGE_POLICY = ("default-src 'self'; img-src 'self' data:; frame-src 'self'; object-src 'none'; "
               "base-uri 'none'; form-action 'none'")
EMAIL_POLICY = ("default-src 'none'; img-src * data:; style-src 'unsafe-inline'; font-src * data:; "
                "script-src 'none'; base-uri 'none'; form-action 'none'")


# --- the email as a browser shows it ------------------------------------------

_DARK_QUERY = re.compile(r"\(\s*prefers-color-scheme\s*:\s*(dark|light)\s*\)", re.IGNORECASE)
_STYLE_BLOCK = re.compile(r"(<style\b[^>]*>)(.*?)(</style\s*>)", re.IGNORECASE | re.DOTALL)
_IMG_SRC = re.compile(r"(<img\b[^>]*?\bsrc\s*=\s*)([\"'])(.*?)\2", re.IGNORECASE | re.DOTALL)
_HEAD_END = re.compile(r"</head\s*>", re.IGNORECASE)


def dark_variant(html: str) -> str:
    """The email as a dark-mode mail client shows it, in any browser and any iframe.

    A frame cannot be told that the reader prefers dark mode, so the theme's
    ``@media (prefers-color-scheme: dark)`` rules are made unconditional: the
    condition becomes one that always holds, the light one one that never does,
    and ``color-scheme: dark`` darkens whatever the theme does not colour.
    """
    def rewrite(match: re.Match) -> str:
        css = _DARK_QUERY.sub(lambda m: "(min-width: 0px)" if m.group(1).lower() == "dark" else "(max-width: 0px)",
                              match.group(2))
        return match.group(1) + css + match.group(3)

    dark = _STYLE_BLOCK.sub(rewrite, html)
    marker = '<style data-preview="dark">:root { color-scheme: dark; }</style>'
    head_end = _HEAD_END.search(dark)
    return dark[: head_end.start()] + marker + dark[head_end.start():] if head_end else marker + dark


def local_image(src: str, settings: Settings, issue: Issue) -> Path | None:
    """The file in the issue folder an image URL stands for, if it exists there.

    Articles name images relative to the issue (``photo.jpg``); the build makes
    them absolute against ``base_url``, where they appear only once published.
    """
    src = html_lib.unescape(src.strip())
    base = issue_base_url(settings, issue)
    if base and src.startswith(base):
        relative = src[len(base):]
    elif not is_absolute(src) and not src.startswith("/"):
        relative = src
    else:
        return None
    relative = unquote(urlsplit(relative).path)
    return safe_file(issue.path, relative, IMAGE_TYPES)


def email_for_browser(html: str, settings: Settings, issue: Issue, local_url: Callable[[Path], str]) -> str:
    """``html`` with images of the issue folder pointed at ``local_url(path)``, so they show before publishing."""
    def rewrite(match: re.Match) -> str:
        path = local_image(match.group(3), settings, issue)
        if path is None:
            return match.group(0)
        return f"{match.group(1)}{match.group(2)}{html_lib.escape(local_url(path))}{match.group(2)}"

    return _IMG_SRC.sub(rewrite, html)


def safe_file(folder: Path, relative: str, types: Iterable[str]) -> Path | None:
    """``folder/relative`` when it is a file of an allowed type inside ``folder``; None otherwise.

    No segment may be empty, ``.`` or ``..``, and the resolved path (after
    symbolic links) must still lie inside the folder.
    """
    segments = relative.split("/")
    if any(s in ("", ".", "..") or "\\" in s or "\0" in s for s in segments):
        return None
    root = folder.resolve()
    try:
        path = root.joinpath(*segments).resolve()
        path.relative_to(root)
    except (ValueError, OSError):
        return None
    if path.suffix.lower() not in set(types) or not path.is_file():
        return None
    return path


# --- what the preview shows ----------------------------------------------------

@dataclass(frozen=True)
class Recipient:
    """A row of the chosen list as the picker shows it; its values never leave this process but to the page."""

    label: str
    values: dict[str, str]


@dataclass(frozen=True)
class BuildError:
    """Why the last rebuild failed: the file and line to fix, what is wrong, and the fix."""

    message: str
    where: str = ""
    line: int | None = None
    hint: str = ""
    details: str = ""

    @classmethod
    def of(cls, err: BaseException) -> BuildError:
        if isinstance(err, NewsletterError):
            return cls(err.reason, err.where or "", err.line, err.hint or "")
        return cls(f"internal error: {type(err).__name__}: {err}",
                   details="".join(traceback.format_exception(err)))

    def __str__(self) -> str:
        location = f"{self.where}:{self.line}" if self.where and self.line else self.where
        text = f"{location}: {self.message}" if location else self.message
        return f"{text} ({self.hint})" if self.hint else text


@dataclass(frozen=True)
class Snapshot:
    """What the page shows at one moment: the last good build, its findings, and the last error.

    ``version`` counts every change the page should fetch; ``build`` counts
    builds of the email, so findings arriving later do not reload the frame.
    ``findings`` is None while the checks of this build still run.
    """

    version: int
    build: int = 0
    settings: Settings | None = None
    issue: Issue | None = None
    built: BuiltIssue | None = None
    findings: tuple[Finding, ...] | None = None
    check_error: BuildError | None = None
    recipients: tuple[Recipient, ...] = ()
    error: BuildError | None = None
    seconds: float = 0.0

    def values(self, recipient: int | None) -> dict[str, str]:
        if recipient is not None and 0 <= recipient < len(self.recipients):
            return self.recipients[recipient].values
        return sample_values(self.settings) if self.settings else {}


def load_recipients(settings: Settings, list_name: str, limit: int = MAX_RECIPIENTS) -> tuple[Recipient, ...]:
    """The first ``limit`` recipients a send to ``list_name`` would reach, with their merge values."""
    from .lists import select_recipients

    selection = select_recipients(settings.list_path(list_name))
    with contextlib.closing(selection):
        rows = list(itertools.islice(selection, limit))
    recipients = []
    for sub in rows:
        columns = {**sub.fields, "email": sub.email, "name": sub.name}
        link = unsubscribe_url(settings, list_name, sub.email, None)  # sample secret: not a working link
        label = f"{sub.name} <{sub.email}>" if sub.name else sub.email
        recipients.append(Recipient(label, merge_values(columns, link)))
    return tuple(recipients)


class Preview:
    """The issue being previewed: rebuilds on demand, hands out the latest build, wakes waiting pages."""

    def __init__(self, root: Path, issue_dir: Path, list_name: str | None = None,
                 on_rebuild: Callable[[Snapshot, Iterable[str]], None] | None = None):
        self.root = Path(root).resolve()
        self.issue_dir = Path(issue_dir).resolve()
        self.list_name = list_name
        self.on_rebuild = on_rebuild
        self._changed = threading.Condition()
        self._checking = threading.Lock()  # one check run at a time
        self._closing = False
        self.snapshot = Snapshot(version=0)
        self._stop = threading.Event()
        self._watchers: list[threading.Thread] = []
        self._building = threading.Lock()  # watchers of several folders may ask at once

    def rebuild(self, changed: Iterable[str] = ()) -> Snapshot:
        """Build the issue again and publish it; its checks follow in a worker thread.

        A build that fails keeps the last good one on the page and adds the error.
        Checks (some run external programs) never hold up the email itself.
        """
        with self._building:
            return self._rebuild(changed)

    def _rebuild(self, changed: Iterable[str]) -> Snapshot:
        from .compose.build import build

        started = time.monotonic()
        previous = self.snapshot
        try:
            settings = load_settings(self.root)
            issue = load_issue(self.issue_dir)
            built = build(settings, dataclasses.replace(issue, missing_articles=()))  # as `newsletter check` does
            recipients = load_recipients(settings, self.list_name) if self.list_name else ()
            snapshot = Snapshot(previous.version + 1, previous.build + 1, settings, issue, built, None, None,
                                recipients, seconds=time.monotonic() - started)
        except Exception as err:  # noqa: BLE001 - any failure belongs in the page; the server keeps running
            snapshot = dataclasses.replace(previous, version=previous.version + 1, error=BuildError.of(err),
                                           seconds=time.monotonic() - started)
        self._publish(snapshot, changed)
        if snapshot.error is None:
            threading.Thread(target=self._check, args=(snapshot,), name="newsletter-preview-check",
                             daemon=True).start()
        return snapshot

    def _publish(self, snapshot: Snapshot, changed: Iterable[str] = ()) -> None:
        with self._changed:
            self.snapshot = snapshot
            self._changed.notify_all()
        if self.on_rebuild:
            self.on_rebuild(snapshot, changed)

    def _check(self, snapshot: Snapshot) -> None:
        """Run `newsletter check`'s checks on a build; drop the result if a newer build came meanwhile."""
        from .checks import CheckContext, run_checks_on

        with self._checking:
            if self.snapshot.build != snapshot.build or snapshot.settings is None:
                return
            findings: tuple[Finding, ...] = ()
            problem = None
            try:
                ctx = CheckContext(snapshot.settings, snapshot.issue, snapshot.built)
                findings = tuple(run_checks_on(ctx))
            except Exception as err:  # noqa: BLE001 - a failing check is shown, not fatal
                problem = BuildError.of(err)
            with self._changed:
                current = self.snapshot
                if current.build != snapshot.build:
                    return
                updated = dataclasses.replace(current, version=current.version + 1, findings=findings,
                                              check_error=problem)
            self._publish(updated)

    def wait_for_checks(self, timeout: float = 60.0) -> Snapshot:
        """The snapshot once the checks of the latest build are in (for tests and scripts)."""
        with self._changed:
            self._changed.wait_for(lambda: self.snapshot.findings is not None or self.snapshot.built is None
                                   or self._closing, timeout)
            return self.snapshot

    def wait(self, since: int, timeout: float = WAIT_SECONDS) -> int:
        """Block until the build number passes ``since`` (or the timeout); return the build number."""
        with self._changed:
            self._changed.wait_for(lambda: self.snapshot.version != since or self._closing, timeout)
            return self.snapshot.version

    # watching

    def watch_plan(self) -> list[tuple[list[Path], bool]]:
        """(folders, recursive) to watch: the issue and the templates deeply; the folders of
        newsletter.toml and of the chosen list only at their top, so a big checkout
        (.venv, build/, site/) costs no watches."""
        deep = [p for p in (self.issue_dir, self.root / "templates") if p.is_dir()]
        flat = [self.root, *(p.parent for p in self._list_paths() if p.parent != self.root)]
        return [(deep, True), (flat, False)]

    def is_relevant(self, path: str) -> bool:
        """A change to the issue, a template, newsletter.toml or the chosen list triggers a rebuild."""
        changed = Path(path).resolve()
        if changed in (self.root / "newsletter.toml", *self._list_paths()):
            return True
        return any(changed.is_relative_to(folder) for folder in (self.issue_dir, self.root / "templates"))

    def _list_paths(self) -> list[Path]:
        return [self.root / "subscribers" / f"{self.list_name}.csv"] if self.list_name else []

    def start_watching(self) -> None:
        """Rebuild in background threads whenever a relevant file changes."""
        import watchfiles

        default = watchfiles.DefaultFilter()

        def accept(change: Any, path: str) -> bool:
            return default(change, path) and self.is_relevant(path)

        def run(paths: list[Path], recursive: bool) -> None:
            for changes in watchfiles.watch(*paths, watch_filter=accept, stop_event=self._stop, recursive=recursive,
                                            debounce=400, step=50, rust_timeout=500, raise_interrupt=False):
                if self._stop.is_set():
                    break
                changed = {path for _, path in changes}
                shown = {p for p in changed if Path(p).exists()} or changed  # not an editor's vanished temp file
                self.rebuild(sorted(display_path(p) for p in shown))

        for paths, recursive in self.watch_plan():
            if paths:
                watcher = threading.Thread(target=run, args=(paths, recursive), name="newsletter-preview-watch",
                                           daemon=True)
                watcher.start()
                self._watchers.append(watcher)

    def close(self) -> None:
        self._stop.set()
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        for watcher in self._watchers:
            watcher.join(timeout=5)

    # what the page asks for

    def email_html(self, recipient: int | None = None, dark: bool = False) -> str | None:
        """The email as the recipient (or the sample reader) receives it, images served locally."""
        snap = self.snapshot
        if snap.built is None or snap.settings is None:
            return None
        html = Personalizer(snap.built.html, snap.built.fields).fill(snap.values(recipient))
        html = email_for_browser(html, snap.settings, snap.built.issue, self.image_url)
        return dark_variant(html) if dark else html

    def image_url(self, path: Path) -> str:
        relative = path.relative_to(self.issue_dir.resolve())
        return ISSUE_FILES_ROUTE + "/".join(relative.parts)

    def state(self, recipient: int | None = None) -> dict[str, Any]:
        """Everything the page shows besides the email itself, as JSON-ready data."""
        from .checks import GMAIL_CLIP_BYTES

        snap = self.snapshot
        state: dict[str, Any] = {
            "version": snap.version,
            "build": snap.build,
            "seconds": round(snap.seconds, 3),
            "error": dataclasses.asdict(snap.error) | {"text": str(snap.error)} if snap.error else None,
            "list": self.list_name,
            "recipients": [{"id": i, "label": r.label} for i, r in enumerate(snap.recipients)],
            "recipient_limit": MAX_RECIPIENTS,
            "ready": snap.built is not None,
        }
        if snap.built is None or snap.settings is None:
            return state
        values = snap.values(recipient)
        html_part, text_part = snap.built.personalizers()
        size = len(html_part.fill(values).encode("utf-8"))
        issue = snap.built.issue
        state.update({
            "issue": {"name": issue.name, "subject": issue.subject, "preheader": issue.preheader,
                      "date": issue.date.isoformat(), "number": issue.number},
            "from": snap.settings.from_address,
            "reply_to": snap.settings.reply_to,
            "to": values.get("subscriber.email", SAMPLE_RECIPIENT["email"]),
            "text": text_part.fill(values),
            "size": size,
            "size_limit": GMAIL_CLIP_BYTES,
            "findings": None if snap.findings is None else [
                {**f.to_dict(), "location": f.location()} for f in snap.findings],
            "check_error": str(snap.check_error) if snap.check_error else None,
        })
        return state


# --- the HTTP side ------------------------------------------------------------

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
            from .config import load_settings
            from .stats.page import issue_page

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
        from .compose.content import load_issue

        load_issue(issue_dir)  # raises the precise error: no folder, or no issue.md in it
    if list_name:
        from .lists import check_list_name, require_list

        list_name = check_list_name(list_name)
        require_list(settings.list_path(list_name))
    preview = Preview(settings.root, issue_dir, list_name, on_rebuild)
    server = PreviewServer(preview, host, port)  # bind first: a busy port is the first thing to report
    preview.rebuild()
    return server
