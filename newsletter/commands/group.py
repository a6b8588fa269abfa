"""The command group every command of ``newsletter`` is in: a NewsletterError (or an OSError the library did
not expect) becomes a message and an exit code, never a traceback; help lists whole summaries."""

from __future__ import annotations

from typing import Any

import click

from ..errors import NewsletterError, os_error


class NewsletterGroup(click.Group):
    """Turns a NewsletterError raised by any command into a message and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
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
