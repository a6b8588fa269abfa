"""The SMTP host: forward-confirmed reverse DNS, and TLS on the way to it.

Receivers distrust a sending IP whose PTR name does not resolve back to it
(forward-confirmed reverse DNS; Gmail's and Outlook.com's sender rules ask
for it). Mail and the password sent to a relay without TLS can be read on
the way; MTA-STS and TLS reporting are the receiving side's counterpart.
Checked only when the provider is SMTP: SendGrid's servers are SendGrid's.
"""

from __future__ import annotations

from collections.abc import Iterator

from .context import DoctorContext
from .findings import ERROR, INFO, WARNING, Finding, dns_failure, smtp_host_addresses
from ..hosts import is_local


def check_reverse_dns(ctx: DoctorContext) -> Iterator[Finding]:
    if ctx.provider != "smtp":
        return
    host = ctx.settings.smtp.host
    if is_local(host):
        yield Finding(INFO, "rdns-local-relay", f"the SMTP host {host} is local; the server that finally delivers "
                      "the mail needs a PTR name that resolves back to its address", ctx.config_path)
        return
    problem, addresses = smtp_host_addresses(ctx, host)
    if problem:
        yield problem
        return
    for address in addresses:
        ptr = ctx.dns.reverse(address)
        if ptr.failed:
            yield dns_failure(ptr, f"reverse DNS of {address}")
            continue
        if not ptr.found:
            yield Finding(ERROR, "rdns-missing", f"the SMTP host's address {address} has no reverse DNS name "
                          f"({ptr.describe()}); receivers distrust mail from it", ptr.name,
                          fix=f"ask whoever runs {address} (your hosting provider) to set its PTR record to {host}")
            continue
        confirmed = [name for name in ptr.records if address in ctx.dns.addresses(name)[1]]
        if confirmed:
            yield Finding(INFO, "rdns", f"{address} has the reverse name {confirmed[0]}, which resolves back to it",
                          ptr.name)
        else:
            yield Finding(ERROR, "rdns-unconfirmed", f"the reverse name of {address} ({', '.join(ptr.records)}) "
                          "does not resolve back to it (forward-confirmed reverse DNS fails)", ptr.name,
                          fix=f"publish an A/AAAA record for {ptr.records[0]} with {address}, or change the PTR")


def check_tls(ctx: DoctorContext) -> Iterator[Finding]:
    if ctx.provider != "smtp" or ctx.settings.smtp.security != "none":
        return
    host = ctx.settings.smtp.host
    local = is_local(host)
    yield Finding(INFO if local else WARNING, "smtp-no-tls",
                  f"mail goes to the SMTP host {host} without TLS (smtp.security = \"none\")"
                  + ("" if local else ": messages and the password can be read on the way"), ctx.config_path,
                  fix="set smtp.security = \"starttls\" (port 587) or \"ssl\" (port 465)")
    found = [name for name in (f"_mta-sts.{ctx.from_domain}", f"_smtp._tls.{ctx.from_domain}")
             if ctx.dns.txt(name).found]
    yield Finding(INFO, "mta-sts", f"MTA-STS / TLS reporting records of {ctx.from_domain}: "
                  f"{', '.join(found) if found else 'none'}; they ask other servers to use TLS for mail to "
                  "your domain (RFC 8461, RFC 8460)", ctx.from_domain)
