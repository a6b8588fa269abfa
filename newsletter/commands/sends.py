"""What sending needs and did: the doctor's check of the setup, a send's journal (status, resolve, copy),
what is scheduled, a sequence's readers, and an issue's figures."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .group import NewsletterGroup
from .options import once, settings_of

if TYPE_CHECKING:
    from ..config import Settings


@click.command("doctor")
@click.option("--nameserver", default=None, metavar="HOST[:PORT]",
              help="Ask this DNS server instead of the system's resolver.")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: findings grouped by severity with the fix; json: for scripts and CI.")
@click.option("--warmup", is_flag=True, help="Print the daily sending caps for warming up a new domain or IP.")
@click.option("--list", "list_name", multiple=True, callback=once, metavar="NAME",
              help="Count this list's recipients per mailbox provider and check each provider's rules "
                   "(with --warmup: plan its subscribers, most recently active first).")
@click.pass_context
def doctor_command(ctx: click.Context, nameserver: str | None, output_format: str, warmup: bool,
                   list_name: str | None) -> None:
    """Check the sending setup (SPF, DKIM, DMARC, MX, reverse DNS, BIMI, one-click unsubscribe) and, with
    --list, the mailbox providers' rules for that list; exit 1 when any error is found."""
    if warmup:
        from ..sending.pacing_rules import warmup_report

        click.echo(warmup_report(settings_of(ctx), list_name))
        return
    from ..checks import has_errors
    from ..doctor import AudienceQuery, examine
    from ..doctor.formatting import doctor_json, format_doctor

    result = examine(settings_of(ctx), nameserver=nameserver,
                     audience=AudienceQuery(list_name) if list_name else None)
    click.echo(doctor_json(result) if output_format == "json" else format_doctor(result))
    ctx.exit(1 if has_errors(result.findings) else 0)


@click.command("status")
@click.argument("issue_dir", type=click.Path(path_type=Path), required=False)
@click.option("--list", "list_name", multiple=True, callback=once, metavar="NAME", help="Only this list.")
@click.option("--all", "every", is_flag=True, help="One line per recipient with a problem, not one per reason.")
@click.pass_context
def status_command(ctx: click.Context, issue_dir: Path | None, list_name: str | None, every: bool) -> None:
    """Show the send journal of ISSUE_DIR (each run: when, audience, provider, fingerprint, counts; problems),
    or with no ISSUE_DIR what is scheduled."""
    from ..sending import engine

    if issue_dir is None:
        _echo_schedules(settings_of(ctx), list_name)
        return
    results = engine.status(settings_of(ctx), issue_dir, list_name)
    if not results:
        click.echo(f"{issue_dir.resolve().name} has not been sent{' to ' + list_name if list_name else ''}.")
    for result in results:
        line = ", ".join(f"{n} {status.replace('_', ' ')}" for status, n in result.counts.items() if n)
        click.echo(f"{result.list_name}: {line}")
        for run_line in result.run_lines():
            click.echo(f"  run {run_line}")
        for stage in result.stages:
            click.echo(f"  {stage.line()}")
        for problem in result.problem_lines(every):
            click.echo(f"  {problem}")


def _echo_schedules(settings: Settings, list_name: str | None) -> None:
    from ..sending import due as automation
    from ..sending.due.clock import shown

    waiting = [s for s in automation.listing(settings) if not list_name or s.list_name == list_name]
    if not waiting:
        click.echo("Nothing is scheduled." + (" (newsletter sequence status NAME shows a sequence's readers)"
                                              if automation.sequences.sequence_names(settings) else ""))
        return
    click.echo("Scheduled:")
    for s in waiting:
        state = " (going out now)" if s.state == "sending" else ""
        problem = f"; last try: {s.problem}" if s.problem else ""
        click.echo(f"  {shown(s.at)}  {s.folder} to list {s.list_name} via {s.audience.provider}, "
                   f"{s.recipients} recipients when scheduled, fingerprint {s.fingerprint}{state}{problem}")


@click.command("resolve")
@click.argument("issue_dir", type=click.Path(path_type=Path))
@click.option("--list", "list_name", required=True, multiple=True, callback=once, metavar="NAME",
              help="The list whose send to settle.")
@click.option("--as", "resolution", type=click.Choice(["sent", "resend"]), default=None,
              help="For the batches no event covers: sent: they got it (never resent); resend: the next --resume "
                   "sends them again.")
@click.option("--batch", "batches", multiple=True, metavar="LABEL",
              help="Only this batch (repeatable), as resolve lists them: --as applies to it alone.")
@click.option("--abandon", is_flag=True, help="Abandon an unfinished send: what it has not sent stays unsent.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (required without a terminal).")
@click.pass_context
def resolve_command(ctx: click.Context, issue_dir: Path, list_name: str, resolution: str | None,
                    batches: tuple[str, ...], abandon: bool, yes: bool) -> None:
    """Settle the recipients of ISSUE_DIR whose delivery is unknown: each batch the provider (SendGrid) reported
    on by itself, the others (listed first, one line a batch) as --as says."""
    if abandon:
        if resolution or batches:
            raise click.UsageError("give one of --as sent, --as resend or --abandon")
        _abandon(settings_of(ctx), issue_dir, list_name, yes)
    elif batches and not resolution:
        raise click.UsageError("--batch says which batches --as sent or --as resend is for: give --as too")
    elif _resolve(settings_of(ctx), issue_dir, list_name, resolution, batches, yes):
        ctx.exit(1)


def _confirm(question: str, yes: bool) -> None:
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError(f"{question} Pass --yes to confirm when not on a terminal.")
        click.confirm(question, abort=True)


def _abandon(settings: Settings, issue_dir: Path, list_name: str, yes: bool) -> None:
    from ..sending.report import recipients
    from ..sending.resolution import abandon

    _confirm(f"Abandon the unfinished send of {issue_dir} to list '{list_name}'?", yes)
    count = abandon(settings, issue_dir, list_name)
    click.echo(f"{recipients(count)}: abandoned the unfinished send.")


def _resolve(settings: Settings, issue_dir: Path, list_name: str, resolution: str | None, batches: tuple[str, ...],
             yes: bool) -> bool:
    """Settle from the provider's events, then ask about the rest (docs/sending.md#the-grey-zone); True when
    unknown recipients are left."""
    from ..sending import resolution as rs
    from ..sending.report import recipients
    from ..serve.for_sending import ServiceForSending

    found = rs.settle_from_evidence(settings, issue_dir, list_name, ServiceForSending(settings))
    if not found.settled and not found.asked:
        click.echo(f"No recipient of list '{list_name}' has an unknown delivery.")
        return False
    for judged in found.settled + found.asked:
        click.echo(f"  {judged.line()}")
    if found.settled:
        click.echo(f"{recipients(found.settled_recipients)}: recorded as sent from the provider's events.")
    labels = [j.batch.label for j in found.asked]
    missing = [label for label in batches if label not in labels]
    if missing:
        raise click.UsageError(f"no batch {', '.join(missing)} has unknown recipients"
                               + (f" (those that have: {', '.join(labels)})" if labels else ""))
    asked = [j for j in found.asked if not batches or j.batch.label in batches]
    if not asked:
        return False
    count = sum(j.batch.recipients for j in asked)
    if not resolution:
        click.echo(f"{recipients(count)} in {len(asked)} batch{'es' if len(asked) > 1 else ''} no event covers: "
                   f"settle them with: newsletter resolve {issue_dir} --list {list_name} --as sent (they got it) "
                   "or --as resend (the next --resume sends them); --batch LABEL for one batch.")
        return True
    _confirm(f"Record {'this' if count == 1 else 'these'} {recipients(count)} as {resolution}?", yes)
    settled = rs.settle_batches(settings, issue_dir, list_name, [j.batch.label for j in asked], resolution)
    click.echo(f"{recipients(settled)}: recorded as {resolution}.")
    if resolution == "resend" and settled:
        click.echo(f"Send them with: newsletter send {issue_dir} --list {list_name} --resume")
    return len(asked) < len(found.asked)


@click.group("journal", cls=NewsletterGroup)
def journal_group() -> None:
    """The send journal: who was sent what (SQLite, or a shared PostgreSQL)."""


@journal_group.command("copy")
@click.option("--to", "target", required=True, metavar="URL_OR_FILE",
              help="The new journal: postgresql://user@host/db (password from [send] journal_password_env) "
                   "or a new SQLite file's path.")
@click.option("--from", "source", default=None, metavar="URL_OR_FILE",
              help="The journal to copy. Default: the one newsletter.toml names ([send] journal_url or journal).")
@click.pass_context
def journal_copy(ctx: click.Context, target: str, source: str | None) -> None:
    """Copy every record of the journal into a new, empty one: SQLite to PostgreSQL, or back."""
    from ..secret_names import variable_name
    from ..sending import journal as jn
    from ..sending.journal.copy import copy_between

    settings = settings_of(ctx)
    origin = jn.location_from_text(source, settings, option="--from") if source else jn.location_of(settings)
    destination = jn.location_from_text(target, settings)
    counts = copy_between(origin, destination)
    click.echo(f"Copied {counts['sends']} sends ({counts['deliveries']} recipients, {counts['runs']} runs) from "
               f"{origin.describe()} to {destination.describe()}.")
    if destination.dialect == "postgresql":
        password = variable_name("send.journal_password_env", settings.send.journal_password_env)
        click.echo(f'To send through it, set journal_url = "{destination.url}" under [send] in newsletter.toml '
                   f"(its password from {password}), on every machine that sends.")
    else:
        click.echo(f"To send through it, remove journal_url from [send] in newsletter.toml and set journal = "
                   f'"{destination.path}".')


@click.group("sequence", cls=NewsletterGroup)
def sequence_group() -> None:
    """Sequences: a welcome series and other automations kept as folders in sequences/."""


@sequence_group.command("status")
@click.argument("name")
@click.option("--now", "now", default=None, metavar="TIME", help="Say who is due as of TIME instead of now.")
@click.option("--show", type=click.IntRange(min=0), default=10, show_default=True,
              help="How many of the readers due next to list.")
@click.pass_context
def sequence_status(ctx: click.Context, name: str, now: str | None, show: int) -> None:
    """How many readers are at each step of sequence NAME, who is due next, and when."""
    from ..sending import due as automation
    from ..sending.due.status import sequence_status as status_of

    clock = automation.fixed_clock(automation.parse_moment(now, "--now")) if now else automation.system_clock
    for line in status_of(settings_of(ctx), name, clock(), show=show).lines():
        click.echo(line)


@click.command("stats")
@click.argument("issue_dir", required=False, type=click.Path(path_type=Path))
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--html", "html_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the figures as a page with charts to this file.")
@click.option("--last", type=click.IntRange(min=1), default=5, show_default=True,
              help="Without ISSUE_DIR: how many of the last issues to compare.")
@click.pass_context
def stats_command(ctx: click.Context, issue_dir: Path | None, output_format: str, html_out: Path | None,
                  last: int) -> None:
    """What ISSUE_DIR did (delivered, bounces, human clicks, per link and domain); without it, the last issues."""
    from ..stats.figures import IssueFigures
    from ..stats.formatting import as_json, issue_lines, overview_lines
    from ..stats.page import write_page
    from ..stats.sources import overview, stats_of_issue

    settings = settings_of(ctx)
    data = stats_of_issue(settings, issue_dir) if issue_dir is not None else overview(settings, last)
    if output_format == "json":
        click.echo(as_json(data))
    else:
        for line in issue_lines(data) if isinstance(data, IssueFigures) else overview_lines(data):
            click.echo(line)
    if html_out is not None:
        click.echo(f"wrote {write_page(data, html_out)}", err=output_format == "json")
