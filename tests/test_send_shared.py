"""Several senders share one send through the PostgreSQL journal (issue 19, part 3): workers join the send
the first process started, on this machine (``--workers N``) or another (``--resume --worker``), through
the SendGrid stand-in. Counted at the stand-in and read back from the journal."""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from newsletter_helpers import ISSUE, set_option
from shared_senders import query, readers, ready, share_journal, start, statuses, until
from staged_fixtures import canned_bounces, stage_members

from newsletter.cli import main
from newsletter.config import load_settings
from newsletter.sending import engine
from newsletter.sending import journal as jn
from newsletter.sending.plan import SendOptions

FAST = "batch_size = 10\nconcurrency = 1\nbackoff_seconds = 0.01\nmax_backoff_seconds = 0.05"


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def shared(sendgrid_newsletter: Path, postgres_url: str) -> tuple[Path, jn.Location]:
    return sendgrid_newsletter, share_journal(sendgrid_newsletter, postgres_url, FAST)


def _interrupted_send(root: Path, list_name: str) -> int:
    """A send stopped after its first batch (as Ctrl-C would): its run is ready and unfinished."""
    stop = engine.StopFlag()

    def after_a_batch(report) -> None:
        stop.requested = True

    report = engine.send(load_settings(root), root / ISSUE, SendOptions(list_name=list_name, confirmed=True),
                         stop=stop, progress=after_a_batch)
    assert report.interrupted and report.sent > 0
    return report.sent


def test_a_worker_sends_what_the_send_it_joins_has_left(shared, sendgrid_standin) -> None:
    root, location = shared
    everyone = readers(root, "readers", 60)
    first = _interrupted_send(root, "readers")

    result = run("send", ISSUE, "--resume", "--worker")

    assert result.exit_code == 0, result.output
    assert f"Worker: sent {60 - first} of the {60 - first} left when it joined the send started" in result.output
    counts = sendgrid_standin.counts()
    assert set(counts) == everyone and max(counts.values()) == 1  # everyone, once
    kinds = [kind for (kind,) in query(location, "SELECT kind FROM runs ORDER BY id")]
    assert kinds == ["send", "worker"]  # the worker recorded a run of its own, and selected nothing
    status = run("status", ISSUE, "--list", "readers")
    assert re.search(r"run .* worker via sendgrid; .*joined the send started .*; 5\d sent", status.output), \
        status.output


def test_a_refused_request_is_sent_again_in_halves_by_the_sender_that_claimed_it(shared, sendgrid_standin) -> None:
    """On the shared journal a refused batch stays its sender's while it is sent again in halves (a 400 naming
    nobody), and a recipient SendGrid names fails alone: nobody twice, nothing left claimed."""
    root, location = shared
    everyone = readers(root, "readers", 30)
    sendgrid_standin.answer(400, errors=[{"message": "Bad Request", "field": None, "help": None}])
    sendgrid_standin.refuse_address("readers-7@example.com", "Does not contain a valid address.")

    result = run("send", ISSUE, "--list", "readers", "--yes")

    assert result.exit_code == 1, result.output  # one recipient failed
    counts = sendgrid_standin.counts()
    assert set(counts) == everyone - {"readers-7@example.com"} and max(counts.values()) == 1
    state = statuses(location, "readers")
    assert state.pop("readers-7@example.com") == "failed" and set(state.values()) == {"sent"}
    assert query(location, "SELECT COUNT(*) FROM batches WHERE state <> 'settled'") == [(0,)]


def test_a_worker_whose_copy_of_the_issue_changed_is_refused(shared, sendgrid_standin) -> None:
    root, _ = shared
    readers(root, "readers", 60)
    first = _interrupted_send(root, "readers")
    issue_md = root / ISSUE / "issue.md"
    issue_md.write_text(re.sub(r"(?m)^subject: .*$", "subject: Another subject", issue_md.read_text(), count=1))

    result = run("send", ISSUE, "--resume", "--worker")

    assert result.exit_code == 2
    assert re.search(r"differs from the one being sent to list 'readers' \(subject(, \w+)* changed\)", result.output)
    assert "git pull" in result.output
    assert sum(sendgrid_standin.counts().values()) == first  # nobody more was mailed


def test_a_worker_or_workers_on_a_sqlite_journal_are_refused(sendgrid_newsletter: Path, sendgrid_standin) -> None:
    for args in (("--resume", "--worker"), ("--list", "example", "--workers", "2", "--yes")):
        result = run("send", ISSUE, *args)
        assert result.exit_code == 2, result.output
        assert "only through a PostgreSQL journal" in result.output
        assert '[send] journal_url = "postgresql://' in result.output
    assert not sendgrid_standin.counts()


def test_a_worker_takes_the_send_as_it_was_started(shared, sendgrid_standin) -> None:
    result = run("send", ISSUE, "--resume", "--worker", "--list", "example", "--tag", "vip")
    assert result.exit_code == 2
    assert "--tag cannot be given to a worker" in result.output
    result = run("send", ISSUE, "--worker", "--list", "example", "--at", "2030-01-01T09:00+00:00")
    assert result.exit_code == 2 and "it takes no --at or --cancel" in result.output  # never a schedule
    result = run("send", ISSUE, "--list", "example", "--workers", "2", "--ab", "10%", "--yes")
    assert result.exit_code == 2 and "--workers and --ab cannot be combined" in result.output
    assert not sendgrid_standin.counts()


def test_a_worker_with_nothing_to_join_says_so(shared, sendgrid_standin) -> None:
    root, _ = shared
    readers(root, "readers", 5)
    assert run("send", ISSUE, "--list", "readers", "--yes").exit_code == 0
    result = run("send", ISSUE, "--list", "readers", "--resume", "--worker")
    assert result.exit_code == 0
    assert "Worker: nothing to send: the send is finished" in result.output


def test_workers_3_share_one_send_on_this_machine(shared, sendgrid_standin) -> None:
    """``--workers 3`` starts two workers beside itself: each of the three has a request under way at once
    (held at the stand-in until all three are there), and together they mail everyone once."""
    root, location = shared
    everyone = readers(root, "readers", 150)
    sendgrid_standin.hold()
    starter = start(root, "--list", "readers", "--workers", "3")
    until(lambda: sendgrid_standin.held() == 3, alive=starter, what="three senders' requests")
    sendgrid_standin.release()
    out, err = starter.communicate(timeout=120)

    assert starter.returncode == 0, out + err
    counts = sendgrid_standin.counts()
    assert set(counts) == everyone and max(counts.values()) == 1
    shares = re.search(r"3 senders: (\d+) by this process, (\d+) by worker pid \d+, (\d+) by worker pid \d+", out)
    assert shares, out
    assert all(int(n) > 0 for n in shares.groups()) and sum(map(int, shares.groups())) == 150
    assert "sent 150 of 150" in out
    assert statuses(location, "readers") == dict.fromkeys(everyone, "sent")


def test_every_worker_obeys_the_halt_of_a_staged_send(shared, sendgrid_standin) -> None:
    """The first sender to judge a stage writes the verdict; the others wait for it and obey: nobody of the
    next stage is mailed by any of them."""
    root, location = shared
    names = [f"reader{i}@example.com" for i in range(200)]
    (root / "subscribers" / "readers.csv").write_text(
        "email,name,status\n" + "\n".join(f"{e},Reader,subscribed" for e in names) + "\n")
    set_option(root, "send", 'stages = ["10%", "100%"]')
    sendgrid_standin.hold()
    starter = start(root, "--list", "readers", "--stage-wait", "0.02")
    until(lambda: ready(location, "readers"), alive=starter, what="the send to begin")
    workers = [start(root, "--resume", "--worker") for _ in range(2)]
    # Stage 1 is two batches: the starter's request and one worker's are held; the third sender waits.
    until(lambda: sendgrid_standin.held() == 2 and len(query(location, "SELECT id FROM runs WHERE kind='worker'")) == 2,
          alive=starter, what="two requests of the first stage and both workers")
    first_stage = {e for e, stage in _stages(root, names).items() if stage == 1}
    canned_bounces(sendgrid_standin, sorted(first_stage)[:2], created=int(time.time()))  # 10% hard bounces
    sendgrid_standin.release()

    outputs = [process.communicate(timeout=120) for process in (starter, *workers)]
    for process, (out, err) in zip((starter, *workers), outputs, strict=True):
        assert process.returncode == 1, out + err
        assert "Halted at stage 1: hard bounces 10.00%" in err, out + err
    assert set(sendgrid_standin.counts()) == first_stage  # the first stage only, each once
    assert max(sendgrid_standin.counts().values()) == 1
    [(verdict, judged)] = query(location, "SELECT verdict, judged FROM stages WHERE number=1")
    assert verdict == "halted" and judged is not None


def test_the_hourly_cap_holds_for_every_sender_together_while_their_requests_are_under_way(
        shared, sendgrid_standin) -> None:
    """max_per_hour = 30 and three senders: each joins while the others' requests are under way (held at the
    stand-in), and counts them as used. Together they mail 30 in the hour, and the rest wait for the next."""
    root, location = shared
    readers(root, "readers", 60)
    set_option(root, "send", "max_per_hour = 30")
    sendgrid_standin.hold()
    senders = [start(root, "--list", "readers")]
    until(lambda: sendgrid_standin.held() == 1, alive=senders[0], what="the first request")
    for held in (2, 3):
        senders.append(start(root, "--resume", "--worker"))
        until(lambda held=held: sendgrid_standin.held() == held, alive=senders[-1], what=f"request {held}")
    sendgrid_standin.release()
    until(lambda: sum(sendgrid_standin.counts().values()) >= 30 and
          not {"pending", "in_flight"} & set(statuses(location, "readers").values()), what="the hour's mail")
    assert sorted(set(statuses(location, "readers").values())) == ["sent", "waiting"]
    for sender in senders:  # every one of them now waits for the next hour: Ctrl-C
        sender.send_signal(signal.SIGINT)
    for sender in senders:
        out, err = sender.communicate(timeout=60)
        assert sender.returncode == 1, out + err
        assert "To resume exactly this send" in err
    assert sum(sendgrid_standin.counts().values()) == 30 and max(sendgrid_standin.counts().values()) == 1
    state = statuses(location, "readers")
    assert sorted(state.values()).count("sent") == 30  # the others wait, for whoever resumes the send


def _stages(root: Path, names: list[str]) -> dict[str, int]:
    from newsletter.compose.content import load_issue
    from newsletter.sending.stage_rules import assign_stages

    issue_id = load_issue(root / ISSUE).id
    assert issue_id
    return assign_stages(issue_id, names, (0.1, 1.0))


del stage_members  # imported with canned_bounces; this module works the stages out itself
