"""What the commands share: the settings of this run, and the options several commands take (--list, the
filters, KEY=VALUE pairs)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..lists.statuses import STATUSES

if TYPE_CHECKING:
    from ..config import Settings


def settings_of(ctx: click.Context) -> Settings:
    """Settings for this run, loaded once from --root or the nearest newsletter.toml."""
    from ..config import load_settings

    obj = ctx.ensure_object(dict)
    if "settings" not in obj:
        obj["settings"] = load_settings(obj.get("root"))
    settings: Settings = obj["settings"]
    return settings


def key_values(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    """Turn repeated KEY=VALUE options into a dict, refusing anything without '='."""
    pairs: dict[str, str] = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"'{value}' is not KEY=VALUE (for example city=London)", ctx=ctx, param=param)
        pairs[key.strip()] = rest
    return pairs


def list_path(ctx: click.Context, name: str) -> Path:
    """subscribers/NAME.csv, once NAME has passed the one list-name check (Settings.list_path applies it)."""
    return settings_of(ctx).list_path(name)


def once(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> str | None:
    """An option given twice would otherwise be its last value, silently: ``--list a --list b`` a send
    to list b alone."""
    if len(values) > 1:
        raise click.BadParameter(f"given {len(values)} times ({', '.join(values)}); give it once "
                                 "(run the command once per list)")
    return values[0] if values else None


list_option = click.option("--list", "-l", "list_name", required=True, metavar="NAME", multiple=True,
                            callback=once, help="The list to use: subscribers/NAME.csv.")


_filter_options = [
    click.option("--tag", "tags", multiple=True, metavar="TAG",
                 help="Only rows with this tag (repeat for rows with all of several)."),
    click.option("--where", "where", multiple=True, callback=key_values, metavar="FIELD=VALUE",
                 help="Only rows whose column FIELD equals VALUE, ignoring case (repeatable)."),
    click.option("--status", "statuses", multiple=True, type=click.Choice(STATUSES),
                 help="Only rows with this status (repeatable). Default: every status."),
]


_Command = TypeVar("_Command", bound=Callable[..., Any])


def filters(command: _Command) -> _Command:
    """The --tag, --where and --status options of list and export, in one decorator."""
    for option in reversed(_filter_options):
        command = option(command)
    return command
