"""`newsletter doctor` on the example newsletter, against a real DNS server on 127.0.0.1 serving test zones,
and a real one-click unsubscribe endpoint under uvicorn."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from dns_standin import DnsStandIn, SilentServer
from doctor_dns import set_doctor
from one_click_standin import ONE_CLICK, OneClickServer

from newsletter.cli import main
from newsletter.compose.unsubscribe import verify_token
from newsletter.config import load_settings
from newsletter.doctor import DoctorRefused, doctor_gate, refuse_on_errors, run_doctor
from newsletter.errors import EXIT_FAILED


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


def _doctor(root: Path, *args: str):
    result = CliRunner().invoke(main, ["--root", str(root), "doctor", *args])
    return result


def _codes(findings, severity: str | None = None) -> set[str]:
    return {f["code"] if isinstance(f, dict) else f.code for f in findings
            if severity is None or (f["severity"] if isinstance(f, dict) else f.severity) == severity}


def _use_endpoint(root: Path, url: str, extra: str = "") -> None:
    """Point the copy's unsubscribe_url at the local endpoint (through the test DNS), keeping the rest."""
    path = root / "newsletter.toml"
    text = path.read_text().replace('unsubscribe_url = "https://newsletter.example.com/unsubscribe/{token}"',
                                    f'unsubscribe_url = "{url}"')
    path.write_text(text + extra)


def test_good_setup_passes_and_the_probe_unsubscribes_nobody_real(newsletter_root, dns_server, one_click):
    dns_server.resolver.serve("good")
    _use_endpoint(newsletter_root, f"http://newsletter.example.com:{one_click.port}/unsubscribe?token={{token}}")
    before = len(one_click.app.requests)

    result = _doctor(newsletter_root, "--nameserver", dns_server.address)

    assert result.exit_code == 0, result.output
    assert "0 errors" in result.output
    assert "DKIM selector s1: rsa key, 2048 bits" in result.output
    assert "DMARC aligned" in result.output
    assert "answered the one-click POST with 200" in result.output
    assert "not https://" in result.output  # a warning: RFC 8058 wants https
    probes = one_click.app.requests[before:]
    assert len(probes) == 1
    probe = probes[0]
    assert (probe.method, probe.path, probe.body) == ("POST", "/unsubscribe", ONE_CLICK)
    assert probe.content_type == "application/x-www-form-urlencoded"
    token = probe.query.removeprefix("token=")
    secret = b"test-secret-for-unsubscribe-links"
    assert verify_token(secret, "example", token) == "doctor-probe@invalid"  # the list serve serves
    assert token not in result.output  # the link's token is not printed


CASES = {
    # case: (error codes that must appear, codes that must not)
    "good": (set(), {"spf-missing", "dmarc-missing", "dkim-missing"}),
    "misaligned": ({"dkim-missing", "dmarc-not-aligned"}, {"spf-missing", "dmarc-missing", "spf-provider-missing"}),
    "missing": ({"spf-missing", "dkim-missing", "dmarc-missing"}, {"dns-servfail", "dns-timeout"}),
    "too-many-lookups": ({"spf-too-many-lookups"}, {"spf-missing", "dkim-missing", "dmarc-not-aligned"}),
    "weak-key": ({"dkim-weak-key"}, {"spf-missing", "dmarc-missing", "dmarc-not-aligned"}),
    "nxdomain": ({"domain-nxdomain"}, {"spf-missing", "dmarc-missing", "dns-servfail"}),
    "servfail": ({"dns-servfail"}, {"spf-missing", "dmarc-missing", "dkim-missing", "domain-nxdomain"}),
}


@pytest.mark.parametrize("case", CASES)
def test_each_case_on_the_example_config(case, newsletter_root, dns_server):
    """The example newsletter.toml as it is (SendGrid, From dispatch@example.com), each zone in turn."""
    dns_server.resolver.serve("good" if case == "servfail" else case, servfail=case == "servfail")

    result = _doctor(newsletter_root, "--nameserver", dns_server.address, "--format", "json")

    report = json.loads(result.output)
    dns_errors = _codes(report["findings"], "error") - {c for c in _codes(report["findings"])
                                                        if c.startswith("unsubscribe-")}
    must, must_not = CASES[case]
    assert must <= dns_errors, report
    assert not (must_not & dns_errors), report
    if case == "good":
        assert dns_errors == set()
    else:
        assert result.exit_code == EXIT_FAILED
    if case == "weak-key":
        assert "dkim-short-key" in _codes(report["findings"], "warning")  # s2: 1024 bits
        assert any("512-bit" in f["message"] for f in report["findings"])
    if case == "too-many-lookups":
        assert any("12 DNS look-ups" in f["message"] for f in report["findings"])
    if case == "servfail":
        assert all("SERVFAIL" in f["message"] for f in report["findings"] if f["code"] == "dns-servfail")
    assert report["errors"] == sum(1 for f in report["findings"] if f["severity"] == "error")


def test_a_server_that_never_answers_is_a_timeout_not_a_missing_record(newsletter_root):
    silent = SilentServer()
    try:
        set_doctor(newsletter_root, dns_timeout=0.5)
        started = time.monotonic()
        result = _doctor(newsletter_root, "--nameserver", silent.address)
        elapsed = time.monotonic() - started
    finally:
        silent.stop()
    assert result.exit_code == EXIT_FAILED
    assert "no DNS answer within the time limit" in result.output
    assert "no SPF record" not in result.output and "no DMARC record" not in result.output
    assert elapsed < 5  # said once, not once per record


def test_unsubscribe_endpoint_answers(newsletter_root, dns_server, one_click):
    dns_server.resolver.serve("good")
    settings = load_settings(newsletter_root)
    outcomes = {}
    for path in ("unsubscribe", "gone", "broken", "moved"):
        url = f"http://127.0.0.1:{one_click.port}/{path}?token={{token}}"
        findings = run_doctor(dataclasses.replace(settings, unsubscribe_url=url), nameserver=dns_server.address)
        outcomes[path] = _codes(findings, "error") & {"unsubscribe-refused", "unsubscribe-redirect"}
    assert outcomes == {"unsubscribe": set(), "gone": {"unsubscribe-refused"}, "broken": {"unsubscribe-refused"},
                        "moved": {"unsubscribe-redirect"}}
    closed = dataclasses.replace(settings, unsubscribe_url="http://127.0.0.1:9/unsubscribe?token={token}")
    assert "unsubscribe-unreachable" in _codes(run_doctor(closed, nameserver=dns_server.address), "error")


def test_smtp_host_reverse_dns_and_tls(newsletter_root, dns_server):
    dns_server.resolver.serve("good")
    settings = load_settings(newsletter_root)
    smtp = dataclasses.replace(
        settings, provider="smtp", smtp=dataclasses.replace(settings.smtp, host="smtp.example.com", security="none"),
        doctor=dataclasses.replace(settings.doctor, dkim_selectors=("s1",)))
    findings = run_doctor(smtp, nameserver=dns_server.address, probe=False)
    assert _codes(findings, "error") == set(), findings
    assert "smtp-no-tls" in _codes(findings, "warning")
    assert {"rdns", "mta-sts"} <= _codes(findings, "info")

    unnamed = dataclasses.replace(smtp, smtp=dataclasses.replace(smtp.smtp, host="mx.example.com"))
    errors = _codes(run_doctor(unnamed, nameserver=dns_server.address, probe=False), "error")
    assert errors == {"rdns-missing", "spf-provider-missing"}


def test_freemail_from_is_refused_without_asking_its_dns(newsletter_root, dns_server):
    dns_server.resolver.serve("good")
    settings = dataclasses.replace(load_settings(newsletter_root), from_address="Me <someone@gmail.com>")
    asked = len(dns_server.resolver.questions)
    findings = run_doctor(settings, nameserver=dns_server.address, probe=False)
    assert [f.code for f in findings] == ["freemail-from"]
    assert "bulk mail" in findings[0].message
    assert not any("gmail" in name for name, _ in dns_server.resolver.questions[asked:])


@pytest.mark.parametrize("value", ["127.0.0.1:notaport", "[::1", "[::1]53", "127.0.0.1:0", "[]:53"])
def test_bad_nameserver_is_a_usage_error(newsletter_root, value):
    result = _doctor(newsletter_root, "--nameserver", value)
    assert result.exit_code == 2, result.output
    assert "is not HOST[:PORT]" in result.output


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "newsletter" / "doctor"


def test_gate_uses_a_day_old_answer_then_asks_again(newsletter_root, dns_server, own_cache):
    settings = load_settings(newsletter_root)
    dns_server.resolver.serve("good")
    now = time.time()
    first = doctor_gate(settings, nameserver=dns_server.address, now=now)
    assert _codes(first, "error") == set()
    refuse_on_errors(first)  # nothing to refuse

    dns_server.resolver.serve("missing")  # the domain's records are deleted
    asked = len(dns_server.resolver.questions)
    within_a_day = doctor_gate(settings, nameserver=dns_server.address, now=now + 23 * 3600)
    assert within_a_day == first
    assert len(list(own_cache.glob("example.com-*.json"))) == 1
    assert len(dns_server.resolver.questions) == asked  # no DNS question: the cache answered

    after_a_day = doctor_gate(settings, nameserver=dns_server.address, now=now + 24 * 3600 + 1)
    assert {"spf-missing", "dmarc-missing"} <= _codes(after_a_day, "error")
    with pytest.raises(DoctorRefused) as refused:
        refuse_on_errors(after_a_day)
    assert refused.value.exit_code == EXIT_FAILED
    assert "--ignore-doctor" in str(refused.value)


def test_gate_does_not_keep_dns_failures(newsletter_root, dns_server, own_cache):
    settings = load_settings(newsletter_root)
    dns_server.resolver.serve("good", servfail=True)
    now = time.time()
    assert "dns-servfail" in _codes(doctor_gate(settings, nameserver=dns_server.address, now=now), "error")
    dns_server.resolver.serve("good")
    assert _codes(doctor_gate(settings, nameserver=dns_server.address, now=now + 60), "error") == set()


def test_a_subdomain_sender_redirect_org_dmarc_and_null_mx(newsletter_root, dns_server):
    dns_server.resolver.serve("subdomain")
    settings = dataclasses.replace(load_settings(newsletter_root), from_address="News <letters@news.example.com>",
                                   reply_to="desk@example.net")
    findings = run_doctor(settings, nameserver=dns_server.address, probe=False)
    by_code = {f.code: f for f in findings}

    assert _codes(findings, "error") == {"mx-null"}  # SPF passes through its redirect, DMARC is inherited
    assert "example.net" in by_code["mx-null"].message
    assert "spf-no-all" not in by_code  # the redirect's -all counts
    aligned = by_code["dmarc-aligned"]
    assert aligned.where == "_dmarc.example.com"  # found at the organisational domain
    assert "DKIM d=news.example.com (strict: aligned)" in aligned.message


def test_a_token_in_the_path_is_not_printed(newsletter_root, dns_server, one_click):
    dns_server.resolver.serve("good")
    settings = dataclasses.replace(load_settings(newsletter_root),
                                   unsubscribe_url=f"http://127.0.0.1:{one_click.port}/u/{{token}}")
    findings = run_doctor(settings, nameserver=dns_server.address)
    token = one_click.app.requests[-1].path.removeprefix("/u/")
    refused = [f for f in findings if f.code == "unsubscribe-refused"]
    assert refused and "/u/{token}" in refused[0].message
    assert not any(token in f.message or token in f.fix for f in findings)


def test_a_subdomain_sender_gets_the_organisational_domains_subdomain_policy(newsletter_root, dns_server):
    """RFC 7489 §6.6.3: a policy found at the organisational domain applies to a subdomain through sp=."""
    dns_server.resolver.serve("subdomain-sp")
    settings = dataclasses.replace(load_settings(newsletter_root), from_address="News <letters@news.example.com>")
    findings = run_doctor(settings, nameserver=dns_server.address, probe=False)
    by_code = {f.code: f for f in findings}

    assert "sp=none" in by_code["dmarc-monitoring"].message  # not the p=reject of example.com itself
    assert "DMARC enforces" not in by_code["bimi"].message


def test_a_redirect_beside_an_all_is_ignored_as_receivers_ignore_it(newsletter_root, dns_server):
    """RFC 7208 §6.1: redirect= is not followed when the record has an 'all', so its look-ups do not count."""
    dns_server.resolver.serve("spf-ignored-redirect")
    findings = run_doctor(load_settings(newsletter_root), nameserver=dns_server.address, probe=False)
    by_code = {f.code: f for f in findings}

    assert "spf-too-many-lookups" not in by_code
    assert "(2 of 10 look-ups" in by_code["spf"].message
    assert not any(question[0] == "_many.example.com" for question in dns_server.resolver.questions)


def test_gate_asks_again_after_a_refusal_so_a_fixed_record_counts_at_once(newsletter_root, dns_server, own_cache):
    """A writer who fixes the record the gate refused on, and sends again, is not refused for the rest of the day."""
    settings = load_settings(newsletter_root)
    dns_server.resolver.serve("missing")
    now = time.time()
    assert "spf-missing" in _codes(doctor_gate(settings, nameserver=dns_server.address, now=now), "error")

    dns_server.resolver.serve("good")  # the writer publishes the records
    assert _codes(doctor_gate(settings, nameserver=dns_server.address, now=now + 60), "error") == set()
