"""Starting a newsletter (init, with a CI workflow) and taking a shipped theme to edit; the subscriber service."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import display_path
from .group import NewsletterGroup
from .options import settings_of


@click.command("init")
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
def init_command(folder: Path, name: str | None, from_address: str | None, postal_address: str | None,
                 base_url: str | None, unsubscribe_url: str,
                 list_name: str, ci: str | None, branch: str) -> None:
    """Start a newsletter in FOLDER (default: here): settings, issues/, subscribers/, templates/."""
    from ..config import CONFIG_FILE
    from ..scaffold import init_asking, missing_details

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
    from ..ci_workflow import write_workflow

    path = write_workflow(root, kind, branch)
    click.echo(f"created {display_path(path)}: pull requests are reviewed (newsletter review), and what is due is "
               f"sent from {branch} (newsletter send --due). Before it sends, set [send] journal_url to a shared "
               "PostgreSQL journal and add the secrets it names (docs/ci.md).")


@click.group("theme", cls=NewsletterGroup)
def theme_group() -> None:
    """Themes: the shipped ones, and copies in templates/ to edit."""


@theme_group.command("copy")
@click.argument("theme")
@click.option("--name", default=None, help="Folder name under templates/. Default: the theme's own name.")
@click.option("--force", is_flag=True, help="Replace templates/NAME/ if it exists.")
@click.pass_context
def theme_copy(ctx: click.Context, theme: str, name: str | None, force: bool) -> None:
    """Copy the shipped THEME into templates/ for editing; a theme there overrides the shipped one."""
    from ..themes import copy_theme

    target = copy_theme(settings_of(ctx), theme, name=name, force=force)
    click.echo(f"copied theme '{theme}' to {display_path(target)}/")
    if target.name != settings_of(ctx).theme:
        click.echo(f'Use it with theme = "{target.name}" under [newsletter] in newsletter.toml.')


@click.command("serve")
@click.option("--host", default=None, help="Address to listen on. Default: serve.host (127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="Port. Default: serve.port (8080).")
@click.pass_context
def serve_command(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Run the subscriber service: sign-up with double opt-in, one-click unsubscribe, provider events, clicks."""
    from ..serve.server import serve

    serve(settings_of(ctx), host, port, on_ready=lambda line: click.echo(line, err=True))
