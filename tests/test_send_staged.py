"""A staged send through real ``newsletter send`` processes against the SendGrid stand-in (issue 15, part 2).

The stand-in's suppressions endpoints hold canned bounces (put there as another process would, through
``POST /_standin/suppressions``), dated just after the send starts, for recipients of the first stage.
The stage wait is given in minutes (``--stage-wait 0.01`` is 0.6 s).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from journal_reading import said_line
from newsletter_helpers import ISSUE
from staged_fixtures import (
    READERS,
    STAGES,
    canned_bounces,
    halt_at_stage_one,
    order_of_delivery,
    send,
    stage_members,
    start_send,
)

from newsletter.cli import main
from newsletter.compose.content import load_issue, write_issue_id
from newsletter.sending.stage_rules import assign_stages, parse_stages


def journal(root: Path, sql: str) -> list[tuple]:
    db = sqlite3.connect(root / ".newsletter" / "journal.sqlite")
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def test_a_clean_staged_send_goes_through_every_stage_in_order_with_nobody_twice(staged, sendgrid_standin):
    members = stage_members(staged)
    assert [len(members[n]) for n in (1, 2, 3)] == [2, 18, 180]

    done = send(staged, "--stages", STAGES, "--stage-wait", "0.01")

    assert done.returncode == 0, done.stdout + done.stderr
    counts = sendgrid_standin.counts()
    assert set(counts) == set(READERS) and max(counts.values()) == 1
    order = order_of_delivery(sendgrid_standin)
    assert set(order[:2]) == members[1] and set(order[2:20]) == members[2]  # stage by stage
    assert "Stage 1: healthy" in done.stderr and "Stage 2: healthy" in done.stderr
    status = CliRunner().invoke(main, ["status", ISSUE])
    assert "stage 1 (1%, 2 recipients): healthy; 2 sent, 0 hard bounces" in status.output
    assert "stage 3 (100%, 180 recipients): last stage" in status.output


def test_bounces_halt_the_send_and_a_resume_goes_on_without_mailing_anyone_twice(staged, sendgrid_standin):
    members = stage_members(staged)

    halt_at_stage_one(staged, sendgrid_standin, members)

    assert set(sendgrid_standin.counts()) == members[1]  # only the first stage was mailed
    status = CliRunner().invoke(main, ["status", ISSUE])
    assert "198 held" in status.output
    assert "stage 1 (1%, 2 recipients): halted; 2 sent, 1 hard bounces" in status.output

    again = send(staged, "--stage-wait", "0.01")  # a plain re-send does not slip past the breaker
    assert again.returncode == 2 and "halted at stage 1" in again.stderr
    assert set(sendgrid_standin.counts()) == members[1]

    resumed = send(staged, "--resume", "--stage-wait", "0.01")

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    counts = sendgrid_standin.counts()
    assert set(counts) == set(READERS) and max(counts.values()) == 1
    order = order_of_delivery(sendgrid_standin)
    assert set(order[2:20]) == members[2]  # the resume went on with stage 2, then 3
    assert journal(staged, "SELECT status, COUNT(*) FROM deliveries GROUP BY status") == [("sent", 200)]
    assert "stage 1 (1%, 2 recipients): resumed" in CliRunner().invoke(main, ["status", ISSUE]).output


def test_a_send_stopped_during_the_wait_resumes_with_the_judgement(staged, sendgrid_standin):
    """Killed while waiting after stage 1: the resume sends nobody of stage 1 again and judges it first."""
    members = stage_members(staged)
    process = start_send(staged, "--stages", STAGES, "--stage-wait", "10", stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    try:
        said_line(process.stderr, "Stage 1 sent; waiting", 60)  # stage 1 recorded, the wait begun
    finally:
        process.kill()
        process.wait()
    assert set(sendgrid_standin.counts()) == members[1]
    canned_bounces(sendgrid_standin, sorted(members[1]), created=int(time.time()))

    resumed = send(staged, "--resume", "--stage-wait", "0.01")

    assert resumed.returncode == 1 and "Halted at stage 1" in resumed.stderr, resumed.stderr
    assert set(sendgrid_standin.counts()) == members[1] and max(sendgrid_standin.counts().values()) == 1


# -- over SMTP: the journal's 5xx answers, and the serve event store's complaints ------------------------


@pytest.fixture
def smtp_staged(tmp_path, monkeypatch):
    from serve_helpers import example_copy, point_smtp_at, set_newsletter, start_mail_server

    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", "test-secret-for-staged-sends")
    root = example_copy(tmp_path)
    controller, handler = start_mail_server()
    set_newsletter(root, provider='"smtp"')
    point_smtp_at(root, controller.port)
    rows = [f"{email},Reader {i},subscribed" for i, email in enumerate(READERS[:100])]
    (root / "subscribers" / "readers.csv").write_text("email,name,status\n" + "\n".join(rows) + "\n")
    write_issue_id(root / ISSUE, "smtp-staged-issue")
    toml = root / "newsletter.toml"
    toml.write_text(toml.read_text() + '\n[send]\nstages = ["5%", "100%"]\n')  # the setting; --stages would win
    assigned = assign_stages(load_issue(root / ISSUE).id, READERS[:100], parse_stages("5%,100%"))
    first = sorted(a for a, s in assigned.items() if s == 1)
    yield root, handler, first
    controller.stop()


def test_smtp_5xx_answers_in_the_journal_halt_a_stage(smtp_staged):
    root, mail, first = smtp_staged
    mail.answer(first[0], "550 5.1.1 mailbox unavailable")

    halted = send(root, "--stage-wait", "0.01")  # the stages come from [send] stages

    assert halted.returncode == 1, halted.stdout + halted.stderr
    assert "Halted at stage 1: hard bounces 20.00%" in halted.stderr
    assert set(mail.recipients()) == set(first[1:])  # the other 95 were never tried

    abandon = CliRunner().invoke(main, ["--root", str(root), "resolve", str(root / ISSUE), "--list", "readers",
                                        "--abandon", "--yes"])
    assert abandon.exit_code == 0, abandon.output
    assert "95" in abandon.output
    status = CliRunner().invoke(main, ["--root", str(root), "status", str(root / ISSUE)]).output
    assert "abandon" in status and "held" not in status.split("\n")[0]
    again = send(root, "--stage-wait", "0.01")  # abandoned: a new send is no longer refused, nobody twice
    assert again.returncode == 0 and "halted" not in again.stderr, again.stderr
    assert sorted(mail.recipients()) == sorted(set(READERS[:100]) - {first[0]})


@pytest.mark.parametrize("synced_meanwhile", [False, True], ids=["unsynced", "synced-during-the-wait"])
def test_a_complaint_the_subscriber_service_records_during_the_wait_halts(smtp_staged, synced_meanwhile):
    from newsletter.config import load_settings
    from newsletter.serve.connect import open_store
    from newsletter.serve.store import COMPLAINED, Event, now_utc, stamp

    root, mail, first = smtp_staged
    open_store(load_settings(root)).close()  # the service has run: its store exists
    process = subprocess.Popen([sys.executable, "-m", "newsletter.cli", "send", ISSUE, "--list", "readers", "--yes",
                                "--stages", "5%,100%", "--stage-wait", "0.05"], cwd=root, env={**os.environ},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    mail.wait_until(lambda handler: len(handler.recipients()) >= len(first), 60,
                    give_up=lambda: process.poll() is not None)
    store = open_store(load_settings(root))  # SendGrid's webhook tells the service: a spam report
    store.append([Event(list_name="readers", kind=COMPLAINED, email=first[2], key=first[2], at=stamp(now_utc()),
                        source="sendgrid")])
    if synced_meanwhile:  # `subscribers sync` from cron took the event into the CSV during the wait
        store.mark_synced("readers", max(event.id for event in store.unsynced("readers")))
    store.close()
    out, err = process.communicate(timeout=60)

    assert process.returncode == 1, out + err
    assert "spam complaints 20.00% of the stage exceed 0.10%" in err
    assert sorted(mail.recipients()) == first
