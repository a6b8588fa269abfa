"""The commands of one issue's making: new, import, build and check."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from .options import settings_of

if TYPE_CHECKING:
    import datetime as dt

    from ..checks import Finding


def echo_findings(findings: list[Finding], issue_dir: Path | None = None) -> None:
    """Errors and warnings in full; notes only counted (``newsletter check`` lists them)."""
    from ..checks import ERROR, INFO, format_finding, summary_line

    for finding in findings:
        if finding.severity != INFO:
            click.echo(format_finding(finding), err=finding.severity == ERROR)
    line = summary_line(findings)
    if issue_dir is not None and any(f.severity == INFO for f in findings):
        line += f" (see them all: newsletter check {issue_dir})"
    click.echo(line)


@click.command("new")
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
def new_command(ctx: click.Context, title: str, date_: dt.datetime | None, number: int | None, sequence: str | None,
                delay: str | None) -> None:
    """Create issues/<date>-<slug>/issue.md with front matter to fill in (or, with --sequence, a step)."""
    import datetime as dt

    from ..compose.issue_folder import new_issue
    from ..errors import display_path

    settings = settings_of(ctx)
    if sequence is not None:
        from ..sending.due.sequences import new_step

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


@click.command("build")
@click.argument("issue_dir", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder. Default: build/<issue-name>/.")
@click.pass_context
def build_command(ctx: click.Context, issue_dir: Path, out: Path | None) -> None:
    """Render ISSUE_DIR to email.html, email.txt, message.eml and web.html."""
    from ..checks import CheckContext, has_errors, run_checks_on
    from ..compose.build import default_build_dir, write_build
    from ..errors import display_path

    settings = settings_of(ctx)
    from ..compose.build import build_issue

    built = build_issue(settings, issue_dir)
    written = write_build(settings, built, out or default_build_dir(settings, built.issue))
    for path, size in written:
        click.echo(f"wrote {display_path(path)} ({size / 1024:.1f} KB)")
    findings = run_checks_on(CheckContext(settings, built.issue, built))
    echo_findings(findings, issue_dir)
    ctx.exit(1 if has_errors(findings) else 0)  # the files are written; the checks' errors still fail the build


@click.command("check")
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
    from ..checks import CheckOptions, check_issue, format_report, has_errors, report_json

    options = CheckOptions(check_links=check_links, archive_dir=archive_dir)
    _, findings = check_issue(settings_of(ctx), issue_dir, options=options)
    click.echo(report_json(findings) if output_format == "json" else format_report(findings, verbose))
    ctx.exit(1 if has_errors(findings) else 0)


@click.command("import")
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--issue", "issue_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The issue folder to add the article to (the one with issue.md).")
@click.option("--url", default=None,
              help="The article's web address: saved as source_url and used to make relative links absolute.")
@click.option("--force", is_flag=True, help="Replace an article file of the same name in the issue.")
def import_command(source: Path, issue_dir: Path, url: str | None, force: bool) -> None:
    """Turn SOURCE (scraped text, an HTML page or Markdown) into an article of the issue."""
    from ..compose.content import load_article
    from ..compose.importing import import_into_issue, import_warnings, word_count
    from ..errors import display_path

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
