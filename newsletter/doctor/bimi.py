"""BIMI readiness (a note only): the record, a DMARC policy that enforces, and an SVG logo.

Gmail, Yahoo and Apple Mail show a brand logo beside mail that passes DMARC
at p=quarantine or p=reject (applied in full: not under test with t=y, nor
at pct below 100 for receivers still reading it) from a domain publishing
``default._bimi`` with an ``l=`` link to an SVG (Tiny PS) logo; Gmail also
wants a mark certificate (``a=``). None of it affects delivery, so no
finding here is more than a note.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

from .context import DoctorContext
from .dkim import tags
from .dmarc import find_policy
from .findings import INFO, DoctorFinding, found

RULE = "BIMI (draft-brand-indicators-for-message-identification §4, §7)"


def check_bimi(ctx: DoctorContext) -> Iterator[DoctorFinding]:
    name = f"{ctx.settings.doctor.bimi_selector}._bimi.{ctx.from_domain}"
    lookup = ctx.dns.txt(name)
    if lookup.failed:
        yield found(INFO, "bimi", f"BIMI not checked: {lookup.describe()}", name, rule=RULE)
        return
    policy = "DMARC enforces (quarantine or reject)" if find_policy(ctx).enforcing else \
        "DMARC must be p=quarantine or p=reject, applied in full (no t=y, no pct below 100), first"
    records = [r for r in lookup.records if r.replace(" ", "").lower().startswith("v=bimi1")]
    if not records:
        yield found(INFO, "bimi", f"no BIMI record at {name}: no brand logo in inboxes; {policy}", name,
                    fix=f"publish \"v=BIMI1; l=https://.../logo.svg\" at {name} to show a logo", rule=RULE)
        return
    fields = tags(records[0])
    logo = fields.get("l", "")
    parts = [policy]
    if not logo:
        parts.append("the record has no logo (l=)")
    elif urlsplit(logo).scheme != "https" or not urlsplit(logo).path.lower().endswith(".svg"):
        parts.append(f"the logo {logo} must be an https:// SVG file")
    else:
        parts.append(f"logo {logo} is SVG")
    parts.append("a mark certificate (a=) is published" if fields.get("a") else "no mark certificate (a=), which "
                 "Gmail requires")
    yield found(INFO, "bimi", f"BIMI record at {name}: " + "; ".join(parts), name, rule=RULE)
