"""Run the doctor: the DNS checks (cached for a day, for ``send``), then the unsubscribe probe.

``run_doctor`` is what ``newsletter doctor`` prints; ``doctor_gate`` is what
a live send asks before it starts, and ``refuse_on_errors`` turns its
errors into the refusal that ``--ignore-doctor`` overrides.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..checks import SEVERITIES, has_errors
from ..config import Settings
from ..errors import EXIT_FAILED, NewsletterError
from . import cache
from .bimi import check_bimi
from .context import DoctorContext
from .dkim import check_dkim
from .dmarc import check_dmarc, freemail_finding
from .domains import is_freemail
from .findings import ERROR, Finding, dns_failure
from .mx import check_mx
from .resolver import NXDOMAIN, TIMEOUT, DnsClient
from .smtp_host import check_reverse_dns, check_tls
from .spf import check_spf
from .unsubscribe_endpoint import check_unsubscribe_endpoint

DoctorCheck = Callable[[DoctorContext], Iterable[Finding]]
DNS_CHECKS: list[DoctorCheck] = [check_spf, check_dkim, check_dmarc, check_mx, check_reverse_dns, check_tls,
                                 check_bimi]


class DoctorRefused(NewsletterError):
    """A live send stopped before it started because the doctor found errors in the sending setup."""

    exit_code = EXIT_FAILED


def _ordered(findings: list[Finding]) -> list[Finding]:
    """Errors first, then warnings, then notes; within a severity, in the order the checks ran."""
    return sorted(findings, key=lambda f: SEVERITIES.index(f.severity) if f.severity in SEVERITIES else 99)


def dns_findings(settings: Settings, dns: DnsClient) -> list[Finding]:
    """Every DNS check of the sending setup, uncached."""
    ctx = DoctorContext(settings, dns)
    if is_freemail(ctx.from_domain):
        return [freemail_finding(ctx)]  # nothing in gmail.com's DNS is the writer's to fix
    first = dns.txt(ctx.envelope_domain)
    if first.outcome == TIMEOUT:  # every other question would wait as long: say it once
        return [dns_failure(first, "The sending domain (SPF, DKIM, DMARC, MX)")]
    if first.outcome == NXDOMAIN and ctx.envelope_domain == ctx.from_domain:
        return list(check_spf(ctx))  # "the domain does not exist" is the whole story
    findings: list[Finding] = []
    for check in DNS_CHECKS:
        findings.extend(check(ctx))
    return findings


def run_doctor(settings: Settings, *, nameserver: str | None = None, probe: bool = True) -> list[Finding]:
    """All checks, fresh (the DNS part also refreshes the cache ``doctor_gate`` reads)."""
    dns = DnsClient(nameserver, settings.doctor.dns_timeout)
    findings = dns_findings(settings, dns)
    cache.store(settings, nameserver, findings)
    if probe:
        findings.extend(check_unsubscribe_endpoint(DoctorContext(settings, dns)))
    return _ordered(findings)


def doctor_gate(settings: Settings, *, nameserver: str | None = None, now: float | None = None) -> list[Finding]:
    """The DNS part of the doctor as a live send sees it: from the cache when under a day old."""
    cached = cache.load(settings, nameserver, now)
    if cached is not None:
        return cached
    findings = _ordered(dns_findings(settings, DnsClient(nameserver, settings.doctor.dns_timeout)))
    cache.store(settings, nameserver, findings, now)
    return findings


def refuse_on_errors(findings: list[Finding]) -> None:
    """Raise ``DoctorRefused`` naming each error, for a live send without ``--ignore-doctor``."""
    if not has_errors(findings):
        return
    errors = [f for f in findings if f.severity == ERROR]
    listed = "; ".join(f"{f.where + ': ' if f.where else ''}{f.message}" for f in errors[:5])
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    raise DoctorRefused(f"the sending setup has {len(errors)} error{'s' * (len(errors) != 1)}: {listed}{more}",
                        hint="run newsletter doctor for the fixes; send anyway with --ignore-doctor")
