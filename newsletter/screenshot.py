"""Pictures of the email at phone and desktop widths, taken by headless Chromium through Playwright.

Playwright drives the system's own Chromium (``/usr/bin/chromium``, or whichever is found on PATH;
Playwright's own browser downloads are never used), which gives what plain ``chromium --screenshot``
cannot: the exact viewport width, a picture as tall as the whole email, and real
``prefers-color-scheme: dark`` emulation, so ``--dark`` shows the theme's own dark-mode styles the way
Apple Mail and iOS Mail apply them. Playwright is an optional extra (``pip install 'newsletter[screenshot]'``):
the rest of newsletter never needs it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .compose.build import build_issue, default_build_dir, sample_values
from .config import Settings
from .errors import NewsletterError, display_path
from .preview import email_for_browser
from .themes.layout import phone_breakpoint

if TYPE_CHECKING:
    from playwright.sync_api import Page

BROWSER_ENV = "NEWSLETTER_CHROMIUM"
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# A phone (an iPhone's 375 CSS pixels) and a desktop window wide enough for a 600 px email and its
# margins: the default when the theme's CSS has no @media (max-width) breakpoint to place them around.
PHONE_WIDTH, DESKTOP_WIDTH = 375, 800
DEFAULT_WIDTHS = (PHONE_WIDTH, DESKTOP_WIDTH)
MIN_WIDTH, MAX_WIDTH = 200, 2400
MAX_HEIGHT = 16384  # Chromium's largest texture; taller emails are cut here
LOAD_TIMEOUT_SECONDS = 30.0  # slow remote images: after this, the picture shows what has loaded
INSTALL_HINT = (f"install Chromium with: sudo apt-get install chromium; or set {BROWSER_ENV} to a Chromium or "
                "Chrome binary")
EXTRA = "screenshot"
EXTRA_HINT = (f"install the '{EXTRA}' extra, which brings Playwright: pip install 'newsletter[{EXTRA}]' "
              "(the browser itself is the system's Chromium; `playwright install` is not needed)")
CHROMIUM_FLAGS = ("--disable-gpu", "--disable-quic", "--no-first-run", "--no-default-browser-check",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-extensions", "--hide-scrollbars", "--mute-audio")


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


def require_playwright() -> None:
    """Refuse, naming the extra and how to install it, when Playwright is not installed."""
    try:
        import playwright.sync_api  # noqa: F401 - only whether it can be imported
    except ImportError:
        raise NewsletterError("newsletter screenshot needs Playwright, which is not installed",
                              hint=EXTRA_HINT) from None


def _picture(page: Page, url: str, width: int) -> tuple[bytes, int]:
    """A PNG of ``url`` laid out ``width`` CSS pixels wide, as tall as the page (up to MAX_HEIGHT)."""
    from playwright.sync_api import TimeoutError as LoadTimeout

    page.set_viewport_size({"width": width, "height": 800})
    try:
        page.goto(url, wait_until="load", timeout=LOAD_TIMEOUT_SECONDS * 1000)
    except LoadTimeout:
        pass  # images still loading: shoot what there is
    content: Any = page.evaluate("() => document.documentElement.scrollHeight")
    height = max(1, min(MAX_HEIGHT, int(content)))
    png = page.screenshot(type="png", full_page=True, clip={"x": 0, "y": 0, "width": width, "height": height})
    return png, height


def screenshot_html(html: str, out_paths: Sequence[tuple[Path, int]], *, dark: bool = False,
                    executable: str | None = None) -> list[Shot]:
    """Write a PNG of ``html`` for each (path, width); one browser serves them all."""
    require_playwright()
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    executable = executable or find_chromium()
    shots = []
    with tempfile.TemporaryDirectory(prefix="newsletter-shot-") as folder:
        page_file = Path(folder) / "email.html"
        page_file.write_text(html, encoding="utf-8")
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=executable, args=list(CHROMIUM_FLAGS))
                try:
                    context = browser.new_context(device_scale_factor=1,
                                                  color_scheme="dark" if dark else "light")
                    page = context.new_page()
                    for path, width in out_paths:
                        png, height = _picture(page, page_file.as_uri(), width)
                        path.write_bytes(png)
                        shots.append(Shot(path, width, height))
                finally:
                    browser.close()
        except PlaywrightError as err:
            reason = (err.message or str(err)).strip().splitlines()[0]
            raise NewsletterError(f"Chromium ({executable}) failed: {reason}", hint=INSTALL_HINT) from None
    return shots


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


def screenshot_issue(settings: Settings, issue_dir: Path, out_dir: Path | None = None,
                     widths: Iterable[int] = (), *, dark: bool = False) -> list[Shot]:
    """Build the issue, fill it for the sample recipient, and photograph it at each width
    (default: a phone and a desktop width either side of the theme's breakpoint).

    Pictures are named ``<issue>-<width>.png`` (``-dark`` added with ``dark``) in
    ``out_dir`` (default: build/<issue>/); images of the issue folder show even
    before they are published to base_url.
    """
    chosen = check_widths(widths)
    require_playwright()  # before building: a missing extra or browser is the first thing to fix
    executable = find_chromium()
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
