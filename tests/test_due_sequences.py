"""Sequences sent by `newsletter send --due` over SMTP (aiosmtpd), with the clock moved by --now:
each step once, in order, after its delay; nobody enrolled late; stop rules; nothing written when
nothing is due."""

from __future__ import annotations

import calendar
import sqlite3
import time
from pathlib import Path

from due_helpers import DAY, cli, due, make_sequence, send_over_smtp, subjects_of, write_readers

STEPS = [("Welcome", "0"), ("Day 3", "3d"), ("Day 10", "7d")]


def _dump(root: Path) -> list[str]:
    db = sqlite3.connect(root / ".newsletter" / "journal.sqlite")
    try:
        return list(db.iterdump())
    finally:
        db.close()


def test_a_new_reader_gets_each_step_once_after_its_delay_and_old_readers_none(newsletter_root, smtp_server):
    send_over_smtp(newsletter_root, smtp_server)
    write_readers(newsletter_root, "readers", ["old@example.com"])
    make_sequence(newsletter_root, "welcome", "readers", STEPS)
    start = time.time()
    first = due(newsletter_root, start)
    assert first.exit_code == 0, first.output
    assert "1 reader already on the list are not enrolled (--backfill welcome enrols them)" in first.output
    assert cli(newsletter_root, "subscribers", "add", "new@example.com", "--list", "readers").exit_code == 0

    welcome = due(newsletter_root, start + 60)
    assert "sequence welcome step 1 (01-step) to 1 reader of list readers: sent 1 of 1" in welcome.output
    assert "sequence welcome step 2 (02-step): 1 reader waiting" in welcome.output  # what comes next
    assert subjects_of(smtp_server.handler, "new@example.com") == ["Welcome"]
    before = _dump(newsletter_root)
    again = due(newsletter_root, start + 120)  # nothing due: nothing sent, nothing written
    assert again.exit_code == 0 and "Nothing is due" in again.output
    assert _dump(newsletter_root) == before

    for _ in range(2):  # day 3, twice: once
        assert due(newsletter_root, start + 3 * DAY + 120).exit_code == 0
    assert subjects_of(smtp_server.handler, "new@example.com") == ["Welcome", "Day 3"]
    status = cli(newsletter_root, "sequence", "status", "welcome", "--now",
                 time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(start + 3 * DAY + 120)))
    assert "step 3  03-step" in status.output and "new@example.com  step 3 (03-step)" in status.output
    assert "on the list before it started (not enrolled): 1" in status.output

    late = due(newsletter_root, start + 30 * DAY)
    assert late.exit_code == 0, late.output
    assert subjects_of(smtp_server.handler, "new@example.com") == ["Welcome", "Day 3", "Day 10"]
    assert subjects_of(smtp_server.handler, "old@example.com") == []
    assert "finished: 1" in cli(newsletter_root, "sequence", "status", "welcome").output


def test_backfill_enrols_the_readers_already_on_the_list(newsletter_root, smtp_server):
    send_over_smtp(newsletter_root, smtp_server)
    write_readers(newsletter_root, "readers", ["a@example.com", "b@example.com"])
    make_sequence(newsletter_root, "welcome", "readers", STEPS[:1])
    result = due(newsletter_root, None, "--backfill", "welcome")
    assert result.exit_code == 0, result.output
    assert sorted(smtp_server.handler.recipients()) == ["a@example.com", "b@example.com"]
    wrong = due(newsletter_root, None, "--backfill", "welcom")
    assert wrong.exit_code == 2 and "did you mean 'welcome'?" in wrong.output


def test_a_stop_tag_or_leaving_the_list_ends_the_sequence(newsletter_root, smtp_server):
    send_over_smtp(newsletter_root, smtp_server)
    write_readers(newsletter_root, "readers", [])
    make_sequence(newsletter_root, "welcome", "readers", STEPS, stop='["tag:customer"]')
    start = time.time()
    due(newsletter_root, start)
    for email in ("buyer@example.com", "leaver@example.com", "stayer@example.com"):
        cli(newsletter_root, "subscribers", "add", email, "--list", "readers")
    assert due(newsletter_root, start + 60).exit_code == 0
    cli(newsletter_root, "subscribers", "add", "buyer@example.com", "--list", "readers", "--tag", "customer")
    cli(newsletter_root, "subscribers", "unsubscribe", "leaver@example.com", "--list", "readers")
    result = due(newsletter_root, start + 3 * DAY + 60)
    assert "sequence welcome: 1 reader stopped: left the list (unsubscribed)" in result.output
    assert "sequence welcome: 1 reader stopped: tagged customer" in result.output
    assert subjects_of(smtp_server.handler, "stayer@example.com") == ["Welcome", "Day 3"]
    assert subjects_of(smtp_server.handler, "buyer@example.com") == ["Welcome"]
    assert subjects_of(smtp_server.handler, "leaver@example.com") == ["Welcome"]


def test_triggers_by_tag_and_by_date_column(newsletter_root, smtp_server):
    send_over_smtp(newsletter_root, smtp_server)
    (newsletter_root / "subscribers" / "members.csv").write_text(
        "email,name,status,tags,renewal\n"
        "soon@example.com,Soon,subscribed,,2030-01-10\nlast@example.com,Last,subscribed,,2001-01-01\n"
        "vip@example.com,Vip,subscribed,vip,\n")
    make_sequence(newsletter_root, "renewal", "members", [("Renew soon", "0 09:00")], trigger="date:renewal",
                  timezone="Europe/Paris")
    make_sequence(newsletter_root, "vips", "members", [("Hello VIP", "0")], trigger="tag:vip")
    start = calendar.timegm((2030, 1, 1, 0, 0, 0))
    due(newsletter_root, start)
    cli(newsletter_root, "subscribers", "add", "last@example.com", "--list", "members", "--tag", "vip")
    assert due(newsletter_root, start + 60).exit_code == 0
    assert subjects_of(smtp_server.handler, "last@example.com") == ["Hello VIP"]  # gained the tag: enrolled
    assert subjects_of(smtp_server.handler, "vip@example.com") == []  # had it when the sequence started
    # 2030-01-10 09:00 in Paris is 08:00 UTC: not at 07:59, at 08:00
    due(newsletter_root, calendar.timegm((2030, 1, 10, 7, 59, 0)))
    assert subjects_of(smtp_server.handler, "soon@example.com") == []
    due(newsletter_root, calendar.timegm((2030, 1, 10, 8, 0, 0)))
    assert subjects_of(smtp_server.handler, "soon@example.com") == ["Renew soon"]


def test_new_sequence_step_and_a_bad_sequence_file_said_with_its_line(newsletter_root):
    made = cli(newsletter_root, "new", "--sequence", "welcome", "Welcome aboard")
    assert made.exit_code == 0 and "sequences/welcome/01-welcome-aboard/issue.md" in made.output
    second = cli(newsletter_root, "new", "--sequence", "welcome", "Day 3: the best of the archive", "--delay", "3d")
    assert "sequences/welcome/02-day-3-the-best-of-the-archive/issue.md" in second.output
    step = newsletter_root / "sequences" / "welcome" / "02-day-3-the-best-of-the-archive"
    assert "delay: 3d" in (step / "issue.md").read_text()
    assert cli(newsletter_root, "build", str(step)).exit_code == 0  # a step is an issue folder like any other
    status = cli(newsletter_root, "sequence", "status", "welcome")
    assert "Not started: the first `newsletter send --due` starts it" in status.output

    (step / "issue.md").write_text((step / "issue.md").read_text().replace("delay: 3d", "delay: 3 days"))
    bad = due(newsletter_root)
    assert bad.exit_code == 2
    assert "sequences/welcome/02-day-3-the-best-of-the-archive/issue.md:5: '3 days' is not a delay" in bad.output
    toml = newsletter_root / "sequences" / "welcome" / "sequence.toml"
    toml.write_text(toml.read_text().replace('trigger = "confirmed"', 'trigger = "joined"'))
    wrong = cli(newsletter_root, "sequence", "status", "welcome")
    assert wrong.exit_code == 2 and "sequences/welcome/sequence.toml:5: trigger 'joined' is not one of" in wrong.output
