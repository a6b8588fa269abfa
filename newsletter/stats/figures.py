"""What an issue did, from the send journal and ``newsletter serve``'s event store: plain figures.

Sources, and what each says:

- the journal: who each copy went to and what the provider answered (SMTP: accepted or
  refused, a 5xx refusal being a hard bounce), the A/B test and its decision;
- the event store's clicks (``/c/``): each with its verdict (a reader's, or a program's and why);
- its message events (SendGrid's Event Webhook): delivered, deferred, bounced (hard, soft),
  dropped, opened, clicked, complained, unsubscribed, per copy, by reader key;
- its list events: readers who left through the service (one-click unsubscribe), counted
  for the issue from its first send until the next issue went to the same list.

A click counts as a reader's when the service judged it so, it did not come within
``[stats] human_after_seconds`` of the provider's own delivery report for that copy (the
service could only measure from when it was sent), and no honeypot hit for the same reader
came within ``HONEYPOT_BURST`` seconds of it (a scanner that reached another instance).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..compose.click_tokens import HONEYPOT
from ..config import Settings
from ..lists.domain_groups import STATS_GROUPS, stats_group, stats_group_name
from ..providers.registry import is_provider_source
from ..serve.store import (
    BOUNCED,
    CLICKED,
    COMPLAINED,
    DEFERRED,
    DELIVERED,
    DROPPED,
    HARD,
    OPENED,
    UNSUBSCRIBED,
    ClickRecord,
    Event,
    MessageEvent,
)

HONEYPOT_BURST = 60.0  # seconds around a reader's honeypot hit in which their other clicks are a program's


def parse_stamp(text: str) -> float:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC).timestamp()


@dataclass(frozen=True)
class SentCopies:
    """What the journal says of one issue: its copies, by list, and when they went."""

    issue_id: str
    folder: str
    lists: tuple[str, ...]
    first_sent: float  # the first send run's start (Unix seconds); 0 if never sent
    accepted: int  # copies the provider accepted
    refused_hard: int
    refused_soft: int
    deferred: int
    groups: dict[int, int]  # accepted copies per receiving domain group
    ab: Any = None  # sending.ab.AbRecord | None
    ab_sizes: dict[int, int] = field(default_factory=dict)


@dataclass
class LinkFigures:
    index: int
    url: str
    human_clicks: int = 0
    unique_human_clickers: int = 0
    program_fetches: int = 0


@dataclass
class GroupFigures:
    name: str
    recipients: int
    unique_human_clickers: int

    @property
    def rate(self) -> float:
        return self.unique_human_clickers / self.recipients if self.recipients else 0.0


@dataclass
class IssueFigures:
    issue_id: str
    folder: str
    subject: str
    lists: tuple[str, ...]
    sent_at: str  # ISO 8601, UTC; "" if never sent
    recipients: int  # copies the provider accepted
    delivered: int
    delivered_source: str
    bounced_hard: int
    bounced_soft: int
    deferred: int
    dropped: int
    complaints: int
    unsubscribed: int
    opens: int  # unique opens the provider reported (inflated by privacy proxies)
    provider_clicks: int  # unique clickers by the provider's own click tracking
    unique_human_clickers: int
    human_clicks: int
    filtered: dict[str, int]  # program fetches not counted, by reason
    links: list[LinkFigures]
    groups: list[GroupFigures]
    timeline: list[tuple[float, int]]  # (hours since the send, unique human clickers so far)
    ab: dict[str, Any] | None
    notes: list[str] = field(default_factory=list)

    @property
    def click_rate(self) -> float:
        return self.unique_human_clickers / self.delivered if self.delivered else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "issue_id": self.issue_id, "issue": self.folder, "subject": self.subject, "lists": list(self.lists),
            "sent_at": self.sent_at, "recipients": self.recipients, "delivered": self.delivered,
            "delivered_source": self.delivered_source,
            "bounced": {"hard": self.bounced_hard, "soft": self.bounced_soft, "total": self.bounced_hard
                        + self.bounced_soft},
            "deferred": self.deferred, "dropped": self.dropped, "complaints": self.complaints,
            "unsubscribed": self.unsubscribed,
            "opens_inflated_by_privacy_proxies": self.opens, "provider_clicks": self.provider_clicks,
            "unique_human_clickers": self.unique_human_clickers, "click_rate": round(self.click_rate, 6),
            "human_clicks": self.human_clicks, "program_fetches_not_counted": dict(self.filtered),
            "links": [{"index": link.index, "url": link.url, "human_clicks": link.human_clicks,
                       "unique_human_clickers": link.unique_human_clickers, "program_fetches": link.program_fetches}
                      for link in self.links],
            "domain_groups": [{"group": g.name, "recipients": g.recipients,
                               "unique_human_clickers": g.unique_human_clickers, "rate": round(g.rate, 6)}
                              for g in self.groups],
            "over_time": [{"hours_since_send": round(hours, 4), "unique_human_clickers": count}
                          for hours, count in self.timeline],
            "ab_test": self.ab, "notes": list(self.notes),
        }


def human_clicks(clicks: Sequence[ClickRecord], delivered_at: dict[str, float],
                 human_after: float) -> list[ClickRecord]:
    """The clicks that count as a reader's (see the module's docstring); the honeypot's are never among them."""
    honeypots: dict[str, list[float]] = defaultdict(list)
    for click in clicks:
        if click.link == HONEYPOT and click.reason == "honeypot":  # followed, not only looked at (HEAD)
            honeypots[click.reader].append(parse_stamp(click.at))
    counted = []
    for click in clicks:
        if click.link == HONEYPOT or not click.human:
            continue
        at = parse_stamp(click.at)
        delivered = delivered_at.get(click.reader)
        if delivered is not None and at - delivered < human_after:
            continue
        if any(abs(at - hit) <= HONEYPOT_BURST for hit in honeypots.get(click.reader, ())):
            continue
        counted.append(click)
    return counted


def _filtered(clicks: Sequence[ClickRecord], counted: Sequence[ClickRecord]) -> dict[str, int]:
    kept = {id(c) for c in counted}
    reasons: Counter[str] = Counter()
    for click in clicks:
        if id(click) not in kept:
            reasons[click.reason or ("honeypot" if click.link == HONEYPOT else "too soon after delivery")] += 1
    return dict(sorted(reasons.items()))


def _unique(events: Sequence[MessageEvent], kind: str, detail: str | None = None) -> int:
    return len({e.reader for e in events if e.kind == kind and (detail is None or e.detail == detail)})


def figures(settings: Settings, copies: SentCopies, subject: str, clicks: Sequence[ClickRecord],
            events: Sequence[MessageEvent], departures: Sequence[Event], *, store_note: str = "") -> IssueFigures:
    """The figures of one issue from what the journal and the store hold."""
    delivered_at: dict[str, float] = {}
    for event in events:
        if event.kind == DELIVERED:
            delivered_at.setdefault(event.reader, parse_stamp(event.at))
    counted = human_clicks(clicks, delivered_at, settings.stats.human_after_seconds)
    links: dict[int, LinkFigures] = {}
    for click in clicks:
        if click.link != HONEYPOT and click.link not in links:
            links[click.link] = LinkFigures(click.link, click.url)
    readers_per_link: dict[int, set[str]] = defaultdict(set)
    for click in counted:
        links[click.link].human_clicks += 1
        readers_per_link[click.link].add(click.reader)
    counted_ids = {id(c) for c in counted}
    for click in clicks:
        if click.link != HONEYPOT and id(click) not in counted_ids:
            links[click.link].program_fetches += 1
    for index, readers in readers_per_link.items():
        links[index].unique_human_clickers = len(readers)
    clickers = {c.reader for c in counted}
    group_clickers: dict[int, set[str]] = defaultdict(set)
    for click in counted:
        group_clickers[click.group].add(click.reader)
    groups = [GroupFigures(name, copies.groups.get(number, 0), len(group_clickers.get(number, set())))
              for number, name in enumerate(STATS_GROUPS)]
    groups = groups[1:] + groups[:1]  # "other" last
    first: dict[str, float] = {}
    for click in counted:
        first.setdefault(click.reader, parse_stamp(click.at))
    timeline = [(max(0.0, (moment - copies.first_sent) / 3600) if copies.first_sent else 0.0, seen)
                for seen, moment in enumerate(sorted(first.values()), start=1)]
    provider_delivered = _unique(events, DELIVERED)
    notes = [store_note] if store_note else []
    ab = None
    if copies.ab is not None:
        record = copies.ab
        ab = {"subjects": list(record.subjects), "share": record.share, "confidence": record.confidence,
              "sent": {str(n): copies.ab_sizes.get(n, 0) for n in range(1, len(record.subjects) + 1)},
              "unique_human_clickers": {str(n): len({c.reader for c in counted if c.variant == n})
                                        for n in range(1, len(record.subjects) + 1)},
              "decided": bool(record.decided), "verdict": record.verdict or "waiting for the decision",
              "winner": record.winner, "summary": record.summary}
    unsubscribed = _unique(events, UNSUBSCRIBED) + len({e.key for e in departures if e.kind == UNSUBSCRIBED
                                                         and not is_provider_source(e.source)})
    return IssueFigures(
        issue_id=copies.issue_id, folder=copies.folder, subject=subject, lists=copies.lists,
        sent_at=dt.datetime.fromtimestamp(copies.first_sent, dt.UTC).isoformat(timespec="seconds")
        if copies.first_sent else "",
        recipients=copies.accepted,
        delivered=provider_delivered or copies.accepted,
        delivered_source=("delivered events from the provider" if provider_delivered
                          else "accepted by the provider or the receiving server (the send journal)"),
        bounced_hard=_unique(events, BOUNCED, HARD) + copies.refused_hard,
        bounced_soft=_unique(events, BOUNCED, "soft") + copies.refused_soft,
        deferred=_unique(events, DEFERRED) + copies.deferred, dropped=_unique(events, DROPPED),
        complaints=_unique(events, COMPLAINED), unsubscribed=unsubscribed,
        opens=_unique(events, OPENED), provider_clicks=_unique(events, CLICKED),
        unique_human_clickers=len(clickers), human_clicks=len(counted), filtered=_filtered(clicks, counted),
        links=[links[i] for i in sorted(links)], groups=groups, timeline=timeline, ab=ab, notes=notes)


def group_counts(emails: Sequence[str]) -> dict[int, int]:
    return dict(Counter(stats_group(email) for email in emails))


__all__ = ["GroupFigures", "IssueFigures", "LinkFigures", "SentCopies", "figures", "group_counts", "human_clicks",
           "stats_group_name"]
