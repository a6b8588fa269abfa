"""``newsletter doctor``: is the sending domain set up so that mail reaches the inbox?

One module per kind of check (SPF and its grammar, DKIM, DMARC with its
record grammar and the RFC 9989 DNS tree walk, MX, the sending host's reverse
DNS and TLS (``sending_host``), BIMI, the unsubscribe endpoint), a DNS client that tells
failures from missing records (``resolver``), the mailbox providers' rules
and a list's recipients per provider (``mailbox_providers``, ``audience``),
and the runner that orders the findings and caches the DNS part for a day
(``runner``, ``cache``). Findings are ``newsletter.checks.Finding``s that
also name the rule they follow, printed by the same report functions as
``newsletter check`` (``report`` adds the providers' table).
"""

from __future__ import annotations

from .audience import AudienceQuery
from .examination import DoctorRefused, DoctorResult, dns_findings, doctor_gate, examine, refuse_on_errors, run_doctor

__all__ = [
           "AudienceQuery",
           "DoctorRefused",
           "DoctorResult",
           "dns_findings",
           "doctor_gate",
           "examine",
           "refuse_on_errors",
           "run_doctor",
]
