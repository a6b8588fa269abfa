"""Which domain is which: organisational domains (Public Suffix List) and freemail domains.

DMARC's relaxed alignment (RFC 7489 §3.2) compares organisational domains:
``news.example.co.uk`` and ``example.co.uk`` align, ``example.co.uk`` and
``other.co.uk`` do not. The suffix list is the ``tld`` package's bundled
snapshot; it is never refreshed over the network.
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


def organisational_domain(domain: str) -> str:
    """The registered domain under its public suffix (``a.b.example.co.uk`` -> ``example.co.uk``);
    the domain itself when the suffix is unknown (``example.invalid``)."""
    domain = domain.lower().rstrip(".")
    return get_fld(domain, fix_protocol=True, fail_silently=True) or domain


def aligned(domain: str, from_domain: str, mode: str = "r") -> bool:
    """DMARC identifier alignment: strict (``s``) wants the same name, relaxed the same organisational domain."""
    domain, from_domain = domain.lower().rstrip("."), from_domain.lower().rstrip(".")
    if mode == "s":
        return domain == from_domain
    return organisational_domain(domain) == organisational_domain(from_domain)


def is_freemail(domain: str) -> bool:
    return domain.lower().rstrip(".") in FREEMAIL_DOMAINS
