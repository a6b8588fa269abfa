"""DMARC (RFC 9989, which replaced RFC 7489 in May 2026): the record that applies, and alignment.

Gmail and Yahoo (2024) and Outlook.com (2025) require bulk senders to
publish DMARC (``p=none`` at least) and to pass it, which takes SPF or DKIM
passing for a domain aligned with the From domain: the same name (strict,
``adkim=s``/``aspf=s``) or the same organisational domain (relaxed, the
default). The record and the organisational domains come from the DNS tree
walk (``tree_walk``); where receivers still on RFC 7489's Public Suffix List
would decide alignment differently, a warning says so. A freemail From
address (gmail.com, yahoo.com, ...) cannot pass: those providers publish
p=reject or quarantine and refuse bulk mail that claims to come from them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from .context import DoctorContext
from .dkim import signing_domain
from .domains import psl_organisational_domain
from .findings import ERROR, INFO, WARNING, DoctorFinding, dns_failure, found
from .resolver import Lookup
from .tree_walk import Policy, discover_policy, organisational_domain

REQUIRED_BY = "Gmail, Yahoo (bulk senders, 2024) and Outlook.com (over 5,000 a day, 2025-05-05) require it"


def find_policy(ctx: DoctorContext) -> Policy:
    """The DMARC record that applies to mail from the From domain (RFC 9989 §4.10.1)."""
    return discover_policy(ctx.dns, ctx.from_domain)


def spf_domain(ctx: DoctorContext) -> str:
    """The envelope (Return-Path) domain SPF passes for. A provider that returns bounces itself does so
    through a subdomain of an authenticated domain (SendGrid: em1234.<domain>), else through its own."""
    expects = ctx.expects
    if ctx.settings.doctor.envelope_domain or not expects.fallback_domain:
        return ctx.envelope_domain
    authenticated = signing_domain(ctx) == ctx.dkim_domain
    return f"{expects.bounce_label}.{ctx.dkim_domain}" if authenticated else expects.fallback_domain


@dataclass(frozen=True)
class Alignment:
    """How the DKIM d= and SPF domains the provider uses compare with the From domain, by both rules."""

    dkim_domain: str  # "" when nothing signs
    spf_domain: str
    adkim: str
    aspf: str
    dkim: bool  # aligned by RFC 9989 (tree walk)
    spf: bool
    dkim_psl: bool  # aligned by RFC 7489 (Public Suffix List)
    spf_psl: bool
    organisational: str  # the From domain's organisational domain by the tree walk
    failure: Lookup | None = None

    @property
    def passes(self) -> bool:
        return self.dkim or self.spf

    @property
    def passes_psl(self) -> bool:
        return self.dkim_psl or self.spf_psl


def _aligned(dns_org: str, from_org: str, domain: str, from_domain: str, mode: str) -> bool:
    return domain == from_domain if mode == "s" else dns_org == from_org


def alignment(ctx: DoctorContext, policy: Policy) -> Alignment:
    """Identifier alignment under ``policy``'s adkim/aspf (relaxed without a record), RFC 9989 §4.10.2."""
    record = policy.record
    adkim = record.mode("adkim") if record else "r"
    aspf = record.mode("aspf") if record else "r"
    from_domain = ctx.from_domain
    from_org = policy.walk.organisational_domain
    dkim_d, envelope = signing_domain(ctx), spf_domain(ctx)
    failure = policy.walk.failure
    orgs: dict[str, str] = {}
    for domain in {dkim_d, envelope} - {""}:
        orgs[domain], failed = organisational_domain(ctx.dns, domain)
        failure = failure or failed
    psl_from = psl_organisational_domain(from_domain)
    return Alignment(
        dkim_d, envelope, adkim, aspf,
        dkim=bool(dkim_d) and _aligned(orgs.get(dkim_d, ""), from_org, dkim_d, from_domain, adkim),
        spf=_aligned(orgs[envelope], from_org, envelope, from_domain, aspf),
        dkim_psl=bool(dkim_d) and _aligned(psl_organisational_domain(dkim_d), psl_from, dkim_d, from_domain, adkim),
        spf_psl=_aligned(psl_organisational_domain(envelope), psl_from, envelope, from_domain, aspf),
        organisational=from_org, failure=failure)


def check_dmarc(ctx: DoctorContext) -> Iterator[DoctorFinding]:
    policy = find_policy(ctx)
    walk = policy.walk
    where = f"_dmarc.{ctx.from_domain}"
    if walk.failure is not None:
        yield dns_failure(walk.failure, "DMARC")
        return
    for name, texts in walk.malformed.items():
        yield found(ERROR if name == walk.start else WARNING, "dmarc-version",
                    f"the TXT record {texts[0]!r} at _dmarc.{name} is meant as DMARC but does not start with "
                    "v=DMARC1 exactly (upper case, the first tag), so receivers ignore it", f"_dmarc.{name}",
                    fix="start the record with v=DMARC1; (then p=...)", rule="RFC 9989 §4.7 (tag v), §4.10 step 2")
    for name in walk.several:
        yield found(ERROR, "dmarc-multiple", f"_dmarc.{name} has more than one DMARC record, so receivers discard "
                    "them all", f"_dmarc.{name}", fix="keep one TXT record starting with v=DMARC1",
                    rule="RFC 9989 §4.10 step 2")
    record = policy.record
    if record is None:
        yield found(ERROR, "dmarc-missing", f"{ctx.from_domain} has no DMARC record (asked {where} and each parent "
                    f"domain up to _dmarc.{walk.start.rsplit('.', 1)[-1]}); {REQUIRED_BY}", where,
                    fix=f"publish a TXT record at {where}: \"v=DMARC1; p=none; rua=mailto:dmarc@{ctx.from_domain}\"",
                    rule="RFC 9989 §4.10.1 (no record: receivers apply no DMARC); Gmail, Yahoo, Outlook.com "
                         "sender rules")
        return
    if policy.source == "public suffix":
        yield found(WARNING, "dmarc-psd-policy", f"{ctx.from_domain} has no DMARC record of its own or at its "
                    f"organisational domain: the record that applies is the public suffix's at {record.name} "
                    "(psd=y), which receivers still on RFC 7489 do not look at, and which is not yours", record.name,
                    fix=f"publish your own record at {where}", rule="RFC 9989 §4.10.1 (the public suffix's record "
                                                                    "applies last)")
    if policy.source == "own" and record.psd == "y":
        yield found(WARNING, "dmarc-psd", f"psd=y in the DMARC record at {record.name} declares {record.domain} a "
                    "public suffix (a registry, where others register names): a sending domain's record should not "
                    "say so", record.name, fix="remove psd=y (or write psd=n: the domain is its own organisational "
                                               "domain)", rule="RFC 9989 §4.7 (tag psd), §3.2.15")
    for problem in record.problems():
        yield found(problem.severity, problem.code, problem.message, record.name, fix=problem.fix, rule=problem.rule)
    if record.policy_broken():
        text = (f"the DMARC record at {record.name} has a policy that is not none, quarantine or reject "
                f"({', '.join(record.broken_policy_tags())})")
        if record.has_valid_rua:
            yield found(WARNING, "dmarc-invalid", f"{text}: RFC 9989 receivers act as if it said p=none since "
                        "rua= is valid; receivers on RFC 7489 may ignore the record", record.name,
                        fix="write p=none (or quarantine, reject) as the second tag",
                        rule="RFC 9989 §4.10.1 (a p, sp or np that is not valid: p=none when rua has a valid URI)")
        else:
            yield found(ERROR, "dmarc-invalid", f"{text}, and no valid rua=: receivers apply no DMARC at all "
                        f"({REQUIRED_BY})", record.name, fix="start the record with v=DMARC1; p=none",
                        rule="RFC 9989 §4.10.1 (a p, sp or np that is not valid, and no valid rua: no DMARC "
                             "processing)")
            return
    if policy.policy == "none":
        yield found(INFO, "dmarc-monitoring", f"DMARC policy of {ctx.from_domain} is {policy.policy_tag}=none "
                    "(monitoring only)", record.name,
                    fix="once the reports show all your mail passing, move to p=quarantine",
                    rule="RFC 9989 §3.2.12 (monitoring mode)")
    if "rua" not in record.tags:
        yield found(INFO, "dmarc-no-reports", "the DMARC record asks for no aggregate reports (no rua=), so you "
                    "will not see who fails", record.name, fix=f"add rua=mailto:dmarc@{ctx.from_domain}",
                    rule="RFC 9989 §4.7 (tag rua: without it no reports are sent)")
    yield from _alignment_findings(ctx, policy)


def _alignment_findings(ctx: DoctorContext, policy: Policy) -> Iterator[DoctorFinding]:
    assert policy.record is not None
    record = policy.record
    found_at = alignment(ctx, policy)
    if found_at.failure is not None:
        yield dns_failure(found_at.failure, "DMARC alignment (the DNS tree walk)")
        return
    modes = {"s": "strict", "r": "relaxed"}
    dkim_d, envelope = found_at.dkim_domain, found_at.spf_domain
    dkim_text = (f"DKIM d={dkim_d} ({modes[found_at.adkim]}: {'aligned' if found_at.dkim else 'not aligned'})"
                 if dkim_d else "no DKIM signature")
    spf_text = f"SPF on {envelope} ({modes[found_at.aspf]}: {'aligned' if found_at.spf else 'not aligned'})"
    org = f"; organisational domain {found_at.organisational} (DNS tree walk)"
    rule = "RFC 9989 §3.2.10 (alignment), §4.10.2 (organisational domains by the DNS tree walk)"
    if not found_at.passes:
        fix = (f"authenticate {ctx.from_domain} {ctx.expects.domain_setup} so it signs with "
               f"d={ctx.from_domain}" if ctx.expects.domain_setup else
               f"sign with a DKIM key of {ctx.from_domain} ([doctor] dkim_domain), or send with a Return-Path "
               f"in {ctx.from_domain}")
        if found_at.adkim == "s" or found_at.aspf == "s":
            fix += ", or relax the alignment (adkim=r; aspf=r)"
        older = ("; receivers still on RFC 7489's Public Suffix List would pass it, RFC 9989 receivers do not"
                 if found_at.passes_psl else "")
        yield found(ERROR, "dmarc-not-aligned", f"mail from {ctx.from_domain} will fail DMARC: {dkim_text}, "
                    f"{spf_text}{org}{older}", record.name, fix=fix, rule=rule)
        return
    both = found_at.dkim and found_at.spf
    yield found(INFO, "dmarc-aligned", (f"DMARC aligned: {dkim_text}, {spf_text}" if both else
                                        f"DMARC passes on one of two: {dkim_text}, {spf_text}") + org,
                record.name, rule=rule)
    if not found_at.passes_psl:
        yield found(WARNING, "dmarc-alignment-disagrees", f"receivers still on RFC 7489 find organisational "
                    f"domains in the Public Suffix List, by which neither {dkim_d or 'the DKIM domain'} nor "
                    f"{envelope} aligns with {ctx.from_domain} (it is {psl_organisational_domain(ctx.from_domain)} "
                    "there): they fail your mail", record.name,
                    fix=f"sign with d={ctx.from_domain} (strict alignment is the same under both rules)",
                    rule="RFC 9989 Appendix C.3 (tree walk and Public Suffix List can disagree); RFC 7489 §3.2")


def freemail_finding(ctx: DoctorContext) -> DoctorFinding:
    return found(ERROR, "freemail-from", f"the From address is at {ctx.from_domain}, a freemail provider whose "
                 "DMARC policy makes receivers refuse bulk mail sent as it through any other service",
                 ctx.config_path, fix="send from a domain you own (newsletter.from in newsletter.toml), with SPF, "
                                      "DKIM and DMARC set up for it",
                 rule="RFC 9989 §5.3.6 (the From domain's p=reject applies); Gmail and Yahoo sender rules")
