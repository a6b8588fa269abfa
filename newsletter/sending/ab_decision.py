"""Which subject of an A/B test won, on unique human clickers, and how sure that is.

The test, stated: the variant with the highest share of unique human clickers among the
recipients it was sent to (the leader) is compared with each other variant by a one-sided
Fisher's exact test (H1: the leader's click rate is higher). Fisher's test is exact for any
counts, so a test slice with a handful of clicks is judged as honestly as a large one. With
k variants the leader must beat each of the k - 1 others at the Bonferroni-corrected level
(1 - confidence) / (k - 1). If it does not (a tie, or too few clicks to tell), there is no
winner, and the send says so and goes on with the variant the writer named (the first, unless
told otherwise).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class VariantFigures:
    number: int  # 1-based
    subject: str
    sent: int
    clickers: int  # unique human clickers

    @property
    def rate(self) -> float:
        return self.clickers / self.sent if self.sent else 0.0


@dataclass(frozen=True)
class Decision:
    winner: int  # the variant number that won, 0 when none did
    leader: int  # the variant with the highest rate (ties: the lowest number)
    p_values: tuple[tuple[int, float], ...]  # (other variant, one-sided p of leader > it)
    level: float  # the corrected significance level each p had to be under
    confidence: float
    variants: tuple[VariantFigures, ...]
    test: str = "one-sided Fisher's exact test of the leader against each other variant, Bonferroni-corrected"

    def summary(self, fallback: int) -> str:
        figures = "; ".join(f"{v.number} \u201c{v.subject}\u201d: {v.clickers} of {v.sent} clicked ({v.rate:.1%})"
                            for v in self.variants)
        worst = max((p for _, p in self.p_values), default=1.0)
        if self.winner:
            return (f"variant {self.winner} wins at {self.confidence:.0%} confidence (largest p = {worst:.3g} < "
                    f"{self.level:.3g}; {self.test}): {figures}")
        return (f"no winner at {self.confidence:.0%} confidence (largest p = {worst:.3g}, needed < {self.level:.3g}; "
                f"{self.test}); the rest gets variant {fallback}: {figures}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["variants"] = [{**asdict(v), "rate": v.rate} for v in self.variants]
        data["p_values"] = [{"variant": n, "p": p} for n, p in self.p_values]
        return data


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fisher_greater(a_clicks: int, a_sent: int, b_clicks: int, b_sent: int) -> float:
    """One-sided p-value of Fisher's exact test that A's click rate is higher than B's: the chance, with
    the margins fixed, of A having at least ``a_clicks`` of all the clicks."""
    clicks, total = a_clicks + b_clicks, a_sent + b_sent
    if total == 0 or clicks == 0:
        return 1.0
    low, high = max(a_clicks, clicks - b_sent), min(clicks, a_sent)
    denominator = _log_choose(total, clicks)
    terms = [_log_choose(a_sent, x) + _log_choose(b_sent, clicks - x) - denominator for x in range(low, high + 1)]
    if not terms:
        return 1.0
    top = max(terms)
    return min(1.0, math.exp(top) * math.fsum(math.exp(t - top) for t in terms))


def decide(variants: Sequence[VariantFigures], confidence: float) -> Decision:
    """The decision for these figures at ``confidence`` (e.g. 0.95)."""
    if len(variants) < 2:
        raise ValueError("an A/B test needs at least two variants")
    leader = max(variants, key=lambda v: (v.rate, -v.number))
    level = (1 - confidence) / (len(variants) - 1)
    p_values = tuple((v.number, fisher_greater(leader.clickers, leader.sent, v.clickers, v.sent))
                     for v in variants if v.number != leader.number)
    won = all(p < level for _, p in p_values)
    return Decision(winner=leader.number if won else 0, leader=leader.number, p_values=p_values, level=level,
                    confidence=confidence, variants=tuple(variants))
