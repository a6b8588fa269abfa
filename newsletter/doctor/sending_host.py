"""The provider's sending host (an SMTP server of the writer's): forward-confirmed reverse DNS, and TLS
on the way to it.

Receivers distrust a sending IP whose PTR name does not resolve back to it
(forward-confirmed reverse DNS; Gmail's and Outlook.com's sender rules ask
for it). Mail and the password sent to a relay without TLS can be read on
the way; MTA-STS and TLS reporting are the receiving side's counterpart.
Checked only when the provider hands mail to a host of ours (``DnsExpectations.sending_host``): an
API provider's servers are its own.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..hosts import is_local
from .context import DoctorContext
from .findings import ERROR, INFO, WARNING, DoctorFinding, dns_failure, found, sending_host_addresses

FCRDNS = "Gmail and Outlook.com sender rules: forward-confirmed reverse DNS (https://support.google.com/a/answer/81126)"


def check_reverse_dns(ctx: DoctorContext) -> Iterator[DoctorFinding]:
    host, title = ctx.expects.sending_host, ctx.kind.title
    if not host:
        return
    if is_local(host):
        yield found(INFO, "rdns-local-relay", f"the {title} host {host} is local; the server that finally delivers "
                    "the mail needs a PTR name that resolves back to its address", ctx.config_path, rule=FCRDNS)
        return
    problem, addresses = sending_host_addresses(ctx, host)
    if problem:
        yield problem
        return
    for address in addresses:
        ptr = ctx.dns.reverse(address)
        if ptr.failed:
            yield dns_failure(ptr, f"reverse DNS of {address}")
            continue
        if not ptr.found:
            yield found(ERROR, "rdns-missing", f"the {title} host's address {address} has no reverse DNS name "
                        f"({ptr.describe()}); receivers distrust mail from it", ptr.name,
                        fix=f"ask whoever runs {address} (your hosting provider) to set its PTR record to {host}",
                        rule=FCRDNS)
            continue
        confirmed = [name for name in ptr.records if address in ctx.dns.addresses(name)[1]]
        if confirmed:
            yield found(INFO, "rdns", f"{address} has the reverse name {confirmed[0]}, which resolves back to it",
                        ptr.name, rule=FCRDNS)
        else:
            yield found(ERROR, "rdns-unconfirmed", f"the reverse name of {address} ({', '.join(ptr.records)}) "
                        "does not resolve back to it (forward-confirmed reverse DNS fails)", ptr.name,
                        fix=f"publish an A/AAAA record for {ptr.records[0]} with {address}, or change the PTR",
                        rule=FCRDNS)


def check_tls(ctx: DoctorContext) -> Iterator[DoctorFinding]:
    expects, title = ctx.expects, ctx.kind.title
    if not expects.sending_host or not expects.sending_host_in_clear:
        return
    host, setting = expects.sending_host, expects.security_setting
    local = is_local(host)
    yield found(INFO if local else WARNING, f"{ctx.kind.name}-no-tls",
                f"mail goes to the {title} host {host} without TLS ({setting} = \"none\")"
                + ("" if local else ": messages and the password can be read on the way"), ctx.config_path,
                fix=f"set {setting} = \"starttls\" (port 587) or \"ssl\" (port 465)",
                rule="RFC 8314 §3 (use TLS for mail submission)")
    present = [name for name in (f"_mta-sts.{ctx.from_domain}", f"_smtp._tls.{ctx.from_domain}")
             if ctx.dns.txt(name).found]
    yield found(INFO, "mta-sts", f"MTA-STS / TLS reporting records of {ctx.from_domain}: "
                f"{', '.join(present) if present else 'none'}; they ask other servers to use TLS for mail to "
                "your domain", ctx.from_domain, rule="RFC 8461 §3 (MTA-STS), RFC 8460 §3 (TLS reporting)")
