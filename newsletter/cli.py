"""Command-line interface: parse arguments, call the library, print, exit.

No logic a test would want lives here. Every command calls one library
function; a NewsletterError becomes its message on stderr and its exit code
(0 ok, 1 checks failed or some recipients failed, 2 usage or input error).
This module is the program (``main``, ``run``) and the ``send`` command; the
other commands are in newsletter/commands/, one module per stage they serve.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .commands import issue, looking, sends, start, subscribers
from .commands.group import NewsletterGroup
from .commands.issue import echo_findings as _echo_findings
from .commands.options import once as _once
from .commands.options import settings_of
from .errors import NewsletterError, display_path

if TYPE_CHECKING:
    from datetime import datetime
    from types import FrameType

    from .config import Settings
    from .sending.due import Scheduled
    from .sending.plan import SendOptions, SendPlan
    from .sending.report import SendReport

# Start-up costs only what a command uses: this module imports click and nothing heavy (no premailer,
# lxml, trafilatura, dnspython, Pillow, Starlette or uvicorn, not even the settings); each command
# imports the library it calls (tests/test_cli_imports.py holds it to that).


@click.group(cls=NewsletterGroup)
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The newsletter folder (the one with newsletter.toml). Default: found from the current folder.")
@click.version_option(package_name="newsletter")
@click.pass_context
def main(ctx: click.Context, root: Path | None) -> None:
    """Compose, preview and send an email newsletter from plain files."""
    ctx.ensure_object(dict)["root"] = root


for _command in (issue.new_command, issue.import_command, issue.build_command, issue.check_command,
                 subscribers.subscribers_group,
                 sends.doctor_command, sends.status_command, sends.resolve_command, sends.journal_group,
                 sends.sequence_group, sends.stats_command,
                 looking.preview_command, looking.screenshot_command, looking.review_command, looking.archive_command,
                 start.init_command, start.theme_group, start.serve_command):
    main.add_command(_command)


# --- send (issue 5) --------------------------------------------------------

def _parse_where(values: tuple[str, ...]) -> dict[str, str]:
    where = {}
    for item in values:
        field, sep, value = item.partition("=")
        if not sep or not field.strip():
            raise click.BadParameter(f"'{item}' is not field=value", param_hint="--where")
        where[field.strip()] = value.strip()
    return where


def _echo_report(report: SendReport) -> None:
    issue = shlex.join(shlex.split(report.resume_hint)[2:3]) if report.resume_hint else "ISSUE_DIR"
    for email, reason in report.failed[:50]:
        click.echo(f"  failed: {email}: {reason}", err=True)
    for email, reason in report.unknown[:50]:
        click.echo(f"  unknown: {email}: {reason}", err=True)
    for email, reason in report.deferred[:50]:
        click.echo(f"  deferred: {email}: {reason}", err=True)
    failed, unknown = max(report.failed_count, len(report.failed)), max(report.unknown_count, len(report.unknown))
    hidden = max(0, failed - 50) + max(0, unknown - 50) + max(0, len(report.deferred) - 50)
    if hidden:
        click.echo(f"  ... and {hidden} more: newsletter status {issue} --list {report.list_name}", err=True)
    if report.paused:
        click.echo(f"Paused: {report.paused}", err=True)
    click.echo(report.summary())
    for line in report.helper_errors:
        click.echo(line, err=True)
    if report.ab:
        click.echo(report.ab)
    if report.scratch:  # a dry run or a test send: nothing recorded, so nothing to resume or resolve
        return
    if report.unknown_total:
        whose = "1 recipient's" if report.unknown_total == 1 else f"{report.unknown_total} recipients'"
        click.echo(f"{whose} delivery is unknown (a request got no answer, or a send "
                   f"stopped mid-request). Check the provider's activity log, then settle them: newsletter resolve "
                   f"{issue} --list {report.list_name} --as sent (they got it) or --as resend", err=True)
    if not report.recorded:
        if report.failed or report.interrupted or report.paused:
            click.echo("Nothing was sent, so nothing of this run was recorded: fix the cause (or just run the "
                       "same command again) to send it", err=True)
        return
    if report.failed:
        click.echo("Failed recipients are not sent again unless you ask: fix the cause, then "
                   f"{report.resume_hint} --retry-failed", err=True)
    if report.halted:
        click.echo(f"Halted at {report.halted}. Nobody else was sent it. Look at the bounces and complaints "
                   f"(newsletter status shows each stage), then continue with: {report.resume_hint}", err=True)
    if report.interrupted or report.paused or report.deferred:
        click.echo(f"To resume exactly this send, run: {report.resume_hint}", err=True)
    if report.recorded_in:
        click.echo(f"{report.recorded_in} now records this send (its 'sent:' lines). Commit it, so that no clone, "
                   f"CI job or other editor sends this issue to list {report.list_name} again: "
                   f"git add {shlex.quote(report.recorded_in)} && git commit -m 'Sent to {report.list_name}'")
    if report.record_problem:
        click.echo(f"Could not update the issue's sent record: {report.record_problem}", err=True)


class _Progress:
    """The progress of a live send: click's progress bar on a terminal (done/total, share, ETA, rate),
    a plain line per batch otherwise, where a log or CI keeps every line."""

    def __init__(self) -> None:
        import time

        self.clock = time.monotonic
        self.started = self.clock()
        self.tty = sys.stdout.isatty()
        self.bar: Any = None  # click's ProgressBar, made at the first report, when the total is known
        self.closed = False

    def __call__(self, report: SendReport) -> None:
        done = report.sent + len(report.failed) + len(report.unknown)
        rate = done / max(self.clock() - self.started, 1e-6)
        if not self.tty:
            click.echo(f"batch {report.batches}: {done}/{report.to_send} done, {len(report.failed)} failed, "
                       f"{rate:.0f}/s")
            return
        if self.bar is None:
            self.bar = click.progressbar(length=max(report.to_send, 1), label="Sending", show_pos=True,
                                         show_percent=True, item_show_func=lambda line: line)
        self.bar.length = max(report.to_send, done, 1)  # a send selected while sending learns its total as it goes
        self.bar.update(done - self.bar.pos, f"{rate:.0f}/s")

    def finish(self) -> None:
        """End the bar's line (and show the cursor it hid), so what is printed next starts a line of its own."""
        if self.bar is not None and not self.closed:
            self.closed = True
            self.bar.render_finish()


def _provider_names() -> list[str]:
    from .providers.names import NAMES

    return list(NAMES)


@main.command("send")
@click.argument("issue_dir", type=click.Path(path_type=Path), required=False)
@click.option("--list", "list_name", multiple=True, callback=_once, metavar="NAME",
              help="Subscriber list (subscribers/NAME.csv).")
@click.option("--tag", "tags", multiple=True, help="Only subscribers with this tag (repeatable: all must match).")
@click.option("--where", "where", multiple=True, help="Only subscribers whose FIELD=VALUE (repeatable).")
@click.option("--provider", type=click.Choice(_provider_names()), default=None,
              help="Mail provider. Default: newsletter.provider in newsletter.toml.")
@click.option("--resume", is_flag=True, help="Continue the recorded send exactly: its list, tags, where, provider.")
@click.option("--allow-changed", is_flag=True, help="Send the rest even though the issue changed (recorded).")
@click.option("--dry-run", is_flag=True, help="Do everything but deliver: write samples and report.json.")
@click.option("--test-to", "test_to", multiple=True, help="Send only to this address (repeatable); journal untouched.")
@click.option("--test-prefix", default=None,
              help="Start the subject of --test-to messages with this. Default: '[Test] '; --test-prefix '' for none.")
@click.option("--at", "send_at", default=None, metavar="TIME",
              help="Schedule the send (any provider), e.g. 2027-03-02T09:00+01:00: held until the first "
                   "`send --due` after TIME. Scheduling again moves it. Default: send_at in issue.md, if ahead.")
@click.option("--cancel", is_flag=True, help="Cancel the issue's scheduled send to --list.")
@click.option("--provider-at", "provider_at", default=None, metavar="TIME",
              help="Let the provider hold the mail until TIME (a provider that schedules, within its limit).")
@click.option("--due", is_flag=True,
              help="Send everything whose time has come: scheduled issues, sequence steps, digests (for cron).")
@click.option("--now", "now", default=None, metavar="TIME",
              help="With --due: act as if it were TIME (what is due then is sent now; to catch up or to test).")
@click.option("--backfill", "backfill", multiple=True, metavar="SEQUENCE",
              help="With --due: also enrol the readers who were on the list when SEQUENCE started.")
@click.option("--sandbox", is_flag=True, help="The provider's sandbox mode: validated by the provider, not delivered.")
@click.option("--retry-unknown", is_flag=True, help="Resend recipients whose earlier delivery is unknown.")
@click.option("--retry-failed", is_flag=True, help="Try recipients that failed in an earlier run again.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (required without a terminal).")
@click.option("--journal-lost", "journal_lost", is_flag=True,
              help="The journal of the send issue.md records is gone: send only to readers who joined since "
                   "(recorded).")
@click.option("--samples", type=click.IntRange(min=0), default=3, show_default=True,
              help="Dry run: how many personalized .eml samples to write.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Dry run: output folder. Default: outbox/<issue-name>/.")
@click.option("--ignore-doctor", is_flag=True, help="Send although newsletter doctor finds errors (recorded).")
@click.option("--nameserver", default="", metavar="HOST[:PORT]",
              help="DNS server for the doctor check before a live send. Default: [doctor] nameserver, or the system's.")
@click.option("--stages", default=None, help="Staged send, cumulative shares: 1%,10%,100%. Default: [send] stages.")
@click.option("--stage-wait", "stage_wait", type=click.FloatRange(min=0), default=None, metavar="MINUTES",
              help="Minutes to wait after each stage before reading bounces. Default: [send] stage_wait_minutes.")
@click.option("--ab", "ab", default=None, metavar="SHARE",
              help="A/B test the issue's subject_variants on this share of the list (10%), then wait for clicks.")
@click.option("--ab-fallback", "ab_fallback", type=click.IntRange(1, 4), default=1, show_default=True,
              metavar="N", help="The subject variant the rest gets if the A/B test finds no winner.")
@click.option("--worker", is_flag=True,
              help="Help send the unfinished send another process started (PostgreSQL journal; with --resume).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, metavar="N",
              help="Senders on this machine, this one included: starts N-1 workers beside it (PostgreSQL journal).")
@click.pass_context
def send_command(ctx: click.Context, issue_dir: Path | None, list_name: str | None, tags: tuple[str, ...],
                 where: tuple[str, ...], provider: str | None, resume: bool, allow_changed: bool, dry_run: bool,
                 test_to: tuple[str, ...], test_prefix: str | None, send_at: str | None, cancel: bool,
                 provider_at: str | None, due: bool, now: str | None, backfill: tuple[str, ...], sandbox: bool,
                 retry_unknown: bool, retry_failed: bool, yes: bool, journal_lost: bool, samples: int,
                 out: Path | None, ignore_doctor: bool, nameserver: str, stages: str | None, stage_wait: float | None,
                 ab: str | None, ab_fallback: int, worker: bool, workers: int) -> None:
    """Send ISSUE_DIR to a subscriber list, once per recipient (resumable); or schedule it (--at);
    or, with --due and no ISSUE_DIR, send everything whose time has come."""
    from .checks import has_errors
    from .errors import EXIT_FAILED, display_path
    from .sending import due as automation
    from .sending import engine
    from .sending.ab import parse_share
    from .sending.modes import choose_mode

    if due:
        if issue_dir is not None or list_name or send_at or cancel or resume or dry_run or test_to:
            raise click.UsageError("--due sends what is due on its own: give it no ISSUE_DIR, --list, --at, "
                                   "--cancel, --resume, --dry-run or --test-to")
        _send_due(settings_of(ctx), now, backfill, allow_changed, ignore_doctor, nameserver)
        return
    if now or backfill:
        raise click.UsageError("--now and --backfill go with --due")
    if issue_dir is None:
        raise click.UsageError("give the issue folder to send (or --due, to send what is due)")
    if ab is not None and (resume or test_to):
        raise click.UsageError("--ab starts an A/B test; --resume continues one, and a --test-to send has none")
    if worker and (send_at or cancel):
        raise click.UsageError("--worker helps a send that is going out now: it takes no --at or --cancel")
    resume = resume or worker  # a worker goes on with the recorded send, never a new or scheduled one
    options = engine.SendOptions(
        list_name=list_name or "", provider=provider or "", tags=tags, where=_parse_where(where),
        mode=choose_mode(dry_run=dry_run, test_to=test_to, test_prefix=test_prefix, samples=samples, out_dir=out),
        send_at=_parse_send_at(provider_at), sandbox=sandbox, retry_unknown=retry_unknown, retry_failed=retry_failed,
        resume=resume, allow_changed=allow_changed, ignore_doctor=ignore_doctor, nameserver=nameserver, stages=stages,
        stage_wait_minutes=stage_wait, confirmed=yes, journal_lost=journal_lost,
        ab=parse_share(ab) if ab is not None else None, ab_fallback=ab_fallback, worker=worker, workers=workers)
    clock = automation.system_clock
    if cancel:
        if not list_name:
            raise click.UsageError("--cancel needs --list NAME: the list the issue is scheduled for")
        gone = automation.cancel(settings_of(ctx), issue_dir, list_name, clock())
        click.echo(f"Cancelled the send of {gone.folder} to list {list_name} scheduled for {gone.written}.")
        return
    at = automation.parse_moment(send_at, "--at") if send_at else None
    when = automation.schedules.scheduled_time(issue_dir, at, options, clock())
    if when is not None:
        _echo_scheduled(automation.schedule_issue(settings_of(ctx), issue_dir, options, when, clock()))
        return
    report = _run_send(settings_of(ctx), issue_dir, options, yes)
    if dry_run:
        for sample in report.samples:
            click.echo(f"wrote {sample}")
        report_path = (out or engine.outbox_dir(settings_of(ctx), report.issue)) / "report.json"
        click.echo(f"wrote {display_path(report_path)} (who would get it, who is skipped and why)")
    _echo_report(report)
    if dry_run:
        refused = has_errors(report.findings)
        if refused:
            click.echo("The send itself would be refused: the preflight checks found errors (listed above).",
                       err=True)
        click.echo("This was a dry run: nothing was sent. To send for real, run the same command "
                   "without --dry-run.")
        # as the send would exit: 1 when it would be refused or some recipients would fail (or are unknown)
        ctx.exit(0 if report.ok and not refused else EXIT_FAILED)
    ctx.exit(0 if report.ok else EXIT_FAILED)


def _echo_scheduled(done: Scheduled) -> None:
    from .sending.due.clock import shown
    from .sending.report import recipients

    schedule = done.schedule
    where = shlex.quote(schedule.folder)
    if done.before is not None and done.before.at != schedule.at:
        click.echo(f"Moved the send of {schedule.folder} to list {schedule.list_name} from {done.before.written} "
                   f"to {schedule.written}.")
    elif done.before is not None:
        click.echo(f"Scheduled {schedule.folder} for list {schedule.list_name} again at {schedule.written}, "
                   "as the issue is now.")
    else:
        click.echo(f"Scheduled {schedule.folder} for list {schedule.list_name} at {schedule.written} "
                   f"({shown(schedule.at)}).")
    click.echo(f"It goes to {recipients(schedule.recipients)} as the list is now, through "
               f"{schedule.audience.provider}, fingerprint {schedule.fingerprint}; nothing is sent yet.")
    if done.overdue:
        click.echo("That time has passed: the next `newsletter send --due` sends it, with a note of the delay.")
    else:
        click.echo("The first `newsletter send --due` after that time sends it (run it from cron: "
                   "docs/automation.md).")
    click.echo(f"An edit after this is refused then; schedule again to send the edited issue. "
               f"Cancel with: newsletter send {where} --list {schedule.list_name} --cancel")


def _send_due(settings: Settings, now: str | None, backfill: tuple[str, ...], allow_changed: bool, ignore_doctor: bool,
              nameserver: str) -> None:
    """``send --due``: what is due, sent; what was sent and what comes next, printed; exit 1 on a failure."""
    from .sending import due as automation
    from .serve.for_sending import ServiceForSending
    from .stats.sources import StoreClicks

    clock = automation.fixed_clock(automation.parse_moment(now, "--now")) if now else automation.system_clock
    report = automation.run_due(settings, clock, service=ServiceForSending(settings), clicks=StoreClicks(settings),
                                backfill=backfill,
                                allow_changed=allow_changed, ignore_doctor=ignore_doctor, nameserver=nameserver,
                                say=lambda line: click.echo(line, err=True))
    for line, is_error in automation.lines(report):
        click.echo(line, err=is_error)
    if report.exit_code:
        sys.exit(report.exit_code)


def _run_send(settings: Settings, issue_dir: Path, options: SendOptions, yes: bool) -> SendReport:
    """engine.send with a question before delivering, a progress line, and Ctrl-C finishing the requests."""
    import signal

    from .sending import engine
    from .sending.report import recipients
    from .serve.for_sending import ServiceForSending
    from .stats.sources import StoreClicks

    progress = _Progress()
    stop = engine.StopFlag()

    def confirm(plan: SendPlan, report: SendReport) -> bool:
        _echo_findings(report.findings, issue_dir)
        if not options.mode.records or yes:  # a dry run or a test send asks nothing
            return True
        question = (f"Send '{plan.built.subject}' to {recipients(report.to_send)} of list "
                    f"'{plan.list_name}' through {plan.provider_name}?")
        if not sys.stdin.isatty():
            raise click.UsageError(f"{question} Pass --yes to confirm when not on a terminal.")
        return click.confirm(question, abort=True)

    def on_plan(plan: SendPlan, report: SendReport) -> None:
        if report.to_send == 0:
            _echo_findings(report.findings, issue_dir)
            click.echo(f"Nothing to send: {plan.nothing_to_send}.")

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
        if stop.requested:
            raise KeyboardInterrupt
        stop.requested = True
        click.echo("\nStopping after the requests under way (Ctrl-C again to abandon them)...", err=True)

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        return engine.send(settings, issue_dir, options, progress=progress if options.mode.delivers else None,
                           stop=stop, confirm=confirm, on_plan=on_plan, say=lambda line: click.echo(line, err=True),
                           clicks=StoreClicks(settings), service=ServiceForSending(settings))
    except NewsletterError as err:
        report = err.report
        if report is not None:  # the send stopped after some requests may have gone out: say what was done
            progress.finish()
            _echo_report(report)
        raise
    finally:
        signal.signal(signal.SIGINT, previous)
        progress.finish()


def _parse_send_at(value: str | None) -> datetime | None:
    import datetime as dt

    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"'{value}' is not a date and time like 2026-11-26T09:00+01:00",
                                 param_hint="--at") from None
    return moment if moment.tzinfo else moment.astimezone()


# --- digests (issue 22): here while they share _echo_scheduled with send ------

@main.command("digest")
@click.argument("feed")
@click.option("--issue-from", "template", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="An issue folder to start from: its issue.md (subject, introduction) heads the digest.")
@click.option("--list", "list_name", required=True, multiple=True, callback=_once, metavar="NAME",
              help="The list it is for: only items never sent to this list go in.")
@click.option("--at", "send_at", default=None, metavar="TIME",
              help="Also schedule it for TIME (the first `send --due` after it sends it).")
@click.option("--date", "date_", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="The digest's date (its folder's name). Default: today.")
@click.pass_context
def digest_command(ctx: click.Context, feed: str, template: Path, list_name: str, send_at: str | None,
                   date_: datetime | None) -> None:
    """Make a draft issue of the items of FEED (an Atom or RSS file or URL) not yet sent to a list."""
    import datetime as dt

    from .sending import due as automation
    from .sending import engine
    from .sending.due.digests import make_digest

    settings = settings_of(ctx)
    at = automation.parse_moment(send_at, "--at") if send_at else None
    made = make_digest(settings, feed, template, list_name, date_.date() if date_ else dt.date.today())
    if made is None:
        click.echo(f"Nothing new in {feed} for list {list_name}: no digest made.")
        return
    verb = "Rebuilt" if made.rebuilt else "Made"
    click.echo(f"{verb} {display_path(made.folder)} with {len(made.items)} item{'s' * (len(made.items) != 1)} "
               f"not yet sent to list {list_name}:")
    for item in made.items:
        click.echo(f"  {item.title}")
    at = at or made.scheduled_at  # a scheduled digest rebuilt: scheduled again, as it is now
    if at is None:
        click.echo(f"Next: newsletter preview {display_path(made.folder)}; then send it with "
                   f"newsletter send {display_path(made.folder)} --list {list_name} (or --at TIME)")
        return
    options = engine.SendOptions(list_name=list_name, confirmed=True)
    _echo_scheduled(automation.schedule_issue(settings, made.folder, options, at, automation.system_clock()))


def run() -> None:
    """The ``newsletter`` program: ``main`` in a process of its own.

    On the way out, every object is frozen out of the garbage collector's reach (gc.freeze): Python's
    last collection at exit would otherwise walk everything a command loaded (premailer's, Jinja's and
    the checks' data) only to find nothing to free, a tenth of a short command's time. Only here, where
    the process ends: a long-lived caller (the tests, through ``main``) keeps its collector as it is.
    """
    import gc

    try:
        main()
    finally:
        gc.freeze()


if __name__ == "__main__":  # pragma: no cover
    run()
