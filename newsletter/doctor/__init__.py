"""``newsletter doctor``: is the sending domain set up so that mail reaches the inbox?

One module per kind of check (SPF, DKIM, DMARC, MX, the SMTP host's
reverse DNS and TLS, BIMI, the unsubscribe endpoint), a DNS client that
tells failures from missing records (``resolver``), and the runner that
orders the findings and caches the DNS part for a day (``runner``,
``cache``). Findings are ``newsletter.checks.Finding``s, printed by the
same report functions as ``newsletter check``.
"""

from __future__ import annotations

from .runner import DoctorRefused, doctor_gate, dns_findings, refuse_on_errors, run_doctor

__all__ = ["DoctorRefused", "doctor_gate", "dns_findings", "refuse_on_errors", "run_doctor"]
