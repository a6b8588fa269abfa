"""Pictures of the email at phone and desktop widths, taken by headless Chromium.

The browser is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
JSON messages on file descriptors 3 and 4), so nothing beyond the standard library
and a Chromium binary is needed. The protocol gives what plain ``--screenshot``
cannot: the exact viewport width, a picture as tall as the whole email, and real
``prefers-color-scheme: dark`` emulation, so ``--dark`` shows the theme's own
dark-mode styles the way Apple Mail and iOS Mail apply them.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import signal
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from .compose.build import build_issue, default_build_dir, sample_values
from .config import Settings
from .errors import NewsletterError, display_path
from .preview import email_for_browser
from .themes.layout import phone_breakpoint

BROWSER_ENV = "NEWSLETTER_CHROMIUM"
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# A phone (an iPhone's 375 CSS pixels) and a desktop window wide enough for a 600 px email and its
# margins: the default when the theme's CSS has no @media (max-width) breakpoint to place them around.
PHONE_WIDTH, DESKTOP_WIDTH = 375, 800
DEFAULT_WIDTHS = (PHONE_WIDTH, DESKTOP_WIDTH)
MIN_WIDTH, MAX_WIDTH = 200, 2400
MAX_HEIGHT = 16384  # Chromium's largest texture; taller emails are cut here
INSTALL_HINT = f"install Chromium with: sudo apt-get install chromium; or set {BROWSER_ENV} to a Chromium or Chrome binary"
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--disable-extensions", "--hide-scrollbars", "--mute-audio",
    "--remote-debugging-pipe",
)


@dataclass(frozen=True)
class Shot:
    """One picture written: where, and its size in CSS pixels."""

    path: Path
    width: int
    height: int


def find_chromium() -> str:
    """The Chromium binary to use: $NEWSLETTER_CHROMIUM, else the first browser on PATH."""
    configured = os.environ.get(BROWSER_ENV, "").strip()
    if configured:
        found = shutil.which(configured)
        if not found:
            raise NewsletterError(f"{BROWSER_ENV}={configured} is not an executable file", hint=INSTALL_HINT)
        return found
    for name in BROWSER_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise NewsletterError("no Chromium browser found to take screenshots with", hint=INSTALL_HINT)


class DevToolsError(NewsletterError):
    """The browser failed or refused a command; the message says which."""


def _pipe_above_4() -> tuple[int, int]:
    """A pipe whose ends are neither fd 3 nor 4, so wiring them to the child's 3 and 4 cannot collide."""
    ends = []
    for fd in os.pipe():
        ends.append(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10))
        os.close(fd)
    return ends[0], ends[1]


class Browser:
    """A headless Chromium process and the DevTools pipe to it; use as a context manager."""

    def __init__(self, executable: str | None = None, timeout: float = 60.0):
        self.executable = executable or find_chromium()
        self.timeout = timeout
        self._profile = tempfile.TemporaryDirectory(prefix="newsletter-chromium-")
        self._log = Path(self._profile.name) / "chromium.log"
        to_browser_r, self._to_browser = _pipe_above_4()
        self._from_browser, from_browser_w = _pipe_above_4()
        args = [self.executable, *CHROMIUM_FLAGS, f"--user-data-dir={self._profile.name}", "about:blank"]
        # The protocol lives on the child's fds 3 and 4; posix_spawn wires them without a preexec_fn.
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
            (os.POSIX_SPAWN_OPEN, 2, str(self._log), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
            (os.POSIX_SPAWN_DUP2, to_browser_r, 3),
            (os.POSIX_SPAWN_DUP2, from_browser_w, 4),
        ]
        try:
            self._pid = os.posix_spawn(self.executable, args, os.environ, file_actions=actions)
        except OSError as err:
            for fd in (self._to_browser, self._from_browser):
                os.close(fd)
            self._profile.cleanup()
            raise NewsletterError(f"cannot start {self.executable}: {err.strerror}", hint=INSTALL_HINT) from None
        finally:
            os.close(to_browser_r)
            os.close(from_browser_w)
        self._returncode: int | None = None
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict] = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _exited(self) -> bool:
        if self._returncode is None:
            pid, status = os.waitpid(self._pid, os.WNOHANG)
            if pid:
                self._returncode = os.waitstatus_to_exitcode(status)
        return self._returncode is not None

    def close(self) -> None:
        """Ask the browser to quit, wait a little, then kill it; remove its profile."""
        if not self._exited():
            try:
                self.send("Browser.close", timeout=5)
            except NewsletterError:
                pass
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        deadline = time.monotonic() + 10
        while not self._exited() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not self._exited():
            os.kill(self._pid, signal.SIGKILL)
            os.waitpid(self._pid, 0)
            self._returncode = -signal.SIGKILL
        self._profile.cleanup()

    def _failure(self, what: str) -> DevToolsError:
        detail = ""
        if self._exited():
            try:
                log = self._log.read_text(encoding="utf-8", errors="replace")
            except OSError:
                log = ""
            lines = [ln.strip() for ln in log.splitlines() if ln.strip() and "dbus" not in ln]
            detail = f": {lines[-1]}" if lines else f" (exit status {self._returncode})"
        return DevToolsError(f"Chromium ({self.executable}) {what}{detail}", hint=INSTALL_HINT)

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._failure("did not answer in time")
            ready, _, _ = select.select([self._from_browser], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise self._failure("exited unexpectedly")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float | None = None) -> dict:
        """Run one DevTools command and return its result; events that arrive meanwhile are kept."""
        self._next_id += 1
        request = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            request["sessionId"] = session
        try:
            os.write(self._to_browser, json.dumps(request).encode("utf-8") + b"\0")
        except OSError:
            raise self._failure("exited unexpectedly") from None
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            message = self._read_message(deadline)
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise DevToolsError(f"Chromium refused {method}: {message['error'].get('message')}")
                return message.get("result", {})
            if "method" in message:
                self._events.append(message)

    def wait_for(self, method: str, session: str, timeout: float) -> bool:
        """Wait for an event (e.g. Page.loadEventFired); False when it did not come in time."""
        deadline = time.monotonic() + timeout
        while True:
            for index, event in enumerate(self._events):
                if event["method"] == method and event.get("sessionId") == session:
                    del self._events[index]
                    return True
            try:
                self._events.append(self._read_message(deadline))
            except DevToolsError:
                if time.monotonic() >= deadline and not self._exited():
                    return False
                raise

    def new_page(self) -> str:
        """Open a tab and return the session id its commands go to."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.send("Page.enable", session=session)
        return session

    def screenshot(self, session: str, url: str, width: int, *, dark: bool = False,
                   load_timeout: float = 30.0) -> tuple[bytes, int]:
        """A PNG of ``url`` laid out ``width`` CSS pixels wide, as tall as the page; (png, height)."""
        scheme = "dark" if dark else "light"
        self.send("Emulation.setEmulatedMedia",
                  {"media": "screen", "features": [{"name": "prefers-color-scheme", "value": scheme}]}, session)
        metrics = {"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": False}
        self.send("Emulation.setDeviceMetricsOverride", metrics, session)
        self._events.clear()
        self.send("Page.navigate", {"url": url}, session)
        self.wait_for("Page.loadEventFired", session, load_timeout)  # slow remote images: shoot what there is
        layout = self.send("Page.getLayoutMetrics", session=session)
        size = layout.get("cssContentSize") or layout["contentSize"]
        height = max(1, min(MAX_HEIGHT, int(size["height"] + 0.999)))
        self.send("Emulation.setDeviceMetricsOverride", {**metrics, "height": height}, session)
        result = self.send("Page.captureScreenshot", {"format": "png", "fromSurface": True}, session)
        return base64.b64decode(result["data"]), height


def default_widths(theme_dir: Path) -> tuple[int, int]:
    """A phone width at or below the theme's breakpoint and a desktop width above it, so the two
    pictures show the theme's two layouts (a default of 375 and 600 showed the phone layout twice
    under the default theme's 620 px breakpoint)."""
    breakpoint = phone_breakpoint(theme_dir)
    if breakpoint is None:
        return DEFAULT_WIDTHS
    phone = max(MIN_WIDTH, min(PHONE_WIDTH, breakpoint))
    desktop = min(MAX_WIDTH, max(DESKTOP_WIDTH, breakpoint + 1))
    return phone, desktop


def check_widths(widths: Iterable[int]) -> tuple[int, ...]:
    """Distinct widths in the order given, each within what a screen can be; () for the defaults."""
    chosen = tuple(dict.fromkeys(widths))
    for width in chosen:
        if not MIN_WIDTH <= width <= MAX_WIDTH:
            raise NewsletterError(f"width {width} is out of range", hint=f"use {MIN_WIDTH} to {MAX_WIDTH} pixels")
    return chosen


def screenshot_html(html: str, out_paths: Sequence[tuple[Path, int]], *, dark: bool = False,
                    executable: str | None = None) -> list[Shot]:
    """Write a PNG of ``html`` for each (path, width); one browser serves them all."""
    shots = []
    with tempfile.TemporaryDirectory(prefix="newsletter-shot-") as folder:
        page = Path(folder) / "email.html"
        page.write_text(html, encoding="utf-8")
        with Browser(executable) as browser:
            session = browser.new_page()
            for path, width in out_paths:
                png, height = browser.screenshot(session, page.as_uri(), width, dark=dark)
                path.write_bytes(png)
                shots.append(Shot(path, width, height))
    return shots


def screenshot_issue(settings: Settings, issue_dir: Path, out_dir: Path | None = None,
                     widths: Iterable[int] = (), *, dark: bool = False) -> list[Shot]:
    """Build the issue, fill it for the sample recipient, and photograph it at each width
    (default: a phone and a desktop width either side of the theme's breakpoint).

    Pictures are named ``<issue>-<width>.png`` (``-dark`` added with ``dark``) in
    ``out_dir`` (default: build/<issue>/); images of the issue folder show even
    before they are published to base_url.
    """
    chosen = check_widths(widths)
    executable = find_chromium()  # before building: a missing browser is the first thing to fix
    built = build_issue(settings, issue_dir)
    chosen = chosen or default_widths(built.rendered.theme_dir)
    html_part, _ = built.personalizers()
    html = email_for_browser(html_part.fill(sample_values(settings)), settings, built.issue,
                             lambda path: path.as_uri())
    out_dir = out_dir or default_build_dir(settings, built.issue)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise NewsletterError(f"cannot create the output folder: {err.strerror}", where=display_path(out_dir)) from None
    suffix = "-dark" if dark else ""
    targets = [(out_dir / f"{built.issue.name}-{width}{suffix}.png", width) for width in chosen]
    return screenshot_html(html, targets, dark=dark, executable=executable)
