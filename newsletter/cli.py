"""Command-line interface: parse arguments, call the library, print, exit.

No logic a test would want lives here. Every command calls one library
function; a NewsletterError becomes its message on stderr and its exit code
(0 ok, 1 checks failed or some recipients failed, 2 usage or input error).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .config import Settings, load_settings
from .errors import NewsletterError


class NewsletterGroup(click.Group):
    """Turns a NewsletterError raised by any command into a message and an exit code."""

    def invoke(self, ctx: click.Context):  # noqa: D102
        try:
            return super().invoke(ctx)
        except NewsletterError as err:
            click.echo(f"Error: {err}", err=True)
            ctx.exit(err.exit_code)


def settings_of(ctx: click.Context) -> Settings:
    """Settings for this run, loaded once from --root or the nearest newsletter.toml."""
    obj = ctx.ensure_object(dict)
    if "settings" not in obj:
        obj["settings"] = load_settings(obj.get("root"))
    return obj["settings"]


@click.group(cls=NewsletterGroup)
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The newsletter folder (the one with newsletter.toml). Default: found from the current folder.")
@click.version_option(package_name="newsletter")
@click.pass_context
def main(ctx: click.Context, root: Path | None) -> None:
    """Compose, preview and send an email newsletter from plain files."""
    ctx.ensure_object(dict)["root"] = root


# --- compose and build (issue 2) -------------------------------------------

def _echo_findings(findings) -> None:
    from .checks import ERROR, format_finding

    errors = sum(1 for f in findings if f.severity == ERROR)
    for finding in findings:
        click.echo(format_finding(finding), err=finding.severity == ERROR)
    warnings = len(findings) - errors
    click.echo(f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}")


@main.command("new")
@click.argument("title")
@click.option("--date", "date_", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="Issue date (YYYY-MM-DD). Default: today.")
@click.option("--number", type=click.IntRange(min=1), default=None, help="Issue number shown in the header.")
@click.pass_context
def new_command(ctx: click.Context, title: str, date_, number: int | None) -> None:
    """Create issues/<date>-<slug>/issue.md with front matter to fill in."""
    import datetime as dt

    from .content import new_issue
    from .errors import display_path

    settings = settings_of(ctx)
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
    from .build import default_build_dir, write_build
    from .checks import CheckContext, run_checks_on
    from .errors import display_path

    settings = settings_of(ctx)
    from .build import build_issue

    built = build_issue(settings, issue_dir)
    written = write_build(settings, built, out or default_build_dir(settings, built.issue))
    for path, size in written:
        click.echo(f"wrote {display_path(path)} ({size / 1024:.1f} KB)")
    _echo_findings(run_checks_on(CheckContext(settings, built.issue, built)))


@main.command("check")
@click.argument("issue_dir", type=click.Path(path_type=Path))
@click.pass_context
def check_command(ctx: click.Context, issue_dir: Path) -> None:
    """Run the preflight checks; exit 1 when any error is found."""
    from .checks import check_issue, has_errors

    _, findings = check_issue(settings_of(ctx), issue_dir)
    _echo_findings(findings)
    ctx.exit(1 if has_errors(findings) else 0)


# --- subscribers (issue 3) -------------------------------------------------

# --- send (issue 5) --------------------------------------------------------

# --- preview, screenshot, archive (issue 6) --------------------------------


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
