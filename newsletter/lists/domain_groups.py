"""The big mailbox providers' own domains, and which group a recipient's address falls in.

Kept apart from ``doctor/`` (which adds each provider's published rules and
its MX hosts) because the click links of every recipient and the subscriber
service name a reader's group too, and must not load the doctor to do it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProviderGroup:
    name: str
    domains: frozenset[str]  # its own mailbox domains (personal accounts)
    mx_suffixes: tuple[str, ...]  # a domain whose MX host ends so is hosted by it (Workspace, Microsoft 365, ...)

    def hosts(self, mx_host: str) -> bool:
        return any(mx_host == s or mx_host.endswith("." + s) for s in self.mx_suffixes)


GMAIL = ProviderGroup("Gmail", frozenset({"gmail.com", "googlemail.com"}), ("google.com", "googlemail.com"))
MICROSOFT = ProviderGroup("Microsoft", frozenset({
    "outlook.com", "hotmail.com", "live.com", "msn.com", "passport.com", "outlook.de", "outlook.fr", "outlook.es",
    "outlook.it", "hotmail.co.uk", "hotmail.fr", "hotmail.de", "hotmail.it", "hotmail.es", "live.co.uk",
    "live.fr", "live.de", "live.it", "live.nl", "live.ca", "live.com.au"}), ("outlook.com", "hotmail.com"))
YAHOO = ProviderGroup("Yahoo/AOL", frozenset({
    "yahoo.com", "yahoo.co.uk", "yahoo.fr", "yahoo.de", "yahoo.es", "yahoo.it", "yahoo.ca", "yahoo.com.au",
    "yahoo.com.br", "yahoo.in", "ymail.com", "rocketmail.com", "aol.com", "aol.co.uk", "aim.com",
    "verizon.net"}), ("yahoodns.net",))
APPLE = ProviderGroup("Apple", frozenset({"icloud.com", "me.com", "mac.com"}), ("icloud.com",))
GMX = ProviderGroup("GMX/WEB.DE", frozenset({
    "gmx.de", "gmx.net", "gmx.at", "gmx.ch", "gmx.com", "gmx.fr", "gmx.co.uk", "web.de"}),
    ("gmx.net", "gmx.de", "web.de"))
GROUPS = (GMAIL, MICROSOFT, YAHOO, APPLE, GMX)
OTHER = "other"

# The receiving-domain groups `newsletter stats` shows, by their number in a click link (0: other).
STATS_GROUPS = ("other", "Gmail", "Microsoft", "Yahoo", "Apple")
_NUMBER_OF_DOMAIN = {domain: number for number, group in enumerate((GMAIL, MICROSOFT, YAHOO, APPLE), start=1)
                     for domain in group.domains}


def stats_group(address: str) -> int:
    """The number (in ``STATS_GROUPS``) of the group whose mailbox domain ``address`` is at; 0 for any other."""
    return _NUMBER_OF_DOMAIN.get(address.rpartition("@")[2].strip().rstrip(".").lower(), 0)


def stats_group_name(number: int) -> str:
    return STATS_GROUPS[number] if 0 <= number < len(STATS_GROUPS) else OTHER
