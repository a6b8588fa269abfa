"""``send``: the one function behind a live send, a dry run, a test send and the benchmark.

1. load the issue and its stable id (given now, in issue.md, on its first send);
2. lock (issue id, list), plan: settle the audience (``--resume`` repeats the
   recorded one), build and check the issue, fingerprint it, select the
   recipients into the journal (a scratch copy for a dry run or a test send);
   a live send's run and selection are provisional (``Journal.begin_run``)
   until its first request is about to go, and leave nothing if none goes;
3. confirm (the journal is not held while the writer answers: the run is
   selected again after a yes), then run the loop through the provider;
4. read the report back from the journal.

``resolve`` settles the recipients whose delivery is unknown; ``status`` shows the journal.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from ..compose.content import load_issue
from ..config import Settings
from ..errors import NewsletterError, display_path
from ..lists import check_list_name
from ..providers import registry
from ..providers.base import Provider
from . import ab as ab_test
from . import holds, sent_record, sharing
from . import journal as jn
from .before_send import check_before_live_run, doctor_gate_note, unfinished_list
from .identity import load, record_identity
from .loop import Loop, Progress, StopFlag, few_collections
from .pacing_run import SYSTEM_CLOCK, PacingClock, is_paced, run_paced
from .plan import SendOptions, SendPlan, describe_audience, prepare, resume_command, select
from .report import ListStatus, SendReport, recipients
from .report import status as journal_status
from .service import SubscriberService
from .stage_rules import stages_of
from .stage_run import run_stages

Confirm = Callable[[SendPlan, SendReport], bool]  # asked before delivering; False: deliver nothing


def outbox_dir(settings: Settings, issue_name: str) -> Path:
    return settings.root / "outbox" / issue_name


def send(settings: Settings, issue_dir: Path, options: SendOptions, *, provider: Provider[Any] | None = None,
         progress: Progress | None = None, stop: StopFlag | None = None, confirm: Confirm | None = None,
         on_plan: Callable[[SendPlan, SendReport], None] | None = None,
         say: Callable[[str], None] = lambda _: None, clicks: ab_test.ClickCounts | None = None,
         service: SubscriberService | None = None, pacing_clock: PacingClock = SYSTEM_CLOCK) -> SendReport:
    """Send (or dry-run, or test-send: ``options.mode``) the issue in ``issue_dir`` as ``options`` say; the
    report at the end. ``options`` are not changed.

    ``provider`` replaces the configured one (tests, benchmarks). ``service`` is ``newsletter serve``'s event
    store as the send needs it (departures applied before a live send selects anyone, bounces and complaints
    for a staged send's breaker); None: no subscriber service. ``pacing_clock``: the time a paced send decides
    by and waits on (the system's; a test's lets the hours pass at once). ``confirm`` is asked once the
    recipients are selected; ``on_plan`` sees the plan and the report before delivery starts
    and the report as far as it got if the send stops on an error (``report`` is then kept on
    the error as ``err.report``).
    """
    if options.worker:  # join the unfinished send another process started (sharing.py)
        return _send_as_worker(settings, issue_dir, options, provider=provider, progress=progress, stop=stop,
                               on_plan=on_plan, say=say, service=service)
    mode = options.mode
    if not mode.addresses and not options.list_name and not options.resume:
        raise NewsletterError("--list NAME is required (or --resume, or --test-to ADDRESS)")
    sharing.check_workers_option(options, jn.location_of(settings))
    stages_of(settings.send, options.stages)  # a wrong --stages or [send] stages: said before anything starts
    if options.list_name:
        check_list_name(options.list_name)  # before the name becomes part of the lock's file name
    issue, issue_id = load(issue_dir, record_id=False)
    location = jn.location_of(settings)
    if options.resume and not options.list_name:
        options = dataclasses.replace(options, list_name=unfinished_list(location, issue_id, issue_dir))
    live = mode.records
    with ExitStack() as stack:
        database = None
        if live:
            database = jn.open_database(location)
            stack.callback(database.close)
            issue_id = record_identity(database, issue, issue_id, options.list_name)
            stack.enter_context(database.exclusive(issue_id, options.list_name, issue.name))
            # who left through `newsletter serve` since the last sync is marked in the list before
            # anyone is selected; an unreachable store refuses the send (nothing is mailed)
            if service is not None:
                service.apply_departures(options.list_name)
            options = dataclasses.replace(options, run_note="; ".join(
                filter(None, [options.run_note, doctor_gate_note(settings, options)])))
            check_before_live_run(database, issue_id, options, issue_dir)
        plan = prepare(settings, issue, issue_id, options, database=database)
        stack.callback(plan.close)
        report = _new_report(plan, issue_dir)
        if on_plan:
            on_plan(plan, report)
        if report.to_send == 0:
            return _nothing_sent(plan, report, keep=plan.unfinished_before)
        outbox = outbox_dir(settings, issue.name)
        if provider is None:  # before the question: a missing key is said before the writer is asked
            provider = mode.provider(settings, plan.provider_name, outbox)
        if confirm is not None:
            asks = live and not options.confirmed
            if asks:  # the writer may take a while to answer: the journal is not held meanwhile
                plan.journal.discard_run()
            if not confirm(plan, report):
                plan.journal.discard_run()
                report.recorded = not live
                return report
            if asks:
                _select_again(plan, report, issue_dir)
        if live:  # the issue records, in git, that it is going out (no clone sends it again), once it does
            plan.journal.when_committed(lambda: _record(report, sent_record.record_send(
                issue_dir, plan.journal, recipients=report.to_send, journal_lost=bool(plan.audience.joined_after))))
        started = time.monotonic()
        helpers: list[sharing.Helper] = []
        try:
            provider.open()
            try:
                if live:  # workers may join once its run is on record (--workers N starts them now)
                    helpers = _share(plan, issue_dir)
                if live and _waits_in_journal(plan):
                    plan.journal.commit_run()  # stages and caps are journal records the send waits on
                with few_collections():
                    _deliver(plan, provider, report, progress, stop or StopFlag(), say, clicks, service,
                             pacing_clock)
            finally:
                provider.close()
                _wait_for_helpers(helpers, report, plan)
        except NewsletterError as err:
            report.seconds = time.monotonic() - started
            if plan.journal.provisional or not plan.journal.run:  # nothing went out (or its commit failed)
                _nothing_sent(plan, report)
            else:
                _select_the_rest(plan, report)
                sent = _fill_if_readable(report, plan)
                if live:
                    _record_outcome(report, issue_dir, plan, sent)
            err.report = report  # what was done before it stopped, for the summary
            raise
        except KeyboardInterrupt:
            report.interrupted = True
        report.seconds = time.monotonic() - started
        if plan.journal.provisional:  # no request went out (every recipient refused first, or Ctrl-C)
            return _nothing_sent(plan, report)
        _select_the_rest(plan, report)
        plan.journal.runs.finish()
        interrupted = report.interrupted
        sent = report.fill_from(plan.journal, settings.send.max_attempts, with_joined=bool(helpers))
        if live:
            _record_outcome(report, issue_dir, plan, sent)
        if helpers:
            _count_senders(report, plan)
        if interrupted and plan.selection is not None and not plan.selection.done:
            report.interrupted = True  # stopped before the whole list was even selected: more to send
        mode.finish(report, provider, outbox)
        return report


def _nothing_sent(plan: SendPlan, report: SendReport, *, keep: bool = False) -> SendReport:
    """A run that sent nothing: its report read from the journal, then the provisional run rolled back, so it
    leaves nothing behind. ``keep``: recorded and finished all the same (it selected nobody to send, and an
    unfinished send before it is thereby finished: those it left unsent are no longer selected)."""
    journal = plan.journal
    _fill_if_readable(report, plan)
    report.nothing_to_send = plan.nothing_to_send
    if journal.provisional and not keep:
        journal.discard_run()
        report.recorded = False
    elif journal.run:
        journal.commit_run()
        journal.runs.finish()
    else:  # its commit failed (the journal's disk): nothing of it is recorded
        report.recorded = False
    return report


def _select_again(plan: SendPlan, report: SendReport, issue_dir: Path) -> None:
    """After the writer's yes: the run and its selection again (provisional, as before the question), refused
    if the answer no longer holds (the list changed meanwhile)."""
    asked = report.to_send
    select(plan)
    again = _new_report(plan, issue_dir)
    if again.to_send != asked:
        plan.journal.discard_run()
        raise NewsletterError(f"list '{plan.list_name}' changed while the question was asked: "
                              f"{recipients(again.to_send)} to send now, not {asked}; nothing was sent",
                              hint="run the same command again to be asked about the list as it is now")
    report.selected, report.to_send, report.skipped = again.selected, again.to_send, again.skipped


def _waits_in_journal(plan: SendPlan) -> bool:
    """A staged or paced send holds recipients back in the journal and may wait (for a stage's signals, for
    the next slot under a cap) before or between requests: its run is recorded when its delivery starts."""
    return len(_shares(plan)) > 1 or is_paced(plan.settings)


def _shares(plan: SendPlan) -> tuple[float, ...]:
    """The stages of a live send: the recorded ones when it was started staged (a resume repeats
    them), else ``--stages`` or ``[send] stages``; a dry run or test send is one stage."""
    if not plan.mode.records:
        return (1.0,)
    recorded = holds.stage_records(plan.journal)
    if recorded:
        shares = tuple(r.share for r in recorded)
        if plan.options.stages is not None and stages_of(plan.settings.send, plan.options.stages) != shares:
            started = ",".join(f"{share * 100:g}%" for share in shares)
            raise NewsletterError(f"this send was started in the stages {started}, not --stages "
                                  f"{plan.options.stages}: a send keeps its stages to the end",
                                  hint=f"leave out --stages (or give --stages {started}) to go on")
        return shares
    return stages_of(plan.settings.send, plan.options.stages)


def _deliver(plan: SendPlan, provider: Provider[Any], report: SendReport, progress: Progress | None, stop: StopFlag,
             say: Callable[[str], None], clicks: ab_test.ClickCounts | None = None,
             service: SubscriberService | None = None, pacing_clock: PacingClock = SYSTEM_CLOCK) -> None:
    """The send loop over everything pending, stage by stage with the circuit breaker, or an A/B test's
    slices (then its rest, once decided)."""
    def loop() -> bool:
        Loop(plan, provider, report, progress=progress, stop=stop).run()
        return not (report.interrupted or report.paused or stop.requested)

    def deliver() -> bool:  # within the pacing caps, when a live send has any
        if not plan.mode.records:
            return loop()
        return run_paced(plan.settings, plan.journal, loop, should_stop=lambda: stop.requested, say=say,
                         clock=pacing_clock)

    shares = _shares(plan)
    if plan.options.ab is not None or ab_test.record_of(plan.journal) is not None:
        if len(shares) > 1:
            raise NewsletterError("an A/B test and a staged send cannot be combined",
                                  hint="leave out --stages (or [send] stages) for this send")
        tested = ab_test.run_ab(plan, deliver, share=plan.options.ab, fallback=plan.options.ab_fallback,
                                clicks=clicks, say=say)
        report.ab = tested.line
        if tested.stopped and stop.requested:
            report.interrupted = True
        return
    if len(shares) == 1:
        if not deliver() and stop.requested:
            report.interrupted = True  # Ctrl-C while pacing waited for the next slot: the rest is still to go
        return
    minutes = plan.options.stage_wait_minutes
    minutes = plan.settings.send.stage_wait_minutes if minutes is None else minutes
    outcome = run_stages(plan.settings, plan.journal, plan.issue_id, plan.provider_name, shares, minutes * 60,
                         deliver, resume=plan.options.resume, should_stop=lambda: stop.requested, say=say,
                         joined=plan.options.worker, service=service)
    report.halted = outcome.halted
    if outcome.stopped and stop.requested:
        report.interrupted = True


def _share(plan: SendPlan, issue_dir: Path) -> list[sharing.Helper]:
    """The send begins delivering: workers may join it from now on (as its run records it: ``--at``,
    ``--sandbox``, the stages), and ``--workers N`` starts N-1 of them on this machine."""
    minutes = plan.options.stage_wait_minutes
    minutes = plan.settings.send.stage_wait_minutes if minutes is None else minutes
    plan.journal.runs.mark_ready(sharing.delivery_of(plan.options, _shares(plan), minutes))
    if plan.options.workers <= 1:
        return []
    return sharing.start_helpers(plan.settings, issue_dir, plan.list_name, plan.options.workers - 1)


def _wait_for_helpers(helpers: list[sharing.Helper], report: SendReport, plan: SendPlan) -> None:
    """The workers this send started finish what they took; one that stopped on an error is said. (A run
    that never went on record, nothing sent, had nothing for them: they are stopped, not waited for.)"""
    for helper in helpers:
        if plan.journal.provisional:
            helper.process.terminate()
    for helper in helpers:
        pid, code, last = helper.finish()
        if code not in (0, 1):
            report.helper_errors.append(f"worker pid {pid} stopped (exit code {code}): {last}")


def _count_senders(report: SendReport, plan: SendPlan) -> None:
    joined = plan.journal.view.sent_by_joined()
    report.senders = {"this process": report.sent - sum(joined.values()),
                      **{f"worker pid {pid}": n for pid, n in joined.items()}}


def _send_as_worker(settings: Settings, issue_dir: Path, options: SendOptions, *, provider: Provider[Any] | None,
                    progress: Progress | None, stop: StopFlag | None,
                    on_plan: Callable[[SendPlan, SendReport], None] | None,
                    say: Callable[[str], None], service: SubscriberService | None) -> SendReport:
    """``send ISSUE --resume --worker``: send part of the unfinished send another process started, as it
    decided it (``sharing.join``); the report says what this worker sent."""
    sharing.check_worker_options(options)
    location = jn.location_of(settings)
    sharing.require_shared(location, "--worker")
    issue = load_issue(Path(issue_dir))
    issue_id = sharing.known_id(issue)
    if not options.list_name:
        options = dataclasses.replace(options, list_name=unfinished_list(location, issue_id, issue_dir))
    check_list_name(options.list_name)
    with ExitStack() as stack:
        database = jn.open_database(location)
        stack.callback(database.close)
        joined = sharing.join(settings, issue, options, database, stop=lambda: bool(stop and stop.requested))
        if joined.plan is None:
            return SendReport(issue=issue.name, list_name=options.list_name, provider="", dry_run=False,
                              issue_id=issue_id, worker=f"nothing to send: {joined.reason}")
        plan = joined.plan
        stack.callback(plan.close)
        report = _new_report(plan, issue_dir)
        report.resume_hint += " --worker"
        report.worker = f"the send started {time.strftime('%Y-%m-%d %H:%M', time.localtime(_run_start(plan)))}"
        if on_plan:
            on_plan(plan, report)
        provider = provider or registry.open_provider(settings, plan.provider_name)
        started = time.monotonic()
        try:
            provider.open()
            try:
                with few_collections():
                    _deliver(plan, provider, report, progress, stop or StopFlag(), say, service=service)
            finally:
                provider.close()
        except NewsletterError as err:
            report.seconds = time.monotonic() - started
            _fill_if_readable(report, plan)
            err.report = report
            raise
        except KeyboardInterrupt:
            report.interrupted = True
        report.seconds = time.monotonic() - started
        plan.journal.runs.finish()
        report.fill_from(plan.journal, settings.send.max_attempts)
        return report


def _run_start(plan: SendPlan) -> float:
    return next(run.started for run in plan.journal.runs.history() if run.id == plan.journal.run)


def _select_the_rest(plan: SendPlan, report: SendReport) -> None:
    """A send selecting its list while it sends, stopped before the list's end (Ctrl-C, a pause, an
    error), selects the rest now, sending nothing (about 2 s for a million rows): its summary,
    ``status`` and ``resolve --abandon`` then count the whole list, as when it is selected first."""
    selection = plan.selection
    if selection is None:
        return
    try:
        while selection.advance():
            pass
    except (NewsletterError, KeyboardInterrupt):
        pass  # the journal failed, or Ctrl-C again: the next run selects the rest, as a resume always does
    report.selected = report.to_send = selection.selected  # a fresh send: every one selected is new


def _record(report: SendReport, path: Path | None) -> None:
    if path is not None:
        report.recorded_in = display_path(path)


def _record_outcome(report: SendReport, issue_dir: Path, plan: SendPlan, sent: int | None) -> None:
    """The sent record's count (``sent``, as the report's pass read it; None: read it) brought up to date;
    a failure to write it is said, never hidden."""
    try:
        _record(report, sent_record.record_outcome(issue_dir, plan.journal, recipients=report.to_send, sent=sent))
    except NewsletterError as err:
        report.record_problem = str(err)


def _fill_if_readable(report: SendReport, plan: SendPlan) -> int | None:
    """``report.fill_from``, unless the journal cannot be read: then the loop's own counts stay, and None."""
    try:
        return report.fill_from(plan.journal, plan.settings.send.max_attempts)
    except Exception:  # noqa: BLE001 - the journal is what failed: keep the loop's own counts
        return None


def _new_report(plan: SendPlan, issue_dir: Path) -> SendReport:
    counts = plan.journal.view.selected_status_counts()
    report = SendReport(issue=plan.issue.name, list_name=plan.list_name, provider=plan.provider_name,
                        dry_run=not plan.mode.delivers, scratch=not plan.mode.records, issue_id=plan.issue_id,
                        fingerprint=plan.fingerprint,
                        findings=plan.findings, html_bytes=len(plan.built.html.encode("utf-8")),
                        scheduled_for=plan.options.send_at.isoformat() if plan.options.send_at else "",
                        skipped=plan.skipped)
    report.selected = sum(counts.values())
    report.to_send = counts[jn.PENDING]
    for status, reason in ((jn.SENT, "already sent"), (jn.FAILED, "failed before"),
                           (jn.UNKNOWN, "unknown before")):
        if counts[status]:
            report.skipped[reason] += counts[status]
    if plan.mode.addresses:
        report.list_name = "(test)"
    else:
        report.resume_hint = resume_command(issue_dir, plan.list_name)
    return report


# -- settling the unknown, and looking at the journal ------------------------------------------------------


def unknown_recipients(settings: Settings, issue_dir: Path, list_name: str) -> list[tuple[str, str]]:
    """(email, why) of every recipient of the send whose delivery is unknown."""
    check_list_name(list_name)
    issue, _ = load(issue_dir, record_id=False)
    location = jn.location_of(settings)
    if list_name not in jn.lists_of(location, issue.id or issue.name):
        raise NewsletterError(f"{display_path(issue_dir)} has not been sent to list '{list_name}'")
    journal = jn.Journal.read_only(location, issue.id or issue.name, list_name)
    try:
        return journal.view.unknown_rows()
    finally:
        journal.close()


def status(settings: Settings, issue_dir: Path, list_name: str | None = None) -> list[ListStatus]:
    """For each list the issue was sent to: counts, every run and the problem rows."""
    if list_name is not None:
        check_list_name(list_name)
    issue, _ = load(issue_dir, record_id=False)
    return journal_status(settings, issue.id or issue.name, list_name)


__all__ = ["SendOptions", "SendReport", "StopFlag", "describe_audience", "outbox_dir", "send", "status",
           "unknown_recipients"]
