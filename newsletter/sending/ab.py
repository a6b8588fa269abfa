"""Subject A/B test on clicks: ``send --ab 10%`` tries the issue's ``subject_variants`` on a slice of the list.

1. The test: the share (10%) of the selected recipients is split into one equal slice per
   subject. Who is in which slice is random but deterministic: recipients are ranked by a
   hash of the issue id and their address (as the stages of a staged send are), the first
   share of the ranking is the test, and its members take the variants in turn, so the
   slices differ by one recipient at most and a rerun puts everyone where they were. Each
   recipient's variant is recorded in the journal (``deliveries.variant``), each slice is
   sent with its subject, and the rest of the list is held. The send then stops and waits.
2. The decision: ``send --resume`` (or ``send --due`` once ``[stats] ab_wait_hours`` have
   passed) reads the unique human clickers per variant through ``ClickCounts`` (an
   interface this package owns; the CLI fills it from ``newsletter serve``'s event store,
   so ``sending/`` never imports ``serve/``), decides with the test in ``ab_decision``
   states, records the decision and its figures in the journal, and sends the rest the
   winning subject, or, with no winner at the chosen confidence, the first subject (or the
   one ``--ab-fallback`` names), saying so.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..errors import NewsletterError
from . import holds
from . import journal as jn
from .ab_decision import Decision, VariantFigures, decide
from .plan import SendPlan
from .stage_rules import stage_rank_key


class ClickCounts(Protocol):
    """What an A/B decision needs from wherever clicks are counted (``newsletter serve``'s event store)."""

    def unique_human_clickers(self, issue_id: str) -> Mapping[int, int]:
        """Unique human clickers of the issue by A/B variant number (1..4)."""


@dataclass(frozen=True)
class AbRecord:
    """An A/B test as the journal keeps it."""

    share: float
    subjects: tuple[str, ...]
    confidence: float
    fallback: int  # the variant the rest gets when no variant wins (1-based)
    started: float
    tested: float | None  # when the last test slice was sent
    decide_after: float | None  # from then on `send --due` decides
    decided: float | None
    winner: int  # 0: none (or not decided)
    verdict: str  # "" | "winner" | "no winner"
    figures: str  # the decision's figures, JSON
    summary: str

    @property
    def subject_of_rest(self) -> str:
        return self.subjects[(self.winner or self.fallback) - 1]


def parse_share(text: str) -> float:
    """``"10%"`` -> 0.1: the share of the list the test slices take together."""
    number = text.strip()[:-1].strip() if text.strip().endswith("%") else ""
    try:
        share = float(number) / 100
    except ValueError:
        share = math.nan
    if not 0 < share < 1:
        raise NewsletterError(f"--ab: '{text}' is not a percentage between 0% and 100%",
                              hint="give the share of the list to test on, like --ab 10%")
    return share


def assign_variants(issue_id: str, keys: Sequence[str], share: float, count: int) -> dict[str, int]:
    """key -> variant (1..count) for the test slice: the first ``share`` of the issue's random order, the
    variants taken in turn (slices differ by one at most). Keys outside the test are not in the result."""
    unique = {key.strip().lower(): key for key in keys}
    ranked = sorted(unique, key=lambda key: stage_rank_key(issue_id, key))
    size = min(len(ranked), max(count, math.ceil(len(ranked) * share - 1e-9)))
    return {unique[key]: position % count + 1 for position, key in enumerate(ranked[:size])}


def record_of(journal: jn.Journal) -> AbRecord | None:
    row = journal.db.execute(
        "SELECT share, subjects, confidence, fallback, started, tested, decide_after, decided, winner, verdict, "
        "figures, summary FROM ab_tests WHERE send=?", (journal.send,)).fetchone()
    if row is None:
        return None
    share, subjects, confidence, fallback, started, tested, decide_after, decided, winner, verdict, figures, \
        summary = row
    return AbRecord(float(share), tuple(json.loads(subjects)), float(confidence), int(fallback), float(started),
                    tested, decide_after, decided, int(winner), verdict or "", figures or "", summary or "")


def variant_sizes(journal: jn.Journal) -> dict[int, int]:
    """How many recipients of each variant's slice were sent it (accepted by the provider)."""
    rows = journal.db.execute("SELECT variant, COUNT(*) FROM deliveries WHERE send=? AND variant IS NOT NULL "
                              "AND status='sent' GROUP BY variant", (journal.send,)).fetchall()
    return {int(variant): int(count) for variant, count in rows}


@dataclass
class AbOutcome:
    line: str  # what the summary says of the test
    stopped: bool = False


def _update(journal: jn.Journal, **values: object) -> None:
    columns = ", ".join(f"{name}=?" for name in values)
    with journal.transaction() as db:
        db.execute(f"UPDATE ab_tests SET {columns} WHERE send=?", (*values.values(), journal.send))


def _start(plan: SendPlan, share: float, fallback: int, now: float) -> AbRecord:
    journal, subjects = plan.journal, plan.issue.subject_variants
    if not subjects:
        raise NewsletterError("--ab needs the subjects to test: the issue has no subject_variants",
                              where=f"{plan.issue.name}/issue.md",
                              hint="add subject_variants: with 2 to 4 subjects, one '- ...' line each")
    if not 1 <= fallback <= len(subjects):
        raise NewsletterError(f"--ab-fallback {fallback}: the issue has {len(subjects)} subject variants",
                              hint=f"name one of 1 to {len(subjects)}")
    rows = [(row_id, key) for row_id, key, _, status in holds.run_rows(journal) if status == jn.PENDING]
    assigned = assign_variants(plan.issue_id, [key for _, key in rows], share, len(subjects))
    with journal.transaction() as db:
        db.execute("INSERT INTO ab_tests (send, share, subjects, confidence, fallback, started) VALUES "
                   "(?, ?, ?, ?, ?, ?)", (journal.send, share, json.dumps(list(subjects)),
                                         plan.settings.stats.ab_confidence, fallback, now))
        for variant in range(1, len(subjects) + 1):
            ids = [row_id for row_id, key in rows if assigned.get(key) == variant]
            if ids:
                db.execute(f"UPDATE deliveries SET variant=? WHERE id IN {db.id_set}", (variant, db.ids(ids)))
    found = record_of(journal)
    assert found is not None
    return found


def _pending_ids(journal: jn.Journal, variant: int | None) -> list[int]:
    where = "variant IS NULL" if variant is None else "variant=?"
    params: tuple[object, ...] = (journal.send,) if variant is None else (journal.send, variant)
    return [int(i) for (i,) in journal.db.execute(
        f"SELECT id FROM deliveries WHERE send=? AND status='pending' AND {where}", params).fetchall()]


def _held_ids(journal: jn.Journal) -> list[int]:
    return [int(i) for (i,) in journal.db.execute(
        "SELECT id FROM deliveries WHERE send=? AND status='held'", (journal.send,)).fetchall()]


def _phase(plan: SendPlan, subject: str, variant: int) -> None:
    """The plan's message (and click values) for one phase: a variant's slice, or the rest (variant 0)."""
    labels = tuple(label for label in plan.message.labels if label[0] != "variant")
    plan.message = dataclasses.replace(plan.message, subject=subject,
                                       labels=(*labels, *((("variant", str(variant)),) if variant else ())))
    if plan.readers is not None:
        plan.readers = plan.readers.for_variant(variant)


def decision_of(plan: SendPlan, record: AbRecord, clicks: ClickCounts | None) -> Decision:
    if clicks is None:
        raise NewsletterError("this send's A/B test is waiting for its decision, which needs the click counts of "
                              "newsletter serve's event store", hint="run it with: newsletter send ... --resume")
    counts = clicks.unique_human_clickers(plan.issue_id)
    sizes = variant_sizes(plan.journal)
    figures = [VariantFigures(number, subject, sizes.get(number, 0), int(counts.get(number, 0)))
               for number, subject in enumerate(record.subjects, start=1)]
    return decide(figures, record.confidence)


def run_ab(plan: SendPlan, deliver: Callable[[], bool], *, share: float | None, fallback: int,
           clicks: ClickCounts | None, say: Callable[[str], None] = lambda _: None,
           clock: Callable[[], float] = time.time) -> AbOutcome:
    """The test slices (then wait), or, once they are all sent, the decision and the rest."""
    journal = plan.journal
    record = record_of(journal)
    if record is not None and share is not None:
        raise NewsletterError("this send's A/B test was started already: --ab starts one, --resume continues it",
                              hint="run the same send with --resume instead of --ab")
    tested_before = record is not None and record.tested is not None
    if record is None:
        if share is None:
            raise NewsletterError("internal: an A/B run without a test")  # pragma: no cover - engine checks
        record = _start(plan, share, fallback, clock())
    if not tested_before:
        rest = _pending_ids(journal, None)
        holds.set_status(journal, rest, holds.HELD, jn.PENDING)  # the rest waits for the decision
        for variant, subject in enumerate(record.subjects, start=1):
            ids = _pending_ids(journal, variant)
            if not ids:
                continue
            others = [i for v in range(1, len(record.subjects) + 1) if v != variant for i in _pending_ids(journal, v)]
            holds.set_status(journal, others, holds.HELD, jn.PENDING)
            say(f"A/B test: variant {variant} \u201c{subject}\u201d to {len(ids)} recipients")
            _phase(plan, subject, variant)
            finished = deliver()
            holds.set_status(journal, others, jn.PENDING, holds.HELD)
            if not finished:
                return AbOutcome("A/B test stopped before every slice was sent; --resume goes on", stopped=True)
        now = clock()
        wait = plan.settings.stats.ab_wait_hours * 3600
        _update(journal, tested=now, decide_after=now + wait)
        sizes = variant_sizes(journal)
        held = len(_held_ids(journal))
        slices = ", ".join(f"variant {n}: {sizes.get(n, 0)}" for n in range(1, len(record.subjects) + 1))
        return AbOutcome(f"A/B test sent ({slices}); the other {held} recipients wait for the decision on "
                         f"clicks: send --resume decides (send --due after "
                         f"{plan.settings.stats.ab_wait_hours:g} hours)")
    if not record.decided:
        decision = decision_of(plan, record, clicks)
        summary = decision.summary(record.fallback)
        _update(journal, decided=clock(), winner=decision.winner,
                verdict="winner" if decision.winner else "no winner", figures=json.dumps(decision.to_dict()),
                summary=summary)
        say(f"A/B test: {summary}")
        record = record_of(journal) or record
    subject = record.subject_of_rest
    rest = _held_ids(journal) + _pending_ids(journal, None)
    holds.set_status(journal, _held_ids(journal), jn.PENDING, holds.HELD)
    _phase(plan, subject, 0)
    say(f"A/B test decided: the rest ({len(rest)} recipients) get \u201c{subject}\u201d")
    finished = deliver()
    return AbOutcome(f"A/B test: {record.summary}", stopped=not finished)


def waiting_tests(db: jn.JournalDB, now: float) -> list[tuple[str, str, str]]:
    """(issue id, list, folder) of every A/B test whose slices are sent and whose wait is over, undecided:
    what ``send --due`` resumes (with a ``ClickCounts``)."""
    rows = db.execute("SELECT s.issue, s.list, COALESCE(s.folder, '') FROM ab_tests a JOIN sends s ON s.id = a.send "
                      "WHERE a.tested IS NOT NULL AND a.decided IS NULL AND a.decide_after <= ? ORDER BY a.send",
                      (now,)).fetchall()
    return [(str(issue), str(list_name), str(folder)) for issue, list_name, folder in rows]
