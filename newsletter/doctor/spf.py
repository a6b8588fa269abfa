"""SPF (RFC 7208): one valid record, authorizing the provider, within its DNS limits, ending in ~all or -all.

Receivers evaluate SPF on the envelope (Return-Path) domain; Gmail, Yahoo
(2024) and Outlook.com (2025) require SPF or DKIM for every sender and both
for bulk senders. The walk below follows every include and redirect (not
only the branch a receiver would stop at), reads every term by the grammar
(``spf_syntax``), and counts what a receiver counts (RFC 7208 §4.6.4): terms
that cost a DNS look-up (include, a, mx, ptr, exists, redirect; over 10 is
a permanent error) and look-ups that find nothing ("void"; over 2 is a
permanent error too). A permanent error fails SPF for all mail. An included
record that ends in ``+all`` passes every server on the internet through
the include, which is as good as no SPF at all.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..hosts import is_local
from .context import DoctorContext
from .findings import ERROR, INFO, WARNING, DoctorFinding, dns_failure, found, sending_host_addresses
from .resolver import NXDOMAIN, DnsClient, Lookup
from .spf_syntax import Term, parse_record

MAX_LOOKUPS = 10
MAX_VOID_LOOKUPS = 2
LOOKUP_TERMS = ("include", "a", "mx", "ptr", "exists", "redirect")
_WALK_LIMIT = 40  # stop following includes past this many look-ups: the verdict is clear by then
PERMERROR = "permerror"
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def is_spf(text: str) -> bool:
    return text.lower() == "v=spf1" or text.lower().startswith("v=spf1 ")


@dataclass(frozen=True)
class SpfProblem:
    """Something wrong in a record the walk read: where, what, and the clause it breaks."""

    where: str
    code: str
    message: str
    rule: str
    severity: str = ERROR


@dataclass
class SpfWalk:
    """What following one SPF record and everything it includes found."""

    lookups: int = 0
    void_lookups: int = 0
    includes: list[str] = field(default_factory=list)
    networks: list[IpNetwork] = field(default_factory=list)
    failures: list[Lookup] = field(default_factory=list)
    problems: list[SpfProblem] = field(default_factory=list)
    all_qualifier: str | None = None  # of the top record (or its redirect): + - ~ ?
    unparsed: list[str] = field(default_factory=list)  # domains whose record does not parse (permerror)

    def authorizes(self, address: str) -> bool:
        ip = ipaddress.ip_address(address)
        return any(ip.version == net.version and ip in net for net in self.networks)

    def permerror(self, where: str, message: str, rule: str) -> None:
        self.problems.append(SpfProblem(where, "spf-permerror", message, rule))


def _networks(addresses: tuple[str, ...], v4: int | None, v6: int | None) -> Iterator[IpNetwork]:
    for address in addresses:
        ip = ipaddress.ip_address(address)
        length = v4 if ip.version == 4 else v6
        yield ipaddress.ip_network(f"{address}/{length if length is not None else ip.max_prefixlen}", strict=False)


def walk(dns: DnsClient, domain: str, record: str) -> SpfWalk:
    """Follow ``record`` (the SPF record of ``domain``) through every include and redirect."""
    result = SpfWalk()
    result.all_qualifier = _walk(dns, domain, record, result, seen={domain})
    return result


def _spf_of(dns: DnsClient, domain: str, result: SpfWalk, why: str, where: str) -> str | None:
    lookup = dns.txt(domain)
    if lookup.failed:
        result.failures.append(lookup)
        return None
    records = [r for r in lookup.records if is_spf(r)]
    if not records:
        if not lookup.records:
            result.void_lookups += 1
        result.permerror(where, f"{why} in the SPF record of {where} points to {domain}, which has no SPF record "
                                f"({lookup.describe()}): receivers stop with a permanent error",
                         "RFC 7208 §5.2 (include of a domain without SPF), §6.1 (redirect likewise): permerror")
        return None
    if len(records) > 1:
        result.permerror(domain, f"{domain} has {len(records)} SPF records; it must have one",
                         "RFC 7208 §4.5 (more than one record: permerror)")
    return records[0]


def _walk(dns: DnsClient, domain: str, record: str, result: SpfWalk, seen: set[str]) -> str | None:
    """Walk one record; the qualifier of its effective 'all' (its own, or its redirect's), None without one."""
    terms, errors = parse_record(record)
    for error in errors:
        result.permerror(domain, f"the SPF record of {domain} does not parse: {error}; receivers stop with a "
                                 "permanent error and SPF fails for all mail",
                         "RFC 7208 §4.6.1, §12 (a syntax error anywhere in the record: permerror)")
    if errors:
        result.unparsed.append(domain)
        return None
    redirect = next((t.domain.lower() for t in terms if t.modifier and t.name == "redirect"), None)
    all_qualifier = None
    for term in terms:
        if term.modifier:
            continue
        if term.name in LOOKUP_TERMS:
            result.lookups += 1
        if result.lookups > _WALK_LIMIT or "%" in term.domain:
            continue  # macros depend on the sender; too many look-ups: already decided
        if term.name == "all":
            all_qualifier = term.qualifier
        else:
            _mechanism(dns, domain, term, result, seen)
    if redirect and all_qualifier is None:  # beside an 'all' a redirect is ignored (RFC 7208 §6.1)
        result.lookups += 1
        if redirect in seen:
            result.permerror(domain, f"redirect={redirect} in the SPF record of {domain} loops back",
                             "RFC 7208 §4.6.4 (the loop runs past the look-up limit: permerror)")
            return None
        target = _spf_of(dns, redirect, result, f"redirect={redirect}", domain)
        if target is not None:  # the redirect's record stands in for this one, its 'all' included
            return _walk(dns, redirect, target, result, seen | {redirect})
    return all_qualifier


def _mechanism(dns: DnsClient, domain: str, term: Term, result: SpfWalk, seen: set[str]) -> None:
    target = (term.domain or domain).lower()
    if term.name == "include":
        result.includes.append(target)
        if target in seen:
            result.permerror(domain, f"include:{target} in the SPF record of {domain} loops back to a record "
                                     "already included", "RFC 7208 §4.6.4 (the loop runs past the look-up "
                                                          "limit: permerror)")
            return
        included = _spf_of(dns, target, result, f"include:{target}", domain)
        if included is None:
            return
        if _walk(dns, target, included, result, seen | {target}) == "+" and term.qualifier == "+":
            result.problems.append(SpfProblem(
                domain, "spf-include-plus-all", f"include:{target} in the SPF record of {domain} ends in +all, "
                f"so every server on the internet passes SPF through it: anyone can send as {domain}",
                "RFC 7208 §5.2 (include matches when the included record passes), §5.1 (+all passes every "
                "address)"))
    elif term.name in ("ip4", "ip6"):
        if term.qualifier == "+":
            result.networks.append(ipaddress.ip_network(term.network, strict=False))
    elif term.name == "a":
        lookup, addresses = dns.addresses(target)
        if lookup.failed:
            result.failures.append(lookup)
        elif not addresses:
            result.void_lookups += 1
        if term.qualifier == "+":
            result.networks.extend(_networks(addresses, term.v4, term.v6))
    elif term.name == "mx":
        lookup = dns.lookup(target, "MX")
        if lookup.failed:
            result.failures.append(lookup)
            return
        if not lookup.found:
            result.void_lookups += 1
        for mx in lookup.records:
            exchange = mx.split()[-1]
            if exchange != "." and term.qualifier == "+":
                result.networks.extend(_networks(dns.addresses(exchange)[1], term.v4, term.v6))
    elif term.name == "exists":
        lookup = dns.lookup(target, "A")
        if lookup.failed:
            result.failures.append(lookup)
        elif not lookup.found:
            result.void_lookups += 1
    elif term.name == "ptr":
        result.problems.append(SpfProblem(domain, "spf-ptr", f"the SPF record of {domain} uses 'ptr', which is "
                                          "slow and deprecated; receivers may ignore it",
                                          "RFC 7208 §5.5 (ptr SHOULD NOT be used)", WARNING))


def check_spf(ctx: DoctorContext) -> Iterator[DoctorFinding]:
    domain = ctx.envelope_domain
    lookup = ctx.dns.txt(domain)
    if lookup.failed:
        yield dns_failure(lookup, "SPF")
        return
    include = ctx.expects.spf_include
    suggestion = f"v=spf1 include:{include} ~all" if include else f"v=spf1 a:<your {ctx.kind.title} host> ~all"
    if lookup.outcome == NXDOMAIN:
        yield found(ERROR, "domain-nxdomain", f"the sending domain {domain} does not exist in DNS (NXDOMAIN); "
                    "receivers refuse mail from a domain that does not resolve", domain,
                    fix=f"register {domain} or send from a domain you own (newsletter.from in newsletter.toml)",
                    rule="RFC 7208 §4.3 (a domain that does not exist: none); Gmail and Yahoo sender rules")
        return
    records = [r for r in lookup.records if is_spf(r)]
    if not records:
        yield found(ERROR, "spf-missing", f"{domain} has no SPF record ({lookup.describe()}); Gmail, Yahoo and "
                    "Outlook.com require SPF for bulk senders", domain,
                    fix=f"publish a TXT record at {domain}: \"{suggestion}\"",
                    rule="RFC 7208 §4.5 (no record: none); Gmail, Yahoo, Outlook.com sender rules")
        return
    if len(records) > 1:
        yield found(ERROR, "spf-multiple", f"{domain} has {len(records)} SPF records; receivers treat more than "
                    "one as a permanent error and SPF fails", domain,
                    fix="merge them into one TXT record starting with v=spf1",
                    rule="RFC 7208 §4.5 (more than one record: permerror)")
    result = walk(ctx.dns, domain, records[0])
    for failed in result.failures:
        yield dns_failure(failed, "SPF (an included record)")
    for problem in result.problems:
        yield found(problem.severity, problem.code, problem.message, problem.where,
                    fix="correct or remove that term of the SPF record", rule=problem.rule)
    if result.lookups > MAX_LOOKUPS:
        yield found(ERROR, "spf-too-many-lookups", f"the SPF record of {domain} needs {result.lookups} DNS "
                    f"look-ups (through include, a, mx, ptr, exists and redirect); receivers stop at "
                    f"{MAX_LOOKUPS} and SPF fails with a permanent error", domain,
                    fix="remove includes of services you no longer use, or replace a/mx terms with ip4:/ip6: "
                        "ranges", rule="RFC 7208 §4.6.4 (more than 10 look-ups: permerror)")
    if result.void_lookups > MAX_VOID_LOOKUPS:
        yield found(ERROR, "spf-void-lookups", f"{result.void_lookups} look-ups of the SPF record of {domain} "
                    f"find nothing (a name without the record asked for); receivers stop after "
                    f"{MAX_VOID_LOOKUPS} with a permanent error and SPF fails", domain,
                    fix="remove the terms that point to names without records",
                    rule="RFC 7208 §4.6.4 (more than 2 void look-ups: permerror)")
    if domain in result.unparsed:  # nothing below would be evaluated by a receiver: said once, above
        return
    yield from _provider_authorized(ctx, domain, result)
    qualifier = result.all_qualifier
    if qualifier == "+":
        yield found(ERROR, "spf-plus-all", f"the SPF record of {domain} ends in +all, which lets anyone send as "
                    f"{domain}", domain, fix="end the record with ~all (or -all)",
                    rule="RFC 7208 §5.1 (+all matches every address)")
    elif qualifier not in ("~", "-"):
        ending = "?all" if qualifier == "?" else "no 'all'"
        yield found(WARNING, "spf-no-all", f"the SPF record of {domain} has {ending}, so it does not say that "
                    "other servers are not allowed", domain, fix="end the record with ~all (or -all)",
                    rule="RFC 7208 §4.7 (no match: neutral), §8.2")
    yield found(INFO, "spf", f"SPF of {domain}: {records[0]} ({result.lookups} of {MAX_LOOKUPS} look-ups, "
                f"{result.void_lookups} of {MAX_VOID_LOOKUPS} void)", domain, rule="RFC 7208 §4.6.4")


def _provider_authorized(ctx: DoctorContext, domain: str, result: SpfWalk) -> Iterator[DoctorFinding]:
    rule = "RFC 7208 §2.4 (the envelope domain must authorize the host that sends); Gmail, Yahoo, Outlook.com"
    expects, title = ctx.expects, ctx.kind.title
    if expects.spf_include:
        if expects.spf_include not in result.includes:
            yield found(ERROR, "spf-provider-missing", f"the SPF record of {domain} does not authorize {title}",
                        domain, fix=f"add include:{expects.spf_include} before the 'all' at the end", rule=rule)
        return
    host = expects.sending_host
    if not host:
        return
    if is_local(host):
        yield found(INFO, "spf-local-relay", f"the {title} host {host} is on this machine or network; SPF must "
                    "authorize the server that finally delivers the mail", domain,
                    fix="add that server's addresses (ip4:/ip6:) or its provider's include to the SPF record",
                    rule=rule)
        return
    problem, addresses = sending_host_addresses(ctx, host)
    if problem:
        yield problem
        return
    missing = [a for a in addresses if not result.authorizes(a)]
    if missing:
        yield found(ERROR, "spf-provider-missing", f"the SPF record of {domain} does not authorize the {title} "
                    f"host {host} ({', '.join(missing)})", domain,
                    fix=f"add a:{host} (or ip4:/ip6: with its addresses) before the 'all' at the end", rule=rule)
