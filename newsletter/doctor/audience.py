"""Who a send reaches, per mailbox provider: the list's selected recipients counted by domain, then by MX.

The count is the send's own selection (``select_rows``: subscribed, valid,
de-duplicated, matching ``--tag``/``--where``), so the figures are the
recipients the send is about to mail. A domain that is a provider's own
(gmail.com, web.de, ...) is counted at once; for the others, the most
common domains' MX hosts are asked through the doctor's DNS client (at most
``MX_LOOKUPS``, and none after the first DNS failure, so a slow resolver
costs one time-out, not one per domain): a company domain whose mail is
hosted by Google or Microsoft counts as theirs. The rest is "other".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..config import Settings
from ..errors import display_path
from ..lists import select_rows
from ..lists.domain_groups import GROUPS, OTHER, ProviderGroup
from .mailbox_providers import GroupCount
from .resolver import DnsClient

MX_LOOKUPS = 50  # distinct domains asked about, the most common first


@dataclass(frozen=True)
class AudienceQuery:
    """The selection a send makes: a list, and its --tag and --where filters."""

    list_name: str
    tags: tuple[str, ...] = ()
    where: tuple[tuple[str, str], ...] = ()


@dataclass
class Audience:
    """A list's recipients per provider group (GROUPS' names, then "other"), and how they were told apart."""

    list_name: str
    where: str  # the list file, as shown
    total: int = 0
    groups: dict[str, GroupCount] = field(default_factory=dict)
    domains: dict[str, Counter[str]] = field(default_factory=dict)  # group -> its domains and their counts
    mx_asked: int = 0  # domains whose MX was looked up
    mx_not_asked: int = 0  # domains counted as "other" without a look-up (past the limit, or after a failure)
    mx_failure: str = ""  # the DNS failure that stopped the MX look-ups
    mx_answers: dict[str, str] = field(default_factory=dict)  # domain -> group ("" = none), asked this time

    def to_dict(self) -> dict[str, object]:
        return {"list": self.list_name, "recipients": self.total,
                "groups": [{"provider": name, "recipients": g.recipients, "at_own_domains": g.own,
                            "hosted_by_mx": g.hosted,
                            "domains": dict(self.domains.get(name, Counter()).most_common(10))}
                           for name, g in self.groups.items()],
                "mx_looked_up": self.mx_asked, "mx_not_looked_up": self.mx_not_asked,
                "mx_failure": self.mx_failure}


def _group_of_mx(hosts: list[str]) -> ProviderGroup | None:
    for group in GROUPS:
        if hosts and any(group.hosts(host) for host in hosts):
            return group
    return None


def count_audience(settings: Settings, query: AudienceQuery, dns: DnsClient,
                   known: Mapping[str, str] | None = None) -> Audience:
    """The recipients ``query`` selects, per provider group; a list that cannot be read is a NewsletterError.

    ``known`` holds MX answers of earlier runs (domain -> group name, "" for none), asked again for nothing.
    """
    path = settings.list_path(query.list_name)
    by_domain: Counter[str] = Counter(row[0].rpartition("@")[2] for row in
                                      select_rows(path, tags=query.tags, where=dict(query.where)))
    audience = Audience(query.list_name, display_path(path), total=sum(by_domain.values()))
    own = {domain: group for group in GROUPS for domain in group.domains}
    counts: dict[str, tuple[int, int]] = {group.name: (0, 0) for group in GROUPS}
    counts[OTHER] = (0, 0)
    for domain, number in by_domain.most_common():
        group = own.get(domain)
        hosted = group is None
        if group is None:
            group = _by_mx(audience, dns, domain, known or {})
        name = group.name if group else OTHER
        mine, theirs = counts[name]
        counts[name] = (mine, theirs + number) if hosted and group else (mine + number, theirs)
        audience.domains.setdefault(name, Counter())[domain] += number
    audience.groups = {name: GroupCount(name, own_count, hosted) for name, (own_count, hosted) in counts.items()}
    return audience


def _by_mx(audience: Audience, dns: DnsClient, domain: str, known: Mapping[str, str]) -> ProviderGroup | None:
    if domain in known:
        return next((g for g in GROUPS if g.name == known[domain]), None)
    if audience.mx_failure or audience.mx_asked >= MX_LOOKUPS:
        audience.mx_not_asked += 1
        return None
    audience.mx_asked += 1
    lookup = dns.lookup(domain, "MX")
    if lookup.failed:
        audience.mx_failure = lookup.describe()
        return None
    group = _group_of_mx([record.split()[-1] for record in lookup.records])
    audience.mx_answers[domain] = group.name if group else ""
    return group
