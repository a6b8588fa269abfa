"""Run the doctor: the DNS checks (cached for a day, for ``send``), the unsubscribe probe, and with a list,
the mailbox providers' rules for the recipients it reaches.

``examine`` is what ``newsletter doctor`` prints (``run_doctor`` its
findings alone); ``doctor_gate`` is what a live send asks before it starts,
for the list it is about to send, and ``refuse_on_errors`` turns its errors
into the refusal that ``--ignore-doctor`` overrides.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from ..checks import SEVERITIES, has_errors
from ..config import Settings
from ..errors import EXIT_FAILED, NewsletterError
from ..lists import require_list
from . import cache
from .audience import Audience, AudienceQuery, count_audience
from .authentication import Authentication, authenticate, unchecked
from .bimi import check_bimi
from .context import DoctorContext
from .dkim import check_dkim
from .dmarc import check_dmarc, freemail_finding
from .domains import is_freemail
from .findings import ERROR, Finding, dns_failure
from .mailbox_providers import provider_findings
from .mx import check_mx
from .resolver import NXDOMAIN, TIMEOUT, DnsClient
from .sending_host import check_reverse_dns, check_tls
from .spf import check_spf
from .unsubscribe_endpoint import ONE_CLICK, check_unsubscribe_endpoint

DoctorCheck = Callable[[DoctorContext], Iterable[Finding]]
DNS_CHECKS: list[DoctorCheck] = [check_spf, check_dkim, check_dmarc, check_mx, check_reverse_dns, check_tls,
                                 check_bimi]


class DoctorRefused(NewsletterError):
    """A live send stopped before it started because the doctor found errors in the sending setup."""

    exit_code = EXIT_FAILED


@dataclass
class DoctorResult:
    """What ``newsletter doctor`` reports: the findings, the facts behind them, and the list's providers."""

    findings: list[Finding]
    authentication: Authentication
    audience: Audience | None = None


def _ordered(findings: list[Finding]) -> list[Finding]:
    """Errors first, then warnings, then notes; within a severity, in the order the checks ran."""
    return sorted(findings, key=lambda f: SEVERITIES.index(f.severity) if f.severity in SEVERITIES else 99)


def dns_report(settings: Settings, dns: DnsClient) -> tuple[list[Finding], Authentication]:
    """Every DNS check of the sending setup, uncached, and the authentication facts they establish."""
    ctx = DoctorContext(settings, dns)
    if is_freemail(ctx.from_domain):  # nothing in gmail.com's DNS is the writer's to fix
        return [freemail_finding(ctx)], unchecked(f"the From address is at {ctx.from_domain}, a freemail domain")
    first = dns.txt(ctx.envelope_domain)
    if first.outcome == TIMEOUT:  # every other question would wait as long: say it once
        return [dns_failure(first, "The sending domain (SPF, DKIM, DMARC, MX)")], unchecked(first.describe())
    if first.outcome == NXDOMAIN and ctx.envelope_domain == ctx.from_domain:
        return list(check_spf(ctx)), unchecked(first.describe())  # "the domain does not exist" is the whole story
    findings: list[Finding] = []
    spf: list[Finding] = []
    for check in DNS_CHECKS:
        found = list(check(ctx))
        findings.extend(found)
        if check is check_spf:
            spf = found
    return findings, authenticate(ctx, spf, findings)


def dns_findings(settings: Settings, dns: DnsClient) -> list[Finding]:
    """Every DNS check of the sending setup, uncached."""
    return dns_report(settings, dns)[0]


def _with_audience(settings: Settings, dns: DnsClient, findings: list[Finding], auth: Authentication,
                   query: AudienceQuery | None, *, fresh: bool,
                   now: float | None = None) -> tuple[list[Finding], Audience | None]:
    """The findings plus the providers' rules for ``query``'s recipients; MX answers under a day old are
    used unless ``fresh``, and new ones kept for the next send."""
    if query is None:
        return findings, None
    known = {} if fresh else cache.load_mx(dns.nameserver, now)
    audience = count_audience(settings, query, dns, known)
    cache.store_mx(dns.nameserver, audience.mx_answers, now)
    judged: list[Finding] = list(provider_findings(audience.groups, auth, query.list_name, auth_where(settings)))
    return findings + judged, audience


def auth_where(settings: Settings) -> str:
    """Where a provider rule's failure is fixed: the From domain's DNS."""
    return settings.from_email.rpartition("@")[2].lower()


def examine(settings: Settings, *, nameserver: str | None = None, probe: bool = True,
            audience: AudienceQuery | None = None) -> DoctorResult:
    """All checks, fresh (the DNS part also refreshes the cache ``doctor_gate`` reads); with ``audience``,
    the list's recipients per mailbox provider and the providers' rules the setup fails."""
    if audience is not None:  # a list that is not there is said before DNS is asked anything
        require_list(settings.list_path(audience.list_name))
    dns = DnsClient(nameserver, settings.doctor.dns_timeout)
    findings, auth = dns_report(settings, dns)
    cache.store(settings, nameserver, findings, auth)
    if probe:
        answered: list[Finding] = list(check_unsubscribe_endpoint(DoctorContext(settings, dns)))
        findings = findings + answered
        if settings.unsubscribe_url and auth.checked:  # the probe is the proof: configured is not enough
            auth = replace(auth, one_click=any(f.code == ONE_CLICK for f in answered))
    findings, counted = _with_audience(settings, dns, findings, auth, audience, fresh=True)
    return DoctorResult(_ordered(findings), auth, counted)


def run_doctor(settings: Settings, *, nameserver: str | None = None, probe: bool = True,
               list_name: str | None = None) -> list[Finding]:
    """The findings of ``examine`` (for ``list_name``'s recipients when one is given)."""
    query = AudienceQuery(list_name) if list_name else None
    return examine(settings, nameserver=nameserver, probe=probe, audience=query).findings


def doctor_gate(settings: Settings, *, nameserver: str | None = None, now: float | None = None,
                audience: AudienceQuery | None = None) -> list[Finding]:
    """The doctor as a live send sees it: the DNS part from the cache when under a day old, and for the
    list about to be sent (``audience``), the rules of the mailbox providers its recipients are at."""
    cached = cache.load(settings, nameserver, now)
    if cached is not None and audience is None:
        return cached[0]
    dns = DnsClient(nameserver, settings.doctor.dns_timeout)
    if cached is not None:
        findings, auth = cached
    else:
        findings, auth = dns_report(settings, dns)
        cache.store(settings, nameserver, findings, auth, now)
    findings, _ = _with_audience(settings, dns, findings, auth, audience, fresh=False, now=now)
    return _ordered(findings)


def refuse_on_errors(findings: list[Finding]) -> None:
    """Raise ``DoctorRefused`` naming each error, for a live send without ``--ignore-doctor``."""
    if not has_errors(findings):
        return
    errors = [f for f in findings if f.severity == ERROR]
    listed = "; ".join(f"{f.where + ': ' if f.where else ''}{f.message}" for f in errors[:5])
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    raise DoctorRefused(f"the sending setup has {len(errors)} error{'s' * (len(errors) != 1)}: {listed}{more}",
                        hint="run newsletter doctor for the fixes; send anyway with --ignore-doctor")
