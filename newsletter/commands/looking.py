"""Looking at an issue: the live preview, pictures of the email, the pull request review, the web archive."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import display_path
from .options import once, settings_of

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ..looking.preview import Snapshot


def _echo_rebuild(snapshot: Snapshot, changed: Iterable[str]) -> None:
    """One line per build of a running preview, and one when its checks are in."""
    from ..checks import summary_line

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


@click.command("preview")
@click.argument("issue_dir", type=click.Path(path_type=Path))
@click.option("--port", type=click.IntRange(0, 65535), default=8025, show_default=True,
              help="Port to listen on (0: any free port).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Any other than 127.0.0.1 lets other computers see the preview.")
@click.option("--list", "list_name", multiple=True, callback=once, metavar="NAME",
              help="Add a picker of this list's recipients, to see each one's personalized email.")
@click.option("--open", "open_browser", is_flag=True, help="Open the preview in the web browser.")
@click.pass_context
def preview_command(ctx: click.Context, issue_dir: Path, port: int, host: str, list_name: str | None,
                    open_browser: bool) -> None:
    """Serve a preview of ISSUE_DIR that updates itself whenever a file of the issue changes."""
    import webbrowser

    from ..errors import display_path
    from ..hosts import is_loopback
    from ..looking.preview_server import make_preview_server

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


@click.command("screenshot")
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
    from ..errors import display_path
    from ..looking.screenshot import screenshot_issue

    shots = screenshot_issue(settings_of(ctx), issue_dir, out, widths, dark=dark)
    for shot in shots:
        click.echo(f"wrote {display_path(shot.path)} ({shot.width} x {shot.height} px)")
    click.echo(f"{len(shots)} screenshot{'s' * (len(shots) != 1)}{' in dark mode' if dark else ''}")


@click.command("archive")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the site. Default: site/ in the newsletter's folder.")
@click.option("--drafts", is_flag=True, help="Also publish issues marked draft: true or dated in the future.")
@click.option("--sent-only", is_flag=True, help="Publish only the issues the send journal shows as sent.")
@click.option("--stats", "with_stats", is_flag=True,
              help="Also publish each sent issue's stats page (stats.html: figures and charts, no reader named).")
@click.pass_context
def archive_command(ctx: click.Context, out: Path | None, drafts: bool, sent_only: bool, with_stats: bool) -> None:
    """Write a static web archive of the published issues, with an index page and an Atom feed."""
    from ..errors import display_path
    from ..looking.archive import write_archive

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


@click.command("review")
@click.option("--since", default=None, metavar="REVISION",
              help="Only the issues changed since this git revision (e.g. origin/main). Default: every issue not sent.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("review"), show_default=True,
              help="Where each issue's build, check report and screenshots go.")
@click.option("--no-screenshots", "no_pictures", is_flag=True, help="Build and check only.")
@click.pass_context
def review_command(ctx: click.Context, since: str | None, out: Path, no_pictures: bool) -> None:
    """Build, check and photograph the issues a change touches (for a pull request's reviewers)."""
    from ..looking.review import any_errors, changed_since, review, unsent_folders

    settings = settings_of(ctx)
    folders = changed_since(settings, since) if since else unsent_folders(settings)
    results = review(settings, folders, out, pictures=not no_pictures)
    for result in results:
        click.echo(f"{display_path(result.folder)}: {result.errors} errors, {result.warnings} warnings; "
                   f"{len(result.pictures)} screenshots; in {display_path(result.out)}/")
    click.echo(f"Reviewed {len(results)} issue{'s' * (len(results) != 1)}"
               + (f" changed since {since}" if since else "") + f": {display_path(out)}/")
    ctx.exit(1 if any_errors(results) else 0)
