"""Command-line interface: parse arguments, call the library, print, exit.

No logic a test would want lives here. Every command calls one library
function; a NewsletterError becomes its message on stderr and its exit code
(0 ok, 1 checks failed or some recipients failed, 2 usage or input error).
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from .errors import NewsletterError, display_path, os_error
from .lists.statuses import STATUSES

if TYPE_CHECKING:
    from .config import Settings
    from .sending.report import SendReport

# Start-up costs only what a command uses: this module imports click and nothing heavy (no premailer,
# lxml, trafilatura, dnspython, Pillow, Starlette or uvicorn, not even the settings); each command
# imports the library it calls (tests/test_cli_imports.py holds it to that).


class NewsletterGroup(click.Group):
    """Turns a NewsletterError raised by any command into a message and an exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except NewsletterError as err:
            click.echo(f"Error: {err}", err=True)
            ctx.exit(err.exit_code)
        except BrokenPipeError:
            raise  # output piped into `head` that stopped reading: not the user's error to explain
        except OSError as err:
            # A file the library did not expect to fail (a folder it cannot write, a full disk):
            # the path and what to do, never a traceback.
            error = os_error(err)
            click.echo(f"Error: {error}", err=True)
            ctx.exit(error.exit_code)

    group_class = type  # command groups under this one (subscribers, theme) behave the same

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List each command with its whole one-line summary, wrapped rather than cut off with '...'."""
        rows = [(name, command.get_short_help_str(limit=10_000)) for name in self.list_commands(ctx)
                if (command := self.get_command(ctx, name)) is not None and not command.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def settings_of(ctx: click.Context) -> Settings:
    """Settings for this run, loaded once from --root or the nearest newsletter.toml."""
    from .config import load_settings

    obj = ctx.ensure_object(dict)
    if "settings" not in obj:
        obj["settings"] = load_settings(obj.get("root"))
    settings: Settings = obj["settings"]
    return settings


@click.group(cls=NewsletterGroup)
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The newsletter folder (the one with newsletter.toml). Default: found from the current folder.")
@click.version_option(package_name="newsletter")
@click.pass_context
def main(ctx: click.Context, root: Path | None) -> None:
    """Compose, preview and send an email newsletter from plain files."""
    ctx.ensure_object(dict)["root"] = root


# --- compose and build (issue 2) -------------------------------------------

def _echo_findings(findings, issue_dir: Path | None = None) -> None:
    """Errors and warnings in full; notes only counted (``newsletter check`` lists them)."""
    from .checks import ERROR, INFO, format_finding, summary_line

    for finding in findings:
        if finding.severity != INFO:
            click.echo(format_finding(finding), err=finding.severity == ERROR)
    line = summary_line(findings)
    if issue_dir is not None and any(f.severity == INFO for f in findings):
        line += f" (see them all: newsletter check {issue_dir})"
    click.echo(line)


@main.command("new")
@click.argument("title")
@click.option("--date", "date_", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="Issue date (YYYY-MM-DD). Default: today.")
@click.option("--number", type=click.IntRange(min=1), default=None, help="Issue number shown in the header.")
@click.option("--sequence", "sequence", default=None, metavar="NAME",
              help="Add a step to sequences/NAME/ (a welcome series, say) instead of an issue.")
@click.option("--delay", default=None, metavar="WAIT",
              help='With --sequence: how long after the step before it ("0", "3d", "10d 09:00"). '
                   'Default: "0" for the first step, else "1d".')
@click.pass_context
def new_command(ctx: click.Context, title: str, date_, number: int | None, sequence: str | None,
                delay: str | None) -> None:
    """Create issues/<date>-<slug>/issue.md with front matter to fill in (or, with --sequence, a step)."""
    import datetime as dt

    from .compose.content import new_issue
    from .errors import display_path

    settings = settings_of(ctx)
    if sequence is not None:
        from .sending.due.sequences import new_step

        if date_ or number:
            raise click.UsageError("--date and --number are for issues; a sequence step is sent after its delay")
        folder = new_step(settings, sequence, title, delay)
        click.echo(f"Created {display_path(folder / 'issue.md')} (step of sequence {sequence}, "
                   f"sequences/{sequence}/sequence.toml says to whom and when)")
        click.echo(f"Next: newsletter preview {display_path(folder)}; newsletter sequence status {sequence}")
        return
    if delay is not None:
        raise click.UsageError("--delay is for a sequence step: add --sequence NAME")
    folder = new_issue(settings.issues_dir, title, date_.date() if date_ else dt.date.today(), number)
    click.echo(f"Created {display_path(folder / 'issue.md')}")
    click.echo(f"Next: newsletter import ARTICLE --issue {display_path(folder)}")


@main.command("build")
@click.argument("issue_dir", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder. Default: build/<issue-name>/.")
@click.pass_context
def build_command(ctx: click.Context, issue_dir: Path, out: Path | None) -> None:
    """Render ISSUE_DIR to email.html, email.txt, message.eml and web.html."""
    from .checks import CheckContext, has_errors, run_checks_on
    from .compose.build import default_build_dir, write_build
    from .errors import display_path

    settings = settings_of(ctx)
    from .compose.build import build_issue

    built = build_issue(settings, issue_dir)
    written = write_build(settings, built, out or default_build_dir(settings, built.issue))
    for path, size in written:
        click.echo(f"wrote {display_path(path)} ({size / 1024:.1f} KB)")
    findings = run_checks_on(CheckContext(settings, built.issue, built))
    _echo_findings(findings, issue_dir)
    ctx.exit(1 if has_errors(findings) else 0)  # the files are written; the checks' errors still fail the build


@main.command("check")
@click.argument("issue_dir", type=click.Path(path_type=Path))
@click.option("--check-links", is_flag=True,
              help="Also request every link and image URL (HEAD, then GET) and report broken ones.")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: findings grouped by severity with file and line; json: for scripts and CI.")
@click.option("--verbose", is_flag=True, help="Also list the notes about the shipped theme (text output counts them).")
@click.option("--archive", "archive_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The web archive's folder, when `newsletter archive --out` wrote it elsewhere. Default: site/.")
@click.pass_context
def check_command(ctx: click.Context, issue_dir: Path, check_links: bool, output_format: str, verbose: bool,
                  archive_dir: Path | None) -> None:
    """Run the preflight checks (content, client support, accessibility, links, spam score, size);
    exit 1 when any error is found."""
    from .checks import CheckOptions, check_issue, format_report, has_errors, report_json

    options = CheckOptions(check_links=check_links, archive_dir=archive_dir)
    _, findings = check_issue(settings_of(ctx), issue_dir, options=options)
    click.echo(report_json(findings) if output_format == "json" else format_report(findings, verbose))
    ctx.exit(1 if has_errors(findings) else 0)


# --- import (importing.py) -------------------------------------------------

@main.command("import")
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--issue", "issue_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The issue folder to add the article to (the one with issue.md).")
@click.option("--url", default=None,
              help="The article's web address: saved as source_url and used to make relative links absolute.")
@click.option("--force", is_flag=True, help="Replace an article file of the same name in the issue.")
def import_command(source: Path, issue_dir: Path, url: str | None, force: bool) -> None:
    """Turn SOURCE (scraped text, an HTML page or Markdown) into an article of the issue."""
    from .compose.content import load_article
    from .compose.importing import import_into_issue, import_warnings, word_count
    from .errors import display_path

    path = import_into_issue(source, issue_dir, url=url, overwrite=force)
    article = load_article(path)
    click.echo(f"wrote {display_path(path)} and added it to {display_path(issue_dir / 'issue.md')}")
    click.echo(f"  title:  {article.title}")
    click.echo(f"  author: {article.author or '(none found; add author: to the front matter)'}")
    click.echo(f"  date:   {article.date or '(none found; add date: YYYY-MM-DD if it matters)'}")
    click.echo(f"  source: {article.source_url or '(none; pass --url to record it)'}")
    click.echo(f"  words:  {word_count(article.body)}")
    by_fix: dict[str, list[str]] = {}  # one fix line under the warnings it answers
    for warning, fix in import_warnings(path, page_address_known=url is not None):
        by_fix.setdefault(fix, []).append(warning)
    for fix, warnings in by_fix.items():
        click.echo("".join(f"warning: {display_path(path)}: {w}\n" for w in warnings) + f"    fix: {fix}", err=True)


# --- subscribers (issue 3) -------------------------------------------------

def _key_values(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    """Turn repeated KEY=VALUE options into a dict, refusing anything without '='."""
    pairs: dict[str, str] = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"'{value}' is not KEY=VALUE (for example city=London)", ctx=ctx, param=param)
        pairs[key.strip()] = rest
    return pairs


def _list_path(ctx: click.Context, name: str) -> Path:
    """subscribers/NAME.csv, once NAME has passed the one list-name check (Settings.list_path applies it)."""
    return settings_of(ctx).list_path(name)


def _once(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> str | None:
    """An option given twice would otherwise be its last value, silently: ``--list a --list b`` a send
    to list b alone."""
    if len(values) > 1:
        raise click.BadParameter(f"given {len(values)} times ({', '.join(values)}); give it once "
                                 "(run the command once per list)")
    return values[0] if values else None


_list_option = click.option("--list", "-l", "list_name", required=True, metavar="NAME", multiple=True,
                            callback=_once, help="The list to use: subscribers/NAME.csv.")
_filter_options = [
    click.option("--tag", "tags", multiple=True, metavar="TAG",
                 help="Only rows with this tag (repeat for rows with all of several)."),
    click.option("--where", "where", multiple=True, callback=_key_values, metavar="FIELD=VALUE",
                 help="Only rows whose column FIELD equals VALUE, ignoring case (repeatable)."),
    click.option("--status", "statuses", multiple=True, type=click.Choice(STATUSES),
                 help="Only rows with this status (repeatable). Default: every status."),
]


_Command = TypeVar("_Command", bound=Callable[..., Any])


def _filters(command: _Command) -> _Command:
    """The --tag, --where and --status options of list and export, in one decorator."""
    for option in reversed(_filter_options):
        command = option(command)
    return command


@main.group("subscribers")
def subscribers_group() -> None:
    """Manage subscriber lists: one CSV file per list in subscribers/."""


@subscribers_group.command("add")
@click.argument("email")
@_list_option
@click.option("--name", default=None, help="The subscriber's name.")
@click.option("--tag", "tags", multiple=True, metavar="TAG", help="A tag to add (repeatable).")
@click.option("--field", "fields", multiple=True, callback=_key_values, metavar="KEY=VALUE",
              help="A merge field to set, like city=London (repeatable); a new column is added if needed.")
@click.pass_context
def subscribers_add(ctx: click.Context, email: str, list_name: str, name: str | None, tags: tuple[str, ...],
                    fields: dict[str, str]) -> None:
    """Add EMAIL to a list, or re-subscribe and update it; creates the list if needed."""
    from . import lists as subscriber_lists

    path = _list_path(ctx, list_name)
    outcome = subscriber_lists.add_subscriber(path, email, name=name, tags=tags, fields=fields)
    where = display_path(path)
    messages = {
        "added": f"Added {email.strip()} to {where}.",
        "resubscribed": f"Re-subscribed {email.strip()} in {where}.",
        "updated": f"Updated {email.strip()} in {where}.",
        "unchanged": f"{email.strip()} is already subscribed in {where}; nothing changed.",
    }
    click.echo(messages[outcome])


@subscribers_group.command("unsubscribe")
@click.argument("email", required=False)
@_list_option
@click.option("--token", default=None,
              help="An unsubscribe link's token (for a web form or webhook): verified, then its address is used.")
@click.pass_context
def subscribers_unsubscribe(ctx: click.Context, email: str | None, list_name: str, token: str | None) -> None:
    """Mark EMAIL unsubscribed; the row stays so the address is never mailed again by accident."""
    from . import lists as subscriber_lists
    from .compose.unsubscribe import address_of_token

    if (email is None) == (token is None):
        raise click.UsageError("give either EMAIL or --token TOKEN")
    path = _list_path(ctx, list_name)
    if token is not None:
        email = address_of_token(settings_of(ctx), list_name, token)
    was = subscriber_lists.unsubscribe(path, email)
    if was in subscriber_lists.SUPPRESSED:
        click.echo(f"{email.strip()} is already {was} in {display_path(path)}; nothing changed.")
    else:
        click.echo(f"Unsubscribed {email.strip()} in {display_path(path)}.")


@subscribers_group.command("remove")
@click.argument("email")
@_list_option
@click.pass_context
def subscribers_remove(ctx: click.Context, email: str, list_name: str) -> None:
    """Delete every row of EMAIL from a list (for erasure requests); 'unsubscribe' keeps the row."""
    from . import lists as subscriber_lists

    path = _list_path(ctx, list_name)
    removed = subscriber_lists.remove_subscriber(path, email)
    rows = "row" if removed == 1 else "rows"
    click.echo(f"Removed {email.strip()} from {display_path(path)} ({removed} {rows}).")


@subscribers_group.command("import")
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@_list_option
@click.option("--map", "mapping", multiple=True, callback=_key_values, metavar="COLUMN=FIELD",
              help="Read the file's COLUMN into the list's FIELD (repeatable); 'COLUMN=' ignores it.")
@click.option("--status-from", default=None, metavar="COLUMN", help="Read each row's status from this column.")
@click.option("--resubscribe", is_flag=True,
              help="Re-subscribe addresses the list has as unsubscribed, bounced or complained.")
@click.option("--dry-run", is_flag=True, help="Report what would change; write nothing.")
@click.pass_context
def subscribers_import(ctx: click.Context, source: Path, list_name: str, mapping: dict[str, str],
                       status_from: str | None, resubscribe: bool, dry_run: bool) -> None:
    """Merge SOURCE, a CSV export (Mailchimp, Substack, Buttondown, listmonk, ...), into a list."""
    from . import lists as subscriber_lists

    path = _list_path(ctx, list_name)
    report = subscriber_lists.import_subscribers(path, source, mapping=mapping, status_from=status_from,
                                                 resubscribe=resubscribe, dry_run=dry_run)
    if report.recognised:
        click.echo(f"Recognised a {report.recognised} export.")
    for problem in report.rejected:
        click.echo(f"{display_path(source)}:{problem.line}: rejected: {problem.message}", err=True)
    if report.ignored_columns:
        first = report.ignored_columns[0]
        click.echo(f"Ignored columns: {', '.join(report.ignored_columns)} "
                   f"(keep one with --map '{first}=FIELD')")
    if report.kept_suppressed:
        kept = report.kept_suppressed
        click.echo(f"{kept} address{'es' if kept != 1 else ''} the file says subscribed stay{'s' if kept == 1 else ''}"
                   " unsubscribed, bounced or complained as the list says (--resubscribe overrides).")
    summary = (f"{report.added} added, {report.updated} updated, {report.unchanged} unchanged, "
               f"{len(report.rejected)} rejected")
    if dry_run:
        click.echo(f"Dry run, nothing written to {display_path(path)}: {summary}. Run without --dry-run to import.")
    else:
        click.echo(f"{display_path(path)}: {summary}.")


@subscribers_group.command("list")
@_list_option
@_filters
@click.pass_context
def subscribers_list(ctx: click.Context, list_name: str, tags: tuple[str, ...], where: dict[str, str],
                     statuses: tuple[str, ...]) -> None:
    """Print the rows of a list that match the filters: line, email, name, status, tags."""
    from . import lists as subscriber_lists

    path = _list_path(ctx, list_name)
    count = 0
    for sub in subscriber_lists.iter_subscribers(path, tags=tags, where=where, statuses=statuses):
        click.echo(f"{sub.line:>6}  {sub.email}  {sub.name or '-'}  {sub.status}  {';'.join(sub.tags)}".rstrip())
        count += 1
    click.echo(f"{count} row{'s' if count != 1 else ''} of {display_path(path)} matched.", err=True)


@subscribers_group.command("stats")
@_list_option
@click.pass_context
def subscribers_stats(ctx: click.Context, list_name: str) -> None:
    """Count the rows of a list by status and tag, and how many would receive mail."""
    from . import lists as subscriber_lists

    path = _list_path(ctx, list_name)
    stats = subscriber_lists.list_stats(path)
    click.echo(f"{display_path(path)}: {stats.rows} rows, {stats.recipients} would receive mail")
    statuses = [*subscriber_lists.STATUSES, *sorted(set(stats.by_status) - set(subscriber_lists.STATUSES))]
    width = max(len(s) for s in [*statuses, *stats.by_tag, "duplicates"]) + 2
    for status in statuses:
        click.echo(f"  {status:<{width}}{stats.by_status[status]:>8}")
    click.echo(f"  {'duplicates':<{width}}{stats.duplicates:>8}")
    click.echo(f"  {'invalid':<{width}}{stats.invalid:>8}")
    if stats.by_tag:
        click.echo("tags")
        for tag, count in sorted(stats.by_tag.items(), key=lambda item: (-item[1], item[0])):
            click.echo(f"  {tag:<{width}}{count:>8}")


@subscribers_group.command("export")
@_list_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The file to write. Default: standard output.")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
@_filters
@click.pass_context
def subscribers_export(ctx: click.Context, list_name: str, out: Path | None, fmt: str, force: bool,
                       tags: tuple[str, ...], where: dict[str, str], statuses: tuple[str, ...]) -> None:
    """Write a list's rows out as CSV for spreadsheets (formulas neutralised) or JSON."""
    from . import lists as subscriber_lists

    path = subscriber_lists.require_list(_list_path(ctx, list_name))
    if out is None:
        count = subscriber_lists.export_subscribers(path, sys.stdout, fmt=fmt, tags=tags,
                                                    where=where, statuses=statuses)
    else:
        count = subscriber_lists.export_to_file(path, out, fmt=fmt, tags=tags, where=where, statuses=statuses,
                                                overwrite=force)
    target = display_path(out) if out else "standard output"
    click.echo(f"Exported {count} row{'s' if count != 1 else ''} of {display_path(path)} to {target}.", err=True)


@subscribers_group.command("validate")
@_list_option
@click.option("--check-dns", is_flag=True, help="Also look up each domain (once) to see that it can receive mail.")
@click.pass_context
def subscribers_validate(ctx: click.Context, list_name: str, check_dns: bool) -> None:
    """Report every problem of a list with its line: bad or duplicate address, unknown status, bad date."""
    from . import lists as subscriber_lists

    path = _list_path(ctx, list_name)
    found = 0
    for problem in subscriber_lists.validate_list(path, check_dns=check_dns):
        click.echo(f"{display_path(path)}:{problem.line}: {problem.message}")
        found += 1
    if found:
        raise subscriber_lists.ListProblems(f"{found} problem{'s' if found != 1 else ''} found",
                                            where=display_path(path), hint="fix the lines above, then validate again")
    click.echo(f"{display_path(path)}: no problems found.")


@subscribers_group.command("sync")
@_list_option
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
@click.pass_context
def subscribers_sync(ctx: click.Context, list_name: str, dry_run: bool) -> None:
    """Apply the subscriber service's events (sign-ups, unsubscribes, bounces) to a list, and mark the
    addresses SendGrid suppresses (unsubscribes, bounces, spam reports, the group) when SendGrid sends."""
    from . import lists as subscriber_lists
    from .serve.sync import sync_events

    settings = settings_of(ctx)
    events = sync_events(settings, list_name, write=not dry_run)
    for change in events.changes:
        click.echo(f"  {change.email}: {change.was or 'not on the list'} -> {change.now}")
    if events.configured or settings.serve.lists:  # no store where one is expected: say so, not silence
        click.echo(events.summary)
    if settings.provider != "sendgrid":
        return
    report = subscriber_lists.sync_list(settings, list_name, write=not dry_run)
    for change in report.changes:
        click.echo(f"  {change.email}: {change.was} -> {change.now}")
    click.echo(report.summary, err=bool(report.skipped))
    if report.skipped:  # the events above are applied; only SendGrid's part is missing
        ctx.exit(1)


# --- send (issue 5) --------------------------------------------------------

def _parse_where(values: tuple[str, ...]) -> dict[str, str]:
    where = {}
    for item in values:
        field, sep, value = item.partition("=")
        if not sep or not field.strip():
            raise click.BadParameter(f"'{item}' is not field=value", param_hint="--where")
        where[field.strip()] = value.strip()
    return where


def _echo_report(report) -> None:
    issue = shlex.join(shlex.split(report.resume_hint)[2:3]) if report.resume_hint else "ISSUE_DIR"
    for email, reason in report.failed[:50]:
        click.echo(f"  failed: {email}: {reason}", err=True)
    for email, reason in report.unknown[:50]:
        click.echo(f"  unknown: {email}: {reason}", err=True)
    for email, reason in report.deferred[:50]:
        click.echo(f"  deferred: {email}: {reason}", err=True)
    hidden = max(0, len(report.failed) - 50) + max(0, len(report.unknown) - 50) + max(0, len(report.deferred) - 50)
    if hidden:
        click.echo(f"  ... and {hidden} more: newsletter status {issue} --list {report.list_name}", err=True)
    if report.paused:
        click.echo(f"Paused: {report.paused}", err=True)
    click.echo(report.summary())
    for line in report.helper_errors:
        click.echo(line, err=True)
    if report.ab:
        click.echo(report.ab)
    if report.dry_run or report.list_name == "(test)":
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


def _provider_names():
    from .providers.registry import NAMES

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
              help="Let the provider hold the mail until TIME (SendGrid's send_at, at most 72 hours ahead).")
@click.option("--due", is_flag=True,
              help="Send everything whose time has come: scheduled issues, sequence steps, digests (for cron).")
@click.option("--now", "now", default=None, metavar="TIME",
              help="With --due: act as if it were TIME (what is due then is sent now; to catch up or to test).")
@click.option("--backfill", "backfill", multiple=True, metavar="SEQUENCE",
              help="With --due: also enrol the readers who were on the list when SEQUENCE started.")
@click.option("--sandbox", is_flag=True, help="SendGrid sandbox mode: validated by SendGrid, not delivered.")
@click.option("--retry-unknown", is_flag=True, help="Resend recipients whose earlier delivery is unknown.")
@click.option("--retry-failed", is_flag=True, help="Try recipients that failed in an earlier run again.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (required without a terminal).")
@click.option("--journal-lost", "journal_lost", is_flag=True,
              help="The journal of the send issue.md records is gone: send only to readers who joined since (recorded).")
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
def send_command(ctx: click.Context, issue_dir: Path | None, list_name, tags, where, provider, resume, allow_changed,
                 dry_run, test_to, test_prefix, send_at, cancel, provider_at, due, now, backfill, sandbox,
                 retry_unknown, retry_failed, yes, journal_lost, samples, out, ignore_doctor, nameserver, stages,
                 stage_wait, ab, ab_fallback, worker, workers) -> None:
    """Send ISSUE_DIR to a subscriber list, once per recipient (resumable); or schedule it (--at);
    or, with --due and no ISSUE_DIR, send everything whose time has come."""
    from .checks import has_errors
    from .errors import EXIT_FAILED, display_path
    from .sending import due as automation
    from .sending import engine
    from .sending.ab import parse_share

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
        list_name=list_name or "", provider=provider or "", tags=tags, where=_parse_where(where), dry_run=dry_run,
        send_at=_parse_send_at(provider_at), sandbox=sandbox, retry_unknown=retry_unknown, retry_failed=retry_failed,
        samples=samples, out_dir=out, resume=resume, allow_changed=allow_changed, test_to=test_to,
        test_prefix=test_prefix, ignore_doctor=ignore_doctor, nameserver=nameserver, stages=stages,
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


def _echo_scheduled(done) -> None:
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


def _send_due(settings, now: str | None, backfill: tuple[str, ...], allow_changed: bool, ignore_doctor: bool,
              nameserver: str) -> None:
    """``send --due``: what is due, sent; what was sent and what comes next, printed; exit 1 on a failure."""
    from .sending import due as automation

    from .stats.sources import StoreClicks

    clock = automation.fixed_clock(automation.parse_moment(now, "--now")) if now else automation.system_clock
    report = automation.run_due(settings, clock, events=_service_events, clicks=StoreClicks(settings),
                                backfill=backfill,
                                allow_changed=allow_changed, ignore_doctor=ignore_doctor, nameserver=nameserver,
                                say=lambda line: click.echo(line, err=True))
    for line, is_error in automation.lines(report):
        click.echo(line, err=is_error)
    if report.exit_code:
        sys.exit(report.exit_code)


def _service_events(settings, list_name: str) -> str:
    """``newsletter serve``'s events applied to a list before ``send --due`` reads it (as ``subscribers
    sync`` does): what ``sending/`` asks of the service, wired here so that ``sending/`` never imports it."""
    from .serve.sync import sync_events

    result = sync_events(settings, list_name)
    return result.summary if result.changes else ""


def _run_send(settings, issue_dir: Path, options, yes: bool):
    """engine.send with a question before delivering, a progress line, and Ctrl-C finishing the requests."""
    import signal

    from .sending import engine
    from .sending.report import recipients
    from .stats.sources import StoreClicks

    progress = _Progress()
    stop = engine.StopFlag()

    def confirm(plan, report) -> bool:
        _echo_findings(report.findings, issue_dir)
        if options.dry_run or options.test_to or yes:
            return True
        question = (f"Send '{plan.built.subject}' to {recipients(report.to_send)} of list "
                    f"'{plan.list_name}' through {plan.provider_name}?")
        if not sys.stdin.isatty():
            raise click.UsageError(f"{question} Pass --yes to confirm when not on a terminal.")
        return click.confirm(question, abort=True)

    def on_plan(plan, report) -> None:
        if report.to_send == 0:
            _echo_findings(report.findings, issue_dir)
            click.echo(f"Nothing to send: {plan.nothing_to_send}.")

    def on_interrupt(signum, frame):
        if stop.requested:
            raise KeyboardInterrupt
        stop.requested = True
        click.echo("\nStopping after the requests under way (Ctrl-C again to abandon them)...", err=True)

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        return engine.send(settings, issue_dir, options, progress=None if options.dry_run else progress, stop=stop,
                           confirm=confirm, on_plan=on_plan, say=lambda line: click.echo(line, err=True),
                           clicks=StoreClicks(settings))
    except NewsletterError as err:
        report = err.report
        if report is not None:  # the send stopped after some requests may have gone out: say what was done
            progress.finish()
            _echo_report(report)
        raise
    finally:
        signal.signal(signal.SIGINT, previous)
        progress.finish()


def _parse_send_at(value: str | None):
    import datetime as dt

    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"'{value}' is not a date and time like 2026-11-26T09:00+01:00",
                                 param_hint="--at") from None
    return moment if moment.tzinfo else moment.astimezone()


@main.command("stats")
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
    from .stats.figures import IssueFigures
    from .stats.page import write_page
    from .stats.report import as_json, issue_lines, overview_lines
    from .stats.sources import overview, stats_of_issue

    settings = settings_of(ctx)
    data = stats_of_issue(settings, issue_dir) if issue_dir is not None else overview(settings, last)
    if output_format == "json":
        click.echo(as_json(data))
    else:
        for line in issue_lines(data) if isinstance(data, IssueFigures) else overview_lines(data):
            click.echo(line)
    if html_out is not None:
        click.echo(f"wrote {write_page(data, html_out)}", err=output_format == "json")


@main.command("resolve")
@click.argument("issue_dir", type=click.Path(path_type=Path))
@click.option("--list", "list_name", required=True, multiple=True, callback=_once, metavar="NAME",
              help="The list whose send to settle.")
@click.option("--as", "resolution", type=click.Choice(["sent", "resend"]), default=None,
              help="sent: they got it (never resent); resend: the next --resume sends them again.")
@click.option("--abandon", is_flag=True, help="Abandon an unfinished send: what it has not sent stays unsent.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (required without a terminal).")
@click.pass_context
def resolve_command(ctx: click.Context, issue_dir: Path, list_name: str, resolution, abandon: bool, yes: bool):
    """Settle the recipients of ISSUE_DIR whose delivery is unknown (listed first), recorded in the journal."""
    from .sending import engine
    from .sending.report import recipients

    if bool(resolution) == abandon:
        raise click.UsageError("give one of --as sent, --as resend or --abandon")
    settings = settings_of(ctx)
    if abandon:
        question = f"Abandon the unfinished send of {issue_dir} to list '{list_name}'?"
    else:
        rows = engine.unknown_recipients(settings, issue_dir, list_name)
        if not rows:
            click.echo(f"No recipient of list '{list_name}' has an unknown delivery.")
            return
        for email, reason in rows:
            click.echo(f"  unknown: {email}: {reason}")
        question = f"Record {'this' if len(rows) == 1 else 'these'} {recipients(len(rows))} as {resolution}?"
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError(f"{question} Pass --yes to confirm when not on a terminal.")
        click.confirm(question, abort=True)
    count = engine.resolve(settings, issue_dir, list_name, "abandon" if abandon else resolution)
    verb = "abandoned the unfinished send" if abandon else f"recorded as {resolution}"
    click.echo(f"{recipients(count)}: {verb}.")
    if resolution == "resend" and count:
        click.echo(f"Send them with: newsletter send {issue_dir} --list {list_name} --resume")


@main.command("status")
@click.argument("issue_dir", type=click.Path(path_type=Path), required=False)
@click.option("--list", "list_name", multiple=True, callback=_once, metavar="NAME", help="Only this list.")
@click.option("--all", "every", is_flag=True, help="One line per recipient with a problem, not one per reason.")
@click.pass_context
def status_command(ctx: click.Context, issue_dir: Path | None, list_name: str | None, every: bool) -> None:
    """Show the send journal of ISSUE_DIR (each run: when, audience, provider, fingerprint, counts; problems),
    or with no ISSUE_DIR what is scheduled."""
    from .sending import engine

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


def _echo_schedules(settings, list_name: str | None) -> None:
    from .sending import due as automation
    from .sending.due.clock import shown

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


# --- sequences and digests (issue 22) ---------------------------------------

@main.group("sequence")
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
    from .sending import due as automation
    from .sending.due.status import sequence_status as status_of

    clock = automation.fixed_clock(automation.parse_moment(now, "--now")) if now else automation.system_clock
    for line in status_of(settings_of(ctx), name, clock(), show=show).lines():
        click.echo(line)


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
                   date_) -> None:
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


# --- doctor (issue 15) ------------------------------------------------------

@main.command("doctor")
@click.option("--nameserver", default=None, metavar="HOST[:PORT]",
              help="Ask this DNS server instead of the system's resolver.")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: findings grouped by severity with the fix; json: for scripts and CI.")
@click.option("--warmup", is_flag=True, help="Print the daily sending caps for warming up a new domain or IP.")
@click.option("--list", "list_name", multiple=True, callback=_once, metavar="NAME",
              help="Count this list's recipients per mailbox provider and check each provider's rules "
                   "(with --warmup: plan its subscribers, most recently active first).")
@click.pass_context
def doctor_command(ctx: click.Context, nameserver: str | None, output_format: str, warmup: bool,
                   list_name: str | None) -> None:
    """Check the sending setup (SPF, DKIM, DMARC, MX, reverse DNS, BIMI, one-click unsubscribe) and, with
    --list, the mailbox providers' rules for that list; exit 1 when any error is found."""
    if warmup:
        from .sending.pacing import warmup_report

        click.echo(warmup_report(settings_of(ctx), list_name))
        return
    from .checks import has_errors
    from .doctor import AudienceQuery, examine
    from .doctor.report import doctor_json, format_doctor

    result = examine(settings_of(ctx), nameserver=nameserver,
                     audience=AudienceQuery(list_name) if list_name else None)
    click.echo(doctor_json(result) if output_format == "json" else format_doctor(result))
    ctx.exit(1 if has_errors(result.findings) else 0)


# --- preview, screenshot, archive (issue 6) --------------------------------

def _echo_rebuild(snapshot, changed) -> None:
    """One line per build of a running preview, and one when its checks are in."""
    from .checks import summary_line

    if snapshot.error is not None:
        cause = f"{', '.join(changed)} changed; " if changed else ""
        click.echo(f"{cause}build failed: {snapshot.error}", err=True)
    elif snapshot.findings is None:
        cause = f"{', '.join(changed)} changed; " if changed else ""
        click.echo(f"{cause}built in {snapshot.seconds:.2f} s")
    elif snapshot.check_error is not None:
        click.echo(f"checks could not run: {snapshot.check_error}", err=True)
    else:
        click.echo(f"checked: {summary_line(list(snapshot.findings))}")


@main.command("preview")
@click.argument("issue_dir", type=click.Path(path_type=Path))
@click.option("--port", type=click.IntRange(0, 65535), default=8025, show_default=True,
              help="Port to listen on (0: any free port).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Any other than 127.0.0.1 lets other computers see the preview.")
@click.option("--list", "list_name", multiple=True, callback=_once, metavar="NAME",
              help="Add a picker of this list's recipients, to see each one's personalized email.")
@click.option("--open", "open_browser", is_flag=True, help="Open the preview in the web browser.")
@click.pass_context
def preview_command(ctx: click.Context, issue_dir: Path, port: int, host: str, list_name: str | None,
                    open_browser: bool) -> None:
    """Serve a preview of ISSUE_DIR that updates itself whenever a file of the issue changes."""
    import webbrowser

    from .errors import display_path
    from .preview import is_loopback, make_preview_server

    server = make_preview_server(settings_of(ctx), issue_dir, host=host, port=port, list_name=list_name,
                                 on_rebuild=_echo_rebuild)
    click.echo(f"Previewing {display_path(issue_dir)} at {server.url}")
    if not is_loopback(host):
        click.echo(f"warning: listening on {host}: other computers can see this preview"
                   + (f", including the addresses and names of list '{list_name}'" if list_name else ""), err=True)
    click.echo("Save the issue, a template or newsletter.toml and the page updates itself. Press Ctrl-C to stop.")
    click.echo(f"What the issue did once sent (newsletter stats): {server.url.rstrip('/')}/stats")
    if open_browser:
        webbrowser.open(server.url)
    server.preview.start_watching()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    click.echo("Preview stopped.")


@main.command("screenshot")
@click.argument("issue_dir", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the PNG files. Default: build/<issue-name>/.")
@click.option("--width", "widths", type=click.IntRange(200, 2400), multiple=True,
              help="Width in CSS pixels; repeat for several. Default: a phone and a desktop width either "
                   "side of the theme's @media (max-width) breakpoint (375 and 800 for the default theme).")
@click.option("--dark", is_flag=True, help="Render as a reader in dark mode sees it (prefers-color-scheme: dark).")
@click.pass_context
def screenshot_command(ctx: click.Context, issue_dir: Path, out: Path | None, widths: tuple[int, ...],
                       dark: bool) -> None:
    """Write PNG pictures of ISSUE_DIR's email at each width, using headless Chromium."""
    from .errors import display_path
    from .screenshot import screenshot_issue

    shots = screenshot_issue(settings_of(ctx), issue_dir, out, widths, dark=dark)
    for shot in shots:
        click.echo(f"wrote {display_path(shot.path)} ({shot.width} x {shot.height} px)")
    click.echo(f"{len(shots)} screenshot{'s' * (len(shots) != 1)}{' in dark mode' if dark else ''}")


@main.command("archive")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the site. Default: site/ in the newsletter's folder.")
@click.option("--drafts", is_flag=True, help="Also publish issues marked draft: true or dated in the future.")
@click.option("--sent-only", is_flag=True, help="Publish only the issues the send journal shows as sent.")
@click.option("--stats", "with_stats", is_flag=True,
              help="Also publish each sent issue's stats page (stats.html: figures and charts, no reader named).")
@click.pass_context
def archive_command(ctx: click.Context, out: Path | None, drafts: bool, sent_only: bool, with_stats: bool) -> None:
    """Write a static web archive of the published issues, with an index page and an Atom feed."""
    from .archive import write_archive
    from .errors import display_path

    settings = settings_of(ctx)
    archive = write_archive(settings, out or settings.root / "site", drafts=drafts, sent_only=sent_only,
                            stats=with_stats)
    for item in archive.left_out:
        click.echo(f"left out {item.name}: {item.reason}")
    for issue in archive.issues:
        images = f" and {len(issue.images)} file{'s' * (len(issue.images) != 1)}" if issue.images else ""
        click.echo(f"wrote {display_path(issue.page)}{images}")
    click.echo(f"wrote {display_path(archive.index)} and {display_path(archive.feed)}")
    count = len(archive.issues)
    click.echo(f"Archived {count} issue{'s' * (count != 1)} in {display_path(archive.out_dir)}; "
               f"publish that folder at {settings.base_url}")


# --- start a newsletter, themes (scaffold.py, themes/) ----------------------

@main.command("init")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--name", default=None, help="The newsletter's name, shown in the header and the From line.")
@click.option("--from", "from_address", default=None, help='The sender, like "Name <you@example.com>".')
@click.option("--postal-address", default=None, help="Your postal address, printed in every footer (required by law).")
@click.option("--base-url", default=None, help="Where the web archive will be published, like https://example.com/news/.")
@click.option("--unsubscribe-url", default="",
              help="Your unsubscribe page, with {token}. Default: BASE_URL/unsubscribe/{token} (serve's page).")
@click.option("--list", "list_name", default="readers", show_default=True, help="The first subscriber list's name.")
@click.option("--ci", type=click.Choice(["github", "gitlab"]), default=None,
              help="Also write a CI workflow: review pull requests, send what is due (docs/ci.md). "
                   "In an existing newsletter, only that.")
@click.option("--branch", default="main", show_default=True, help="The default branch the workflow sends from.")
def init_command(folder: Path, name, from_address, postal_address, base_url, unsubscribe_url: str,
                 list_name: str, ci: str | None, branch: str) -> None:
    """Start a newsletter in FOLDER (default: here): settings, issues/, subscribers/, templates/."""
    from .config import CONFIG_FILE
    from .scaffold import init_asking, missing_details

    if ci and (folder / CONFIG_FILE).is_file():
        _write_ci(folder, ci, branch)
        return
    values = {"name": name, "from": from_address, "postal_address": postal_address, "base_url": base_url}
    missing = missing_details(values)
    if missing and not sys.stdin.isatty():
        raise click.UsageError(f"missing {', '.join(missing)} (not on a terminal, so they cannot be asked for)")

    def ask(question: str, refused: str | None) -> str:
        if refused:
            click.echo(f"Error: {refused}", err=True)
        return click.prompt(question)

    made = init_asking(folder, values, ask, list_name=list_name, unsubscribe_url=unsubscribe_url)
    details = made.details
    for path in made.created:
        click.echo(f"created {display_path(path)}{'/' if path.is_dir() else ''}")
    where = "" if made.root.resolve() == Path.cwd().resolve() else f"cd {display_path(made.root)} && "
    click.echo(f'Next: {where}newsletter new "First issue"; add readers with: '
               f"newsletter subscribers add EMAIL --list {made.list_name}")
    click.echo(f"Unsubscribe links point at {details.unsubscribe_link}: a page there must record them "
               "(newsletter.unsubscribe_url in newsletter.toml).")
    if ci:
        _write_ci(made.root, ci, branch)


def _write_ci(root: Path, kind: str, branch: str) -> None:
    from .ci_workflow import write_workflow

    path = write_workflow(root, kind, branch)
    click.echo(f"created {display_path(path)}: pull requests are reviewed (newsletter review), and what is due is "
               f"sent from {branch} (newsletter send --due). Before it sends, set [send] journal_url to a shared "
               "PostgreSQL journal and add the secrets it names (docs/ci.md).")


@main.command("review")
@click.option("--since", default=None, metavar="REVISION",
              help="Only the issues changed since this git revision (e.g. origin/main). Default: every issue not sent.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("review"), show_default=True,
              help="Where each issue's build, check report and screenshots go.")
@click.option("--no-screenshots", "no_pictures", is_flag=True, help="Build and check only.")
@click.pass_context
def review_command(ctx: click.Context, since: str | None, out: Path, no_pictures: bool) -> None:
    """Build, check and photograph the issues a change touches (for a pull request's reviewers)."""
    from .review import any_errors, changed_since, review, unsent_folders

    settings = settings_of(ctx)
    folders = changed_since(settings, since) if since else unsent_folders(settings)
    results = review(settings, folders, out, pictures=not no_pictures)
    for result in results:
        click.echo(f"{display_path(result.folder)}: {result.errors} errors, {result.warnings} warnings; "
                   f"{len(result.pictures)} screenshots; in {display_path(result.out)}/")
    click.echo(f"Reviewed {len(results)} issue{'s' * (len(results) != 1)}"
               + (f" changed since {since}" if since else "") + f": {display_path(out)}/")
    ctx.exit(1 if any_errors(results) else 0)


@main.group("journal")
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
    from .sending import journal as jn
    from .sending.journal.copy import copy_between

    from .secret_names import variable_name

    settings = settings_of(ctx)
    origin = jn.location_from_text(source, settings, option="--from") if source else jn.location_of(settings)
    destination = jn.location_from_text(target, settings)
    counts = copy_between(origin, destination)
    click.echo(f"Copied {counts['sends']} sends ({counts['deliveries']} recipients, {counts['runs']} runs) from "
               f"{origin.describe()} to {destination.describe()}.")
    if destination.dialect == "postgresql":
        click.echo(f'To send through it, set journal_url = "{destination.url}" under [send] in newsletter.toml '
                   f"(its password from {variable_name('send.journal_password_env', settings.send.journal_password_env)}), "
                   "on every machine that sends.")
    else:
        click.echo(f"To send through it, remove journal_url from [send] in newsletter.toml and set journal = "
                   f'"{destination.path}".')


@main.group("theme")
def theme_group() -> None:
    """Themes: the shipped ones, and copies in templates/ to edit."""


@theme_group.command("copy")
@click.argument("theme")
@click.option("--name", default=None, help="Folder name under templates/. Default: the theme's own name.")
@click.option("--force", is_flag=True, help="Replace templates/NAME/ if it exists.")
@click.pass_context
def theme_copy(ctx: click.Context, theme: str, name: str | None, force: bool) -> None:
    """Copy the shipped THEME into templates/ for editing; a theme there overrides the shipped one."""
    from .themes import copy_theme

    target = copy_theme(settings_of(ctx), theme, name=name, force=force)
    click.echo(f"copied theme '{theme}' to {display_path(target)}/")
    if target.name != settings_of(ctx).theme:
        click.echo(f'Use it with theme = "{target.name}" under [newsletter] in newsletter.toml.')


# --- serve (issue 14) -------------------------------------------------------

@main.command("serve")
@click.option("--host", default=None, help="Address to listen on. Default: serve.host (127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="Port. Default: serve.port (8080).")
@click.pass_context
def serve_command(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Run the subscriber service: sign-up with double opt-in, one-click unsubscribe, provider events, clicks."""
    from .serve.server import serve

    serve(settings_of(ctx), host, port, on_ready=lambda line: click.echo(line, err=True))


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
