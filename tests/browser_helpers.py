"""Headless Chromium for the browser tests (preview, serve's pages, clicks): the system's, never a download."""

from __future__ import annotations

import pytest

from newsletter.looking.screenshot import find_chromium

# no sandbox (CI runs as root), and nothing that reaches beyond this machine by itself
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium_or_fail() -> str:
    """The system Chromium's path; the test fails saying so when there is none (browser tests are never skipped)."""
    try:
        return find_chromium()
    except Exception as err:
        pytest.fail(f"the browser tests need Chromium: {err}", pytrace=False)
