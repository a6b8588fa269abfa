"""A fresh large send confirmed beforehand (``--yes``) starts before its whole list is selected.

The selection goes on between batches (``newsletter/sending/selection.py``). What a writer
would notice if it went wrong: someone mailed twice or not at all, a duplicate row's values
winning over the first row's, wrong "skipped" counts, a bad row found only after mail went
out, or a stopped send that cannot be finished. Each test runs the same list both ways where
that makes the point, against the stand-in SendGrid (which validates every body).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from journal_reading import forget_sends, statuses
from sendgrid_fixtures import point_at
from sendgrid_standin import DEFAULT_KEY, SendGridStandIn
from test_send import ISSUE, set_option

from newsletter.cli import main
from newsletter.config import load_settings
from newsletter.errors import NewsletterError
from newsletter.sending import engine
from newsletter.sending.selection import STEP

ROWS = 2 * STEP + 1_500  # several steps of selection (a step is five batches here: 2,500)


def write_awkward_list(root: Path, name: str, rows: int = ROWS) -> tuple[set[str], Counter]:
    """A list with, spread through it, an address repeated later under another name and case, unsubscribed
    rows and invalid addresses. Returns who should get the issue and what should be skipped, and why."""
    lines = ["email,name,status"]
    expected: set[str] = set()
    skipped: Counter = Counter()
    for i in range(rows):
        if i % 997 == 500:
            lines.append(f"READER{i - 400}@Example.com,Someone Else {i},subscribed")  # a repeat, later
            skipped["duplicate"] += 1
        elif i % 1009 == 7:
            lines.append(f"gone{i}@example.com,Gone {i},unsubscribed")
            skipped["unsubscribed"] += 1
        elif i % 1013 == 3:
            lines.append(f"not-an-address-{i},Nobody {i},subscribed")
            skipped["invalid"] += 1
        else:
            lines.append(f"reader{i}@example.com,Reader {i},subscribed")
            expected.add(f"reader{i}@example.com")
    (root / "subscribers" / f"{name}.csv").write_text("\n".join(lines) + "\n")
    return expected, skipped


@pytest.fixture
def large(sendgrid_newsletter: Path) -> Path:
    set_option(sendgrid_newsletter, "send", f"parallel_from = {STEP}\nbatch_size = 500\n"
                                            "backoff_seconds = 0.01\nmax_backoff_seconds = 0.05")
    return sendgrid_newsletter


def send(root: Path, *, confirmed: bool, **hooks) -> engine.SendReport:
    return engine.send(load_settings(root), Path(ISSUE), engine.SendOptions(list_name="big", confirmed=confirmed),
                       **hooks)


def test_a_confirmed_large_send_starts_before_its_list_is_selected_and_mails_the_same(large: Path,
                                                                                     sendgrid_standin):
    expected, skipped = write_awkward_list(large, "big")
    to_send_at_start = []
    report = send(large, confirmed=True, on_plan=lambda plan, report: to_send_at_start.append(report.to_send))
    assert to_send_at_start[0] <= STEP < len(expected), "the first batch waited for the whole list"
    assert report.sent == report.to_send == report.selected == len(expected)
    assert report.skipped == skipped
    streamed = {a.email: a.name for a in sendgrid_standin.accepted}
    counts = sendgrid_standin.counts()
    assert set(counts) == expected and max(counts.values()) == 1
    assert all(name == "Reader " + email.removeprefix("reader").split("@")[0] for email, name in streamed.items()), \
        "a later row of an address won over its first"

    # The same list selected wholly first (a send that asks before sending): the same mail, the same counts.
    sendgrid_standin.reset()
    forget_sends(large, ISSUE)  # a newsletter that never sent it: no journal, no record
    first = send(large, confirmed=False)
    assert first.sent == len(expected) and first.skipped == skipped
    assert {a.email: a.name for a in sendgrid_standin.accepted} == streamed


def test_a_bad_row_near_the_end_stops_the_send_before_anything_is_sent(large: Path, sendgrid_standin):
    write_awkward_list(large, "big")
    path = large / "subscribers" / "big.csv"
    lines = path.read_text().splitlines()
    lines.insert(ROWS - 10, '"unclosed@example.com,Unclosed,subscribed')
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(NewsletterError) as raised:
        send(large, confirmed=True)
    assert f"big.csv:{ROWS - 9}" in str(raised.value) or f"line {ROWS - 9}" in str(raised.value), str(raised.value)
    assert not sendgrid_standin.counts(), "mail went out before the list was wholly read"


def test_stopped_while_the_list_is_still_being_selected_the_send_counts_the_whole_list_and_resumes(
        large: Path, sendgrid_standin):
    """(Waiting for answers is selecting, so against a quick provider the list is selected by the first
    answer: the Ctrl-C here comes as the first request goes out, the first steps of the list selected.)
    Stopped, the send selects the rest without sending, so its summary and ``status`` count everyone still
    to go."""
    from newsletter.providers.sendgrid import SendGridProvider

    expected, skipped = write_awkward_list(large, "big")
    stop = engine.StopFlag()
    at_start = []

    class CtrlCAtTheFirstRequest(SendGridProvider):
        def deliver(self, payload):
            stop.requested = True  # Ctrl-C as the first request goes out: it is finished, nothing more starts
            return super().deliver(payload)

    settings = load_settings(large)
    report = engine.send(settings, Path(ISSUE), engine.SendOptions(list_name="big", confirmed=True),
                         provider=CtrlCAtTheFirstRequest(settings.sendgrid, api_key=DEFAULT_KEY),
                         on_plan=lambda plan, report: at_start.append(report.to_send), stop=stop)
    assert at_start[0] < len(expected), "the whole list was selected before delivery started"
    first = report.sent
    assert report.interrupted and 0 < first < len(expected) and report.resume_hint, report.summary()
    assert report.to_send == len(expected) and report.skipped == skipped, report.summary()
    assert list(statuses(large, "big").values()).count("pending") == len(expected) - first
    status = CliRunner().invoke(main, ["status", ISSUE, "--list", "big"], catch_exceptions=False)
    assert f"{len(expected) - first} pending" in status.output, status.output

    result = CliRunner().invoke(main, ["send", ISSUE, "--list", "big", "--yes"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    counts = sendgrid_standin.counts()
    assert set(counts) == expected and max(counts.values()) == 1


def test_stopped_before_its_first_request_a_send_leaves_nothing_behind(large: Path, sendgrid_standin):
    """Ctrl-C as delivery starts, the list still being selected: nothing went out, so nothing of the run
    stays in the journal or issue.md; the next send is a fresh one that mails everyone once."""
    expected, _ = write_awkward_list(large, "big")
    stop = engine.StopFlag()

    def on_plan(plan, report):
        stop.requested = True  # Ctrl-C as delivery starts

    report = send(large, confirmed=True, on_plan=on_plan, stop=stop)
    assert report.interrupted and report.sent == 0 and not report.recorded, report.summary()
    assert not statuses(large, "big") and not sendgrid_standin.counts()
    assert "\nsent:" not in (large / ISSUE / "issue.md").read_text()
    status = CliRunner().invoke(main, ["status", ISSUE], catch_exceptions=False)
    assert "has not been sent" in status.output, status.output

    result = CliRunner().invoke(main, ["send", ISSUE, "--list", "big", "--yes"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    counts = sendgrid_standin.counts()
    assert set(counts) == expected and max(counts.values()) == 1


def test_a_send_refused_by_the_provider_mid_selection_reports_and_abandons_the_whole_list(large: Path,
                                                                                        sendgrid_standin):
    """The key is refused at the first request, before the list is wholly selected: the summary says
    "sent 0 of" everyone, and abandoning counts everyone never mailed."""
    expected, _ = write_awkward_list(large, "big", 60_000)
    sendgrid_standin.answer(401)
    first = CliRunner().invoke(main, ["send", ISSUE, "--list", "big", "--yes"])
    assert first.exit_code == 2 and f"sent 0 of {len(expected)};" in first.output, first.output
    abandon = CliRunner().invoke(main, ["resolve", ISSUE, "--list", "big", "--abandon", "--yes"])
    assert f"{len(expected)} recipients: abandoned" in abandon.output, abandon.output
    assert not sendgrid_standin.counts()


@pytest.fixture
def slow_standin(newsletter_root: Path, monkeypatch):
    """Answering after 50 ms; counting addresses only (the bodies' shape is every other test's business),
    so a list long enough to be still selecting at the first answer is sent again in seconds."""
    monkeypatch.setenv("SENDGRID_API_KEY", DEFAULT_KEY)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    set_option(newsletter_root, "send", "parallel_from = 1000\nbatch_size = 1000")
    with SendGridStandIn(api_key=DEFAULT_KEY, latency=0.05, validate=False, record_details=False) as standin:
        point_at(newsletter_root, standin.url)
        yield standin


def test_killed_while_the_list_is_still_being_selected_the_next_run_mails_the_rest_once(newsletter_root: Path,
                                                                                      slow_standin):
    expected, _ = write_awkward_list(newsletter_root, "big", 100_000)
    child = subprocess.Popen([sys.executable, "-m", "newsletter.cli", "send", ISSUE, "--list", "big", "--yes"],
                             cwd=newsletter_root, env={**os.environ}, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while not slow_standin.counts() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert child.poll() is None, child.stdout.read().decode()
    os.killpg(child.pid, signal.SIGKILL)  # as soon as the first request is answered
    child.wait(timeout=30)
    journaled = statuses(newsletter_root, "big")
    assert len(journaled) < len(expected), "the whole list was selected before the kill"

    rerun = CliRunner().invoke(main, ["send", ISSUE, "--list", "big", "--yes"], catch_exceptions=False)
    unknown = {email for email, status in statuses(newsletter_root, "big").items() if status == "unknown"}
    assert len(unknown) <= 2000, "more than the requests under way at the kill"  # 2 requests of 1000
    assert rerun.exit_code == (1 if unknown else 0), rerun.output
    counts = slow_standin.counts()
    assert max(counts.values()) == 1, "someone was mailed twice"
    assert set(counts) | unknown == expected and set(counts) <= expected
