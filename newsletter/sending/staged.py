"""A staged send with a circuit breaker: a first slice of the list, a wait, the signals, then on or halt.

``run_stages`` drives the send loop (``deliver``) once per stage. The
recipients of later stages are held in the journal (``holds``) while a stage
goes out; after it, the send waits ``stage_wait`` and reads what came back for
that stage's recipients since it started:

- the provider's bounces, blocks and spam reports (through the provider
  registry: SendGrid's suppressions API; SMTP has none);
- the event store of ``newsletter serve`` where it is configured (bounces and
  complaints its webhook recorded);
- SMTP 5xx answers in the journal.

``stages.judge_stage`` decides. A halt stops the send with the figures and the
resume command; ``--resume`` then goes on with the next stage (the writer has
looked and decided, so the halted stage is not judged again). Each stage's
record is in the journal: a crash during the wait resumes with the rest of the
wait, and a stage that had started goes on with whoever it has not reached.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ..config import Settings
from ..errors import NewsletterError
from ..providers import registry
from . import holds
from . import journal as jn
from .stages import BreakerDecision, assign_stages, judge_stage, stage_signals, stage_sizes


@dataclass
class StagedOutcome:
    halted: str = ""  # the breaker's summary when the send halted, else ""
    stopped: bool = False  # Ctrl-C, a pause or an error in a stage: the resume command continues


def run_stages(settings: Settings, journal: jn.Journal, issue_id: str, provider_name: str,
               shares: Sequence[float], wait_seconds: float, deliver: Callable[[], bool], *, resume: bool,
               should_stop: Callable[[], bool], say: Callable[[str], None] = lambda _: None) -> StagedOutcome:
    """Send stage by stage. ``deliver`` runs the send loop over what is pending and returns False when
    the send should not go on (stopped, paused, failed recipients are not a reason)."""
    rows = holds.run_rows(journal)
    assigned = assign_stages(issue_id, [key for _, key, _, _ in rows], shares)
    stage_of = {key.strip().lower(): number for key, number in assigned.items()}  # keys differing in case: one stage
    members: dict[int, list[tuple[int, str, str]]] = {n: [] for n in range(1, len(shares) + 1)}
    for row_id, key, email, _ in rows:
        members[stage_of[key.strip().lower()]].append((row_id, key, email))
    holds.record_plan(journal, tuple(shares), stage_sizes(len(rows), shares))
    records = {r.number: r for r in holds.stage_records(journal)}
    for number in members:
        later = [row_id for n, rows_n in members.items() if n > number for row_id, _, _ in rows_n]
        holds.set_status(journal, later, holds.HELD, jn.PENDING)
        holds.set_status(journal, [row_id for row_id, _, _ in members[number]], jn.PENDING, holds.HELD)
        record = records[number]
        has_pending = journal.db.execute(
            f"SELECT COUNT(*) FROM deliveries WHERE send=? AND run=? AND status='pending' AND id IN {journal.db.id_set}",
            (journal.send, journal.run, _ids(journal, members[number]))).fetchone()[0]
        started = record.started
        if has_pending:
            if started is None:
                started = time.time()
                holds.update_stage(journal, number, started=started)
            say(f"Stage {number} of {len(shares)}: {has_pending} recipients")
            if not deliver():
                return StagedOutcome(stopped=True)
            holds.update_stage(journal, number, finished=time.time(), sent=_sent(journal, members[number]))
        if number == len(shares):
            holds.update_stage(journal, number, verdict="last", sent=_sent(journal, members[number]))
            break
        if record.verdict in ("healthy", "resumed", "abandoned"):
            continue
        if record.verdict == "halted":
            if not resume:
                raise NewsletterError(f"this send halted at stage {number}: {record.summary}",
                                      hint="look at the bounces, then continue with --resume")
            holds.update_stage(journal, number, verdict="resumed")
            say(f"Stage {number} had halted the send; resumed by the writer, going on.")
            continue
        if started is None:  # nobody of this stage to send (all settled before stages were recorded)
            holds.update_stage(journal, number, verdict="healthy", judged=time.time())
            continue
        finished = _latest(journal, members[number]) or time.time()
        if not _wait_until(finished + wait_seconds, should_stop, say, number):
            return StagedOutcome(stopped=True)
        decision = judge(settings, journal, provider_name, members[number], since=started)
        s = decision.signals
        holds.update_stage(journal, number, judged=time.time(), sent=s.sent, hard_bounces=s.hard_bounces,
                           soft_bounces=s.soft_bounces, blocks=s.blocks, complaints=s.complaints,
                           verdict="halted" if decision.halt else "healthy", summary=decision.summary())
        say(f"Stage {number}: {decision.summary()}")
        if decision.halt:
            holds.set_status(journal, [row_id for n, rows_n in members.items() if n > number
                                       for row_id, _, _ in rows_n], holds.HELD, jn.PENDING)
            return StagedOutcome(halted=f"stage {number}: {decision.summary().removeprefix('halted: ')}")
    return StagedOutcome()


def judge(settings: Settings, journal: jn.Journal, provider_name: str, stage: list[tuple[int, str, str]], *,
          since: float) -> BreakerDecision:
    """Read every signal for the stage's sent recipients since it started, and judge them."""
    sent_emails = [email for email, status, _ in _outcomes(journal, stage) if status == jn.SENT]
    refused_hard = [email for email, status, reason in _outcomes(journal, stage)
                    if status == jn.FAILED and registry.is_hard_refusal(provider_name, reason)]
    signals = _merge(registry.fetch_signals(settings, provider_name, since=since),
                     serve_signals(settings, journal.list, since=since))
    counted = stage_signals(sent_emails + refused_hard, signals, hard_refusals=refused_hard)
    return judge_stage(counted, settings.send)


def serve_signals(settings: Settings, list_name: str, *, since: float) -> dict[str, list[dict]]:
    """Bounces and complaints ``newsletter serve`` recorded for the list since ``since``, in the provider's
    shape; nothing when no store is configured; a NewsletterError when it is configured but down."""
    import datetime as dt

    from ..serve.connect import open_store, store_is_configured
    from ..serve.store import BOUNCED, COMPLAINED, stamp

    if not store_is_configured(settings):
        return {}
    after = stamp(dt.datetime.fromtimestamp(since, dt.UTC))
    store = open_store(settings, create=False)
    try:
        recent = store.events_since(list_name, after)  # synced or not: a sync during the wait hides nothing
    finally:
        store.close()
    return {"bounces": [{"email": e.email, "status": "5.0.0"} for e in recent if e.kind == BOUNCED],
            "spam_reports": [{"email": e.email} for e in recent if e.kind == COMPLAINED]}


def _merge(*sources: Mapping[str, Sequence[Mapping]]) -> dict[str, list]:
    merged: dict[str, list] = {}
    for source in sources:
        for kind, items in source.items():
            merged.setdefault(kind, []).extend(items)
    return merged


def _ids(journal: jn.Journal, stage: list[tuple[int, str, str]]) -> object:
    return journal.db.ids(row_id for row_id, _, _ in stage)


def _outcomes(journal: jn.Journal, stage: list[tuple[int, str, str]]) -> list[tuple[str, str, str]]:
    rows = journal.db.execute("SELECT email, status, COALESCE(reason, '') FROM deliveries WHERE id IN "
                              f"{journal.db.id_set}", (_ids(journal, stage),)).fetchall()
    return [(str(e), str(s), str(r)) for e, s, r in rows]


def _sent(journal: jn.Journal, stage: list[tuple[int, str, str]]) -> int:
    return sum(1 for _, status, _ in _outcomes(journal, stage) if status == jn.SENT)


def _latest(journal: jn.Journal, stage: list[tuple[int, str, str]]) -> float | None:
    row = journal.db.execute("SELECT MAX(updated) FROM deliveries WHERE status='sent' AND id IN "
                             f"{journal.db.id_set}", (_ids(journal, stage),)).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def _wait_until(moment: float, should_stop: Callable[[], bool], say: Callable[[str], None], number: int) -> bool:
    """Sleep until ``moment`` (False if told to stop first)."""
    left = moment - time.time()
    if left > 0:
        say(f"Stage {number} sent; waiting {left / 60:.1f} minutes for bounces and complaints to come back "
            "(Ctrl-C stops; --resume continues the wait)")
    while time.time() < moment:
        if should_stop():
            return False
        time.sleep(min(0.2, max(0.0, moment - time.time())))
    return True
