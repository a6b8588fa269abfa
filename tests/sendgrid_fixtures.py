"""Pytest fixtures around the SendGrid stand-in: a running server, its key in the environment, and
conftest's copy of the example newsletter with ``[sendgrid] api_host`` pointing at the server.

Use from conftest.py with ``pytest_plugins = ["sendgrid_fixtures"]`` (tests/ is on sys.path).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from newsletter_helpers import set_option
from sendgrid_standin import DEFAULT_KEY, SendGridStandIn

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def sendgrid_standin(monkeypatch: pytest.MonkeyPatch) -> Iterator[SendGridStandIn]:
    """A stand-in SendGrid on 127.0.0.1 (validating every body) that accepts ``DEFAULT_KEY``."""
    # urllib would route even loopback through a proxy named in the environment.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    with SendGridStandIn(api_key=DEFAULT_KEY) as standin:
        yield standin


@pytest.fixture
def sendgrid_api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """The stand-in's key, exported as SENDGRID_API_KEY (the example newsletter.toml's api_key_env)."""
    monkeypatch.setenv("SENDGRID_API_KEY", DEFAULT_KEY)
    return DEFAULT_KEY


def point_at(root: Path, api_host: str) -> Path:
    """Set ``[sendgrid] api_host`` in ``root``/newsletter.toml (adding the line or the table as needed)."""
    path = root / "newsletter.toml"
    text = path.read_text(encoding="utf-8")
    setting = f'api_host = "{api_host}"'
    if re.search(r"(?m)^\s*api_host\s*=", text):
        text = re.sub(r"(?m)^\s*api_host\s*=.*$", setting, text)
    elif re.search(r"(?m)^\[sendgrid\]\s*$", text):
        text = re.sub(r"(?m)^\[sendgrid\]\s*$", f"[sendgrid]\n{setting}", text, count=1)
    else:
        text += f"\n[sendgrid]\n{setting}\n"
    path.write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def sendgrid_newsletter(newsletter_root: Path, sendgrid_standin: SendGridStandIn, sendgrid_api_key: str) -> Path:
    """conftest's ``newsletter_root`` (a copy of the example, cwd set) sending to the stand-in, its key exported."""
    return point_at(newsletter_root, sendgrid_standin.url)


@pytest.fixture
def fast_retries(sendgrid_newsletter: Path) -> Path:
    """``sendgrid_newsletter`` whose retries wait hundredths of a second, not seconds."""
    set_option(sendgrid_newsletter, "send", "backoff_seconds = 0.01\nmax_backoff_seconds = 0.05")
    return sendgrid_newsletter


def example_message(settings):
    """The example issue as it goes out through SendGrid (rendered and inlined once, merge tokens in place)."""
    from newsletter.compose.build import build_issue
    from newsletter.providers.base import Message

    built = build_issue(settings, REPO / "issues" / "2026-11-25-first-dispatch")
    return Message(
        issue_name=built.issue.name, list_name="example", subject=built.subject, html=built.html,
        text=built.text, fields=built.fields, from_address=settings.from_address, reply_to=settings.reply_to,
        unsubscribe_mailto=settings.unsubscribe_mailto, categories=settings.sendgrid.categories,
    )
