"""MX: the From and Reply-To domains can receive mail (replies, bounces, feedback).

Receivers check that a sender's domain could take a reply: a domain without
MX (nor an address to fall back on, RFC 5321 §5.1) or with a "null MX"
(RFC 7505) says it receives nothing, and many receivers refuse mail from it.
Each mail host must be a name with address records of its own: RFC 5321
§5.1 says the name an MX gives MUST return at least one address record, and
RFC 2181 §10.3 that it must not be an alias (a CNAME), which some senders
follow and others refuse. Either mistake loses replies and bounces.
"""

from __future__ import annotations

from collections.abc import Iterator

from .context import DoctorContext
from .findings import ERROR, INFO, WARNING, DoctorFinding, dns_failure, found
from .resolver import NXDOMAIN


def check_mx(ctx: DoctorContext) -> Iterator[DoctorFinding]:
    seen: set[str] = set()
    for role, domain in (("From", ctx.from_domain), ("Reply-To", ctx.reply_to_domain)):
        if not domain or domain in seen:
            continue
        seen.add(domain)
        yield from _mx_of(ctx, role, domain)


def _mx_of(ctx: DoctorContext, role: str, domain: str) -> Iterator[DoctorFinding]:
    lookup = ctx.dns.lookup(domain, "MX")
    if lookup.failed:
        yield dns_failure(lookup, f"MX of the {role} domain")
        return
    if lookup.outcome == NXDOMAIN:
        yield found(ERROR, "mx-nxdomain", f"the {role} domain {domain} does not exist (NXDOMAIN): replies and "
                    "bounces to it are lost", domain, fix=f"use an address at a domain that exists for {role}",
                    rule="RFC 5321 §5.1 (a domain that does not exist is an error)")
        return
    hosts = [r.split()[-1] for r in lookup.records]
    if hosts and all(h in (".", "") for h in hosts):
        yield found(ERROR, "mx-null", f"the {role} domain {domain} publishes a null MX: it accepts no "
                    "mail, so replies bounce and receivers may refuse mail from it", domain,
                    fix=f"publish the MX records of the mail service that receives mail for {domain}",
                    rule="RFC 7505 §3 (null MX: the domain accepts no mail)")
        return
    if hosts:
        broken = 0
        for host in dict.fromkeys(h for h in hosts if h not in (".", "")):
            problem = _host_problem(ctx, role, domain, host)
            if problem is not None:
                broken += 1
                yield problem
        if not broken:
            yield found(INFO, "mx", f"MX of the {role} domain {domain}: {', '.join(lookup.records)}", domain,
                        rule="RFC 5321 §5.1")
        return
    address, addresses = ctx.dns.addresses(domain)
    if address.failed:
        yield dns_failure(address, f"the address of the {role} domain")
    elif addresses:
        yield found(WARNING, "mx-implicit", f"the {role} domain {domain} has no MX record; mail to it goes to "
                    f"its address record ({', '.join(addresses)}), which is rarely a mail server", domain,
                    fix=f"publish MX records for {domain}", rule="RFC 5321 §5.1 (the implicit MX)")
    else:
        yield found(ERROR, "mx-missing", f"the {role} domain {domain} cannot receive mail (no MX, no address): "
                    "replies and bounces are lost, and receivers may refuse mail from it", domain,
                    fix=f"publish the MX records of the mail service that receives mail for {domain}",
                    rule="RFC 5321 §5.1 (no MX and no address: no mail can be delivered)")


def _host_problem(ctx: DoctorContext, role: str, domain: str, host: str) -> DoctorFinding | None:
    """Why the mail host ``host`` of ``domain`` cannot be used, or None."""
    lookup, addresses = ctx.dns.addresses(host)
    if lookup.failed:
        return dns_failure(lookup, f"the mail host {host} of the {role} domain")
    if lookup.cnames:
        return found(ERROR, "mx-cname", f"the MX of the {role} domain {domain} names {host}, which is an alias "
                     f"(CNAME to {lookup.cnames[-1]}), not a host: some senders refuse to deliver to it, so "
                     "replies and bounces may be lost", domain,
                     fix=f"point the MX of {domain} at {lookup.cnames[-1]} itself (the name the CNAME leads to)",
                     rule="RFC 2181 §10.3 (an MX must not name an alias); RFC 5321 §5.1")
    if not addresses:
        return found(ERROR, "mx-host-missing", f"the MX of the {role} domain {domain} names {host}, which has no "
                     f"address ({lookup.describe()}): no mail can be delivered to {domain}, so replies and "
                     "bounces are lost", domain,
                     fix=f"publish an A (or AAAA) record for {host}, or point the MX at your mail server's name",
                     rule="RFC 5321 §5.1 (the MX's name MUST return at least one address record)")
    return None
