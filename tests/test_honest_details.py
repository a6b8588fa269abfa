"""The smaller dishonesties of issue 20, finding 10, each as a writer meets it:

- a resume after the issue's folder was renamed names the rename (and the ways forward);
- a CSV value over the field size limit is said as such, not as an unclosed quote;
- ``subject: true`` and ``number: -5`` in issue.md are refused at their line;
- a list file that is a link to a file outside ``subscribers/`` is refused, naming the link and its target;
- SMTP "connection refused" is retried with back-off (a closed port, then a real aiosmtpd on it);
- an error in issue.md's body points at its own line.
"""

from __future__ import annotations

import shutil
import socket
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from click.testing import CliRunner, Result
from sendgrid_standin import Reply
from smtp_fixtures import HOST, RecordingHandler
from test_send import EXAMPLE_SUBSCRIBED, ISSUE, set_option, write_list

from newsletter.cli import main

ISSUE_MD = f"{ISSUE}/issue.md"


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def assert_input_error(result: Result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


# -- a renamed folder -----------------------------------------------------------------------------------


def test_a_resume_after_the_folder_was_renamed_names_the_rename_and_the_ways_forward(sendgrid_newsletter: Path,
                                                                                      sendgrid_standin) -> None:
    set_option(sendgrid_newsletter, "send", "batch_size = 10\nbackoff_seconds = 0.01\nmax_backoff_seconds = 0.05\n"
                                            "outage_seconds = 0.4")
    expected = write_list(sendgrid_newsletter, "partial", 40)
    sendgrid_standin.script(Reply(deliver=True), *(Reply(status=500, errors=[{"message": "down"}])
                                                   for _ in range(300)))
    first = run("send", ISSUE, "--list", "partial", "--yes")
    assert first.exit_code == 1 and "Paused" in first.output, first.output
    delivered = set(sendgrid_standin.counts())
    assert 0 < len(delivered) < len(expected)
    sendgrid_standin.reset()
    renamed = "issues/2026-11-25-the-first-dispatch"
    shutil.move(sendgrid_newsletter / ISSUE, sendgrid_newsletter / renamed)

    refused = run("send", renamed, "--list", "partial", "--resume", "--yes")
    assert_input_error(
        refused,
        "the issue's folder was renamed from 2026-11-25-first-dispatch to 2026-11-25-the-first-dispatch since "
        f"{len(delivered)} recipients of list 'partial' were sent it, which changes the links to its web archive "
        "(https://newsletter.example.com/2026-11-25-first-dispatch/ became "
        "https://newsletter.example.com/2026-11-25-the-first-dispatch/)",
        "that is all that changed: html, text changed",
        f"git mv {renamed} issues/2026-11-25-first-dispatch", "--allow-changed")
    assert not sendgrid_standin.counts()

    shutil.move(sendgrid_newsletter / renamed, sendgrid_newsletter / ISSUE)  # the first way forward
    resumed = run("send", ISSUE, "--list", "partial", "--resume", "--yes")
    assert resumed.exit_code == 0, resumed.output
    assert set(sendgrid_standin.counts()) == expected - delivered and max(sendgrid_standin.counts().values()) == 1


# -- the CSV field size limit -------------------------------------------------------------------------


@pytest.mark.parametrize("quoted", [True, False], ids=["quoted", "unquoted"])
def test_a_ten_megabyte_value_is_said_as_too_long_at_its_line(newsletter_root: Path, quoted: bool) -> None:
    blob = "x" * 10_000_000
    value = f'"{blob}"' if quoted else blob
    (newsletter_root / "subscribers" / "huge.csv").write_text(
        f"email,name,status\nada@example.com,Ada,subscribed\ngrace@example.org,{value},subscribed\n"
        "alan@example.com,Alan,subscribed\n")
    result = run("send", ISSUE, "--list", "huge", "--dry-run")
    assert_input_error(result, "subscribers/huge.csv:3: a value in this row is longer than the 131,072 characters "
                               "a list's value may hold", "shorten it")
    assert "never closed" not in result.output


def test_a_quote_never_closed_is_still_said_so_when_it_swallows_more_than_the_limit(newsletter_root: Path) -> None:
    rows = [f"reader{i}@example.com,Reader {i},subscribed" for i in range(5_000)]  # about 150 KB after the quote
    (newsletter_root / "subscribers" / "open.csv").write_text(
        'email,name,status\nada@example.com,"Ada,subscribed\n' + "\n".join(rows) + "\n")
    result = run("send", ISSUE, "--list", "open", "--dry-run")
    assert_input_error(result, "subscribers/open.csv:2: a quote (\") opened in this row is never closed")


# -- issue.md's front matter ----------------------------------------------------------------------------


def _set_line(root: Path, start: str, line: str) -> int:
    path = root / ISSUE_MD
    lines = path.read_text().split("\n")
    number = next(i for i, text in enumerate(lines) if text.startswith(start))
    lines[number] = line
    path.write_text("\n".join(lines))
    return number + 1


@pytest.mark.parametrize("value", ["true", "yes", "Off"])
def test_a_subject_yaml_reads_as_true_or_false_is_refused_at_its_line(newsletter_root: Path, value: str) -> None:
    line = _set_line(newsletter_root, "subject:", f"subject: {value}")
    for command in (("build", ISSUE), ("send", ISSUE, "--list", "example", "--dry-run")):
        assert_input_error(run(*command), f"{ISSUE_MD}:{line}: front matter field 'subject' must be text",
                           'put the text in quotes, like subject: "Yes"')


@pytest.mark.parametrize("value", ["-5", "0", "true", "1.5"])
def test_an_issue_number_below_one_or_not_whole_is_refused_at_its_line(newsletter_root: Path, value: str) -> None:
    line = _set_line(newsletter_root, "number:", f"number: {value}")
    assert_input_error(run("build", ISSUE), f"{ISSUE_MD}:{line}: 'number' must be a whole number from 1 up",
                       "write it like number: 12")


def test_an_error_in_the_body_of_issue_md_points_at_its_own_line(newsletter_root: Path) -> None:
    path = newsletter_root / ISSUE_MD
    lines = path.read_text().split("\n")
    greeting = next(i for i, text in enumerate(lines) if text.startswith("Hi {{"))
    lines.insert(greeting + 2, "A broken {{ tag( }} here.")
    path.write_text("\n".join(lines))
    assert_input_error(run("build", ISSUE), f"{ISSUE_MD}:{greeting + 3}: template syntax error")


# -- a list that is a link out of subscribers/ ---------------------------------------------------------


def test_a_list_linked_to_a_file_outside_subscribers_is_refused_naming_the_link_and_its_target(
        newsletter_root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / "people.csv"
    outside.parent.mkdir()
    shutil.copy(newsletter_root / "subscribers" / "example.csv", outside)
    (newsletter_root / "subscribers" / "linked.csv").symlink_to(outside)
    before = outside.read_text()
    for command in (("send", ISSUE, "--list", "linked", "--dry-run"),
                    ("subscribers", "list", "--list", "linked"),
                    ("subscribers", "unsubscribe", "ada@example.com", "--list", "linked")):
        assert_input_error(run(*command), f"subscribers/linked.csv: is a link to {outside}, outside subscribers/",
                           "replace the link with a copy of the file")
    assert outside.read_text() == before

    (newsletter_root / "subscribers" / "alias.csv").symlink_to("example.csv")  # a link inside is a list
    assert run("send", ISSUE, "--list", "alias", "--dry-run").exit_code == 0


# -- SMTP: a refused connection is retried -----------------------------------------------------------------


def test_a_refused_smtp_connection_is_retried_until_the_server_is_up(newsletter_root: Path) -> None:
    """Nothing listens on the port when the send starts (connection refused); once the journal shows the
    refusal was met and the batch put back, an aiosmtpd server starts on that port, and the send delivers."""
    closed = socket.socket()
    closed.bind((HOST, 0))  # bound, not listening: connecting is refused
    port = closed.getsockname()[1]
    config = newsletter_root / "newsletter.toml"
    text = config.read_text()
    start = text.index("[smtp]")
    end = text.index("\n[", start + 1)
    config.write_text(text[:start] + f'[smtp]\nhost = "{HOST}"\nport = {port}\nsecurity = "none"\ntimeout = 5\n'
                      + text[end:])
    set_option(newsletter_root, "send", "backoff_seconds = 0.01\nmax_backoff_seconds = 0.05\noutage_seconds = 120")
    journal = newsletter_root / ".newsletter" / "journal.sqlite"
    handler = RecordingHandler()
    controllers: list[Controller] = []

    def start_server_once_refused() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
                refused = db.execute("SELECT COUNT(*) FROM deliveries WHERE reason LIKE '%Connection refused%'"
                                     ).fetchone()[0]
                db.close()
            except sqlite3.Error:
                refused = 0
            if refused:
                break
            time.sleep(0.02)  # polling the journal for the event, not waiting for a guessed time
        closed.close()
        controller = Controller(handler, hostname=HOST, port=port, ready_timeout=5.0)
        controller.start()
        controllers.append(controller)

    starter = threading.Thread(target=start_server_once_refused)
    starter.start()
    try:
        result = run("send", ISSUE, "--list", "example", "--provider", "smtp", "--yes")
    finally:
        starter.join()
        for controller in controllers:
            controller.stop()
    assert result.exit_code == 0, result.output
    assert controllers, "the send never met the refused connection"
    assert sorted(handler.recipients()) == sorted(EXAMPLE_SUBSCRIBED)
