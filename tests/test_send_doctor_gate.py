"""A live send asks the doctor first (issue 15): the DNS part, cached for a day, against the DNS stand-in.

Every test newsletter's ``[doctor] nameserver`` is a stand-in serving a passing setup (tests/doctor_dns.py);
these tests point ``send --nameserver`` (or the setting) at a DNS server of their own, serving other zones.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from dns_standin import DnsStandIn
from doctor_dns import set_doctor

from newsletter.cli import main

ISSUE = "issues/2026-11-25-first-dispatch"


@pytest.fixture
def dns_server():
    server = DnsStandIn()
    yield server
    server.stop()


@pytest.fixture
def gated(sendgrid_newsletter: Path, monkeypatch, tmp_path) -> Path:
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
    set_doctor(gated, nameserver=dns_server.address)

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

