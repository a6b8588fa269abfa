"""DMARC (RFC 7489): a ``_dmarc`` record with a policy, aligned with how the provider signs and sends.

Gmail and Yahoo (2024) and Outlook.com (2025) require bulk senders to
publish DMARC (``p=none`` at least) and to pass it, which takes SPF or DKIM
passing for a domain aligned with the From domain: the same domain (strict,
``adkim=s``/``aspf=s``) or the same organisational domain (relaxed, the
default). A freemail From address (gmail.com, yahoo.com, ...) cannot pass:
those providers publish p=reject or quarantine and refuse bulk mail that
claims to come from them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from .context import SENDGRID_DOMAIN, DoctorContext
from .dkim import signing_domain, tags
from .domains import aligned, organisational_domain
from .findings import ERROR, INFO, Finding, dns_failure
from .resolver import Lookup

POLICIES = ("none", "quarantine", "reject")


@dataclass(frozen=True)
class DmarcRecord:
    name: str  # where it was found (the From domain's, or the organisational domain's)
    text: str
    tags: dict
    inherited: bool = False  # found at the organisational domain of a subdomain From: its sp= applies

    @property
    def policy_tag(self) -> str:
        """``sp`` for a subdomain under its organisational domain's record when it has one, else ``p``."""
        return "sp" if self.inherited and "sp" in self.tags else "p"

    @property
    def policy(self) -> str:
        return self.tags.get(self.policy_tag, "").lower()

    def mode(self, tag: str) -> str:
        return "s" if self.tags.get(tag, "r").lower() == "s" else "r"


def find_record(ctx: DoctorContext) -> tuple[DmarcRecord | None, Lookup | None, int]:
    """(the record that applies, the failed look-up if any, how many DMARC records that name has).

    Receivers look at ``_dmarc.<From domain>``, then at the organisational domain's (RFC 7489 §6.6.3)."""
    names = [ctx.from_domain]
    org = organisational_domain(ctx.from_domain)
    if org != ctx.from_domain:
        names.append(org)
    for domain in names:
        lookup = ctx.dns.txt(f"_dmarc.{domain}")
        if lookup.failed:
            return None, lookup, 0
        records = [r for r in lookup.records if r.replace(" ", "").lower().startswith("v=dmarc1")]
        if records:
            return (DmarcRecord(lookup.name, records[0], tags(records[0]), inherited=domain != ctx.from_domain),
                    None, len(records))
    return None, None, 0


def spf_domain(ctx: DoctorContext) -> str:
    """The envelope (Return-Path) domain SPF passes for. SendGrid returns bounces through a subdomain
    of an authenticated domain (em1234.<domain>), else through sendgrid.net."""
    if ctx.settings.doctor.envelope_domain or ctx.provider != "sendgrid":
        return ctx.envelope_domain
    authenticated = signing_domain(ctx) == ctx.dkim_domain
    return f"em.{ctx.dkim_domain}" if authenticated else SENDGRID_DOMAIN


def check_dmarc(ctx: DoctorContext) -> Iterator[Finding]:
    record, failed, count = find_record(ctx)
    where = f"_dmarc.{ctx.from_domain}"
    if failed is not None:
        yield dns_failure(failed, "DMARC")
        return
    if record is None:
        yield Finding(ERROR, "dmarc-missing", f"{ctx.from_domain} has no DMARC record at {where}; Gmail, Yahoo and "
                      "Outlook.com require one from bulk senders", where,
                      fix=f"publish a TXT record at {where}: \"v=DMARC1; p=none; rua=mailto:dmarc@{ctx.from_domain}\"")
        return
    if count > 1:
        yield Finding(ERROR, "dmarc-multiple", f"{record.name} has {count} DMARC records; receivers then ignore "
                      "DMARC (RFC 7489 §6.6.3)", record.name, fix="keep one TXT record starting with v=DMARC1")
    if record.policy not in POLICIES:
        yield Finding(ERROR, "dmarc-invalid", f"the DMARC record at {record.name} has no valid policy "
                      f"({record.policy_tag}={record.policy or 'missing'}): {record.text}", record.name,
                      fix="start the record with v=DMARC1; p=none (or quarantine, reject)")
        return
    if record.policy == "none":
        yield Finding(INFO, "dmarc-monitoring", f"DMARC policy of {ctx.from_domain} is {record.policy_tag}=none (monitoring only)",
                      record.name, fix="once the reports show all your mail passing, move to p=quarantine")
    if "rua" not in record.tags:
        yield Finding(INFO, "dmarc-no-reports", "the DMARC record asks for no aggregate reports (no rua=), so you "
                      "will not see who fails", record.name, fix=f"add rua=mailto:dmarc@{ctx.from_domain}")
    yield from _alignment(ctx, record)


def _alignment(ctx: DoctorContext, record: DmarcRecord) -> Iterator[Finding]:
    dkim_d = signing_domain(ctx)
    envelope = spf_domain(ctx)
    adkim, aspf = record.mode("adkim"), record.mode("aspf")
    dkim_ok = bool(dkim_d) and aligned(dkim_d, ctx.from_domain, adkim)
    spf_ok = aligned(envelope, ctx.from_domain, aspf)
    modes = {"s": "strict", "r": "relaxed"}
    dkim_text = (f"DKIM d={dkim_d} ({modes[adkim]}: {'aligned' if dkim_ok else 'not aligned'})" if dkim_d
                 else "no DKIM signature")
    spf_text = f"SPF on {envelope} ({modes[aspf]}: {'aligned' if spf_ok else 'not aligned'})"
    if not (dkim_ok or spf_ok):
        fix = (f"authenticate {ctx.from_domain} in SendGrid (Settings > Sender Authentication) so it signs with "
               f"d={ctx.from_domain}" if ctx.provider == "sendgrid" else
               f"sign with a DKIM key of {ctx.from_domain} ([doctor] dkim_domain), or send with a Return-Path "
               f"in {ctx.from_domain}")
        if adkim == "s" or aspf == "s":
            fix += ", or relax the alignment (adkim=r; aspf=r)"
        yield Finding(ERROR, "dmarc-not-aligned", f"mail from {ctx.from_domain} will fail DMARC: {dkim_text}, "
                      f"{spf_text}", record.name, fix=fix)
    elif not (dkim_ok and spf_ok):
        yield Finding(INFO, "dmarc-aligned", f"DMARC passes on one of two: {dkim_text}, {spf_text}", record.name)
    else:
        yield Finding(INFO, "dmarc-aligned", f"DMARC aligned: {dkim_text}, {spf_text}", record.name)


def freemail_finding(ctx: DoctorContext) -> Finding:
    return Finding(ERROR, "freemail-from", f"the From address is at {ctx.from_domain}, a freemail provider whose "
                   "DMARC policy makes receivers refuse bulk mail sent as it through any other service",
                   ctx.config_path, fix="send from a domain you own (newsletter.from in newsletter.toml), with SPF, "
                                        "DKIM and DMARC set up for it")
