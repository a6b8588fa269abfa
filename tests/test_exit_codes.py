"""Exit codes as the README says, for ``build``, ``check`` and dry runs (issue 20, finding 7):
0 ok; 1 the checks found errors, or recipients would fail (or failed); 2 usage or input error.

A script or CI job that runs ``newsletter build`` or ``newsletter send --dry-run`` before the real send
must be stopped by the same things that would stop (or fail) the send.
"""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from test_send import ISSUE

from newsletter.cli import main


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _without_subject(root: Path) -> None:
    """The example issue with an empty subject: an error of the preflight checks."""
    path = root / ISSUE / "issue.md"
    text = path.read_text()
    start = text.index("\nsubject:") + 1
    end = text.index("\n", start)
    path.write_text(text[:start] + 'subject: ""' + text[end:])


def test_build_exits_1_when_the_checks_find_an_error_and_0_when_they_do_not(newsletter_root: Path) -> None:
    clean = run("build", ISSUE)
    assert clean.exit_code == 0, clean.output
    _without_subject(newsletter_root)
    failing = run("build", ISSUE)
    assert "1 error" in failing.output and failing.exit_code == 1, failing.output
    assert (newsletter_root / "build").is_dir()  # the files are still written, to look at
    assert run("build", "issues/no-such-issue").exit_code == 2


def test_check_exits_1_on_an_error_and_2_on_bad_input(newsletter_root: Path) -> None:
    assert run("check", ISSUE).exit_code == 0
    _without_subject(newsletter_root)
    for extra in ((), ("--format", "json")):
        result = run("check", ISSUE, *extra)
        assert result.exit_code == 1, result.output
    assert run("check", "issues/no-such-issue").exit_code == 2


def test_a_dry_run_that_predicts_a_failed_recipient_exits_1(newsletter_root: Path) -> None:
    (newsletter_root / "subscribers" / "two.csv").write_text(
        'email,name,status\nok@example.com,Ok,subscribed\nbad@example.com,"Two\nLines",subscribed\n')
    result = run("send", ISSUE, "--list", "two", "--dry-run")
    assert "would send 1 of 2" in result.output and "1 failed" in result.output, result.output
    assert "failed: bad@example.com" in result.output
    assert result.exit_code == 1


def test_a_dry_run_of_a_send_the_checks_would_refuse_exits_1(newsletter_root: Path) -> None:
    _without_subject(newsletter_root)
    result = run("send", ISSUE, "--list", "example", "--dry-run")
    assert "would send 4 of 4" in result.output, result.output  # it still shows what would go out
    assert "The send itself would be refused: the preflight checks found errors" in result.output
    assert result.exit_code == 1


def test_a_clean_dry_run_exits_0_and_bad_input_2(newsletter_root: Path) -> None:
    assert run("send", ISSUE, "--list", "example", "--dry-run").exit_code == 0
    assert run("send", ISSUE, "--list", "no-such-list", "--dry-run").exit_code == 2
