"""MX: the From and Reply-To domains can receive mail (replies, bounces, feedback).

Receivers check that a sender's domain could take a reply: a domain without
MX (nor an address to fall back on, RFC 5321 §5.1) or with a "null MX"
(RFC 7505) says it receives nothing, and many receivers refuse mail from it.
"""

from __future__ import annotations

from collections.abc import Iterator

from .context import DoctorContext
from .findings import ERROR, INFO, WARNING, Finding, dns_failure
from .resolver import NXDOMAIN


def check_mx(ctx: DoctorContext) -> Iterator[Finding]:
    seen: set[str] = set()
    for role, domain in (("From", ctx.from_domain), ("Reply-To", ctx.reply_to_domain)):
        if not domain or domain in seen:
            continue
        seen.add(domain)
        yield from _mx_of(ctx, role, domain)


def _mx_of(ctx: DoctorContext, role: str, domain: str) -> Iterator[Finding]:
    lookup = ctx.dns.lookup(domain, "MX")
    if lookup.failed:
        yield dns_failure(lookup, f"MX of the {role} domain")
        return
    if lookup.outcome == NXDOMAIN:
        yield Finding(ERROR, "mx-nxdomain", f"the {role} domain {domain} does not exist (NXDOMAIN): replies and "
                      "bounces to it are lost", domain, fix=f"use an address at a domain that exists for {role}")
        return
    hosts = [r.split()[-1] for r in lookup.records]
    if hosts and all(h in (".", "") for h in hosts):
        yield Finding(ERROR, "mx-null", f"the {role} domain {domain} publishes a null MX (RFC 7505): it accepts no "
                      "mail, so replies bounce and receivers may refuse mail from it", domain,
                      fix=f"publish the MX records of the mail service that receives mail for {domain}")
        return
    if hosts:
        yield Finding(INFO, "mx", f"MX of the {role} domain {domain}: {', '.join(lookup.records)}", domain)
        return
    address, found = ctx.dns.addresses(domain)
    if address.failed:
        yield dns_failure(address, f"the address of the {role} domain")
    elif found:
        yield Finding(WARNING, "mx-implicit", f"the {role} domain {domain} has no MX record; mail to it goes to "
                      f"its address record ({', '.join(found)}), which is rarely a mail server", domain,
                      fix=f"publish MX records for {domain}")
    else:
        yield Finding(ERROR, "mx-missing", f"the {role} domain {domain} cannot receive mail (no MX, no address): "
                      "replies and bounces are lost, and receivers may refuse mail from it", domain,
                      fix=f"publish the MX records of the mail service that receives mail for {domain}")
