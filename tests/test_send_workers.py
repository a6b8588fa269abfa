"""A large send builds its request bodies in worker processes: the same mail, the same guarantees.

``[send] parallel_from = 1`` makes every send here "large". Each test counts
deliveries at the stand-in SendGrid (which validates every body against the
schema), and the process tests run a real ``newsletter send`` and interrupt
it the way a terminal or the kernel would.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from journal_reading import forget_sends, statuses
from newsletter_helpers import ISSUE, set_option, write_list
from sendgrid_fixtures import point_at
from sendgrid_standin import DEFAULT_KEY, SendGridStandIn

from newsletter.cli import main
from newsletter.compose.unsubscribe import verify_token
from newsletter.sending.workers import BodyWorkers, worker_count

SECRET = b"test-secret-for-unsubscribe-links"  # conftest exports it as NEWSLETTER_UNSUBSCRIBE_SECRET


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)



@pytest.fixture
def large(sendgrid_newsletter: Path, monkeypatch) -> Path:
    """The example newsletter sending to the stand-in, every send counted as large.

    A send does not wait for its workers to start (it prepares the first batches itself
    meanwhile); here it does, so every batch's body comes from a worker.
    """
    set_option(sendgrid_newsletter, "send", "parallel_from = 1\nbackoff_seconds = 0.01\nmax_backoff_seconds = 0.05")
    monkeypatch.setattr(BodyWorkers, "ready", property(lambda self: all(f.result() or True for f in self._started)))
    return sendgrid_newsletter


def test_workers_mail_each_recipient_once_with_their_own_values(large: Path, sendgrid_standin):
    set_option(large, "send", "batch_size = 50")
    expected = write_list(large, "big", 400)
    result = run("send", ISSUE, "--list", "big", "--yes")
    assert result.exit_code == 0, result.output
    assert "sent 400 of 400" in result.output and "8 batches" in result.output
    assert "8 of them built by" in result.output and "worker processes" in result.output
    counts = sendgrid_standin.counts()
    assert set(counts) == expected and max(counts.values()) == 1
    for accepted in sendgrid_standin.accepted:
        number = accepted.email.removeprefix("reader").removesuffix("@example.com")
        assert accepted.name == f"Reader {number}"
        assert f"Reader {number}" in accepted.substitutions.values()
        link = accepted.headers["List-Unsubscribe"].split(">")[0].lstrip("<")
        assert verify_token(SECRET, "big", link.rsplit("/unsubscribe/", 1)[1]) == accepted.email


def test_workers_build_the_same_request_as_the_sending_process(large: Path, sendgrid_standin):
    """A list sent with workers, then (journal cleared) without: every recipient gets the same thing."""
    set_option(large, "send", "batch_size = 10")
    write_list(large, "big", 30)

    def sent() -> dict[str, tuple]:
        result = run("send", ISSUE, "--list", "big", "--yes")
        assert result.exit_code == 0, result.output
        request = ("newsletter_run", "newsletter_batch")  # which run and request carried it: not the same twice
        accepted = {a.email: (a.name, a.subject, a.substitutions, a.headers,
                              {k: v for k, v in a.custom_args.items() if k not in request})
                    for a in sendgrid_standin.accepted}
        sendgrid_standin.reset()
        return accepted, result.output

    with_workers, output = sent()
    assert "3 of them built by" in output
    forget_sends(large, ISSUE)
    config = large / "newsletter.toml"
    config.write_text(config.read_text().replace("parallel_from = 1", "parallel_from = 0"))
    here, output = sent()
    assert "worker processes" not in output
    assert len(with_workers) == 30 and with_workers == here


def test_workers_started_for_a_list_that_turns_out_small_are_stopped_unused(large: Path, sendgrid_standin):
    """Workers start only when enough recipients are still to go, whatever the list's size: a resumed
    send of a large list with few still to go sends them itself and leaves no process behind."""
    import multiprocessing

    config = large / "newsletter.toml"
    config.write_text(config.read_text().replace("parallel_from = 1", "parallel_from = 20"))
    write_list(large, "big", 30)
    first = run("send", ISSUE, "--list", "big", "--yes")
    assert first.exit_code == 0 and "built by" in first.output, first.output
    write_list(large, "big", 35)  # five new subscribers since
    second = run("send", ISSUE, "--list", "big", "--yes")
    assert second.exit_code == 0 and "sent 5 of 5" in second.output and "built by" not in second.output
    assert not multiprocessing.active_children(), "worker processes left running"
    counts = sendgrid_standin.counts()
    assert len(counts) == 35 and max(counts.values()) == 1


def test_workers_that_cannot_start_stop_the_send_before_anything_is_sent(large: Path, sendgrid_standin,
                                                                         monkeypatch):
    """A system without POSIX semaphores (some containers) cannot run a process pool: the send says
    so and how to do without one, sends nothing, and sends everyone once that setting is made."""
    import newsletter.sending.workers as workers

    def no_semaphores(*args, **kwargs):
        raise OSError("[Errno 38] Function not implemented")

    monkeypatch.setattr(workers, "ProcessPoolExecutor", no_semaphores)
    expected = write_list(large, "big", 40)
    refused = CliRunner().invoke(main, ["send", ISSUE, "--list", "big", "--yes"])
    assert refused.exit_code == 2, refused.output
    assert "could not start the worker processes" in refused.output and "parallel_from = 0" in refused.output
    assert "Traceback" not in refused.output and not sendgrid_standin.counts()
    config = large / "newsletter.toml"
    config.write_text(config.read_text().replace("parallel_from = 1", "parallel_from = 0"))
    sent = run("send", ISSUE, "--list", "big", "--yes")
    assert sent.exit_code == 0, sent.output
    assert set(sendgrid_standin.counts()) == expected and max(sendgrid_standin.counts().values()) == 1


def test_workers_fail_an_unsafe_row_alone(large: Path, sendgrid_standin):
    set_option(large, "send", "batch_size = 2")
    (large / "subscribers" / "bad.csv").write_text(
        "email,name,status\n"
        'a@example.com,"A\nBcc: x@example.org",subscribed\n'
        "c@example.com,C,subscribed\nd@example.com,D,subscribed\ne@example.com,E,subscribed\n")
    result = run("send", ISSUE, "--list", "bad", "--yes")
    assert result.exit_code == 1, result.output
    assert "1 failed" in result.output and "line break" in result.output
    assert set(sendgrid_standin.counts()) == {"c@example.com", "d@example.com", "e@example.com"}
    assert statuses(large, "bad")["a@example.com"] == "failed"


def test_workers_retry_rate_limits_and_server_errors_without_duplicates(large: Path, sendgrid_standin):
    set_option(large, "send", "batch_size = 25")
    expected = write_list(large, "big", 200)
    sendgrid_standin.rate_limit(times=2, reset_in=0.05)
    sendgrid_standin.answer(500, times=2)
    result = run("send", ISSUE, "--list", "big", "--yes")
    assert result.exit_code == 0, result.output
    counts = sendgrid_standin.counts()
    assert set(counts) == expected and max(counts.values()) == 1
    # Bodies built again for a retry are not counted twice.
    assert "8 batches" in result.output and "8 of them built by" in result.output, result.output


def test_second_ctrl_c_leaves_unknown_only_the_requests_under_way(large: Path, sendgrid_standin):
    """Bodies built ahead wait, still pending, for a free request: abandoning the send never
    marks unknown (never to be resent) a batch that was not even requested."""
    from newsletter.config import load_settings
    from newsletter.sending import engine

    set_option(large, "send", "batch_size = 10\nconcurrency = 2")
    expected = write_list(large, "big", 200)
    sendgrid_standin.slow(0.3, times=100)  # each request is answered (and delivered) after 0.3 s
    settings = load_settings(large)
    answers = []

    def progress(report):
        answers.append(report.sent)
        if len(answers) == 2:
            raise KeyboardInterrupt  # the second Ctrl-C, while the next batches are ready to go

    report = engine.send(settings, Path(ISSUE), engine.SendOptions(list_name="big"), progress=progress)
    assert report.interrupted
    state = statuses(large, "big")
    unknown = {email for email, status in state.items() if status == "unknown"}
    assert unknown <= set(sendgrid_standin.counts()), "a batch never requested was marked unknown"
    # At most the one request under way (none, when the Ctrl-C fell between two requests on a busy machine).
    assert len(unknown) in (0, 10) and "in_flight" not in state.values()
    resumed = run("send", ISSUE, "--list", "big", "--yes")
    if unknown:  # unknowns remain, and the resume says how to settle them
        assert resumed.exit_code == 1 and "newsletter resolve" in resumed.output, resumed.output
    else:
        assert resumed.exit_code == 0, resumed.output
    counts = sendgrid_standin.counts()
    assert max(counts.values()) == 1 and set(counts) | unknown == expected


def test_errors_cross_from_a_worker_whole():
    """A worker hands errors back through a pipe: message, hint and the provider's details survive."""
    import pickle

    from newsletter.errors import NewsletterError
    from newsletter.providers.base import RejectedError

    rejected = pickle.loads(pickle.dumps(RejectedError("refused", errors=[("bad", "personalizations.3.to")],
                                                       status=400, hint="fix the list")))
    assert isinstance(rejected, RejectedError) and rejected.errors == (("bad", "personalizations.3.to"),)
    assert rejected.status == 400 and str(rejected) == "refused (fix the list)"
    located = pickle.loads(pickle.dumps(NewsletterError("no from", where="newsletter.toml", line=3)))
    assert str(located) == "newsletter.toml:3: no from" and located.line == 3


def test_workers_never_resend_a_batch_whose_answer_was_lost(large: Path, sendgrid_standin):
    set_option(large, "send", "batch_size = 10\nconcurrency = 1")
    expected = write_list(large, "big", 50)
    sendgrid_standin.drop(deliver=True)  # SendGrid took the first batch, the answer never came
    first = run("send", ISSUE, "--list", "big", "--yes")
    assert first.exit_code == 1 and "10 unknown" in first.output, first.output
    again = run("send", ISSUE, "--list", "big", "--yes")
    assert "Nothing to send" in again.output or "sent 0" in again.output, again.output
    assert set(sendgrid_standin.counts()) == expected and max(sendgrid_standin.counts().values()) == 1


# -- a real process, interrupted --------------------------------------------------------------------------


def _start_send(root: Path, list_name: str) -> subprocess.Popen:
    """``newsletter send`` in its own session, as from a terminal: Ctrl-C goes to its whole process group."""
    return subprocess.Popen([sys.executable, "-m", "newsletter.cli", "send", ISSUE, "--list", list_name, "--yes"],
                            cwd=root, env={**os.environ}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)


def _workers_of(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


def _started_workers(pid: int) -> list[int]:
    """Workers past their start: each runs a second thread (the watchdog for a dead parent) by then."""
    return [w for w in _workers_of(pid) if len(list(Path(f"/proc/{w}/task").iterdir())) >= 2]


def _alive(pid: int) -> bool:
    try:
        return "\tZ" not in Path(f"/proc/{pid}/status").read_text().split("State:")[1].splitlines()[0]
    except (OSError, IndexError):
        return False


def _wait_for(condition, seconds: float = 60.0) -> bool:
    """Wait for a state of processes that only /proc shows (a worker's second thread): the kernel gives no event
    for it, so it is looked at every 10 ms until it holds."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def _wait_for_exits(pids: list[int], seconds: float) -> bool:
    """Whether every process of ``pids`` has ended within ``seconds``: a pidfd of each becomes readable when it
    does (an event from the kernel, not a poll), whether or not this process is its parent."""
    deadline = time.monotonic() + seconds
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue  # gone already
        try:
            if not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
                return False
        finally:
            os.close(fd)
    return True


@pytest.fixture
def slow_standin(newsletter_root: Path, monkeypatch):
    """A stand-in answering each request after 100 ms, so a send can be interrupted halfway."""
    monkeypatch.setenv("SENDGRID_API_KEY", DEFAULT_KEY)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    set_option(newsletter_root, "send", "parallel_from = 1\nbatch_size = 100")
    with SendGridStandIn(api_key=DEFAULT_KEY, latency=0.1) as standin:
        point_at(newsletter_root, standin.url)
        yield standin


def _start_and_wait_for_workers(root: Path, standin: SendGridStandIn) -> tuple[subprocess.Popen, list[int]]:
    """A send of 6000 under way, both its workers started and building bodies."""
    child = _start_send(root, "big")
    assert _wait_for(lambda: len(_started_workers(child.pid)) == worker_count() or child.poll() is not None)
    delivered = sum(standin.counts().values())
    standin.wait_until(lambda counts: sum(counts.values()) >= delivered + 300, 60,
                       give_up=lambda: child.poll() is not None)
    assert child.poll() is None, "finished before it could be interrupted: " + child.stdout.read().decode()
    return child, _workers_of(child.pid)


def _resume_mails_everyone_once(standin: SendGridStandIn, expected: set[str]) -> None:
    """Run the same send again: it finishes, and every subscriber got the issue exactly once."""
    resumed = run("send", ISSUE, "--list", "big", "--yes")
    assert resumed.exit_code == 0, resumed.output
    counts = standin.counts()
    assert set(counts) == expected and max(counts.values()) == 1


def test_ctrl_c_stops_after_the_batches_in_flight_and_workers_do_not_break(newsletter_root: Path, slow_standin):
    expected = write_list(newsletter_root, "big", 6000)
    child, workers = _start_and_wait_for_workers(newsletter_root, slow_standin)
    os.killpg(child.pid, signal.SIGINT)  # what a terminal does on Ctrl-C
    output = child.communicate(timeout=60)[0].decode()
    assert child.returncode == 1, output
    assert "To resume" in output and "worker process failed" not in output and "Traceback" not in output
    assert f"of them built by {worker_count()} worker processes" in output and " 0 of them" not in output, output
    assert not any(_alive(pid) for pid in workers), "a worker outlived its send"
    state = statuses(newsletter_root, "big")
    assert "in_flight" not in state.values() and "unknown" not in state.values()  # the batches finished

    _resume_mails_everyone_once(slow_standin, expected)


def test_a_killed_worker_is_survived_and_the_send_finishes(newsletter_root: Path, slow_standin):
    """Issue 20 #9: the out-of-memory killer takes a body worker. What it held was never in flight, so the
    sending process builds the rest itself and finishes: everyone mailed once, no traceback, and the summary
    says what happened. (Before: the send stopped on an error, to be resumed; once it sat idle for 120 s.)"""
    expected = write_list(newsletter_root, "big", 6000)
    child, workers = _start_and_wait_for_workers(newsletter_root, slow_standin)
    os.kill(workers[0], signal.SIGKILL)  # as the out-of-memory killer would
    output = child.communicate(timeout=60)[0].decode()
    assert child.returncode == 0, output
    assert "Traceback" not in output and "a worker process stopped" in output, output
    assert "sent 6000 of 6000" in output, output
    counts = slow_standin.counts()
    assert set(counts) == expected and max(counts.values()) == 1
    assert not any(_alive(pid) for pid in workers), "a worker outlived its send"


def test_a_killed_resource_tracker_prints_nothing(newsletter_root: Path, slow_standin):
    """Issue 20 #9: multiprocessing's resource tracker is killed mid-send. The send finishes as if nothing
    happened (before: a warning and five tracebacks after the summary)."""
    expected = write_list(newsletter_root, "big", 6000)
    child, _ = _start_and_wait_for_workers(newsletter_root, slow_standin)
    children = Path(f"/proc/{child.pid}/task/{child.pid}/children").read_text().split()
    tracker = [int(c) for c in children if b"resource_tracker" in Path(f"/proc/{c}/cmdline").read_bytes()]
    assert len(tracker) == 1, children
    os.kill(tracker[0], signal.SIGKILL)
    output = child.communicate(timeout=60)[0].decode()
    assert child.returncode == 0, output
    assert "Traceback" not in output and "resource_tracker" not in output, output
    assert "sent 6000 of 6000" in output, output
    assert set(slow_standin.counts()) == expected


def test_kill_9_of_the_send_takes_its_workers_with_it(newsletter_root: Path, slow_standin):
    expected = write_list(newsletter_root, "big", 6000)
    child, workers = _start_and_wait_for_workers(newsletter_root, slow_standin)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert _wait_for_exits(workers, 5), "workers outlived a killed send"

    resumed = run("send", ISSUE, "--list", "big", "--yes")
    counts = slow_standin.counts()
    assert max(counts.values()) == 1, "a recipient was mailed twice"
    unknown = {email for email, state in statuses(newsletter_root, "big").items() if state == "unknown"}
    assert set(counts) | unknown == expected, "a recipient was forgotten"
    assert resumed.exit_code == (1 if unknown else 0), resumed.output  # unknowns are to be resolved
