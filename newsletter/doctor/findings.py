"""Findings the doctor's checks share: the severities of ``newsletter check``, the rule each finding follows,
and DNS failures.

The doctor reports in the same vocabulary as ``newsletter check`` (``Finding``
with severity, what is wrong, where, and the fix), so one report format and
one ``--format json`` serve both commands. ``where`` names the DNS name to
fix, or ``newsletter.toml`` for a setting. Every doctor finding also names
the rule it follows (an RFC clause, or a mailbox provider's rule and where it
is published): in ``rule`` for scripts, and at the end of the message for
people, so a writer can check the verdict against its source.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..checks import ERROR, INFO, WARNING, Finding
from .resolver import SERVFAIL, TIMEOUT, Lookup

if TYPE_CHECKING:
    from .context import DoctorContext

__all__ = ["ERROR", "INFO", "WARNING", "DoctorFinding", "Finding", "dns_failure", "found", "sending_host_addresses"]


@dataclass(frozen=True)
class DoctorFinding(Finding):
    """A ``Finding`` that names the rule it follows ("RFC 7208 §4.6.4", or a provider's rule and its source)."""

    rule: str = ""


def found(severity: str, code: str, message: str, where: str = "", *, fix: str = "", rule: str) -> DoctorFinding:
    """A doctor finding; its message ends with the rule in brackets, as the text report shows it."""
    return DoctorFinding(severity, code, f"{message} [{rule}]", where, None, fix, rule)


def dns_failure(lookup: Lookup, check: str) -> DoctorFinding:
    """A DNS failure, reported as one (never as "no record"): the check could not be done."""
    code = {SERVFAIL: "dns-servfail", TIMEOUT: "dns-timeout"}.get(lookup.outcome, "dns-error")
    if lookup.outcome == SERVFAIL:
        fix = (f"the DNS servers of {lookup.name} are failing; receivers get the same failure and defer or "
               "reject the mail: check the zone at your DNS host (DNSSEC, expired delegation)")
        rule = "RFC 1035 §4.1.1 (RCODE 2, server failure)"
    else:
        fix = "check the network or pass --nameserver HOST[:PORT], then run newsletter doctor again"
        rule = "no answer: RFC 1035 §4.2.1 (the question was not answered)"
    return found(ERROR, code, f"{check} could not be checked: {lookup.describe()}", lookup.name, fix=fix,
                 rule=rule)


def sending_host_addresses(ctx: DoctorContext, host: str) -> tuple[DoctorFinding | None, tuple[str, ...]]:
    """The addresses of the provider's sending host (itself when it is one), or the finding that says why
    there are none.

    Reverse DNS and SPF both need them.
    """
    try:
        return None, (str(ipaddress.ip_address(host)),)
    except ValueError:
        pass
    title = ctx.kind.title
    lookup, addresses = ctx.dns.addresses(host)
    if lookup.failed:
        return dns_failure(lookup, f"the address of the {title} host {host}"), ()
    if not addresses:
        return found(ERROR, f"{ctx.kind.name}-host-unresolved", f"the {title} host {host} has no address "
                     f"({lookup.describe()})", ctx.config_path,
                     fix=f"check {ctx.expects.host_setting} in newsletter.toml",
                     rule="RFC 5321 §5.1 (a host name must resolve to an address to be reached)"), ()
    return None, tuple(addresses)
