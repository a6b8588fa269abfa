"""A live send asks the doctor first (issue 15): the DNS part, cached for a day, against the DNS stand-in.

The suite turns the gate off (conftest's NEWSLETTER_TEST_SKIP_DOCTOR); these tests turn it back on and
point ``send --nameserver`` at a real DNS server on 127.0.0.1 serving the test zones.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from dns_standin import DnsStandIn

from newsletter.cli import main

ISSUE = "issues/2026-11-25-first-dispatch"


@pytest.fixture
def dns_server():
    server = DnsStandIn()
    yield server
    server.stop()


@pytest.fixture
def gated(sendgrid_newsletter: Path, monkeypatch, tmp_path) -> Path:
    monkeypatch.delenv("NEWSLETTER_TEST_SKIP_DOCTOR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the gate's day-long cache, this test's own
    return sendgrid_newsletter


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_a_doctor_error_refuses_the_send_and_nothing_goes_out(gated, dns_server, sendgrid_standin):
    dns_server.resolver.serve("missing")

    result = run("send", ISSUE, "--list", "example", "--yes", "--nameserver", dns_server.address)

    assert result.exit_code == 1, result.output
    assert "the sending setup has" in result.output and "--ignore-doctor" in result.output
    assert not sendgrid_standin.mail_requests()
    # a dry run and a test send do not ask DNS at all
    asked = len(dns_server.resolver.questions)
    assert run("send", ISSUE, "--list", "example", "--dry-run", "--nameserver", dns_server.address).exit_code == 0
    assert len(dns_server.resolver.questions) == asked


def test_ignore_doctor_sends_and_the_journal_says_so(gated, dns_server, sendgrid_standin):
    dns_server.resolver.serve("missing")

    result = run("send", ISSUE, "--list", "example", "--yes", "--ignore-doctor", "--nameserver", dns_server.address)

    assert result.exit_code == 0, result.output
    assert sum(sendgrid_standin.counts().values()) == 4
    status = run("status", ISSUE)
    assert "sent despite doctor errors (--ignore-doctor): " in status.output
    assert "spf-missing" in status.output or "dmarc-missing" in status.output, status.output


def test_a_good_setup_sends_and_the_answer_is_kept_for_the_day(gated, dns_server, sendgrid_standin):
    dns_server.resolver.serve("good")
    (gated / "newsletter.toml").write_text((gated / "newsletter.toml").read_text()
                                           + f'\n[doctor]\nnameserver = "{dns_server.address}"\n')

    result = run("send", ISSUE, "--list", "example", "--yes")

    assert result.exit_code == 0, result.output
    assert sum(sendgrid_standin.counts().values()) == 4
    assert "doctor" not in run("status", ISSUE).output
    asked = len(dns_server.resolver.questions)
    assert asked
    dns_server.resolver.serve(servfail=True)  # a second send the same day uses the cached answer
    again = run("send", ISSUE, "--list", "example", "--yes", "--retry-failed")
    assert again.exit_code == 0, again.output
    assert len(dns_server.resolver.questions) == asked


def test_the_test_only_switch_that_skips_the_gate_is_recorded(sendgrid_newsletter, sendgrid_standin):
    """NEWSLETTER_TEST_SKIP_DOCTOR (set for the whole suite) is no silent side door: status shows it."""
    result = run("send", ISSUE, "--list", "example", "--yes")

    assert result.exit_code == 0, result.output
    assert "doctor not run: NEWSLETTER_TEST_SKIP_DOCTOR=1, test-only" in run("status", ISSUE).output
