"""Finding 11 of issue 20: the doctor's one-click probe against the project's own `newsletter serve`.

`newsletter serve` runs as a real process (its own command, under uvicorn) on 127.0.0.1; the doctor reaches
it by name through the DNS stand-in (`newsletter.example.com` is 127.0.0.1 in the good zone). Its probe must
be answered 200, as a mailbox provider's one-click is, and leave nothing in serve's event store.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from dns_standin import DnsStandIn

from newsletter.cli import main
from newsletter.compose.unsubscribe import make_token
from newsletter.config import load_settings
from newsletter.serve.connect import open_store

SECRET = "test-secret-for-unsubscribe-links"


@pytest.fixture(scope="module")
def dns_server():
    server = DnsStandIn()
    server.resolver.serve("good")
    yield server
    server.stop()


@pytest.fixture
def serving(newsletter_root: Path):
    """`newsletter serve --port 0` in its own process; yields its port once it says it is listening."""
    process = subprocess.Popen([sys.executable, "-m", "newsletter.cli", "--root", str(newsletter_root), "serve",
                                "--port", "0"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                               env={**os.environ, "NEWSLETTER_UNSUBSCRIBE_SECRET": SECRET})
    assert process.stderr is not None
    lines: queue.Queue[str] = queue.Queue()
    # A thread reads whole lines (select() on a buffered pipe misses lines already read into the buffer).
    threading.Thread(target=lambda: [lines.put(line) for line in process.stderr], daemon=True).start()
    seen, port = [], 0
    deadline = time.monotonic() + 60
    while not port and time.monotonic() < deadline:
        try:
            line = lines.get(timeout=deadline - time.monotonic())
        except queue.Empty:
            break
        seen.append(line)
        if "Serving on http://127.0.0.1:" in line:
            port = int(line.split("http://127.0.0.1:", 1)[1].split("/", 1)[0])
    try:
        assert port, "newsletter serve did not start: " + "".join(seen)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def _point_at(root: Path, port: int) -> None:
    path = root / "newsletter.toml"
    path.write_text(path.read_text().replace(
        'unsubscribe_url = "https://newsletter.example.com/unsubscribe/{token}"',
        f'unsubscribe_url = "http://newsletter.example.com:{port}/unsubscribe/{{token}}"'))


def _events(root: Path) -> list:
    store = open_store(load_settings(root))
    try:
        return store.unsynced("example")
    finally:
        store.close()


def test_the_probe_gets_200_from_newsletter_serve_and_nothing_is_recorded(newsletter_root, serving, dns_server):
    _point_at(newsletter_root, serving)

    result = CliRunner().invoke(main, ["--root", str(newsletter_root), "doctor", "--nameserver", dns_server.address,
                                       "--format", "json"])

    report = json.loads(result.output)
    codes = {f["code"]: f for f in report["findings"]}
    assert "unsubscribe-one-click" in codes, report
    assert "answered the one-click POST with 200" in codes["unsubscribe-one-click"]["message"]
    assert "RFC 8058 §3.1" in codes["unsubscribe-one-click"]["rule"]
    assert not {"unsubscribe-refused", "unsubscribe-unreachable"} & set(codes)
    assert result.exit_code == 0, result.output  # the good zone and a serve that answers: no error at all
    assert _events(newsletter_root) == []  # nobody was unsubscribed, nothing was recorded

    # the exemption is narrow: a reader's own one-click through the same serve is recorded as before
    token = make_token(SECRET.encode(), "example", "ada@example.com")
    answer = httpx.post(f"http://127.0.0.1:{serving}/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click",
                        headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=10)
    assert answer.status_code == 200
    assert [(e.kind, e.email) for e in _events(newsletter_root)] == [("unsubscribed", "ada@example.com")]


def test_without_the_secret_the_refusal_says_which_variable_to_set(newsletter_root, serving, dns_server,
                                                                   monkeypatch):
    """A probe token made without the secret is rightly refused; the fix printed is one a writer can follow."""
    _point_at(newsletter_root, serving)
    monkeypatch.delenv("NEWSLETTER_UNSUBSCRIBE_SECRET")

    result = CliRunner().invoke(main, ["--root", str(newsletter_root), "doctor", "--nameserver", dns_server.address,
                                       "--format", "json"])

    refused = [f for f in json.loads(result.output)["findings"] if f["code"] == "unsubscribe-refused"]
    assert result.exit_code == 1 and refused, result.output
    assert "NEWSLETTER_UNSUBSCRIBE_SECRET is not set where the doctor ran" in refused[0]["fix"]
    assert _events(newsletter_root) == []
