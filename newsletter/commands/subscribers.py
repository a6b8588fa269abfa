"""``newsletter subscribers ...``: the lists in subscribers/, read, changed, imported, exported and synced."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import display_path
from ..providers import registry
from .group import NewsletterGroup
from .options import filters, key_values, list_option, list_path, settings_of


@click.group("subscribers", cls=NewsletterGroup)
def subscribers_group() -> None:
    """Manage subscriber lists: one CSV file per list in subscribers/."""


@subscribers_group.command("add")
@click.argument("email")
@list_option
@click.option("--name", default=None, help="The subscriber's name.")
@click.option("--tag", "tags", multiple=True, metavar="TAG", help="A tag to add (repeatable).")
@click.option("--field", "fields", multiple=True, callback=key_values, metavar="KEY=VALUE",
              help="A merge field to set, like city=London (repeatable); a new column is added if needed.")
@click.pass_context
def subscribers_add(ctx: click.Context, email: str, list_name: str, name: str | None, tags: tuple[str, ...],
                    fields: dict[str, str]) -> None:
    """Add EMAIL to a list, or re-subscribe and update it; creates the list if needed."""
    from .. import lists as subscriber_lists

    path = list_path(ctx, list_name)
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
@list_option
@click.option("--token", default=None,
              help="An unsubscribe link's token (for a web form or webhook): verified, then its address is used.")
@click.pass_context
def subscribers_unsubscribe(ctx: click.Context, email: str | None, list_name: str, token: str | None) -> None:
    """Mark EMAIL unsubscribed; the row stays so the address is never mailed again by accident."""
    from .. import lists as subscriber_lists
    from ..compose.unsubscribe import address_of_token

    if token is not None and email is None:
        address = address_of_token(settings_of(ctx), list_name, token)
    elif email is not None and token is None:
        address = email
    else:
        raise click.UsageError("give either EMAIL or --token TOKEN")
    path = list_path(ctx, list_name)
    was = subscriber_lists.unsubscribe(path, address)
    if was in subscriber_lists.SUPPRESSED:
        click.echo(f"{address.strip()} is already {was} in {display_path(path)}; nothing changed.")
    else:
        click.echo(f"Unsubscribed {address.strip()} in {display_path(path)}.")


@subscribers_group.command("remove")
@click.argument("email")
@list_option
@click.pass_context
def subscribers_remove(ctx: click.Context, email: str, list_name: str) -> None:
    """Delete every row of EMAIL from a list (for erasure requests); 'unsubscribe' keeps the row."""
    from .. import lists as subscriber_lists

    path = list_path(ctx, list_name)
    removed = subscriber_lists.remove_subscriber(path, email)
    rows = "row" if removed == 1 else "rows"
    click.echo(f"Removed {email.strip()} from {display_path(path)} ({removed} {rows}).")


@subscribers_group.command("import")
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@list_option
@click.option("--map", "mapping", multiple=True, callback=key_values, metavar="COLUMN=FIELD",
              help="Read the file's COLUMN into the list's FIELD (repeatable); 'COLUMN=' ignores it.")
@click.option("--status-from", default=None, metavar="COLUMN", help="Read each row's status from this column.")
@click.option("--resubscribe", is_flag=True,
              help="Re-subscribe addresses the list has as unsubscribed, bounced or complained.")
@click.option("--dry-run", is_flag=True, help="Report what would change; write nothing.")
@click.pass_context
def subscribers_import(ctx: click.Context, source: Path, list_name: str, mapping: dict[str, str],
                       status_from: str | None, resubscribe: bool, dry_run: bool) -> None:
    """Merge SOURCE, a CSV export (Mailchimp, Substack, Buttondown, listmonk, ...), into a list."""
    from .. import lists as subscriber_lists

    path = list_path(ctx, list_name)
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
@list_option
@filters
@click.pass_context
def subscribers_list(ctx: click.Context, list_name: str, tags: tuple[str, ...], where: dict[str, str],
                     statuses: tuple[str, ...]) -> None:
    """Print the rows of a list that match the filters: line, email, name, status, tags."""
    from .. import lists as subscriber_lists

    path = list_path(ctx, list_name)
    count = 0
    for sub in subscriber_lists.iter_subscribers(path, tags=tags, where=where, statuses=statuses):
        click.echo(f"{sub.line:>6}  {sub.email}  {sub.name or '-'}  {sub.status}  {';'.join(sub.tags)}".rstrip())
        count += 1
    click.echo(f"{count} row{'s' if count != 1 else ''} of {display_path(path)} matched.", err=True)


@subscribers_group.command("stats")
@list_option
@click.pass_context
def subscribers_stats(ctx: click.Context, list_name: str) -> None:
    """Count the rows of a list by status and tag, and how many would receive mail."""
    from .. import lists as subscriber_lists

    path = list_path(ctx, list_name)
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
@list_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The file to write. Default: standard output.")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
@filters
@click.pass_context
def subscribers_export(ctx: click.Context, list_name: str, out: Path | None, fmt: str, force: bool,
                       tags: tuple[str, ...], where: dict[str, str], statuses: tuple[str, ...]) -> None:
    """Write a list's rows out as CSV for spreadsheets (formulas neutralised) or JSON."""
    from .. import lists as subscriber_lists

    path = subscriber_lists.require_list(list_path(ctx, list_name))
    if out is None:
        count = subscriber_lists.export_subscribers(path, sys.stdout, fmt=fmt, tags=tags,
                                                    where=where, statuses=statuses)
    else:
        count = subscriber_lists.export_to_file(path, out, fmt=fmt, tags=tags, where=where, statuses=statuses,
                                                overwrite=force)
    target = display_path(out) if out else "standard output"
    click.echo(f"Exported {count} row{'s' if count != 1 else ''} of {display_path(path)} to {target}.", err=True)


@subscribers_group.command("validate")
@list_option
@click.option("--check-dns", is_flag=True, help="Also look up each domain (once) to see that it can receive mail.")
@click.pass_context
def subscribers_validate(ctx: click.Context, list_name: str, check_dns: bool) -> None:
    """Report every problem of a list with its line: bad or duplicate address, unknown status, bad date."""
    from .. import lists as subscriber_lists

    path = list_path(ctx, list_name)
    found = 0
    for problem in subscriber_lists.validate_list(path, check_dns=check_dns):
        click.echo(f"{display_path(path)}:{problem.line}: {problem.message}")
        found += 1
    if found:
        raise subscriber_lists.ListProblems(f"{found} problem{'s' if found != 1 else ''} found",
                                            where=path, hint="fix the lines above, then validate again")
    click.echo(f"{display_path(path)}: no problems found.")


@subscribers_group.command("sync")
@list_option
@click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")
@click.pass_context
def subscribers_sync(ctx: click.Context, list_name: str, dry_run: bool) -> None:
    """Apply the subscriber service's events (sign-ups, unsubscribes, bounces) to a list, and mark the
    addresses the provider suppresses (SendGrid: unsubscribes, bounces, spam reports, the group), when it keeps
    such a list."""
    from .. import lists as subscriber_lists
    from ..serve.sync import sync_events

    settings = settings_of(ctx)
    events = sync_events(settings, list_name, write=not dry_run)
    for change in events.changes:
        click.echo(f"  {change.email}: {change.was or 'not on the list'} -> {change.now}")
    if events.configured or settings.serve.lists:  # no store where one is expected: say so, not silence
        click.echo(events.summary)
    provider = registry.kind(settings.provider)
    if not provider.suppression_list:
        return
    report = subscriber_lists.sync_list(settings, list_name, provider, write=not dry_run)
    for change in report.changes:
        click.echo(f"  {change.email}: {change.was} -> {change.now}")
    click.echo(report.summary, err=bool(report.skipped))
    if report.skipped:  # the events above are applied; only the provider's part is missing
        ctx.exit(1)
