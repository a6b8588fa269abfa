"""What the sending setup's DNS proves for mail as the provider will send it: the facts providers' rules name.

Mailbox providers state their rules in these terms ("SPF and DKIM pass,
DMARC published and aligned, one-click unsubscribe"), so the doctor sums its
DNS checks up in them once, and ``mailbox_providers`` judges each provider's
rules from this summary alone. It is kept with the day's cached findings, so
a send's gate can judge a list without asking DNS again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..compose.unsubscribe import provider_group
from .context import DoctorContext
from .dkim import verifiable_by_all
from .dmarc import alignment, find_policy
from .findings import ERROR, Finding


@dataclass(frozen=True)
class Authentication:
    """The facts; ``checked`` is False when DNS could not say (a failure, a freemail or missing domain)."""

    checked: bool = False
    spf: bool = False  # SPF passes for the envelope domain (no SPF error)
    dkim: bool = False  # a DKIM signature Gmail, Yahoo and Microsoft verify (RSA; Ed25519 alone is not)
    dkim_aligned: bool = False  # ... whose d= aligns with the From domain
    spf_aligned: bool = False  # SPF passes for a domain aligned with the From domain
    dmarc: bool = False  # a DMARC record of the domain's own (or its organisational domain's) applies
    one_click: bool = False  # one-click unsubscribe: configured (the gate), answered 2xx (newsletter doctor)
    reason: str = ""  # why nothing could be checked

    @property
    def dmarc_pass(self) -> bool:
        return self.dmarc and ((self.dkim and self.dkim_aligned) or (self.spf and self.spf_aligned))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Authentication:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def unchecked(reason: str) -> Authentication:
    return Authentication(reason=reason)


def one_click_configured(ctx: DoctorContext) -> bool:
    return bool(ctx.settings.unsubscribe_url) or provider_group(ctx.settings, ctx.kind) is not None


def authenticate(ctx: DoctorContext, spf_findings: list[Finding], all_findings: list[Finding]) -> Authentication:
    """The facts, from the SPF check's findings and the DNS answers the checks already asked (remembered)."""
    failures = [f for f in all_findings if f.code.startswith("dns-")]
    if failures:
        return unchecked(f"DNS failed ({failures[0].where})")
    policy = find_policy(ctx)
    aligned = alignment(ctx, policy)
    spf = not any(f.severity == ERROR for f in spf_findings)
    dkim = verifiable_by_all(ctx)
    usable = policy.record is not None and policy.source != "public suffix" and bool(policy.policy)
    return Authentication(checked=True, spf=spf, dkim=dkim, dkim_aligned=dkim and aligned.dkim,
                          spf_aligned=spf and aligned.spf, dmarc=usable, one_click=one_click_configured(ctx))
