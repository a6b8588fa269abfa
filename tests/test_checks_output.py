"""`newsletter check`: the example issue is free of errors; text and JSON output; message size."""

from __future__ import annotations

import json

from click.testing import CliRunner
from newsletter_helpers import write_issue

from newsletter.checks import (
    ERROR,
    GMAIL_CLIP_BYTES,
    INFO,
    WARNING,
    CheckContext,
    check_issue,
    check_size,
    run_checks_on,
)
from newsletter.cli import main
from newsletter.compose.build import build
from newsletter.compose.content import load_issue


def test_example_issue_has_no_errors(settings, example_issue):
    _, findings = check_issue(settings, example_issue)
    errors = [f for f in findings if f.severity == ERROR]
    assert errors == [], errors
    codes = {f.code for f in findings}
    assert "size" in codes and "spam-score" in codes  # the size and spam checks ran


def test_example_issue_passes_on_the_command_line(example_issue):
    result = CliRunner().invoke(main, ["check", str(example_issue)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Errors (" not in result.stdout
    assert result.stdout.rstrip().splitlines()[-1].startswith("0 errors, ")


def test_json_output_for_scripts(newsletter_root):
    folder = write_issue(newsletter_root, front="preheader: P")  # no subject: an error
    result = CliRunner().invoke(main, ["check", str(folder), "--format", "json"], catch_exceptions=False)
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert set(report) == {"findings", "errors", "warnings"}
    assert report["errors"] == sum(f["severity"] == "error" for f in report["findings"]) >= 1
    assert report["warnings"] == sum(f["severity"] == "warning" for f in report["findings"])
    first = report["findings"][0]
    assert set(first) == {"severity", "code", "message", "where", "line", "fix"}
    assert first["code"] == "no-subject" and first["where"] == "issues/2027-02-02-test/issue.md"


def test_text_output_groups_by_severity_and_names_file_and_line(newsletter_root):
    folder = write_issue(newsletter_root, front="subject: " + "A very long subject line " * 4 + "\npreheader: P")
    (folder / "issue.md").write_text((folder / "issue.md").read_text() + "\n[Here](https://example.com/x)\n")
    result = CliRunner().invoke(main, ["check", str(folder)], catch_exceptions=False)
    out = result.stdout
    assert result.exit_code == 0
    assert out.index("Warnings (") < out.index("Notes (")
    assert "  warning: issues/2027-02-02-test/issue.md:2: the subject is 99 characters" in out
    assert 'link text "Here" does not say where the link goes' in out
    assert "\n      fix: " in out


def test_sizes_are_reported_and_a_large_message_warns(settings, newsletter_root):
    def size_findings(paragraphs: int):
        body = "\n\n".join(f"Paragraph {i} " + "words " * 60 for i in range(paragraphs))
        folder = write_issue(newsletter_root, articles={"a.md": f"---\ntitle: Long\n---\n\n{body}\n"})
        issue = load_issue(folder)
        ctx = CheckContext(settings, issue, build(settings, issue))
        return ctx, {f.code: f for f in run_checks_on(ctx, [check_size])}

    ctx, findings = size_findings(3)
    assert findings["size"].severity == INFO and "whole message" in findings["size"].message
    assert set(findings) == {"size"}

    ctx, findings = size_findings(170)
    assert len(ctx.html.encode()) <= GMAIL_CLIP_BYTES < len(ctx.message_bytes)
    assert findings["message-too-large"].severity == WARNING
    assert "html-too-large" not in findings
