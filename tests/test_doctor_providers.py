"""Finding 14 of issue 20: the mailbox providers' own rules, for the list about to be sent.

`doctor --list L` counts the list's recipients per provider (by domain, and by MX host against the DNS
stand-in) and names each provider rule the domain fails; a live send's doctor gate judges the list it sends.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from dns_standin import DnsStandIn
from doctor_dns import set_doctor
from one_click_standin import OneClickServer

from newsletter.cli import main
from newsletter.config import load_settings
from newsletter.doctor import AudienceQuery, doctor_gate

ISSUE = "issues/2026-11-25-first-dispatch"
READERS = [  # (address, status): one provider group or more each; the unsubscribed row counts nowhere
    ("ann@gmail.com", "subscribed"), ("bob@googlemail.com", "subscribed"), ("cat@example.org", "subscribed"),
    ("dan@outlook.com", "subscribed"), ("eve@hotmail.com", "subscribed"), ("fay@yahoo.com", "subscribed"),
    ("gus@aol.com", "subscribed"), ("hal@icloud.com", "subscribed"), ("ida@gmx.de", "subscribed"),
    ("jon@web.de", "subscribed"), ("kim@web.de", "unsubscribed"), ("lou@example.net", "subscribed"),
]
SIGNED_ELSEWHERE = {"dkim_domain": "mail.example.net", "envelope_domain": "example.com"}  # [doctor]


@pytest.fixture(scope="module")
def dns_server():
    server = DnsStandIn()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def one_click():
    server = OneClickServer()
    yield server
    server.stop()


def write_list(root: Path, name: str, rows) -> None:
    lines = ["email,name,status", *(f"{email},,{status}" for email, status in rows)]
    (root / "subscribers" / f"{name}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def configure(root: Path, doctor: dict[str, str], unsubscribe_url: str | None = None) -> None:
    path = root / "newsletter.toml"
    text = path.read_text()
    if unsubscribe_url:
        text = text.replace('unsubscribe_url = "https://newsletter.example.com/unsubscribe/{token}"',
                            f'unsubscribe_url = "{unsubscribe_url}"')
    path.write_text(text)
    if doctor:
        set_doctor(root, **doctor)


def test_doctor_list_counts_recipients_per_provider_and_names_the_rules_failed(newsletter_root, dns_server,
                                                                              one_click):
    dns_server.resolver.serve("provider-rules")
    configure(newsletter_root, SIGNED_ELSEWHERE,
              f"http://newsletter.example.com:{one_click.port}/unsubscribe?token={{token}}")
    write_list(newsletter_root, "readers", READERS)
    doctor = ["--root", str(newsletter_root), "doctor", "--list", "readers", "--nameserver", dns_server.address]

    text = CliRunner().invoke(main, doctor)
    as_json = CliRunner().invoke(main, [*doctor, "--format", "json"])

    assert text.exit_code == 1, text.output
    lines = {line.split()[0]: line for line in text.output.splitlines() if line.startswith("  ")}
    assert "Recipients of list 'readers' by mailbox provider (11 in all):" in text.output
    assert lines["Gmail"].split()[1] == "3" and "(2 at its own domains, 1 hosted by it: MX)" in lines["Gmail"]
    assert lines["Gmail"].endswith("meets its rules")
    assert lines["Microsoft"].split()[1] == "2" and lines["Microsoft"].endswith("meets its rules")
    assert lines["Yahoo/AOL"].split()[1] == "2" and lines["Apple"].split()[1] == "1"
    assert lines["GMX/WEB.DE"].split()[1] == "2"
    assert lines["GMX/WEB.DE"].endswith("fails: GMX's and WEB.DE's DKIM rule")
    assert lines["other"].split()[1] == "1"

    report = json.loads(as_json.output)
    errors = [f for f in report["findings"] if f["severity"] == "error"]
    assert [f["code"] for f in errors] == ["provider-gmx-dkim"], errors  # DMARC itself passes (on SPF)
    assert "2 recipients of list 'readers' at GMX/WEB.DE" in errors[0]["message"]
    assert "a DKIM signature aligned with the From domain" in errors[0]["message"]
    assert "https://postmaster.gmx.net/en/best-practices" in errors[0]["rule"]
    groups = {g["provider"]: g for g in report["providers"]["groups"]}
    assert (groups["Gmail"]["at_own_domains"], groups["Gmail"]["hosted_by_mx"]) == (2, 1)
    assert groups["GMX/WEB.DE"]["domains"] == {"web.de": 1, "gmx.de": 1}
    assert report["authentication"]["spf_aligned"] and not report["authentication"]["dkim_aligned"]


def test_the_send_gate_judges_the_list_it_sends(sendgrid_newsletter, sendgrid_standin, dns_server, monkeypatch,
                                                tmp_path):
    """The same setup refuses a send to a list with GMX readers, and sends the example list (none there)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    dns_server.resolver.serve("provider-rules")
    configure(sendgrid_newsletter, SIGNED_ELSEWHERE)
    write_list(sendgrid_newsletter, "readers", READERS)

    refused = CliRunner().invoke(main, ["send", ISSUE, "--list", "readers", "--yes", "--nameserver",
                                        dns_server.address])

    assert refused.exit_code == 1, refused.output
    assert "GMX and WEB.DE require an aligned DKIM signature" in refused.output
    assert "--ignore-doctor" in refused.output
    assert not sendgrid_standin.mail_requests()

    sent = CliRunner().invoke(main, ["send", ISSUE, "--list", "example", "--yes", "--nameserver",
                                     dns_server.address])
    assert sent.exit_code == 0, sent.output
    assert sum(sendgrid_standin.counts().values()) == 4


@pytest.mark.parametrize(("outlook", "severity"), [(5000, "warning"), (5001, "error")])
def test_outlooks_rule_applies_over_5000_a_day(newsletter_root, dns_server, outlook, severity, tmp_path,
                                               monkeypatch):
    """SMTP without DKIM: DMARC passes on SPF, but Outlook.com wants SPF and DKIM from senders of over 5,000 a
    day (550 5.7.515 since 2025-05-05); below that the rule is a warning, not a refusal."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    dns_server.resolver.serve("provider-no-dkim")
    configure(newsletter_root, {})
    path = newsletter_root / "newsletter.toml"
    path.write_text(path.read_text().replace('provider = "sendgrid"', 'provider = "smtp"')
                    .replace('host = "localhost"', 'host = "smtp.example.com"'))
    write_list(newsletter_root, "bulk", [(f"reader{n}@outlook.com", "subscribed") for n in range(outlook)])

    findings = doctor_gate(load_settings(newsletter_root), nameserver=dns_server.address,
                           audience=AudienceQuery("bulk"))

    ruled = [f for f in findings if f.code == "provider-outlook-high-volume"]
    assert [f.severity for f in ruled] == [severity]
    assert f"{outlook:,} recipients of list 'bulk' at Microsoft" in ruled[0].message
    assert "550 5.7.515" in ruled[0].message and "techcommunity.microsoft.com" in ruled[0].rule
    assert "a DKIM signature it verifies (RSA)" in ruled[0].message
    assert not [f for f in findings if f.severity == "error" and f.code != "provider-outlook-high-volume"]


def test_a_list_that_is_not_there_is_a_usage_error_before_any_dns(newsletter_root, dns_server):
    asked = len(dns_server.resolver.questions)

    result = CliRunner().invoke(main, ["--root", str(newsletter_root), "doctor", "--list", "nosuch",
                                       "--nameserver", dns_server.address])

    assert result.exit_code == 2, result.output
    assert "no such list" in result.output
    assert len(dns_server.resolver.questions) == asked
