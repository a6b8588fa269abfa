"""`newsletter check` is quiet by default: notes about the shipped theme are counted, not listed."""

from __future__ import annotations

from click.testing import CliRunner
from newsletter_helpers import write_issue

from newsletter.checks import WARNING, check_issue
from newsletter.cli import main

FEATURES = """Text with a picture:

<img src="https://example.org/seals.jpg" alt="Seals on the rocks" width="536">

| Town | Seals |
|------|------:|
| Oban | 12 |

```
seals --count
```

> A quote from the warden.
"""


def test_the_example_issue_prints_at_most_ten_lines(example_issue):
    result = CliRunner().invoke(main, ["check", str(example_issue)], catch_exceptions=False)

    lines = result.stdout.rstrip("\n").splitlines()
    assert result.exit_code == 0, result.output
    assert len(lines) <= 10, result.stdout
    assert "notes about the theme: `--verbose` lists them" in result.stdout
    assert "newsletter/themes/default/" not in result.stdout


def test_verbose_lists_the_notes_about_the_theme(example_issue):
    quiet = CliRunner().invoke(main, ["check", str(example_issue)], catch_exceptions=False).stdout
    verbose = CliRunner().invoke(main, ["check", "--verbose", str(example_issue)], catch_exceptions=False).stdout

    assert verbose.count("newsletter/themes/default/") >= 30
    assert quiet.splitlines()[-1] == verbose.splitlines()[-1]  # the same counts either way
    assert "caniemail.com" not in quiet and "caniemail.com" in verbose


def test_the_shipped_theme_gives_no_warnings_for_images_tables_code_and_quotes(settings, newsletter_root):
    folder = write_issue(newsletter_root, articles={"a.md": f"---\ntitle: Seals\n---\n\n{FEATURES}"})

    _, findings = check_issue(settings, folder)

    theme_warnings = [f for f in findings if f.severity == WARNING and "themes/default" in f.where]
    assert theme_warnings == []


def test_a_writers_own_theme_keeps_full_reporting(own_theme, newsletter_root):
    folder = write_issue(newsletter_root, articles={"a.md": f"---\ntitle: Seals\n---\n\n{FEATURES}"})

    result = CliRunner().invoke(main, ["check", str(folder)], catch_exceptions=False)

    assert "about the theme" not in result.stdout
    assert result.stdout.count("templates/default/") >= 30  # every note about the own theme is listed


def test_build_prints_only_errors_warnings_and_a_summary(example_issue):
    result = CliRunner().invoke(main, ["build", str(example_issue)], catch_exceptions=False)

    assert result.exit_code == 0, result.output
    assert "themes/default" not in result.output
    assert len(result.output.splitlines()) <= 10, result.output
