"""``newsletter init --ci github|gitlab``: a publishing workflow whose steps are plain ``newsletter`` commands."""

from __future__ import annotations

import subprocess
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


def _steps(job: dict, github: dict[str, str]) -> list[str]:
    """A GitHub job's ``run:`` steps as bash would get them, ``${{ ... }}`` filled in; the install step is left out
    (the package is installed already: the test runs this checkout's newsletter)."""
    commands = []
    for step in job["steps"]:
        command = step.get("run")
        if command is None or "pip install" in command:
            continue
        for expression, value in github.items():
            command = command.replace("${{ " + expression + " }}", value)
        assert "${{" not in command, command
        commands.append(command)
    return commands


def _bash(commands: list[str], cwd: Path, env: dict[str, str]) -> str:
    output = ""
    for command in commands:
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=300)
        output += done.stdout + done.stderr
        assert done.returncode == 0, f"{command}\n{done.stdout}{done.stderr}"
    return output


def test_the_workflow_run_locally_reviews_a_pull_request_then_sends_the_merged_issue_once(
        newsletter_root: Path, smtp_server, postgres_url: str, tmp_path: Path) -> None:
    """The steps of the workflow `init --ci github` writes, run in order with bash in fresh clones, as GitHub
    would: the pull request is reviewed; the merged issue (send_at: passed, send_to: example) is sent at the
    next send job over SMTP through the shared PostgreSQL journal, its record committed back; the next
    scheduled run sends nothing."""
    import os
    import sys

    from due_helpers import send_over_smtp
    from journal_fixtures import fresh_schema_url

    send_over_smtp(newsletter_root, smtp_server)
    with (newsletter_root / "newsletter.toml").open("a") as config:
        config.write(f'\n[send]\njournal_url = "{fresh_schema_url(postgres_url)}"\n')
    assert run("init", ".", "--ci", "github").exit_code == 0
    workflow = yaml.safe_load((newsletter_root / ".github/workflows/newsletter.yml").read_text())
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "GIT_AUTHOR_NAME": "Writer", "GIT_AUTHOR_EMAIL": "writer@example.com",
           "GIT_COMMITTER_NAME": "Writer", "GIT_COMMITTER_EMAIL": "writer@example.com"}
    git = ["bash", "-c"]
    origin = tmp_path / "origin.git"
    for command in ("git init -q -b main", "git add -A", "git commit -qm newsletter",
                    f"git clone -q --bare . {origin}"):
        subprocess.run([*git, command], cwd=newsletter_root, env=env, check=True, capture_output=True)

    # A pull request: a new issue that asks to go to list example at a time already past.
    writer = tmp_path / "writer"
    subprocess.run(["git", "clone", "-q", str(origin), str(writer)], env=env, check=True)
    issue = writer / "issues" / "2027-01-04-news"
    issue.mkdir()
    (issue / "issue.md").write_text('---\nsubject: "News for January"\npreheader: "What is new"\ndate: 2027-01-04\n'
                                    'send_at: "2026-12-01T09:00+00:00"\nsend_to: example\narticles: []\n---\n\n'
                                    "Hello {{ subscriber.name | default('there') }}, here is the news.\n")
    _bash(["git checkout -q -b news", "git add -A", "git commit -qm 'January news'", "git push -q origin news"],
          writer, env)
    review = tmp_path / "review-checkout"
    _bash([f"git clone -q {origin} {review}", f"git -C {review} checkout -q news"], tmp_path, env)
    out = _bash(_steps(workflow["jobs"]["review"], {"github.base_ref": "main"}), review, env)
    assert "Reviewed 1 issue changed since origin/main" in out, out
    assert sorted(p.name for p in (review / "review" / "2027-01-04-news").glob("*.png"))

    # Merged: the send job in a fresh checkout, as on every push and every 15 minutes.
    _bash(["git checkout -q main", "git merge -q news", "git push -q origin main"], writer, env)
    for run_number in (1, 2):
        checkout = tmp_path / f"ci-{run_number}"
        _bash([f"git clone -q {origin} {checkout}"], tmp_path, env)
        out = _bash(_steps(workflow["jobs"]["send"], {"secrets." + name: "" for name in (
            "NEWSLETTER_DATABASE_PASSWORD", "NEWSLETTER_UNSUBSCRIBE_SECRET", "SENDGRID_API_KEY", "SMTP_PASSWORD")}),
            checkout, {**env, "NEWSLETTER_UNSUBSCRIBE_SECRET": "ci-secret"})
        if run_number == 1:
            assert "as its send_at: and send_to: ask" in out and "sent 4 of 4" in out, out
    received = [m.message()["Subject"] for m in smtp_server.handler.received]
    assert received == ["News for January"] * 4  # once each, though the send job ran twice
    log = subprocess.run(["git", "log", "--oneline", "main"], cwd=origin, env=env, capture_output=True, text=True)
    assert "newsletter: record what was sent" in log.stdout  # the record committed back, once
    shown = subprocess.run(["git", "show", "main:issues/2027-01-04-news/issue.md"], cwd=origin, env=env,
                           capture_output=True, text=True).stdout
    assert "sent:\n- {list: \"example\"" in shown


def test_a_ci_run_whose_record_was_never_committed_back_mails_nobody_twice(newsletter_root: Path, smtp_server,
                                                                          postgres_url: str, tmp_path: Path) -> None:
    """The commit back failed (no push permission): the next checkout has the issue without its id and record.
    The shared journal knows the folder and subject under the id the first run gave it: refused, not re-mailed."""
    import shutil

    from due_helpers import send_over_smtp
    from journal_fixtures import fresh_schema_url

    send_over_smtp(newsletter_root, smtp_server)
    with (newsletter_root / "newsletter.toml").open("a") as config:
        config.write(f'\n[send]\njournal_url = "{fresh_schema_url(postgres_url)}"\n')
    issue = newsletter_root / "issues" / "2026-12-01-news"
    issue.mkdir()
    (issue / "issue.md").write_text('---\nsubject: "News"\npreheader: "New"\ndate: 2026-12-01\n'
                                    'send_at: "2026-12-01T09:00+00:00"\nsend_to: example\narticles: []\n---\n\nHello.\n')
    pristine = tmp_path / "pristine"
    shutil.copytree(newsletter_root, pristine)
    first = CliRunner().invoke(main, ["--root", str(newsletter_root), "send", "--due", "--yes"])
    assert first.exit_code == 0 and "sent 4 of 4" in first.output, first.output
    second = CliRunner().invoke(main, ["--root", str(pristine), "send", "--due", "--yes"])
    assert second.exit_code == 2 and "has no 'id:' yet" in second.output, second.output
    assert len(smtp_server.handler.received) == 4
