"""SPF (RFC 7208): one record, authorizing the provider, within 10 DNS look-ups, ending in ~all or -all.

Receivers evaluate SPF on the envelope (Return-Path) domain; Gmail, Yahoo
(2024) and Outlook.com (2025) require SPF or DKIM for every sender and both
for bulk senders. The walk below follows every include and redirect (not
only the branch a receiver would stop at) and counts the terms that cost a
DNS look-up (include, a, mx, ptr, exists, redirect: RFC 7208 §4.6.4), since
over 10 a receiver stops with a permanent error and SPF fails for all mail.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass, field

from .context import SENDGRID_SPF_INCLUDE, DoctorContext
from .findings import ERROR, INFO, WARNING, Finding, dns_failure, smtp_host_addresses
from .resolver import NXDOMAIN, DnsClient, Lookup
from ..hosts import is_local

MAX_LOOKUPS = 10
MAX_VOID_LOOKUPS = 2
LOOKUP_TERMS = ("include", "a", "mx", "ptr", "exists", "redirect")
_WALK_LIMIT = 40  # stop following includes past this many look-ups: the verdict is clear by then


def is_spf(text: str) -> bool:
    return text.lower() == "v=spf1" or text.lower().startswith("v=spf1 ")


@dataclass
class SpfWalk:
    """What following one SPF record and everything it includes found."""

    lookups: int = 0
    void_lookups: int = 0
    includes: list[str] = field(default_factory=list)
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = field(default_factory=list)
    failures: list[Lookup] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (where, what is wrong)
    all_qualifier: str | None = None  # of the top record (or its redirect): + - ~ ?

    def authorizes(self, address: str) -> bool:
        ip = ipaddress.ip_address(address)
        return any(ip.version == net.version and ip in net for net in self.networks)


def _split(term: str) -> tuple[str, str, str]:
    """(qualifier, mechanism or modifier name, argument) of one SPF term."""
    qualifier = term[0] if term[:1] in "+-~?" else "+"
    body = term[1:] if term[:1] in "+-~?" else term
    for separator in ("=", ":", "/"):
        name, sep, arg = body.partition(separator)
        if sep and name.isalnum():
            return qualifier, name.lower(), (sep + arg if separator == "/" else arg)
    return qualifier, body.lower(), ""


def _target(arg: str, domain: str) -> tuple[str, int | None, int | None]:
    """The domain of an a/mx term and its CIDR lengths: ``a:host/24//64`` -> (host, 24, 64)."""
    name, _, cidr = arg.partition("/")
    v4, _, v6 = cidr.partition("//") if cidr else ("", "", "")
    if cidr.startswith("/"):
        v4, v6 = "", cidr[1:]
    return (name or domain), (int(v4) if v4.isdigit() else None), (int(v6) if v6.isdigit() else None)


def _networks(addresses: tuple[str, ...], v4: int | None, v6: int | None):
    for address in addresses:
        ip = ipaddress.ip_address(address)
        length = (v4 if ip.version == 4 else v6)
        yield ipaddress.ip_network(f"{address}/{length if length is not None else ip.max_prefixlen}", strict=False)


def walk(dns: DnsClient, domain: str, record: str) -> SpfWalk:
    """Follow ``record`` (the SPF record of ``domain``) through every include and redirect."""
    result = SpfWalk()
    _walk(dns, domain, record, result, seen={domain}, top=True)
    return result


def _spf_of(dns: DnsClient, domain: str, result: SpfWalk, why: str) -> str | None:
    lookup = dns.txt(domain)
    if lookup.failed:
        result.failures.append(lookup)
        return None
    records = [r for r in lookup.records if is_spf(r)]
    if not records:
        if not lookup.records:
            result.void_lookups += 1
        result.problems.append((domain, f"{why} points to {domain}, which has no SPF record "
                                        f"({lookup.describe()}): receivers treat that as a permanent error"))
        return None
    if len(records) > 1:
        result.problems.append((domain, f"{domain} has {len(records)} SPF records; it must have one"))
    return records[0]


def _walk(dns: DnsClient, domain: str, record: str, result: SpfWalk, seen: set[str], top: bool) -> None:
    redirect = None
    has_all = False
    for term in record.split()[1:]:
        qualifier, name, arg = _split(term)
        if name in LOOKUP_TERMS and name != "redirect":  # a redirect costs a look-up only when followed
            result.lookups += 1
        if result.lookups > _WALK_LIMIT or "%" in arg:
            continue  # macros depend on the sender; too many look-ups: already decided
        if name == "all":
            has_all = True
            if top:
                result.all_qualifier = qualifier
        elif name == "include":
            result.includes.append(arg.lower())
            if arg.lower() in seen:
                result.problems.append((domain, f"include:{arg} loops back to a record already included"))
                continue
            included = _spf_of(dns, arg, result, f"include:{arg}")
            if included is not None:
                _walk(dns, arg.lower(), included, result, seen | {arg.lower()}, top=False)
        elif name == "redirect":
            redirect = arg.lower()
        elif name in ("ip4", "ip6"):
            try:
                network = ipaddress.ip_network(arg, strict=False)
            except ValueError:
                result.problems.append((domain, f"'{term}' is not a valid address or network"))
                continue
            if qualifier == "+":
                result.networks.append(network)
        elif name == "a":
            host, v4, v6 = _target(arg, domain)
            lookup, addresses = dns.addresses(host)
            if lookup.failed:
                result.failures.append(lookup)
            elif not addresses:
                result.void_lookups += 1
            if qualifier == "+":
                result.networks.extend(_networks(addresses, v4, v6))
        elif name == "mx":
            host, v4, v6 = _target(arg, domain)
            lookup = dns.lookup(host, "MX")
            if lookup.failed:
                result.failures.append(lookup)
                continue
            if not lookup.found:
                result.void_lookups += 1
            for mx in lookup.records:
                exchange = mx.split()[-1]
                if exchange != "." and qualifier == "+":
                    result.networks.extend(_networks(dns.addresses(exchange)[1], v4, v6))
        elif name == "ptr":
            result.problems.append((domain, "the 'ptr' mechanism is slow and deprecated (RFC 7208 §5.5); "
                                            "receivers may ignore it"))
    if redirect and not has_all:  # beside an 'all' a redirect is ignored (RFC 7208 §6.1)
        result.lookups += 1
        if redirect in seen:
            result.problems.append((domain, f"redirect={redirect} loops back"))
            return
        target = _spf_of(dns, redirect, result, f"redirect={redirect}")
        if target is not None:  # the redirect's record stands in for this one, its 'all' included
            _walk(dns, redirect, target, result, seen | {redirect}, top=top)


def check_spf(ctx: DoctorContext) -> Iterator[Finding]:
    domain = ctx.envelope_domain
    lookup = ctx.dns.txt(domain)
    if lookup.failed:
        yield dns_failure(lookup, "SPF")
        return
    suggestion = (f"v=spf1 include:{SENDGRID_SPF_INCLUDE} ~all" if ctx.provider == "sendgrid"
                  else "v=spf1 a:<your SMTP host> ~all")
    if lookup.outcome == NXDOMAIN:
        yield Finding(ERROR, "domain-nxdomain", f"the sending domain {domain} does not exist in DNS (NXDOMAIN); "
                      "receivers refuse mail from a domain that does not resolve", domain,
                      fix=f"register {domain} or send from a domain you own (newsletter.from in newsletter.toml)")
        return
    records = [r for r in lookup.records if is_spf(r)]
    if not records:
        yield Finding(ERROR, "spf-missing", f"{domain} has no SPF record ({lookup.describe()}); Gmail, Yahoo and "
                      "Outlook.com require SPF for bulk senders", domain,
                      fix=f"publish a TXT record at {domain}: \"{suggestion}\"")
        return
    if len(records) > 1:
        yield Finding(ERROR, "spf-multiple", f"{domain} has {len(records)} SPF records; receivers treat more than "
                      "one as a permanent error (RFC 7208 §4.5) and SPF fails", domain,
                      fix="merge them into one TXT record starting with v=spf1")
    result = walk(ctx.dns, domain, records[0])
    for failed in result.failures:
        yield dns_failure(failed, "SPF (an included record)")
    for where, problem in result.problems:
        yield Finding(WARNING if "deprecated" in problem else ERROR, "spf-invalid", problem, where,
                      fix="correct or remove that term of the SPF record")
    if result.lookups > MAX_LOOKUPS:
        yield Finding(ERROR, "spf-too-many-lookups", f"the SPF record of {domain} needs {result.lookups} DNS "
                      f"look-ups (through include, a, mx, ptr, exists and redirect); receivers stop at "
                      f"{MAX_LOOKUPS} and SPF fails with a permanent error (RFC 7208 §4.6.4)", domain,
                      fix="remove includes of services you no longer use, or replace a/mx terms with ip4:/ip6: "
                          "ranges")
    elif result.void_lookups > MAX_VOID_LOOKUPS:
        yield Finding(WARNING, "spf-void-lookups", f"{result.void_lookups} terms of the SPF record of {domain} "
                      f"find nothing; receivers may fail SPF after {MAX_VOID_LOOKUPS} (RFC 7208 §4.6.4)", domain,
                      fix="remove terms that point to names without records")
    yield from _provider_authorized(ctx, domain, result)
    qualifier = result.all_qualifier
    if qualifier == "+":
        yield Finding(ERROR, "spf-plus-all", f"the SPF record of {domain} ends in +all, which lets anyone send as "
                      f"{domain}", domain, fix="end the record with ~all (or -all)")
    elif qualifier not in ("~", "-"):
        ending = "?all" if qualifier == "?" else "no 'all'"
        yield Finding(WARNING, "spf-no-all", f"the SPF record of {domain} has {ending}, so it does not say that "
                      "other servers are not allowed", domain, fix="end the record with ~all (or -all)")
    yield Finding(INFO, "spf", f"SPF of {domain}: {records[0]} ({result.lookups} of {MAX_LOOKUPS} look-ups)",
                  domain)


def _provider_authorized(ctx: DoctorContext, domain: str, result: SpfWalk) -> Iterator[Finding]:
    if ctx.provider == "sendgrid":
        if SENDGRID_SPF_INCLUDE not in result.includes:
            yield Finding(ERROR, "spf-provider-missing", f"the SPF record of {domain} does not authorize SendGrid",
                          domain, fix=f"add include:{SENDGRID_SPF_INCLUDE} before the 'all' at the end")
        return
    host = ctx.settings.smtp.host
    if is_local(host):
        yield Finding(INFO, "spf-local-relay", f"the SMTP host {host} is on this machine or network; SPF must "
                      "authorize the server that finally delivers the mail", domain,
                      fix="add that server's addresses (ip4:/ip6:) or its provider's include to the SPF record")
        return
    problem, addresses = smtp_host_addresses(ctx, host)
    if problem:
        yield problem
        return
    missing = [a for a in addresses if not result.authorizes(a)]
    if missing:
        yield Finding(ERROR, "spf-provider-missing", f"the SPF record of {domain} does not authorize the SMTP "
                      f"host {host} ({', '.join(missing)})", domain,
                      fix=f"add a:{host} (or ip4:/ip6: with its addresses) before the 'all' at the end")
