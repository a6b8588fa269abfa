"""A staged send with a circuit breaker: a first slice of the list, a wait, the signals, then on or halt.

``run_stages`` drives the send loop (``deliver``) once per stage. The
recipients of later stages are held in the journal (``holds``) while a stage
goes out; after it, the send waits ``stage_wait`` and reads what came back for
that stage's recipients since it started:

- the provider's bounces, blocks and spam reports (through the provider
  registry: SendGrid's suppressions API; SMTP has none);
- the event store of ``newsletter serve`` where it is configured (bounces and
  complaints its webhook recorded), through ``service.SubscriberService``;
- SMTP 5xx answers in the journal.

``stage_rules.judge_stage`` decides. A halt stops the send with the figures and the
resume command; ``--resume`` then goes on with the next stage (the writer has
looked and decided, so the halted stage is not judged again). Each stage's
record is in the journal: a crash during the wait resumes with the rest of the
wait, and a stage that had started goes on with whoever it has not reached.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..config import Settings
from ..errors import NewsletterError
from ..providers import registry
from . import holds
from . import journal as jn
from .service import SubscriberService
from .stage_rules import BreakerDecision, assign_stages, judge_stage, stage_signals, stage_sizes


@dataclass
class StagedOutcome:
    halted: str = ""  # the breaker's summary when the send halted, else ""
    stopped: bool = False  # Ctrl-C, a pause or an error in a stage: the resume command continues


PASSED = ("healthy", "resumed", "abandoned")  # verdicts after which the next stage may go


def run_stages(settings: Settings, journal: jn.Journal, issue_id: str, provider_name: str,
               shares: Sequence[float], wait_seconds: float, deliver: Callable[[], bool], *, resume: bool,
               should_stop: Callable[[], bool], say: Callable[[str], None] = lambda _: None,
               joined: bool = False, service: SubscriberService | None = None) -> StagedOutcome:
    """Send stage by stage. ``deliver`` runs the send loop over what is pending and returns False when
    the send should not go on (stopped, paused, failed recipients are not a reason).

    The stages' state is the journal's, so several senders sharing the send (``joined``: a worker) go
    through the same stages: which stages are open follows from the verdicts recorded (``_open``), a
    stage is judged once its every recipient is settled, by whichever sender comes first, and the others
    obey its verdict. A worker never resumes a halt: only the writer does, with ``--resume``.
    """
    rows = holds.run_rows(journal)
    assigned = assign_stages(issue_id, [key for _, key, _, _ in rows], shares)
    stage_of = {key.strip().lower(): number for key, number in assigned.items()}  # keys differing in case: one stage
    members: dict[int, list[tuple[int, str, str]]] = {n: [] for n in range(1, len(shares) + 1)}
    for row_id, key, email, _ in rows:
        members[stage_of[key.strip().lower()]].append((row_id, key, email))
    holds.record_plan(journal, tuple(shares), stage_sizes(len(rows), shares))
    last = len(shares)
    while True:
        number, record = _open(journal, members)
        if record.verdict == "halted":
            if joined:
                return StagedOutcome(halted=f"stage {number}: {record.summary.removeprefix('halted: ')}")
            if not resume:
                raise NewsletterError(f"this send halted at stage {number}: {record.summary}",
                                      hint="look at the bounces, then continue with --resume")
            holds.update_stage(journal, number, verdict="resumed")
            say(f"Stage {number} had halted the send; resumed by the writer, going on.")
            continue
        to_go = _count(journal, members[number], "status='pending' AND run=?", (journal.run,))
        if to_go or _count(journal, [m for n in range(1, number) for m in members[n]],
                           "status='pending' AND run=?", (journal.run,)):
            if record.started is None:
                _start(journal, number)
            say(f"Stage {number} of {last}: {to_go} recipients")
            if not deliver():
                return StagedOutcome(stopped=True)
            holds.update_stage(journal, number, finished=time.time(), sent=_sent(journal, members[number]))
        if number == last:
            holds.update_stage(journal, number, verdict="last", sent=_sent(journal, members[number]))
            return StagedOutcome()
        if not _everyone_settled(settings, journal, members[number], deliver, should_stop):
            return StagedOutcome(stopped=True)
        record = _record(journal, number)
        if record.started is not None and not record.verdict:
            finished = _latest(journal, members[number]) or time.time()
            if not _wait_until(finished + wait_seconds, should_stop, say, number):
                return StagedOutcome(stopped=True)
        verdict, summary = _judge_once(settings, journal, provider_name, number, members[number], say, service)
        if verdict == "halted":
            return StagedOutcome(halted=f"stage {number}: {summary.removeprefix('halted: ')}")


def _open(journal: jn.Journal, members: Mapping[int, list[tuple[int, str, str]]]) -> tuple[int, holds.StageRecord]:
    """The furthest stage open (every one before it passed) and its record; recipients of the stages up to it
    pending, of later ones held. Under the stages' lock: senders sharing the send agree, and a slow one never
    holds back again a stage that another has opened."""
    with journal.transaction() as db:
        db.serialize(f"newsletter stages {journal.send}")
        records = {r.number: r for r in holds.stage_records(journal)}
        number = next((n for n in sorted(members) if records[n].verdict not in PASSED), max(members))
        later = [row_id for n, rows in members.items() if n > number for row_id, _, _ in rows]
        now = [row_id for n, rows in members.items() if n <= number for row_id, _, _ in rows]
        for ids, status, only_from in ((later, holds.HELD, jn.PENDING), (now, jn.PENDING, holds.HELD)):
            if ids:
                db.execute(f"UPDATE deliveries SET status=? WHERE status=? AND id IN {db.id_set}",
                           (str(status), str(only_from), db.ids(ids)))
    return number, records[number]


def _record(journal: jn.Journal, number: int) -> holds.StageRecord:
    return next(r for r in holds.stage_records(journal) if r.number == number)


def _start(journal: jn.Journal, number: int) -> None:
    """The stage's start, once (the first sender to deliver it): the signals are read from then on."""
    with journal.transaction() as db:
        db.execute("UPDATE stages SET started=? WHERE send=? AND number=? AND started IS NULL",
                   (time.time(), journal.send, number))


def _count(journal: jn.Journal, stage: list[tuple[int, str, str]], condition: str, params: tuple[object, ...]) -> int:
    if not stage:
        return 0
    return int(journal.db.execute(f"SELECT COUNT(*) FROM deliveries WHERE send=? AND {condition} AND id IN "
                                  f"{journal.db.id_set}", (journal.send, *params, _ids(journal, stage))).fetchone()[0])


def _everyone_settled(settings: Settings, journal: jn.Journal, stage: list[tuple[int, str, str]],
                      deliver: Callable[[], bool], should_stop: Callable[[], bool]) -> bool:
    """Wait until no recipient of the stage is in flight with another sender (or to be tried again), sending
    whatever comes back to pending meanwhile; False if told to stop. (One sender: at once.)"""
    while True:
        if _count(journal, stage, "status IN ('pending', 'waiting') AND run=? AND attempts < ?",
                  (journal.run, settings.send.max_attempts)):
            if not deliver():
                return False
            continue
        if not _count(journal, stage, "status='in_flight'", ()) or should_stop():
            return not should_stop()
        time.sleep(0.2)


def _judge_once(settings: Settings, journal: jn.Journal, provider_name: str, number: int,
                stage: list[tuple[int, str, str]], say: Callable[[str], None],
                service: SubscriberService | None) -> tuple[str, str]:
    """The stage's verdict: judged here if no sender has judged it yet, else the one recorded (obeyed).
    Under the judges' lock, so one sender judges and the others wait for its verdict."""
    with journal.transaction() as db:
        db.serialize(f"newsletter stage verdict {journal.send}")
        record = _record(journal, number)
        if record.verdict:
            return record.verdict, record.summary
        if record.started is None:  # nobody of this stage to send (all settled before stages were recorded)
            db.execute("UPDATE stages SET verdict='healthy', judged=? WHERE send=? AND number=?",
                       (time.time(), journal.send, number))
            return "healthy", ""
        decision = judge(settings, journal, provider_name, stage, since=record.started, service=service)
        s = decision.signals
        verdict = "halted" if decision.halt else "healthy"
        db.execute("UPDATE stages SET judged=?, sent=?, hard_bounces=?, soft_bounces=?, blocks=?, complaints=?, "
                   "verdict=?, summary=? WHERE send=? AND number=?",
                   (time.time(), s.sent, s.hard_bounces, s.soft_bounces, s.blocks, s.complaints, verdict,
                    decision.summary(), journal.send, number))
    say(f"Stage {number}: {decision.summary()}")
    return verdict, decision.summary()


def judge(settings: Settings, journal: jn.Journal, provider_name: str, stage: list[tuple[int, str, str]], *,
          since: float, service: SubscriberService | None = None) -> BreakerDecision:
    """Read every signal for the stage's sent recipients since it started, and judge them."""
    sent_emails = [email for email, status, _ in _outcomes(journal, stage) if status == jn.SENT]
    refused_hard = [email for email, status, reason in _outcomes(journal, stage)
                    if status == jn.FAILED and registry.is_hard_refusal(provider_name, reason)]
    signals = _merge(registry.fetch_signals(settings, provider_name, since=since),
                     service.signals_since(journal.list, since) if service is not None else {})
    counted = stage_signals(sent_emails + refused_hard, signals, hard_refusals=refused_hard)
    return judge_stage(counted, settings.send)


def _merge(*sources: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, list[Mapping[str, Any]]]:
    merged: dict[str, list[Mapping[str, Any]]] = {}
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
