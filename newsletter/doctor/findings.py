"""Findings the doctor's checks share: the severities of ``newsletter check``, and DNS failures.

The doctor reports in the same vocabulary as ``newsletter check`` (``Finding``
with severity, what is wrong, where, and the fix), so one report format and
one ``--format json`` serve both commands. ``where`` names the DNS name to
fix, or ``newsletter.toml`` for a setting.
"""

from __future__ import annotations

from ..checks import ERROR, INFO, WARNING, Finding
from .resolver import SERVFAIL, TIMEOUT, Lookup

__all__ = ["ERROR", "INFO", "WARNING", "Finding", "dns_failure"]


def dns_failure(lookup: Lookup, check: str) -> Finding:
    """A DNS failure, reported as one (never as "no record"): the check could not be done."""
    code = {SERVFAIL: "dns-servfail", TIMEOUT: "dns-timeout"}.get(lookup.outcome, "dns-error")
    if lookup.outcome == SERVFAIL:
        fix = (f"the DNS servers of {lookup.name} are failing; receivers get the same failure and defer or "
               "reject the mail: check the zone at your DNS host (DNSSEC, expired delegation)")
    else:
        fix = "check the network or pass --nameserver HOST[:PORT], then run newsletter doctor again"
    return Finding(ERROR, code, f"{check} could not be checked: {lookup.describe()}", lookup.name, fix=fix)


def smtp_host_addresses(ctx, host: str) -> tuple[Finding | None, tuple[str, ...]]:
    """The addresses of the SMTP host (itself when it is one), or the finding that says why there are none.

    Reverse DNS and SPF both need them; ``ctx`` is the doctor's context (its ``dns`` and ``config_path``).
    """
    import ipaddress

    try:
        return None, (str(ipaddress.ip_address(host)),)
    except ValueError:
        pass
    lookup, addresses = ctx.dns.addresses(host)
    if lookup.failed:
        return dns_failure(lookup, f"the address of the SMTP host {host}"), ()
    if not addresses:
        return Finding(ERROR, "smtp-host-unresolved", f"the SMTP host {host} has no address ({lookup.describe()})",
                       ctx.config_path, fix="check smtp.host in newsletter.toml"), ()
    return None, tuple(addresses)
