"""Setting up a test's copy of the example newsletter: the example issue and list, options in newsletter.toml,
lists and issues of a test's own, SMTP settings for a local server, and pictures that are real PNG files.

Test modules import these from here (never from one another), so each test module only holds tests.
"""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from smtp_fixtures import SMTP_PASSWORD

from newsletter.cli import main

ISSUE = "issues/2026-11-25-first-dispatch"  # the example issue, relative to the newsletter's folder
# the addresses of the example list (subscribers/example.csv) that a send reaches
EXAMPLE_SUBSCRIBED = {"ada@example.com", "grace@example.org", "katherine@example.org", "edsger@example.com"}


def run(*args: str) -> Result:
    """``newsletter ARGS`` in this process, exceptions not caught (a traceback fails the test as it is)."""
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def set_option(root: Path, section: str, line: str) -> None:
    """Add ``line`` (one or more ``key = value`` lines) under ``[section]`` of the newsletter's settings."""
    path = root / "newsletter.toml"
    text = path.read_text()
    if f"[{section}]" in text:
        text = text.replace(f"[{section}]", f"[{section}]\n{line}", 1)
    else:
        text += f"\n[{section}]\n{line}\n"
    path.write_text(text)


def write_list(root: Path, name: str, count: int, extra_rows: str = "") -> set[str]:
    """``subscribers/NAME.csv`` with ``count`` subscribed readers (and ``extra_rows`` as written); their addresses."""
    rows = [f"reader{i}@example.com,Reader {i},subscribed" for i in range(count)]
    (root / "subscribers" / f"{name}.csv").write_text("email,name,status\n" + "\n".join(rows) + "\n" + extra_rows)
    return {f"reader{i}@example.com" for i in range(count)}


def write_issue(root: Path, intro: str = "Hello.", articles: dict[str, str] | None = None,
                front: str = "subject: Test issue\npreheader: A preheader") -> Path:
    """``issues/2027-02-02-test/``: an issue.md with ``front`` and ``intro``, and its articles (name -> text)."""
    folder = root / "issues" / "2027-02-02-test"
    folder.mkdir(parents=True, exist_ok=True)
    articles = articles if articles is not None else {"a.md": "---\ntitle: First\n---\n\nBody text.\n"}
    for name, text in articles.items():
        (folder / name).write_text(text, encoding="utf-8")
    listing = "".join(f"- {name}\n" for name in articles)
    (folder / "issue.md").write_text(f"---\n{front}\narticles:\n{listing}---\n\n{intro}\n", encoding="utf-8")
    return folder


def configure_smtp(root: Path, server, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the newsletter's ``[smtp]`` at ``server`` (smtp_fixtures' aiosmtpd), its password exported, its CA
    trusted, and retries quick."""
    config = root / "newsletter.toml"
    text = re.sub(r"(?ms)^\[smtp\].*?(?=^\[|\Z)", "", config.read_text())
    text += (f'\n[smtp]\nhost = "{server.host}"\nport = {server.port}\nsecurity = "{server.security}"\n'
             f'username = "{server.username}"\npassword_env = "SMTP_PASSWORD"\ntimeout = 5\n'
             '\n[send]\nbackoff_seconds = 0.01\nmax_backoff_seconds = 0.05\n')
    config.write_text(text)
    monkeypatch.setenv("SMTP_PASSWORD", SMTP_PASSWORD)
    monkeypatch.setenv("SSL_CERT_FILE", str(server.certificate.ca_path))  # trust the test CA


def png(width: int, height: int, shade: int) -> bytes:
    """A real PNG of the given size, all one grey."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\0" + bytes([shade]) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


BROOM = png(120, 80, 0x40)  # two pictures of different sizes, for an issue's articles
LEAD = png(200, 100, 0x90)
