"""Issue 13, tried as a hostile user: secrets that look like variable names, list names that leave
subscribers/ on the read-only commands, a status a writer can read after a large outage, and hints
that still work when the issue folder's name has a space in it."""

from __future__ import annotations

import shlex
from pathlib import Path

from click.testing import CliRunner
from newsletter_helpers import ISSUE, set_option, write_list

from newsletter.cli import main


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def replace_setting(root: Path, old: str, new: str) -> None:
    path = root / "newsletter.toml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_an_env_setting_holding_an_alphanumeric_password_is_refused_without_showing_it(newsletter_root: Path):
    # A generated password made only of letters and digits is a valid variable *name*; it must not be
    # echoed back in "environment variable <the password> is not set".
    for secret in ("hunter2hunter2hunter2XYZ", "k3j4h5g6f7d8s9a0", "9f86d081884c7d659a2feaa0c55ad015"[1:]):
        replace_setting(newsletter_root, 'password_env = "SMTP_PASSWORD"', f'password_env = "{secret}"')
        result = CliRunner().invoke(main, ["send", ISSUE, "--list", "example", "--provider", "smtp", "--yes"])
        assert result.exit_code == 2, result.output
        assert secret not in result.output
        assert "smtp.password_env" in result.output and "looks like a secret" in result.output
        replace_setting(newsletter_root, f'password_env = "{secret}"', 'password_env = "SMTP_PASSWORD"')


def test_ordinary_variable_names_are_still_accepted(newsletter_root: Path):
    for name in ("SMTP_PASSWORD", "smtp_password", "SMTPPASSWORD2", "AWSSES2SMTPPASSWORD", "mailpass2"):
        replace_setting(newsletter_root, 'password_env = "SMTP_PASSWORD"', f'password_env = "{name}"')
        result = CliRunner().invoke(main, ["status", ISSUE])
        assert result.exit_code == 0, (name, result.output)
        replace_setting(newsletter_root, f'password_env = "{name}"', 'password_env = "SMTP_PASSWORD"')


def test_status_and_resolve_refuse_a_list_name_outside_subscribers(newsletter_root: Path):
    for args in (["status", ISSUE, "--list", "../../x"], ["resolve", ISSUE, "--list", "../../x", "--as", "sent",
                                                          "--yes"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2, result.output
        assert "'../../x' is not a list name" in result.output


def test_status_after_an_outage_groups_the_recipients_with_the_same_reason(sendgrid_newsletter: Path,
                                                                          sendgrid_standin):
    set_option(sendgrid_newsletter, "send", "backoff_seconds = 0.01\nmax_backoff_seconds = 0.05\n"
                                            "outage_seconds = 0.4")
    write_list(sendgrid_newsletter, "many", 120)
    sendgrid_standin.answer(500, times=400)
    first = run("send", ISSUE, "--list", "many", "--yes")
    assert first.exit_code == 1 and "Paused" in first.output, first.output

    status = run("status", ISSUE)
    assert status.exit_code == 0, status.output
    lines = status.output.splitlines()
    assert len(lines) < 20, status.output  # not one line per recipient
    assert "120 pending" in lines[0]
    grouped = [line for line in lines if "reader0@example.com" in line]
    assert grouped and "120 recipients" in grouped[0] and "--all" in grouped[0], status.output
    every = run("status", ISSUE, "--all").output
    assert all(f"reader{i}@example.com:" in every for i in range(120))


def test_the_hints_quote_an_issue_folder_with_a_space(sendgrid_newsletter: Path, sendgrid_standin):
    spaced = sendgrid_newsletter / "issues" / "first dispatch"
    (sendgrid_newsletter / ISSUE).rename(spaced)
    set_option(sendgrid_newsletter, "send", "backoff_seconds = 0.01\nmax_backoff_seconds = 0.05\n"
                                            "outage_seconds = 0.4")
    sendgrid_standin.answer(500, times=400)
    first = run("send", "issues/first dispatch", "--list", "example", "--yes")
    assert first.exit_code == 1, first.output
    hint = next(line for line in first.output.splitlines() if "--resume" in line)
    command = shlex.split(hint[hint.index("newsletter send"):])
    assert command[:3] == ["newsletter", "send", "issues/first dispatch"], hint


def test_the_send_summary_points_at_the_status_of_this_issue(newsletter_root: Path, smtp_tls_server, monkeypatch):
    from newsletter_helpers import configure_smtp

    configure_smtp(newsletter_root, smtp_tls_server, monkeypatch)

    async def refuse_all(server, session, envelope, address, rcpt_options):
        return "550 5.1.1 mailbox unavailable"

    smtp_tls_server.handler.handle_RCPT = refuse_all
    write_list(newsletter_root, "refused", 60)
    result = run("send", ISSUE, "--list", "refused", "--provider", "smtp", "--yes")
    assert result.exit_code == 1, result.output
    assert "... and 10 more: newsletter status issues/2026-11-25-first-dispatch --list refused" in result.output
    assert "ISSUE_DIR" not in result.output


def test_status_after_kill_9_of_an_smtp_send_names_only_the_message_under_way(newsletter_root: Path,
                                                                               smtp_tls_server, monkeypatch):
    import os
    import signal
    import subprocess
    import sys

    from newsletter_helpers import configure_smtp

    configure_smtp(newsletter_root, smtp_tls_server, monkeypatch)
    write_list(newsletter_root, "forty", 40)
    held = smtp_tls_server.handler.hold(after=10)  # the 11th message is received and waits for its answer
    child = subprocess.Popen([sys.executable, "-m", "newsletter.cli", "send", ISSUE, "--list", "forty",
                              "--provider", "smtp", "--yes", "--ignore-doctor"], cwd=newsletter_root,
                             env={**os.environ}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        held.reached.wait(60)
        assert child.poll() is None, child.stdout.read().decode()
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    finally:
        held.release.set()

    status = run("status", ISSUE, "--list", "forty").output
    # SMTP answers each recipient before the next is tried: ten are sent, one may have arrived, and
    # the other 29 were never attempted (a resume sends them), not 30 "may have arrived".
    assert status.splitlines()[0] == "forty: 29 pending, 1 in flight, 10 sent", status
    assert "in flight: reader10@example.com: " in status


def test_a_different_audience_is_refused_in_the_words_of_the_command_line(sendgrid_newsletter: Path,
                                                                          sendgrid_standin):
    set_option(sendgrid_newsletter, "send", "backoff_seconds = 0.01\nmax_backoff_seconds = 0.05\n"
                                            "outage_seconds = 0.4")
    rows = [f"reader{i}@example.com,Reader {i},subscribed,{'founders' if i < 4 else 'later'},Paris"
            for i in range(10)]
    (sendgrid_newsletter / "subscribers" / "people.csv").write_text("email,name,status,tags,city\n"
                                                                    + "\n".join(rows) + "\n")
    sendgrid_standin.answer(500, times=400)
    assert run("send", ISSUE, "--list", "people", "--tag", "founders", "--yes").exit_code == 1
    refused = run("send", ISSUE, "--list", "people", "--where", "city=Paris", "--yes")
    assert refused.exit_code == 2, refused.output
    assert "[" not in refused.output and "{" not in refused.output, refused.output  # no Python reprs
    assert "no --tag instead of --tag founders" in refused.output
    assert "--where city=Paris instead of no --where" in refused.output


def test_an_empty_tag_is_refused_not_read_as_everyone(sendgrid_newsletter: Path, sendgrid_standin):
    # `--tag "$TAG"` with TAG unset must not mail the whole list.
    for tag in ("", "  "):
        result = CliRunner().invoke(main, ["send", ISSUE, "--list", "example", "--tag", tag, "--yes"])
        assert result.exit_code == 2, result.output
        assert "--tag" in result.output and "empty" in result.output
    assert not sendgrid_standin.counts()


def test_ctrl_c_during_the_last_request_is_a_finished_send(sendgrid_newsletter: Path, sendgrid_standin):
    import os
    import signal
    import subprocess
    import sys

    sendgrid_standin.slow(1.5)  # the one request is accepted at once, answered 1.5 s later
    child = subprocess.Popen([sys.executable, "-m", "newsletter.cli", "send", ISSUE, "--list", "example", "--yes",
                              "--ignore-doctor"], cwd=sendgrid_newsletter, env={**os.environ},
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    sendgrid_standin.wait_until(bool, 60, give_up=lambda: child.poll() is not None)
    child.send_signal(signal.SIGINT)
    output = child.communicate(timeout=60)[0].decode()
    assert "Stopping after the requests under way" in output
    assert "sent 4 of 4" in output
    # Everyone got it: no resume to run, and the exit code says all went well.
    assert child.returncode == 0, output
    assert "--resume" not in output


def test_a_new_issue_copied_from_a_sent_one_is_not_silently_skipped(sendgrid_newsletter: Path, sendgrid_standin):
    import shutil

    assert run("send", ISSUE, "--list", "example", "--yes").exit_code == 0
    sendgrid_standin.reset()
    # The writer's usual start of next week's issue: copy last week's folder, then edit it.
    nxt = sendgrid_newsletter / "issues" / "2026-12-02-second-dispatch"
    shutil.copytree(sendgrid_newsletter / ISSUE, nxt)
    issue_md = nxt / "issue.md"
    issue_md.write_text(issue_md.read_text().replace("The First Dispatch:", "The Second Dispatch:"))

    refused = run("send", "issues/2026-12-02-second-dispatch", "--list", "example", "--yes")
    assert refused.exit_code == 2, refused.output
    assert "Nothing to send" not in refused.output
    assert "issues/2026-12-02-second-dispatch/issue.md" in refused.output and "id:" in refused.output
    assert "subject" in refused.output
    assert not sendgrid_standin.counts()

    issue_md.write_text("\n".join(line for line in issue_md.read_text().split("\n") if not line.startswith("id:")))
    sent = run("send", "issues/2026-12-02-second-dispatch", "--list", "example", "--yes")
    assert sent.exit_code == 0, sent.output
    assert len(sendgrid_standin.counts()) == 4


def test_a_live_send_names_a_bad_list_name_not_the_lock(sendgrid_newsletter: Path, sendgrid_standin):
    result = CliRunner().invoke(main, ["send", ISSUE, "--list", "../../x", "--yes", "--ignore-doctor"])
    assert result.exit_code == 2, result.output
    assert "'../../x' is not a list name" in result.output and "lock" not in result.output
    assert not (sendgrid_newsletter / ".newsletter" / "locks").exists() or not any(
        (sendgrid_newsletter / ".newsletter" / "locks").iterdir())


def test_an_issue_id_that_is_not_a_plain_name_is_refused(sendgrid_newsletter: Path, sendgrid_standin, tmp_path):
    # The id names the send's lock file: '../../x' would write outside the newsletter.
    issue_md = sendgrid_newsletter / ISSUE / "issue.md"
    original = issue_md.read_text()
    outside = tmp_path / "pwn"
    for value in (f'"../../../../../../..{outside}"', "[a, b]", '"has space"'):
        issue_md.write_text(original.replace("---\n", f"---\nid: {value}\n", 1))
        result = CliRunner().invoke(main, ["send", ISSUE, "--list", "example", "--yes", "--ignore-doctor"])
        assert result.exit_code == 2, result.output
        assert "issue.md" in result.output and "'id'" in result.output, result.output
        assert not list(tmp_path.glob("pwn*"))
    assert not sendgrid_standin.counts()
