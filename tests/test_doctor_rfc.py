"""Findings 12 and 13 of issue 20: verdicts as RFC 7208 (SPF), RFC 5321/2181 (MX), RFC 8463 (DKIM) and
RFC 9989 (DMARC, which replaced RFC 7489 in May 2026) give them, each against a zone of its own served by a
real DNS server on 127.0.0.1, each naming the clause it follows."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
from click.testing import CliRunner
from dns_standin import DnsStandIn

from newsletter.cli import main
from newsletter.config import load_settings
from newsletter.doctor import DoctorRefused, doctor_gate, refuse_on_errors, run_doctor
from newsletter.doctor.tree_walk import walk_names


@pytest.fixture(scope="module")
def dns_server():
    server = DnsStandIn()
    yield server
    server.stop()


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


# zone: (severity, code, the clause its rule names, what its message names)
CASES = {
    # finding 12: each lets a broken domain through the send gate on the old code
    "spf-unknown-mechanism": ("error", "spf-permerror", "RFC 7208 §4.6.1", "'ipv4:192.0.2.25' is not an SPF "
                                                                           "mechanism (did you mean ip4?)"),
    "spf-void-lookups": ("error", "spf-void-lookups", "RFC 7208 §4.6.4", "3 look-ups"),
    "spf-include-plus-all": ("error", "spf-include-plus-all", "RFC 7208 §5.2", "include:_spf.partner.example.net"),
    "mx-cname": ("error", "mx-cname", "RFC 2181 §10.3", "mail.example.com, which is an alias"),
    "mx-host-missing": ("error", "mx-host-missing", "RFC 5321 §5.1", "mx1.example.com, which has no address"),
    "dmarc-rua-not-uri": ("warning", "dmarc-bad-uri", "RFC 9989 §4.7", "'dmarc@example.com', which is not a URI"),
    "dmarc-adkim-invalid": ("warning", "dmarc-invalid-tag", "RFC 9989 §4.7 (tag adkim)", "adkim=x"),
    "dmarc-pct-invalid": ("warning", "dmarc-invalid-tag", "RFC 7489 §6.3", "pct=200"),
    # finding 13: DMARCbis
    "dmarcbis-bad-np": ("warning", "dmarc-invalid", "RFC 9989 §4.10.1", "np=bogus"),
    "dmarcbis-testing": ("info", "dmarc-testing", "RFC 9989 §4.7 (tag t)", "t=y"),
}


@pytest.mark.parametrize("zone", CASES)
def test_each_verdict_follows_its_rfc(zone, newsletter_root, dns_server, own_cache):
    severity, code, clause, named = CASES[zone]
    dns_server.resolver.serve(zone)
    settings = load_settings(newsletter_root)

    findings = run_doctor(settings, nameserver=dns_server.address, probe=False)

    matching = [f for f in findings if f.code == code and named in f.message]
    assert matching, [(f.severity, f.code, f.message) for f in findings]
    assert matching[0].severity == severity
    assert clause in matching[0].rule and matching[0].message.endswith(f"[{matching[0].rule}]")
    if severity == "error":  # the send gate refuses the domain now
        with pytest.raises(DoctorRefused, match=re.escape(clause)):
            refuse_on_errors(doctor_gate(settings, nameserver=dns_server.address))
    else:
        assert not [f for f in findings if f.severity == "error"], findings  # the rest of the zone is sound


def test_an_ed25519_only_selector_gets_a_note(newsletter_root, dns_server):
    """RFC 8463: Gmail, Yahoo (and Microsoft) do not verify Ed25519, so a setup that signs with it alone is noted."""
    dns_server.resolver.serve("dkim-ed25519")
    settings = load_settings(newsletter_root)
    smtp = dataclasses.replace(settings, provider="smtp",
                               smtp=dataclasses.replace(settings.smtp, host="smtp.example.com"),
                               doctor=dataclasses.replace(settings.doctor, dkim_selectors=("ed",)))

    by_code = {f.code: f for f in run_doctor(smtp, nameserver=dns_server.address, probe=False)}

    assert by_code["dkim-ed25519"].severity == "info"
    assert "Gmail, Yahoo and Microsoft do not verify Ed25519" in by_code["dkim-ed25519"].message
    assert by_code["dkim-ed25519-only"].severity == "warning"
    assert "RFC 8463 §6" in by_code["dkim-ed25519-only"].rule


def test_obsolete_tags_of_rfc_7489_are_noted(newsletter_root, dns_server):
    dns_server.resolver.serve("dmarcbis-obsolete-tags")

    findings = run_doctor(load_settings(newsletter_root), nameserver=dns_server.address, probe=False)

    obsolete = sorted(f.message.split("=", 1)[0] for f in findings if f.code == "dmarc-obsolete-tag")
    assert obsolete == ["pct", "rf", "ri"]
    assert all("RFC 9989 Appendix" in f.rule and f.severity == "info" for f in findings
               if f.code == "dmarc-obsolete-tag")
    pct = next(f for f in findings if f.message.startswith("pct=50"))
    assert "use t=y to test" in pct.message


def test_t_y_is_not_an_enforcing_policy(newsletter_root, dns_server):
    """RFC 9989 §4.7: with t=y, p=reject is applied as quarantine, so BIMI's 'DMARC enforces' does not hold."""
    dns_server.resolver.serve("dmarcbis-testing")
    bimi = next(f for f in run_doctor(load_settings(newsletter_root), nameserver=dns_server.address, probe=False)
                if f.code == "bimi")
    assert "DMARC enforces" not in bimi.message and "no t=y" in bimi.message


def test_psd_n_makes_a_subdomain_its_own_organisational_domain(newsletter_root, dns_server):
    """RFC 9989 §4.10.2: mail.example.com says psd=n, so d=mail.example.com no longer aligns with example.com
    (it did under RFC 7489's Public Suffix List): DMARC fails, and the send gate refuses."""
    dns_server.resolver.serve("dmarcbis-psd-n")
    settings = load_settings(newsletter_root)
    signed_elsewhere = dataclasses.replace(settings, doctor=dataclasses.replace(settings.doctor,
                                                                              dkim_domain="mail.example.com"))

    findings = run_doctor(signed_elsewhere, nameserver=dns_server.address, probe=False)

    failed = next(f for f in findings if f.code == "dmarc-not-aligned")
    assert "DKIM d=mail.example.com (relaxed: not aligned)" in failed.message
    assert "RFC 7489's Public Suffix List would pass it" in failed.message
    assert "§4.10.2" in failed.rule and failed.rule.startswith("RFC 9989")
    with pytest.raises(DoctorRefused, match="will fail DMARC"):
        refuse_on_errors(findings)


def test_a_public_suffix_record_found_by_the_walk_is_not_the_senders(newsletter_root, dns_server):
    """RFC 9989 §4.10.1: with no record of its own, news.example.com gets the psd=y record above it."""
    dns_server.resolver.serve("dmarcbis-psd-y")
    settings = dataclasses.replace(load_settings(newsletter_root), from_address="News <letters@news.example.com>")

    by_code = {f.code: f for f in run_doctor(settings, nameserver=dns_server.address, probe=False)}

    assert by_code["dmarc-psd-policy"].severity == "warning"
    assert "_dmarc.example.com (psd=y)" in by_code["dmarc-psd-policy"].message
    assert "organisational domain news.example.com (DNS tree walk)" in by_code["dmarc-aligned"].message


def test_the_dmarc_record_is_found_by_the_dns_tree_walk(newsletter_root, dns_server):
    """RFC 9989 §4.10: a From domain of 13 labels is looked up at its own name, then at its last seven labels
    and each parent: eight questions, the Public Suffix List not consulted."""
    dns_server.resolver.serve("dmarcbis-tree-walk")
    deep = "a.b.c.d.e.f.g.h.i.j.mail.example.com"
    settings = dataclasses.replace(load_settings(newsletter_root), from_address=f"Deep <letters@{deep}>")
    asked = len(dns_server.resolver.questions)

    findings = run_doctor(settings, nameserver=dns_server.address, probe=False)

    walked = [name for name, kind in dns_server.resolver.questions[asked:] if name.startswith("_dmarc.")]
    expected = ["_dmarc.a.b.c.d.e.f.g.h.i.j.mail.example.com", "_dmarc.g.h.i.j.mail.example.com",
                "_dmarc.h.i.j.mail.example.com", "_dmarc.i.j.mail.example.com", "_dmarc.j.mail.example.com",
                "_dmarc.mail.example.com", "_dmarc.example.com", "_dmarc.com"]
    assert list(dict.fromkeys(walked))[:8] == expected  # (then the walk of the bounce domain em.<From>)
    assert [f"_dmarc.{n}" for n in walk_names(deep)] == expected
    aligned = next(f for f in findings if f.code == "dmarc-aligned")
    assert "organisational domain example.com (DNS tree walk)" in aligned.message
    assert not [f for f in findings if f.severity == "error"], findings


def test_every_finding_names_its_rule_in_text_and_json(newsletter_root, dns_server):
    dns_server.resolver.serve("good")
    root = str(newsletter_root)

    as_json = CliRunner().invoke(main, ["--root", root, "doctor", "--nameserver", dns_server.address,
                                        "--format", "json"])
    as_text = CliRunner().invoke(main, ["--root", root, "doctor", "--nameserver", dns_server.address])

    findings = json.loads(as_json.output)["findings"]
    assert findings and all(f["rule"] and f["message"].endswith(f"[{f['rule']}]") for f in findings)
    assert "[RFC 7208 §4.6.4]" in as_text.output  # the SPF note's look-up count
    assert "RFC 9989 §3.2.10" in as_text.output  # DMARC alignment, by RFC 9989
