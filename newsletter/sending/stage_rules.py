"""A staged send: slices of the list in turn, and the circuit breaker that stops it on bad signals.

``send --stages 1%,10%,100%`` (or ``[send] stages``) sends to the first 1%
of the list, waits, reads what came back (bounces, blocks, spam reports,
SMTP 5xx answers), and goes on to 10% and then everyone only while the
stage's hard bounces stay at or under ``[send] max_hard_bounce_rate`` (2%)
and its complaints at or under ``max_complaint_rate`` (0.1%). A stale list
or a spam-trap-laden import shows itself in the first 1% instead of
burning the sender's reputation with the whole list.

Which stage a recipient is in is chosen at random but deterministically for
the issue: recipients are ranked by a hash of the issue's id and their
address, so a resumed or repeated run puts everyone in the same stage, and
each issue samples a different first slice. Pure functions; the send loop
calls them.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..config import SendSettings
from ..errors import NewsletterError

HARD_BOUNCE_STATUS = "5"  # an enhanced status code 5.x.x: permanent (RFC 3463)


def parse_stages(value: str | Sequence[str], where: str = "--stages") -> tuple[float, ...]:
    """``"1%,10%,100%"`` (or ``["1%", "10%", "100%"]``) -> (0.01, 0.1, 1.0): cumulative shares of the list.

    Each stage is a percentage above the one before, and the last is 100%, so nobody is left out
    silently; an empty value means no stages (one stage of 100%)."""
    parts = [p.strip() for p in (value.split(",") if isinstance(value, str) else value) if p.strip()]
    if not parts:
        return (1.0,)
    shares: list[float] = []
    for part in parts:
        number = part[:-1].strip() if part.endswith("%") else None
        try:
            share = float(number) / 100 if number is not None else math.nan
        except ValueError:
            share = math.nan
        if not 0 < share <= 1:
            raise NewsletterError(f"{where}: '{part}' is not a percentage between 0% and 100%",
                                  hint="write the stages like 1%,10%,100%")
        if shares and share <= shares[-1]:
            raise NewsletterError(f"{where}: each stage must be larger than the one before ('{part}' after "
                                  f"{shares[-1] * 100:g}%)", hint="the stages are cumulative: 1%,10%,100%")
        shares.append(share)
    if shares[-1] != 1.0:
        raise NewsletterError(f"{where}: the last stage is {shares[-1] * 100:g}%, so the rest of the list would "
                              "never be sent", hint=f"end with 100%, like {','.join(parts)},100%")
    return tuple(shares)


def stages_of(settings: SendSettings, option: str | None = None) -> tuple[float, ...]:
    """``--stages`` when given, else ``[send] stages`` (reported as that setting when wrong)."""
    if option is not None:
        return parse_stages(option)
    return parse_stages(settings.stages, where="newsletter.toml: send.stages")


def stage_rank_key(issue_id: str, address: str) -> bytes:
    """Where ``address`` falls in the issue's random order: a SHA-256 of the issue id and the address."""
    return hashlib.sha256(f"{issue_id}\n{address.strip().lower()}".encode()).digest()


def stage_sizes(total: int, shares: Sequence[float]) -> list[int]:
    """How many of ``total`` recipients each stage sends to; every stage but an empty list gets one at least."""
    ends = [min(total, max(1 if total else 0, math.ceil(total * share - 1e-9))) for share in shares]
    ends[-1] = total
    sizes, before = [], 0
    for end in ends:
        end = max(end, before)
        sizes.append(end - before)
        before = end
    return sizes


def assign_stages(issue_id: str, addresses: Iterable[str], shares: Sequence[float]) -> dict[str, int]:
    """address -> stage number (1-based): the first stage gets the first ``shares[0]`` of the issue's
    random order, and so on. Addresses are compared lowercased; a repeated address keeps one stage."""
    unique = {a.strip().lower(): a for a in addresses}
    ranked = sorted(unique, key=lambda key: stage_rank_key(issue_id, key))
    stages: dict[str, int] = {}
    start = 0
    for number, size in enumerate(stage_sizes(len(ranked), shares), start=1):
        for key in ranked[start:start + size]:
            stages[unique[key]] = number
        start += size
    return stages


@dataclass(frozen=True)
class StageSignals:
    """What came back from one stage: how many it was sent to, and the bad news."""

    sent: int
    hard_bounces: int = 0  # provider hard bounces plus SMTP 5xx answers in the journal
    soft_bounces: int = 0
    blocks: int = 0
    complaints: int = 0

    @property
    def hard_bounce_rate(self) -> float:
        return self.hard_bounces / self.sent if self.sent else 0.0

    @property
    def complaint_rate(self) -> float:
        return self.complaints / self.sent if self.sent else 0.0


@dataclass(frozen=True)
class BreakerDecision:
    halt: bool
    reasons: tuple[str, ...]
    signals: StageSignals

    def summary(self) -> str:
        s = self.signals
        figures = (f"{s.sent} sent, {s.hard_bounces} hard bounces ({s.hard_bounce_rate:.2%}), "
                   f"{s.complaints} complaints ({s.complaint_rate:.2%}), {s.blocks} blocks")
        return f"halted: {'; '.join(self.reasons)} ({figures})" if self.halt else f"healthy: {figures}"


def judge_stage(signals: StageSignals, settings: SendSettings) -> BreakerDecision:
    """Halt when the stage's hard bounces or complaints exceed ``[send]``'s thresholds (strictly above)."""
    reasons = []
    if signals.hard_bounce_rate > settings.max_hard_bounce_rate:
        reasons.append(f"hard bounces {signals.hard_bounce_rate:.2%} of the stage exceed "
                       f"{settings.max_hard_bounce_rate:.2%} (send.max_hard_bounce_rate)")
    if signals.complaint_rate > settings.max_complaint_rate:
        reasons.append(f"spam complaints {signals.complaint_rate:.2%} of the stage exceed "
                       f"{settings.max_complaint_rate:.2%} (send.max_complaint_rate)")
    return BreakerDecision(bool(reasons), tuple(reasons), signals)


def stage_signals(stage_addresses: Iterable[str], provider_signals: Mapping[str, Sequence[Mapping[str, Any]]],
                  hard_refusals: Iterable[str] = ()) -> StageSignals:
    """Count a stage's signals: the provider's (``registry.fetch_signals``) and the permanent refusals in the
    journal (``registry.is_hard_refusal``: an SMTP server's 5xx answers), for the stage's own addresses only,
    each address counted once per kind."""
    members = {a.strip().lower() for a in stage_addresses}

    def of(kind: str, hard: bool | None = None) -> set[str]:
        return {str(item.get("email", "")).strip().lower() for item in provider_signals.get(kind, ())
                if str(item.get("email", "")).strip().lower() in members
                and (hard is None or str(item.get("status", "")).startswith(HARD_BOUNCE_STATUS) == hard)}

    hard = of("bounces", hard=True) | {a.strip().lower() for a in hard_refusals if a.strip().lower() in members}
    return StageSignals(sent=len(members), hard_bounces=len(hard), soft_bounces=len(of("bounces", hard=False)),
                        blocks=len(of("blocks")), complaints=len(of("spam_reports")))
