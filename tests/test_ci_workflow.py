"""``newsletter init --ci github|gitlab``: a publishing workflow whose steps are plain ``newsletter`` commands."""

from __future__ import annotations

from pathlib import Path

import yaml
from click.testing import CliRunner

from newsletter.cli import main


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def newsletter_steps(workflow: dict, kind: str) -> dict[str, list[str]]:
    """Each job's commands, as CI would run them."""
    if kind == "github":
        return {name: [step["run"] for step in job["steps"] if "run" in step] for name, job in workflow["jobs"].items()}
    return {name: job["script"] for name, job in workflow.items() if isinstance(job, dict) and "script" in job}


def test_init_ci_github_in_an_existing_newsletter_writes_only_the_workflow(newsletter_root: Path) -> None:
    result = run("init", ".", "--ci", "github", "--branch", "trunk")
    assert result.exit_code == 0, result.output
    path = newsletter_root / ".github" / "workflows" / "newsletter.yml"
    workflow = yaml.safe_load(path.read_text())
    assert set(workflow[True]) == {"pull_request", "push", "schedule", "workflow_dispatch"}  # YAML 1.1: on -> True
    assert workflow[True]["push"]["branches"] == ["trunk"]
    steps = newsletter_steps(workflow, "github")
    assert 'newsletter review --since "origin/${{ github.base_ref }}" --out review' in steps["review"]
    assert "newsletter send --due --yes" in steps["send"]
    assert workflow["jobs"]["send"]["env"]["NEWSLETTER_DATABASE_PASSWORD"] == "${{ secrets.NEWSLETTER_DATABASE_PASSWORD }}"
    assert "journal_url" in result.output and "docs/ci.md" in result.output
    again = CliRunner().invoke(main, ["init", ".", "--ci", "github"])
    assert again.exit_code == 2 and "already there" in again.output


def test_init_ci_gitlab_with_a_new_newsletter(tmp_path: Path) -> None:
    result = run("init", str(tmp_path / "letter"), "--name", "Letter", "--from", "L <l@example.com>",
                 "--postal-address", "1 Example Road", "--base-url", "https://example.com/l/", "--ci", "gitlab")
    assert result.exit_code == 0, result.output
    workflow = yaml.safe_load((tmp_path / "letter" / ".gitlab-ci.yml").read_text())
    steps = newsletter_steps(workflow, "gitlab")
    assert any(s.startswith("newsletter review --since") for s in steps["review"])
    assert "newsletter send --due --yes" in steps["send"] and workflow["send"]["resource_group"] == "newsletter-send"
