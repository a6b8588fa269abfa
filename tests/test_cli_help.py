"""``--help`` lists every command with its whole one-line summary, never cut off with '...'."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from newsletter.cli import main


def _groups(group: click.Group, path: tuple[str, ...] = ()):
    yield path, group
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _groups(command, (*path, name))


@pytest.mark.parametrize("path, group", list(_groups(main)), ids=lambda v: " ".join(v) if isinstance(v, tuple) else "")
def test_help_lists_whole_summaries(path: tuple[str, ...], group: click.Group):
    result = CliRunner().invoke(main, [*path, "--help"], terminal_width=80)
    assert result.exit_code == 0
    listing = result.output.split("Commands:", 1)[1]
    assert "…" not in listing
    flowing = " ".join(listing.split())
    for name, command in group.commands.items():
        first_line = " ".join((command.help or "").split("\n\n")[0].split())
        assert f"{name} {first_line}" in flowing, f"{name}: summary not shown whole"
