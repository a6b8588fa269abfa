"""Every input error is one clear error: it names the file, line or setting and the fix, exits 2,
writes nothing, and never shows a traceback or silently drops what it could not read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from newsletter.cli import main

ISSUE = "issues/2026-11-25-first-dispatch"


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def assert_input_error(result: Result, *fragments: str) -> None:
    """Exit 2, no traceback, and an error message holding every fragment."""
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


@pytest.fixture
def no_spamassassin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A PATH without SpamAssassin: a dry run's spam check is then a warning, not seconds of scoring."""
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


# --- strict CSV --------------------------------------------------------------


def test_an_import_file_with_an_unclosed_quote_stops_at_its_line_and_writes_nothing(newsletter_root: Path) -> None:
    lines = ["email,name", "ada@example.com,Ada", 'grace@example.org,"Grace Hopper']
    lines += [f"reader{i}@example.com,Reader {i}" for i in range(500)]
    (newsletter_root / "export.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    target = newsletter_root / "subscribers" / "example.csv"
    before = target.read_bytes()

    result = run("subscribers", "import", "export.csv", "--list", "example")

    assert_input_error(result, "export.csv:3:", "never closed")
    assert target.read_bytes() == before
    assert [p.name for p in target.parent.iterdir()] == ["example.csv"]  # not even a lock or temporary file


def test_an_import_row_of_the_wrong_width_stops_the_import(newsletter_root: Path) -> None:
    (newsletter_root / "export.csv").write_text(
        "email,name\nada@example.com,Ada\ngrace@example.org,Grace,Hopper,USN\nalan@example.com,Alan\n",
        encoding="utf-8")
    target = newsletter_root / "subscribers" / "example.csv"
    before = target.read_bytes()

    result = run("subscribers", "import", "export.csv", "--list", "example")

    assert_input_error(result, "export.csv:3: this row has 4 fields but the header has 2")
    assert target.read_bytes() == before


def _corrupt_example_list(newsletter_root: Path) -> Path:
    """The example list with an unclosed quote in the last column of line 3: the row keeps its width,
    and without strict reading every row after it vanished into that one cell."""
    path = newsletter_root / "subscribers" / "example.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    assert len(lines) > 4 and header[-1] != "email"
    cells = lines[2].split(",")
    cells[-1] = '"' + cells[-1]
    lines[2] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_corrupt_list_stops_subscribers_list_at_its_line(newsletter_root: Path) -> None:
    _corrupt_example_list(newsletter_root)

    result = run("subscribers", "list", "--list", "example")

    assert_input_error(result, "subscribers/example.csv:3:", "never closed")


def test_a_corrupt_list_stops_a_dry_run_send_at_its_line(newsletter_root: Path, no_spamassassin: None) -> None:
    _corrupt_example_list(newsletter_root)

    result = run("send", ISSUE, "--list", "example", "--dry-run")

    assert_input_error(result, "subscribers/example.csv:3:", "never closed")
    assert not (newsletter_root / "outbox").exists()


def test_text_after_a_closing_quote_is_refused_with_its_line(newsletter_root: Path) -> None:
    path = newsletter_root / "subscribers" / "example.csv"
    path.write_text('email,name\nada@example.com,"Ada" Lovelace\n', encoding="utf-8")

    result = run("subscribers", "list", "--list", "example")

    assert_input_error(result, "subscribers/example.csv:2: cannot read this CSV row", "double the quotes")


# --- list names --------------------------------------------------------------


@pytest.mark.parametrize("command", [
    ["send", ISSUE, "--dry-run"],
    ["subscribers", "list"],
    ["subscribers", "add", "ada@example.com"],
])
def test_a_list_name_that_leaves_subscribers_is_refused_everywhere(
        newsletter_root: Path, tmp_path: Path, no_spamassassin: None, command: list[str]) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x.csv").write_text("email,name\nstranger@example.org,Stranger\n", encoding="utf-8")
    before = (elsewhere / "x.csv").read_bytes()

    result = run(*command, "--list", "../../elsewhere/x")

    assert_input_error(result, "'../../elsewhere/x' is not a list name", "no '/' or '..'")
    assert (elsewhere / "x.csv").read_bytes() == before
    assert not (newsletter_root / "outbox").exists()
