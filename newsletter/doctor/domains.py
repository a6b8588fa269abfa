"""Which domain is which: freemail domains, and organisational domains as RFC 7489 receivers find them.

RFC 9989 finds organisational domains by a DNS tree walk (``tree_walk``).
Receivers built on RFC 7489, still many, take them from a Public Suffix
List instead, and the two can disagree (RFC 9989 Appendix C.3): the doctor
reads the ``tld`` package's bundled snapshot of the list (never refreshed
over the network) only to warn when they do, so that a setup which aligns
under one rule and not the other is not passed silently.
"""

from __future__ import annotations

from tld import get_fld

# Mailbox providers whose DMARC policy (p=reject or quarantine) refuses mail "from" them that they did not send.
FREEMAIL_DOMAINS = frozenset({
    "gmail.com", "googlemail.com", "yahoo.com", "yahoo.co.uk", "yahoo.fr", "yahoo.de", "ymail.com",
    "rocketmail.com", "aol.com", "outlook.com", "hotmail.com", "hotmail.co.uk", "hotmail.fr", "live.com",
    "msn.com", "icloud.com", "me.com", "mac.com", "gmx.com", "gmx.de", "gmx.net", "web.de", "mail.com",
    "yandex.com", "yandex.ru", "mail.ru", "protonmail.com", "proton.me", "zoho.com", "fastmail.com",
    "comcast.net", "orange.fr", "free.fr", "laposte.net", "libero.it", "qq.com", "163.com",
})


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].strip().lower().rstrip(".")


def psl_organisational_domain(domain: str) -> str:
    """The registered domain under its public suffix, as RFC 7489 §3.2 finds it (``a.b.example.co.uk`` ->
    ``example.co.uk``); the domain itself when the suffix is unknown (``example.invalid``)."""
    domain = domain.lower().rstrip(".")
    found = get_fld(domain, fix_protocol=True, fail_silently=True)
    return str(found) if found else domain


def is_freemail(domain: str) -> bool:
    return domain.lower().rstrip(".") in FREEMAIL_DOMAINS
