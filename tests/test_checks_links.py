"""Links: well-formed URLs and mailto: addresses, anchors, and --check-links against a real local server."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from click.testing import CliRunner
from newsletter_helpers import write_issue

from newsletter.checks import ERROR, WARNING, CheckContext, CheckOptions, Finding, links, run_checks_on
from newsletter.checks.link_requests import probe_all
from newsletter.checks.links import url_problem
from newsletter.cli import main
from newsletter.compose.build import build
from newsletter.compose.content import load_issue


def findings_of(settings, folder: Path, **options) -> list[Finding]:
    issue = load_issue(folder)
    return run_checks_on(CheckContext(settings, issue, build(settings, issue), CheckOptions(**options)), links.CHECKS)


def by_code(findings: list[Finding], code: str) -> list[Finding]:
    return [f for f in findings if f.code == code]


class Site(BaseHTTPRequestHandler):
    """A small web site with a page for each kind of answer; it records what it was asked."""

    requests: ClassVar[list[tuple[str, str]]] = []
    active: ClassVar[int] = 0
    most_active: ClassVar[int] = 0
    lock: ClassVar[threading.Lock] = threading.Lock()

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def answer(self, method: str) -> None:
        with Site.lock:
            Site.requests.append((method, self.path))
            Site.active += 1
            Site.most_active = max(Site.most_active, Site.active)
        finished = False
        try:
            path = self.path.split("?")[0]
            if path.startswith("/slow"):
                time.sleep(2.0 if path == "/slow" else 0.2)
            # A request stops counting as active before its answer is written: once the client has the
            # answer it may start its next request, possibly before this thread runs again on a loaded
            # machine, and that is not more requests at once.
            with Site.lock:
                Site.active -= 1
                finished = True
            if path == "/gone":
                status = 404
            elif path == "/broken":
                status = 500
            elif path == "/private":
                status = 403
            elif path == "/no-head" and method == "HEAD":
                status = 405
            elif path == "/moved":
                self.send_response(301)
                self.send_header("Location", "/ok")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            else:
                status = 200
            body = b"hello" if method == "GET" else b""
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        finally:
            if not finished:
                with Site.lock:
                    Site.active -= 1

    def do_HEAD(self) -> None:
        self.answer("HEAD")

    def do_GET(self) -> None:
        self.answer("GET")


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # a client that gave up on /slow: expected
        pass


@pytest.fixture
def site() -> Iterator[str]:
    Site.requests, Site.active, Site.most_active = [], 0, 0
    server = QuietServer(("127.0.0.1", 0), Site)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def point_newsletter_at(root: Path, base: str, timeout: float = 1.0, concurrency: int = 4) -> None:
    """Make the template's own links (web version, unsubscribe) local too, so nothing leaves the machine."""
    config = root / "newsletter.toml"
    text = config.read_text(encoding="utf-8")
    text = text.replace('base_url = "https://newsletter.example.com/"', f'base_url = "{base}/"')
    text = text.replace('unsubscribe_url = "https://newsletter.example.com/unsubscribe/{token}"',
                        f'unsubscribe_url = "{base}/unsubscribe/{{token}}"')
    text += f"\n[checks]\nlink_timeout = {timeout}\nlink_concurrency = {concurrency}\n"
    config.write_text(text, encoding="utf-8")


@pytest.mark.parametrize("url, fragment", [
    ("https://-bad-.example/x", "not a valid domain name"),
    ("http://exa_mple.com/", "not a valid domain name"),
    ("https://example/", "has no domain"),
    ("https://exa mple.com/", "spaces"),
    ("javascript:alert(1)", "blocked by mail clients"),
    ("mailto:not-an-address", "not a valid address"),
    ("mailto:", "no address"),
])
def test_url_problems(url, fragment):
    severity, reason = url_problem(url)
    assert severity == ERROR and fragment in reason


@pytest.mark.parametrize("url", ["https://example.com/a?b=c#d", "mailto:editor@example.com",
                                 "mailto:a@example.com,b@example.org", "tel:+15551234567", "http://127.0.0.1:8080/"])
def test_good_urls_pass(url):
    assert url_problem(url) is None


def test_malformed_link_in_an_article_is_an_error_with_its_line(settings, newsletter_root):
    article = "---\ntitle: Links\n---\n\nIntro.\n\nSee [the site](https://-bad-.example/page).\n"
    [finding] = by_code(findings_of(settings, write_issue(newsletter_root, articles={"a.md": article})),
                        "malformed-url")
    assert finding.severity == ERROR and finding.where.endswith("a.md") and finding.line == 7


def test_invalid_mailto_is_an_error(settings, newsletter_root):
    article = "---\ntitle: Write\n---\n\n[Write to us](mailto:editor-at-example.com).\n"
    [finding] = by_code(findings_of(settings, write_issue(newsletter_root, articles={"a.md": article})),
                        "bad-mailto")
    assert finding.severity == ERROR and finding.line == 5
    assert "editor-at-example.com" in finding.message


def test_anchor_to_nothing_is_a_warning(settings, newsletter_root):
    article = "---\ntitle: Jump\n---\n\nJump to [the end](#the-end).\n"
    [finding] = by_code(findings_of(settings, write_issue(newsletter_root, articles={"a.md": article})),
                        "anchor-missing")
    assert finding.severity == WARNING and "#the-end" in finding.message


def test_links_are_not_requested_without_check_links(settings, newsletter_root, site):
    point_newsletter_at(newsletter_root, site)
    article = f"---\ntitle: Links\n---\n\n[A missing page]({site}/gone).\n"
    from newsletter.config import load_settings

    assert findings_of(load_settings(newsletter_root), write_issue(newsletter_root, articles={"a.md": article})) == []
    assert Site.requests == []


def test_check_links_reports_broken_and_unreachable_links(newsletter_root, site):
    point_newsletter_at(newsletter_root, site)
    dead = f"http://127.0.0.1:{closed_port()}/nothing"
    article = (f"---\ntitle: Links\n---\n\n"
               f"- [A good page]({site}/ok)\n- [A missing page]({site}/gone)\n- [A moved page]({site}/moved)\n"
               f"- [A page that refuses HEAD]({site}/no-head)\n- [A failing server]({site}/broken)\n"
               f"- [A private page]({site}/private)\n- [A slow page]({site}/slow)\n- [A dead host]({dead})\n")
    folder = write_issue(newsletter_root, articles={"a.md": article})
    result = CliRunner().invoke(main, ["check", str(folder), "--check-links", "--format", "json"],
                                catch_exceptions=False)
    report = json.loads(result.stdout)
    found = {(f["code"], f["message"].split(" ")[1]): f for f in report["findings"] if f["code"].startswith("link-")}
    assert result.exit_code == 1
    assert set(found) == {("link-broken", f"{site}/gone"), ("link-server-error", f"{site}/broken"),
                          ("link-refused", f"{site}/private"), ("link-unchecked", f"{site}/slow"),
                          ("link-unreachable", dead)}
    assert found[("link-broken", f"{site}/gone")]["severity"] == "error"
    assert found[("link-broken", f"{site}/gone")]["line"] == 6
    assert found[("link-unreachable", dead)]["severity"] == "error"
    assert found[("link-unchecked", f"{site}/slow")]["severity"] == "warning"
    assert ("HEAD", "/no-head") in Site.requests and ("GET", "/no-head") in Site.requests
    assert ("GET", "/ok") not in Site.requests  # HEAD was enough
    assert ("HEAD", "/2027-02-02-test/") in Site.requests  # the template's web-version link is checked too
    assert not any(path.startswith("/unsubscribe") for _, path in Site.requests)  # never unsubscribe anyone


def test_probing_is_bounded_by_concurrency(site):
    statuses = probe_all([f"{site}/slowish/{i}" for i in range(9)], timeout=5, concurrency=3)
    assert [s.status for s in statuses] == [200] * 9
    assert 1 < Site.most_active <= 3
