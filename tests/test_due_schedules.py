"""Scheduled issues for every provider: `send ISSUE --list L --at TIME` (or send_at: in issue.md) holds
the issue in the journal, and the first `send --due` after its time sends it, once; an edit after
scheduling is refused; one whose time passed while nothing ran goes out with a note of the delay."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from due_helpers import DAY, cli, due, send_over_smtp
from test_send import EXAMPLE_SUBSCRIBED, ISSUE

AT = dt.datetime(2031, 3, 4, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))  # 08:00 UTC


def test_an_issue_scheduled_over_smtp_goes_at_the_first_due_after_its_time_once(newsletter_root, smtp_server):
    send_over_smtp(newsletter_root, smtp_server)
    scheduled = cli(newsletter_root, "send", ISSUE, "--list", "example", "--at", AT.isoformat())
    assert scheduled.exit_code == 0, scheduled.output
    assert "Scheduled issues/2026-11-25-first-dispatch for list example at 2031-03-04T09:00+01:00" in scheduled.output
    assert "It goes to 4 recipients as the list is now, through smtp" in scheduled.output
    assert smtp_server.handler.received == []
    listed = cli(newsletter_root, "status")
    assert "2031-03-04 08:00 UTC  issues/2026-11-25-first-dispatch to list example via smtp" in listed.output

    early = due(newsletter_root, AT.timestamp() - 60)
    assert "Nothing is due" in early.output and "issues/2026-11-25-first-dispatch to list example (scheduled)" \
        in early.output and smtp_server.handler.received == []
    on_time = due(newsletter_root, AT.timestamp() + 30)
    assert on_time.exit_code == 0, on_time.output
    assert "to list example (scheduled for 2031-03-04T09:00+01:00): sent 4 of 4" in on_time.output
    assert sorted(smtp_server.handler.recipients()) == sorted(EXAMPLE_SUBSCRIBED)
    assert "Nothing is due" in due(newsletter_root, AT.timestamp() + 90).output
    assert len(smtp_server.handler.received) == 4
    assert "Nothing is scheduled." in cli(newsletter_root, "status").output


def test_an_issue_edited_after_scheduling_is_refused_then_sent_when_scheduled_again(newsletter_root, smtp_server):
    send_over_smtp(newsletter_root, smtp_server)
    assert cli(newsletter_root, "send", ISSUE, "--list", "example", "--at", AT.isoformat()).exit_code == 0
    issue_md = newsletter_root / ISSUE / "issue.md"
    issue_md.write_text(issue_md.read_text().replace('subject: "', 'subject: "Edited: ', 1))
    refused = due(newsletter_root, AT.timestamp() + 60)
    assert refused.exit_code == 1
    assert "changed since it was scheduled for list 'example' (subject, " in refused.output
    assert "to list example (overdue, not sent: " in refused.output  # and it is still waiting
    assert smtp_server.handler.received == []
    assert "last try: " in cli(newsletter_root, "status").output  # still scheduled, with why it did not go
    assert cli(newsletter_root, "send", ISSUE, "--list", "example", "--at", AT.isoformat()).exit_code == 0
    sent = due(newsletter_root, AT.timestamp() + 120)
    assert sent.exit_code == 0 and len(smtp_server.handler.received) == 4
    assert str(smtp_server.handler.received[0].message()["Subject"]).startswith("Edited: ")


def test_one_scheduled_for_the_past_goes_at_the_next_due_with_a_note_of_the_delay(newsletter_root, smtp_server):
    send_over_smtp(newsletter_root, smtp_server)
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=2, minutes=5)).replace(microsecond=0)
    scheduled = cli(newsletter_root, "send", ISSUE, "--list", "example", "--at", past.isoformat())
    assert "That time has passed: the next `newsletter send --due` sends it" in scheduled.output
    sent = due(newsletter_root)
    assert sent.exit_code == 0, sent.output
    assert f"(scheduled for {past.isoformat(timespec='minutes')}, 2 h 5 min late): sent 4 of 4" in sent.output
    assert f"(scheduled for {past.isoformat(timespec='minutes')}, sent 2 h 5 min late" in \
        cli(newsletter_root, "status", ISSUE).output  # the note is on the run in the journal


def test_send_at_in_issue_md_schedules_and_cancel_cancels(newsletter_root, smtp_server):
    send_over_smtp(newsletter_root, smtp_server)
    issue_md = newsletter_root / ISSUE / "issue.md"
    issue_md.write_text(issue_md.read_text().replace("---\n", f'---\nsend_at: "{AT.isoformat()}"\n', 1))
    scheduled = cli(newsletter_root, "send", ISSUE, "--list", "example", "--yes")
    assert "Scheduled issues/2026-11-25-first-dispatch for list example at 2031-03-04T09:00+01:00" in scheduled.output
    assert smtp_server.handler.received == []
    cancelled = cli(newsletter_root, "send", ISSUE, "--list", "example", "--cancel")
    assert cancelled.exit_code == 0 and "Cancelled the send" in cancelled.output
    assert "Nothing is due" in due(newsletter_root, AT.timestamp() + DAY).output
    assert smtp_server.handler.received == []
    again = cli(newsletter_root, "send", ISSUE, "--list", "example", "--cancel")
    assert again.exit_code == 2 and "is not scheduled for list 'example'" in again.output


def test_a_schedule_through_sendgrid_is_held_by_newsletter_not_sendgrid(sendgrid_newsletter: Path, sendgrid_standin):
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)  # beyond SendGrid's own 72 hours: newsletter holds it
    assert cli(sendgrid_newsletter, "send", ISSUE, "--list", "example", "--at", soon.isoformat()).exit_code == 0
    assert not sendgrid_standin.accepted
    sent = due(sendgrid_newsletter, soon.timestamp() + 60)
    assert sent.exit_code == 0, sent.output
    assert set(sendgrid_standin.counts()) == EXAMPLE_SUBSCRIBED
    assert {a.send_at for a in sendgrid_standin.accepted} == {None}  # sent when due, not held by SendGrid
