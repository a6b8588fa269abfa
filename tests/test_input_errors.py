"""Every input error is one clear error: it names the file, line or setting and the fix, exits 2,
writes nothing, and never shows a traceback or silently drops what it could not read."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
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


# --- article paths -----------------------------------------------------------


def _list_article(issue: Path, entry: str) -> int:
    """Add ``entry`` to the issue's articles; returns the line of issue.md that lists it."""
    path = issue / "issue.md"
    lines = path.read_text(encoding="utf-8").split("\n")
    at = lines.index("articles:") + 1
    lines.insert(at, f"- {entry}")
    path.write_text("\n".join(lines), encoding="utf-8")
    return at + 1


@pytest.mark.parametrize("command", [["build"], ["send", "--list", "example", "--dry-run"]])
def test_an_article_outside_the_issue_folder_is_refused_with_its_line(
        example_issue: Path, tmp_path: Path, no_spamassassin: None, command: list[str]) -> None:
    secret = tmp_path / "outside.md"
    secret.write_text("---\ntitle: Private notes\n---\nNot for the list.\n", encoding="utf-8")
    entry = os.path.relpath(secret, example_issue)
    assert entry.startswith("../../../")
    line = _list_article(example_issue, entry)

    result = run(command[0], ISSUE, *command[1:])

    assert_input_error(result, f"{ISSUE}/issue.md:{line}: article '{entry}' is not inside the issue folder",
                       "move the file into")
    assert "Private notes" not in result.output


def test_an_absolute_article_path_is_refused(example_issue: Path, no_spamassassin: None) -> None:
    line = _list_article(example_issue, "/etc/hostname")

    result = run("build", ISSUE)

    assert_input_error(result, f"{ISSUE}/issue.md:{line}: article '/etc/hostname' is not inside the issue folder")


def test_an_article_in_a_subfolder_of_the_issue_is_fine(example_issue: Path) -> None:
    from newsletter.compose.content import load_issue

    (example_issue / "more").mkdir()
    (example_issue / "more" / "extra.md").write_text("---\ntitle: Extra\n---\nMore.\n", encoding="utf-8")
    _list_article(example_issue, "more/extra.md")

    assert load_issue(example_issue).articles[0].title == "Extra"


# --- settings ----------------------------------------------------------------


def _set(root: Path, section: str, line: str) -> int:
    """Put ``line`` at the top of ``[section]`` in newsletter.toml (adding the table if needed); returns its line."""
    path = root / "newsletter.toml"
    lines = path.read_text(encoding="utf-8").split("\n")
    if f"[{section}]" not in lines:
        lines += ["", f"[{section}]"]
    at = lines.index(f"[{section}]") + 1
    key = line.split("=")[0].strip()
    lines = [text for i, text in enumerate(lines) if not (i >= at and text.split("=")[0].strip() == key)]
    lines.insert(at, line)
    path.write_text("\n".join(lines), encoding="utf-8")
    return at + 1


@pytest.mark.parametrize(("section", "line", "words"), [
    ("send", "max_attempts = 0",
     ["'send.max_attempts' must be at least 1", "not 0", "write max_attempts = 5 under [send]"]),
    ("sendgrid", "timeout = -1",
     ["'sendgrid.timeout' must be greater than 0", "not -1", "write timeout = 30.0 under [sendgrid]"]),
    ("smtp", "timeout = 0", ["'smtp.timeout' must be greater than 0"]),
    ("smtp", "port = 70000", ["'smtp.port' must be between 1 and 65535", "not 70000"]),
    ("send", "concurrency = 0", ["'send.concurrency' must be at least 1"]),
    ("send", "batch_size = 0", ["'send.batch_size' must be between 1 and 1000"]),
    ("checks", "link_timeout = 0", ["'checks.link_timeout' must be greater than 0"]),
])
def test_a_setting_out_of_range_names_the_key_its_line_and_the_fix(
        newsletter_root: Path, section: str, line: str, words: list[str]) -> None:
    number = _set(newsletter_root, section, line)

    result = run("subscribers", "stats", "--list", "example")

    assert_input_error(result, f"newsletter.toml:{number}: ", *words)


def test_max_attempts_zero_no_longer_sends_nothing_and_exits_0(newsletter_root: Path, no_spamassassin: None) -> None:
    _set(newsletter_root, "send", "max_attempts = 0")

    result = run("send", ISSUE, "--list", "example", "--dry-run")

    assert_input_error(result, "'send.max_attempts' must be at least 1")
    assert not (newsletter_root / "outbox").exists()


SECRET = "SG.aBcDeFgHiJkLmNoPqRsTuV.wXyZ0123456789-abcdefghijklmnopqrstuvwxyzAB"


@pytest.mark.parametrize(("section", "key", "value"), [
    ("sendgrid", "api_key_env", SECRET),
    ("smtp", "password_env", "correct horse battery staple!"),
    ("newsletter", "unsubscribe_secret_env", "f3a9c1e0-5b7d-4e2a-9c88-1d2e3f4a5b6c"),
])
def test_a_secret_pasted_into_an_env_setting_is_refused_without_showing_it(
        newsletter_root: Path, section: str, key: str, value: str) -> None:
    number = _set(newsletter_root, section, f'{key} = "{value}"')

    result = run("subscribers", "stats", "--list", "example")

    assert_input_error(result, f"newsletter.toml:{number}: '{section}.{key}' must be the name of an environment "
                               "variable", "revoke it")
    assert value not in result.output
    for fragment in (value[:12], value[-12:]):
        assert fragment not in result.output


def test_an_env_setting_that_is_not_a_string_is_not_echoed(newsletter_root: Path) -> None:
    _set(newsletter_root, "sendgrid", "api_key_env = 123456789012345")

    result = run("subscribers", "stats", "--list", "example")

    assert_input_error(result, "'sendgrid.api_key_env' must be a string in quotes")
    assert "123456789012345" not in result.output


# --- files the system will not read or write ---------------------------------


def run_where_permissions_apply(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a real process that file permissions stop. Tests run as root in CI, and root reads
    any file: there the process runs without the two capabilities (DAC override) that let it."""
    command = [sys.executable, "-m", "newsletter.cli", *args]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv") or shutil.which("setpriv", path=os.defpath)
        if setpriv is None:
            pytest.skip("running as root without setpriv (util-linux): permissions cannot stop root here")
        command = [setpriv, "--bounding-set", "-dac_override,-dac_read_search", *command]
    return subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=120)


def assert_process_input_error(done: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    for fragment in fragments:
        assert fragment in done.stderr, done.stderr


@pytest.mark.parametrize(("target", "command"), [
    ("newsletter.toml", ["subscribers", "stats", "--list", "example"]),
    (f"{ISSUE}/issue.md", ["build", ISSUE]),
    (f"{ISSUE}/keeping-a-newsletter-in-git.md", ["build", ISSUE]),
    ("templates/default/email.html.j2", ["build", ISSUE]),
])
def test_a_file_that_cannot_be_read_is_named_with_the_fix(
        own_theme: Path, newsletter_root: Path, target: str, command: list[str]) -> None:
    path = newsletter_root / target
    assert path.is_file()
    path.chmod(0)

    done = run_where_permissions_apply(newsletter_root, *command)

    assert_process_input_error(done, f"{target}: cannot read", "Permission denied", f"ls -ld {target}")


def test_a_template_that_is_not_utf8_is_named_with_its_line(own_theme: Path, newsletter_root: Path) -> None:
    template = own_theme / "email.html.j2"
    text = template.read_bytes()
    template.write_bytes(text.replace(b"\n", b"\n<!-- caf\xe9 -->\n", 1))

    result = run("build", ISSUE)

    assert_input_error(result, "templates/default/email.html.j2:2: is not UTF-8 text", "save the file as UTF-8")


def test_a_folder_in_place_of_an_article_is_named(example_issue: Path) -> None:
    article = example_issue / "keeping-a-newsletter-in-git.md"
    article.unlink()
    article.mkdir()

    result = run("build", ISSUE)

    assert_input_error(result, f"{ISSUE}/keeping-a-newsletter-in-git.md: is a folder, expected a file")


def test_a_dry_run_whose_outbox_cannot_be_made_says_so(newsletter_root: Path, no_spamassassin: None) -> None:
    (newsletter_root / "outbox").write_text("not a folder\n", encoding="utf-8")

    result = run("send", ISSUE, "--list", "example", "--dry-run")

    assert_input_error(result, "outbox/2026-11-25-first-dispatch: cannot write the dry run's samples (Not a directory)",
                       "a file is where a folder should be")


def test_a_dry_run_into_an_outbox_without_write_permission_says_so(
        newsletter_root: Path, no_spamassassin: None) -> None:
    outbox = newsletter_root / "outbox"
    outbox.mkdir()
    outbox.chmod(0o555)

    done = run_where_permissions_apply(newsletter_root, "send", ISSUE, "--list", "example", "--dry-run")

    assert_process_input_error(done, "outbox/2026-11-25-first-dispatch: "
                                     "cannot write the dry run's samples (Permission denied)",
                               "ls -ld outbox/2026-11-25-first-dispatch")


def test_a_list_is_named_one_way_only(newsletter_root: Path, no_spamassassin: None) -> None:
    """'example.csv' would reach the same file as 'example' but be another list to the journal, so
    a send to it would mail everyone again: the file name is refused with the name to use."""
    result = run("send", ISSUE, "--list", "example.csv", "--dry-run")

    assert_input_error(result, "'example.csv' is a file name, not a list name", "--list example")
    assert not (newsletter_root / "outbox").exists()


# --- impossible dates in front matter ------------------------------------------


@pytest.mark.parametrize("command", [["build", ISSUE], ["archive"]])
def test_an_impossible_date_in_issue_md_names_its_line(example_issue: Path, command: list[str]) -> None:
    path = example_issue / "issue.md"
    lines = path.read_text(encoding="utf-8").splitlines()
    at = next(i for i, text in enumerate(lines) if text.startswith("date:"))
    lines[at] = "date: 2026-13-45"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    result = run(*command)

    assert_input_error(result, f"{ISSUE}/issue.md:{at + 1}: ", "2026-13-45", "YYYY-MM-DD")


def test_an_impossible_date_in_an_imported_article_is_refused(example_issue: Path, tmp_path: Path) -> None:
    source = tmp_path / "leap.md"
    source.write_text("---\ntitle: Leap\ndate: 2026-02-30\n---\n\nText.\n", encoding="utf-8")

    result = run("import", str(source), "--issue", ISSUE)

    assert_input_error(result, "leap.md:3: ", "2026-02-30")


def test_a_yaml_error_in_front_matter_names_the_line_it_is_on(example_issue: Path) -> None:
    path = example_issue / "issue.md"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines.insert(2, "note: one: two")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    assert_input_error(run("build", ISSUE), f"{ISSUE}/issue.md:3: front matter is not valid YAML")


# --- theme copy --name ----------------------------------------------------------


@pytest.mark.parametrize("name", ["..", ".", "../elsewhere", "a/b", "ABSOLUTE"])
def test_theme_copy_refuses_a_name_that_is_not_one_folder_of_templates(newsletter_root: Path, name: str) -> None:
    """--force replaces the folder it names: a name that leaves templates/ could delete the newsletter."""
    (newsletter_root / "keep.txt").write_text("mine\n", encoding="utf-8")
    if name == "ABSOLUTE":
        name = str(newsletter_root.parent / "outside")

    result = run("theme", "copy", "default", "--name", name, "--force")

    assert_input_error(result, "--name", repr(name))
    assert (newsletter_root / "keep.txt").read_text(encoding="utf-8") == "mine\n"
    assert (newsletter_root / "newsletter.toml").is_file() and (newsletter_root / "issues").is_dir()
    assert not (newsletter_root.parent / "outside").exists()


def test_a_partial_copy_of_the_shipped_theme_is_named_not_silently_ignored(newsletter_root: Path) -> None:
    """templates/default/ with only an edited style.css used to build with the shipped theme, edits lost."""
    shutil.rmtree(newsletter_root / "templates")
    own = newsletter_root / "templates" / "default"
    own.mkdir(parents=True)
    (own / "style.css").write_text(".masthead { color: #ff0000; }\n", encoding="utf-8")

    result = run("build", ISSUE)

    assert_input_error(result, "templates/default", "email.html.j2", "newsletter theme copy default")


@pytest.mark.parametrize("base_url", ["https://", "https:///news/", "http://?x"])
def test_a_base_url_without_a_host_is_refused(newsletter_root: Path, base_url: str) -> None:
    config = newsletter_root / "newsletter.toml"
    lines = config.read_text(encoding="utf-8").splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("base_url"))
    lines[at] = f'base_url = "{base_url}"'
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")

    assert_input_error(run("build", ISSUE), "newsletter.toml", "'newsletter.base_url'", "host")


@pytest.mark.parametrize("command", [
    ["send", "issues/2026-11-25-first-dispatch", "--dry-run"],
    ["subscribers", "list"],
    ["status", "issues/2026-11-25-first-dispatch"],
])
def test_a_list_given_twice_is_refused_rather_than_the_first_silently_dropped(newsletter_root: Path,
                                                                            command: list[str]) -> None:
    """``--list a --list b`` used to mean list b alone: a send to one list when the writer named two."""
    (newsletter_root / "subscribers" / "other.csv").write_text("email,name,status\nother@example.com,O,subscribed\n")
    result = run(*command, "--list", "example", "--list", "other")
    assert result.exit_code == 2, result.output
    assert "--list" in result.output and "give it once" in result.output and "example, other" in result.output
    assert "Traceback" not in result.output
    assert not (newsletter_root / "outbox").exists(), "something was sent (dry) before the refusal"
