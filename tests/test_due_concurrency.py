"""`newsletter send --due` as cron runs it, in real processes: two started at the same moment (on either
journal home: the journal is the lock), and one killed with kill -9 in the middle of a step and run again.
Nobody gets a step twice, nobody is skipped. The SMTP server holds a reply so that each collision happens
for certain, with no sleeping."""

from __future__ import annotations

import os
import select
import signal
import time
from collections import Counter

from due_helpers import DAY, due, due_process, make_sequence, send_over_smtp, write_readers
from journal_reading import statuses
from test_send import set_option

READERS = [f"reader{i}@example.com" for i in range(24)]


def _started_with_readers(root, smtp_server) -> float:
    """A sequence started on an empty list, then 24 readers added: all due for the welcome step."""
    send_over_smtp(root, smtp_server)
    write_readers(root, "readers", [])
    make_sequence(root, "welcome", "readers", [("Welcome", "0"), ("Day 3", "3d")])
    start = time.time()
    assert due(root, start).exit_code == 0
    write_readers(root, "readers", READERS)
    return start


def test_two_at_the_same_moment_send_each_step_once(newsletter_root, smtp_server, journal_location):
    if journal_location.dialect == "postgresql":
        set_option(newsletter_root, "send", f'journal_url = "{journal_location.url}"')
    start = _started_with_readers(newsletter_root, smtp_server)
    hold = smtp_server.handler.hold(after=0)  # the first welcome waits for its answer
    first, second = due_process(newsletter_root, start + 60), due_process(newsletter_root, start + 60)
    assert hold.reached.wait(60), "no send --due got as far as the first message"
    # the other one finds the lock taken while the first is mid-step, says so and ends: the first output to
    # arrive is its (the sender prints only once its step is done, and its step waits for the held answer)
    ready, _, _ = select.select([first.stdout, second.stdout], [], [], 60)
    assert ready, "neither send --due said anything"
    other = first if ready[0] is first.stdout else second
    outputs = {other.pid: other.communicate(timeout=60)[0].decode()}
    assert other.returncode == 0 and "another newsletter send --due is running" in outputs[other.pid]
    hold.release.set()
    for process in (first, second):
        out, _ = process.communicate(timeout=60)
        outputs.setdefault(process.pid, out.decode())
        assert process.returncode == 0, outputs[process.pid]
    assert sum("another newsletter send --due is running" in text for text in outputs.values()) == 1, outputs
    counts = Counter(smtp_server.handler.recipients())
    assert counts == Counter(dict.fromkeys(READERS, 1))
    assert "Nothing is due" in due(newsletter_root, start + 120).output


def test_killed_mid_step_then_run_again_sends_nobody_twice_and_skips_nobody(newsletter_root, smtp_server):
    start = _started_with_readers(newsletter_root, smtp_server)
    hold = smtp_server.handler.hold(after=9)  # the tenth welcome is received, and never answered
    child = due_process(newsletter_root, start + 60)
    assert hold.reached.wait(60), "the send --due did not get as far as the tenth message"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    hold.release.set()
    again = due(newsletter_root, start + 120)
    assert again.exit_code == 1  # the reader whose answer never came is unknown: said, never resent blindly
    assert "step 1 (01-step) to list readers, the run stopped earlier, resumed" in again.output
    got = Counter(smtp_server.handler.recipients())
    state = statuses(newsletter_root, "readers")
    unknown = {email for email, status in state.items() if status == "unknown"}
    assert max(got.values()) == 1, "a reader got the welcome twice"
    assert set(got) | unknown == set(READERS), "a reader was skipped"
    assert len(unknown) == 1 and unknown <= set(got)  # the held one arrived; the journal cannot know it did
    day_3 = due(newsletter_root, start + 3 * DAY + 120)  # everyone moves on, the unknown one too
    assert Counter(r for r in smtp_server.handler.recipients()) == Counter(dict.fromkeys(READERS, 2)), day_3.output
