"""The DNS Tree Walk of RFC 9989 §4.10: which DMARC record applies to a domain, and its organisational domain.

RFC 7489 took both from a Public Suffix List; RFC 9989 asks DNS instead:
``_dmarc.<name>`` for the name and each parent, up to eight questions
(a name of more than seven labels skips to its last seven), stopping at a
record with ``psd=n`` or ``psd=y``. A name with more than one DMARC record
counts as having none (§4.10, step 2). The organisational domain is then
picked from the records found (§4.10.2): one with ``psd=n`` is it; below one
with ``psd=y`` it is the name one label down; else the shortest name with a
record; with no record at all, the name itself. The DMARC record that
applies to mail is the name's own, else its organisational domain's, else
its public suffix's (§4.10.1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .dmarc_record import DmarcRecord, is_dmarc, looks_like_dmarc
from .resolver import DnsClient, Lookup

MAX_LABELS = 7  # a longer name's walk jumps to its last seven labels (RFC 9989 §4.10, step 4)


def walk_names(domain: str) -> list[str]:
    """The names a walk from ``domain`` asks about, in order (at most eight)."""
    labels = domain.lower().rstrip(".").split(".")
    names = [".".join(labels)]
    rest = labels[-MAX_LABELS:] if len(labels) > MAX_LABELS else labels[1:]
    while rest:
        names.append(".".join(rest))
        rest = rest[1:]
    return names


@dataclass
class Walk:
    """What one walk found: the single valid records on the way (longest name first), and any trouble."""

    start: str
    records: list[DmarcRecord] = field(default_factory=list)
    several: list[str] = field(default_factory=list)  # names with more than one DMARC record (all discarded)
    malformed: dict[str, list[str]] = field(default_factory=dict)  # name -> records meant as DMARC but not valid
    failure: Lookup | None = None  # a DNS failure: the walk stopped there, and nothing can be concluded

    def record_at(self, domain: str) -> DmarcRecord | None:
        return next((r for r in self.records if r.domain == domain), None)

    @property
    def organisational_domain(self) -> str:
        """RFC 9989 §4.10.2, from the records found, longest name to shortest."""
        for record in self.records:
            if record.psd == "n":
                return record.domain
            if record.psd == "y" and record.domain != self.start:
                below = len(record.domain.split(".")) + 1
                return ".".join(self.start.split(".")[-below:])
        return self.records[-1].domain if self.records else self.start

    @property
    def public_suffix_record(self) -> DmarcRecord | None:
        return next((r for r in self.records if r.psd == "y" and r.domain != self.start), None)


def tree_walk(dns: DnsClient, domain: str) -> Walk:
    """Ask ``_dmarc.`` of ``domain`` and of its parents as RFC 9989 §4.10 says (answers are remembered per run)."""
    walk = Walk(domain.lower().rstrip("."))
    for name in walk_names(walk.start):
        lookup = dns.txt(f"_dmarc.{name}")
        if lookup.failed:
            walk.failure = lookup
            return walk
        records = [r for r in lookup.records if is_dmarc(r)]
        meant = [r for r in lookup.records if looks_like_dmarc(r)]
        if meant:
            walk.malformed[name] = meant
        if len(records) > 1:
            walk.several.append(name)
            continue
        if records:
            record = DmarcRecord.read(name, records[0])
            walk.records.append(record)
            if record.psd in ("y", "n"):
                break
    return walk


@dataclass(frozen=True)
class Policy:
    """The DMARC record that applies to mail from a domain (RFC 9989 §4.10.1), and how it was found."""

    walk: Walk
    record: DmarcRecord | None
    source: str = ""  # "own" | "organisational" | "public suffix"

    @property
    def policy_tag(self) -> str:
        """``p`` for the domain's own record; for a parent's, ``sp`` when it has a valid one, else ``p``."""
        if self.record is None or self.source == "own":
            return "p"
        return "sp" if self.record.valid_policy("sp") else "p"

    @property
    def policy(self) -> str:
        """The policy that applies ("none" when p= is broken but rua= is valid, RFC 9989 §4.10.1; "" for none)."""
        if self.record is None:
            return ""
        if self.record.policy_broken():
            return "none" if self.record.has_valid_rua else ""
        return self.record.valid_policy(self.policy_tag)

    @property
    def enforcing(self) -> bool:
        """quarantine or reject, not under test (t=y), and at 100% for receivers still reading pct."""
        return (self.policy in ("quarantine", "reject") and self.record is not None and not self.record.testing
                and self.record.percent == 100)


def discover_policy(dns: DnsClient, domain: str) -> Policy:
    """The record that applies to mail from ``domain``: its own, else its organisational domain's, else its
    public suffix's; the walk starts at ``domain`` itself (its own record is the first question)."""
    walk = tree_walk(dns, domain)
    if walk.failure is not None:
        return Policy(walk, None)
    own = walk.record_at(walk.start)
    if own is not None and walk.start not in walk.several:
        return Policy(walk, own, "own")
    organisational = walk.record_at(walk.organisational_domain)
    if organisational is not None and walk.organisational_domain != walk.start:
        return Policy(walk, organisational, "organisational")
    suffix = walk.public_suffix_record
    if suffix is not None:
        return Policy(walk, suffix, "public suffix")
    return Policy(walk, None)


def organisational_domain(dns: DnsClient, domain: str) -> tuple[str, Lookup | None]:
    """(the organisational domain of ``domain`` by the tree walk, the DNS failure that stopped it if any)."""
    walk = tree_walk(dns, domain)
    return walk.organisational_domain, walk.failure
