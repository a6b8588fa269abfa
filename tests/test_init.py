"""A writer's first hour, outside this repository: ``newsletter init`` then the whole loop, through the
real ``newsletter`` console script in a scratch folder."""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest
from journal_reading import preview_url

REPO = Path(__file__).resolve().parent.parent
IMPORTS = REPO / "tests" / "data" / "import"
ISSUE = "issues/2027-03-01-spring-notes"
DETAILS = ["--name", "Garden Notes", "--from", "Garden Notes <notes@example.com>",
           "--postal-address", "1 Example Road, Springfield, EX 12345", "--base-url", "https://example.com/garden"]


def console_script() -> str:
    """The installed ``newsletter`` command of this environment (what a user types)."""
    beside = Path(sys.executable).parent / "newsletter"
    found = str(beside) if beside.is_file() else shutil.which("newsletter")
    assert found, "the newsletter console script is not installed: pip install -e ."
    return found


def clean_env() -> dict[str, str]:
    """The environment of a writer who has set no secrets yet."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("SENDGRID_API_KEY", "SMTP_PASSWORD", "NEWSLETTER_UNSUBSCRIBE_SECRET")}
    return env


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([console_script(), *args], cwd=cwd, env=clean_env(), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=300)


def preview_shows(folder: Path, issue: str, text: str) -> None:
    """``newsletter preview`` serves the issue: its page loads and the email in it holds ``text``."""
    process = subprocess.Popen([console_script(), "preview", issue, "--port", "0"], cwd=folder, env=clean_env(),
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        url = preview_url(process, timeout=60)
        with no_proxy.open(url, timeout=30) as response:
            assert b'id="email"' in response.read()
        with no_proxy.open(url + "email", timeout=30) as response:
            assert text in response.read().decode("utf-8")
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def scratch(tmp_path: Path, spamassassin_standin: Path) -> Path:
    assert not tmp_path.resolve().is_relative_to(REPO)
    return tmp_path


def test_init_then_new_import_build_preview_check_and_dry_run_work_outside_the_repository(scratch: Path):
    made = run(scratch, "init", "letter", *DETAILS)
    assert made.returncode == 0, made.stderr
    letter = scratch / "letter"
    settings = tomllib.loads((letter / "newsletter.toml").read_text(encoding="utf-8"))["newsletter"]
    assert settings["name"] == "Garden Notes" and settings["base_url"] == "https://example.com/garden"
    assert (letter / "subscribers" / "readers.csv").read_text() == "email,name,status,tags,subscribed_at\n"
    assert (letter / "issues").is_dir() and (letter / "templates" / "README.md").is_file()
    assert not (letter / "templates" / "default").exists()  # the theme stays in the package
    ignored = (letter / ".gitignore").read_text().split()
    assert {"build/", "outbox/", "site/", "screenshots/", ".newsletter/"} <= set(ignored)

    assert run(letter, "subscribers", "add", "ada@example.com", "--list", "readers", "--name", "Ada").returncode == 0
    assert run(letter, "new", "Spring notes", "--date", "2027-03-01").returncode == 0
    markdown = scratch / "tools.md"
    markdown.write_text("---\ntitle: Tools worth keeping\nauthor: Ada\n---\n\nA spade, a fork and a *hoe*.\n")
    for source in (IMPORTS / "page.html", IMPORTS / "seed.txt", markdown):
        imported = run(letter, "import", str(source), "--issue", ISSUE)
        assert imported.returncode == 0, imported.stderr
    issue_md = (letter / ISSUE / "issue.md").read_text()
    assert issue_md.count(".md\n") >= 3  # three articles listed

    built = run(letter, "build", ISSUE)
    assert built.returncode == 0, built.stderr
    email = (letter / "build" / "2027-03-01-spring-notes" / "email.html").read_text()
    assert "Why Community Gardens Outlast Their Founders" in email and "Tools worth keeping" in email
    assert "1 Example Road, Springfield" in email

    preview_shows(letter, ISSUE, "Why Community Gardens Outlast Their Founders")

    checked = run(letter, "check", ISSUE)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "0 errors" in checked.stdout

    dry = run(letter, "send", ISSUE, "--list", "readers", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would send 1 of 1" in dry.stdout
    assert (letter / "outbox" / "2027-03-01-spring-notes" / "sample-1.eml").is_file()


def _uncommented_smtp(toml: str) -> str:
    """The settings with init's commented [smtp] table switched on, as its comment tells the writer."""
    lines = toml.splitlines()
    start = lines.index("# [smtp]")
    end = lines.index("", start)
    lines[start:end] = [line.removeprefix("# ") for line in lines[start:end]]
    return "\n".join(lines).replace('provider = "sendgrid"', 'provider = "smtp"') + "\n"


def test_init_writes_a_commented_smtp_table_and_a_serve_table_that_load(scratch: Path):
    """Issue 20, finding 24: SMTP set-up was only in the docs, and `serve` failed until lists were added."""
    assert run(scratch, "init", "letter", *DETAILS, "--list", "friends").returncode == 0
    letter = scratch / "letter"
    toml = (letter / "newsletter.toml").read_text(encoding="utf-8")
    settings = tomllib.loads(toml)
    assert "smtp" not in settings  # commented out: SendGrid stays the provider until the writer says
    assert settings["serve"] == {"lists": ["friends"]}
    assert settings["newsletter"]["unsubscribe_url"] == "https://example.com/garden/unsubscribe/{token}"  # serve's page

    from newsletter.config import load_settings

    (letter / "newsletter.toml").write_text(_uncommented_smtp(toml), encoding="utf-8")
    loaded = load_settings(letter)
    assert loaded.provider == "smtp" and loaded.serve.lists == ("friends",)
    assert (loaded.smtp.host, loaded.smtp.port, loaded.smtp.security) == ("smtp.example.com", 587, "starttls")
    assert loaded.smtp.username == "you@example.com" and loaded.smtp.password_env == "SMTP_PASSWORD"


def test_serve_starts_in_a_fresh_newsletter_and_shows_the_sign_up_form(scratch: Path):
    """`newsletter serve` right after `newsletter init`, as a writer runs it: the first list takes sign-ups."""
    assert run(scratch, "init", "letter", *DETAILS).returncode == 0
    env = {**clean_env(), "NEWSLETTER_UNSUBSCRIBE_SECRET": "a-secret-for-this-test-only"}
    process = subprocess.Popen([console_script(), "serve", "--port", "0"], cwd=scratch / "letter", env=env,
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        url = None
        deadline = time.monotonic() + 60
        output = ""
        while url is None and time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            output += line
            if line.startswith("Serving on "):
                url = line.split()[2]
        assert url, output + (process.stderr.read() if process.poll() is not None else "")
        with no_proxy.open(url + "subscribe/readers", timeout=30) as response:
            page = response.read().decode("utf-8")
        assert response.status == 200 and "Garden Notes" in page and "<form" in page
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_init_without_a_terminal_names_every_missing_flag(scratch: Path):
    result = run(scratch, "init", "letter", "--name", "Garden Notes")
    assert result.returncode == 2
    for flag in ("--from", "--postal-address", "--base-url"):
        assert flag in result.stderr
    assert "--name," not in result.stderr and "Traceback" not in result.stderr
    assert not (scratch / "letter" / "newsletter.toml").exists()


def answer_on_a_terminal(scratch: Path, args: list[str], answers: list[str]) -> tuple[int, str]:
    """Run ``newsletter`` on a real terminal (a pty), typing each answer when a prompt ends in ':'."""
    main, child_side = pty.openpty()
    process = subprocess.Popen([console_script(), *args], cwd=scratch,
                               env=clean_env(), stdin=child_side, stdout=child_side, stderr=child_side)
    os.close(child_side)
    answers = list(answers)
    output = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(main, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
            if output.rstrip().endswith(b":") and answers:
                os.write(main, answers.pop(0).encode() + b"\n")
        elif process.poll() is not None:
            break
    process.wait(timeout=30)
    os.close(main)
    return process.returncode, output.decode(errors="replace")


def test_init_asks_on_a_terminal(scratch: Path):
    """On a real terminal (a pty) init prompts for what the flags did not give."""
    answers = ["Garden Notes <notes@example.com>", "1 Example Road, Springfield", "https://example.com/garden"]
    returncode, output = answer_on_a_terminal(scratch, ["init", "letter", "--name", "Garden Notes"], answers)
    assert returncode == 0, output
    assert "Postal address" in output and "Web address of the archive" in output
    assert "Newsletter name" not in output  # given as a flag
    settings = tomllib.loads((scratch / "letter" / "newsletter.toml").read_text())["newsletter"]
    assert settings["postal_address"] == "1 Example Road, Springfield"
    assert settings["from"] == "Garden Notes <notes@example.com>"


def test_init_asks_again_for_an_answer_it_cannot_use(scratch: Path):
    """A typo in one answer costs that answer, not the whole session: init says why and asks again."""
    answers = ["not an address", "1 Example Road, Springfield", "example.com/garden",
               "Garden Notes <notes@example.com>", "https://example.com/garden"]
    returncode, output = answer_on_a_terminal(scratch, ["init", "letter", "--name", "Garden Notes"], answers)
    assert returncode == 0, output
    assert "not an email address" in output and "must start with https://" in output
    assert output.count("From address") == 2 and output.count("Web address of the archive") == 2
    settings = tomllib.loads((scratch / "letter" / "newsletter.toml").read_text())["newsletter"]
    assert settings["from"] == "Garden Notes <notes@example.com>"
    assert settings["base_url"] == "https://example.com/garden"


def test_init_refuses_to_overwrite_a_newsletter(scratch: Path):
    assert run(scratch, "init", "letter", *DETAILS).returncode == 0
    config = scratch / "letter" / "newsletter.toml"
    config.write_text(config.read_text() + "# my edits\n")
    again = run(scratch, "init", "letter", *DETAILS)
    assert again.returncode == 2
    assert "already" in again.stderr and "newsletter.toml" in again.stderr
    assert config.read_text().endswith("# my edits\n")


def test_init_keeps_an_existing_gitignore_and_adds_what_it_lacks(scratch: Path):
    (scratch / ".gitignore").write_text("notes/\nbuild/\n")
    assert run(scratch, "init", *DETAILS).returncode == 0
    lines = (scratch / ".gitignore").read_text().splitlines()
    assert lines[:2] == ["notes/", "build/"] and lines.count("build/") == 1 and "outbox/" in lines


def test_init_reports_a_bad_address_and_writes_nothing(scratch: Path):
    details = list(DETAILS)
    details[details.index("--from") + 1] = "not an address"
    result = run(scratch, "init", "letters/letter", *details)
    assert result.returncode == 2
    assert "not an email address" in result.stderr and "--from" in result.stderr
    assert "--name" not in result.stderr and "--base-url" not in result.stderr  # only the flag to fix
    assert not (scratch / "letters").exists()  # not even the folders


def test_theme_copy_puts_the_shipped_theme_in_templates_where_it_overrides(scratch: Path):
    assert run(scratch, "init", *DETAILS).returncode == 0
    assert run(scratch, "new", "Spring notes", "--date", "2027-03-01").returncode == 0
    copied = run(scratch, "theme", "copy", "default")
    assert copied.returncode == 0, copied.stderr
    own = scratch / "templates" / "default"
    assert (own / "email.html.j2").is_file() and (own / "style.css").is_file()
    template = own / "email.html.j2"
    template.write_text(template.read_text().replace("View this issue in your browser", "Read it on the web"))
    assert run(scratch, "build", ISSUE).returncode == 0
    email = (scratch / "build" / "2027-03-01-spring-notes" / "email.html").read_text()
    assert "Read it on the web" in email and "View this issue in your browser" not in email

    again = run(scratch, "theme", "copy", "default")
    assert again.returncode == 2 and "--force" in again.stderr
    assert "Read it on the web" in template.read_text()
    assert run(scratch, "theme", "copy", "default", "--force").returncode == 0
    assert "Read it on the web" not in template.read_text()
    named = run(scratch, "theme", "copy", "default", "--name", "spring")
    assert named.returncode == 0 and (scratch / "templates" / "spring" / "email.html.j2").is_file()
    assert 'theme = "spring"' in named.stdout
    unknown = run(scratch, "theme", "copy", "fancy")
    assert unknown.returncode == 2 and "shipped themes: default" in unknown.stderr


def test_init_checks_its_folders_before_writing_anything(scratch: Path):
    (scratch / "letter").mkdir()
    (scratch / "letter" / "issues").write_text("a file where init puts a folder\n")

    result = run(scratch, "init", "letter", *DETAILS)

    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "letter/issues" in result.stderr
    assert not (scratch / "letter" / "newsletter.toml").exists()  # so init can simply be run again
