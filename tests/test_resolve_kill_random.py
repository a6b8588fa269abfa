"""At least 50 randomized kill -9 runs of a real ``newsletter send`` with two requests in flight (SendGrid
stand-in), SendGrid's events about every request it took fed to a running ``newsletter serve`` through the
signed Event Webhook, then ``resolve`` (which settles the batches with evidence on its own, and asks about
the rest: answered ``--as resend``, since every event was posted), then a resume: nobody mailed twice,
nobody left out. In every third run one request's connection is dropped before SendGrid took it (an
unknown batch no event covers, asked about). The figures are printed.

Marked slow (deselected by default, as CI runs the suite; 4 to 8 minutes):
``pytest -m slow tests/test_resolve_kill_random.py -s``.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from evidence_helpers import WebhookPoster
from newsletter_helpers import ISSUE, set_option
from sendgrid_fixtures import point_at
from sendgrid_standin import DEFAULT_KEY, Reply, SendGridStandIn
from serve_helpers import set_newsletter, start_world, webhook_key_pair

from newsletter.cli import main

RUNS = 50
RECIPIENTS = 600
BATCH = 100  # six requests a send; two under way at once (max_in_flight)
BUDGET_SECONDS = 600  # stop starting runs after this (the test then fails if too few ran)
SETTLED_FROM_EVENTS = "sent: the provider reported it"


def _list(root: Path, name: str) -> set[str]:
    rows = [f"{name}-{i}@example.com,Reader {i},subscribed" for i in range(RECIPIENTS)]
    (root / "subscribers" / f"{name}.csv").write_text("email,name,status\n" + "\n".join(rows) + "\n")
    return {f"{name}-{i}@example.com" for i in range(RECIPIENTS)}


def _count(root: Path, name: str, where: str) -> int:
    db = sqlite3.connect(root / ".newsletter" / "journal.sqlite")
    try:
        return int(db.execute("SELECT COUNT(*) FROM deliveries JOIN sends ON sends.id = deliveries.send "
                              f"WHERE sends.list = ? AND {where}", (name,)).fetchone()[0])
    finally:
        db.close()


def _cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.mark.slow
def test_50_random_kills_with_two_requests_in_flight_are_settled_from_events(tmp_path, monkeypatch):
    private, public = webhook_key_pair()
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", "test-secret-for-kills-and-evidence")
    monkeypatch.setenv("SENDGRID_WEBHOOK_PUBLIC_KEY", public)
    monkeypatch.setenv("SENDGRID_API_KEY", DEFAULT_KEY)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    rng = random.Random(int(os.environ.get("KILL_SEED", "20")))
    world = start_world(tmp_path, webhook_max_age_seconds="300")
    root = world.root
    monkeypatch.chdir(root)
    set_newsletter(root, provider='"sendgrid"')
    set_option(root, "send", f"batch_size = {BATCH}\nmax_in_flight = {2 * BATCH}\n"
                             "backoff_seconds = 0.01\nmax_backoff_seconds = 0.05")
    figures = {"runs": 0, "killed": 0, "recipients": 0, "unknown_before": 0, "settled_by_evidence": 0,
               "asked": 0, "unknown_after": 0, "duplicates": 0, "losses": 0, "batches_settled": 0,
               "batches_asked": 0, "runs_with_both": 0}
    started = time.monotonic()
    try:
        with SendGridStandIn(api_key=DEFAULT_KEY, latency=0.1) as standin:  # taken at once, answered 0.1 s later
            point_at(root, standin.url)
            poster = WebhookPoster(standin, world.url, private)
            for run in range(RUNS):
                if time.monotonic() - started > BUDGET_SECONDS:
                    break
                name = f"r{run}"
                expected = _list(root, name)
                if run % 3 == 2:  # one request's connection dropped before SendGrid took it: unknown, no event
                    standin.script(*[Reply(deliver=True)] * rng.randint(0, 3), Reply(drop=True, deliver=False))
                child = subprocess.Popen([sys.executable, "-m", "newsletter.cli", "send", ISSUE, "--list", name,
                                          "--yes"], cwd=root, env={**os.environ}, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
                taken = rng.randint(1, RECIPIENTS // BATCH - 1)  # kill once this many requests were taken
                standin.wait_until(lambda counts, name=name, taken=taken: sum(
                    n for e, n in counts.items() if e.startswith(f"{name}-")) >= taken * BATCH, 60,
                    give_up=lambda child=child: child.poll() is not None)
                time.sleep(rng.uniform(0.0, 0.12))  # a random moment around the answers under way
                if child.poll() is None:
                    os.kill(child.pid, signal.SIGKILL)
                    figures["killed"] += 1
                child.wait()
                assert standin.quiet(), "the stand-in still had requests under way"
                standin.unscript()
                poster.post()  # SendGrid's events about every request it took, signed, to serve

                listed = _cli("resolve", ISSUE, "--list", name)
                settled = _count(root, name, f"deliveries.reason = '{SETTLED_FROM_EVENTS}'")
                asked = _count(root, name, "deliveries.status = 'unknown'")
                figures["batches_settled"] += listed.output.count("settled as sent")
                figures["batches_asked"] += listed.output.count("no event from the provider")
                figures["runs_with_both"] += bool(settled and asked)
                if asked:
                    assert listed.exit_code == 1, listed.output
                    answered = _cli("resolve", ISSUE, "--list", name, "--as", "resend", "--yes")
                    assert answered.exit_code == 0, answered.output
                resumed = _cli("send", ISSUE, "--list", name, "--yes")
                assert resumed.exit_code == 0, resumed.output

                got = [e for e in standin.counts().elements() if e.startswith(f"{name}-")]
                figures["runs"] += 1
                figures["recipients"] += len(expected)
                figures["unknown_before"] += settled + asked
                figures["settled_by_evidence"] += settled
                figures["asked"] += asked
                figures["unknown_after"] += _count(root, name, "deliveries.status = 'unknown'")
                figures["duplicates"] += len(got) - len(set(got))
                figures["losses"] += len(expected - set(got))
    finally:
        world.stop()
    print(f"\nkill -9 runs with events: {figures} in {time.monotonic() - started:.0f} s")
    assert figures["runs"] >= RUNS, f"only {figures['runs']} runs within {BUDGET_SECONDS} s"
    assert figures["killed"] >= RUNS * 0.8, "most runs must be killed mid-send"
    assert figures["settled_by_evidence"] > 0 and figures["runs_with_both"] > 0
    assert figures["duplicates"] == 0 and figures["losses"] == 0 and figures["unknown_after"] == 0
