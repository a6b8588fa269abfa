"""Issue 20, finding 1: the grey zone settled a batch at a time, from what SendGrid reported of each request.

A real ``newsletter send`` is killed with two requests in flight, one of which SendGrid (the stand-in) took;
the events SendGrid would post about it reach a real ``newsletter serve`` (uvicorn, SQLite or PostgreSQL
store) through the signed Event Webhook. ``resolve`` settles that batch as sent on its own and asks only
about the other; a resume then mails nobody twice and leaves nobody out.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from evidence_helpers import WebhookPoster, events_of, post_events
from newsletter_helpers import ISSUE, set_option
from sendgrid_fixtures import point_at
from sendgrid_standin import DEFAULT_KEY, Reply, SendGridStandIn
from serve_helpers import set_newsletter, start_world, webhook_key_pair
from shared_senders import until

from newsletter.cli import main

SECRET = "test-secret-for-batch-evidence"


@pytest.fixture(scope="module")
def keys():
    return webhook_key_pair()


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request, tmp_path, monkeypatch, keys):
    """The example newsletter sending through the SendGrid stand-in, its events received by a running serve."""
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", SECRET)
    monkeypatch.setenv("SENDGRID_WEBHOOK_PUBLIC_KEY", keys[1])
    monkeypatch.setenv("SENDGRID_API_KEY", DEFAULT_KEY)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    url = request.getfixturevalue("fresh_postgres_url") if request.param == "postgresql" else ""
    running = start_world(tmp_path, database_url=url, webhook_max_age_seconds="300")
    monkeypatch.chdir(running.root)  # ISSUE is a path relative to the newsletter
    with SendGridStandIn(api_key=DEFAULT_KEY) as standin:
        set_newsletter(running.root, provider='"sendgrid"')
        point_at(running.root, standin.url)
        running.standin = standin
        yield running
    running.stop()


def write_list(root: Path, name: str, count: int) -> set[str]:
    rows = [f"{name}-{i}@example.com,Reader {i},subscribed" for i in range(count)]
    (root / "subscribers" / f"{name}.csv").write_text("email,name,status\n" + "\n".join(rows) + "\n")
    return {f"{name}-{i}@example.com" for i in range(count)}


def cli(root: Path, *args: str, input: str | None = None):
    return CliRunner().invoke(main, ["--root", str(root), *args], input=input, catch_exceptions=False)


def statuses(root: Path, list_name: str) -> dict[str, str]:
    db = sqlite3.connect(root / ".newsletter" / "journal.sqlite")
    try:
        return dict(db.execute("SELECT email, status FROM deliveries JOIN sends ON sends.id = deliveries.send "
                               "WHERE sends.list = ?", (list_name,)))
    finally:
        db.close()


def test_resolve_settles_the_batch_sendgrid_reported_and_asks_only_about_the_other(world, keys):
    root, standin = world.root, world.standin
    expected = write_list(root, "pair", 6)
    set_option(root, "send", "batch_size = 2\nmax_in_flight = 4")
    # The first request is answered, so two go out at once next: SendGrid takes the first of them and
    # answers neither in time; the second it never takes.
    standin.script(Reply(deliver=True), Reply(delay=60, deliver=True), Reply(delay=60, deliver=False))
    child = subprocess.Popen([sys.executable, "-m", "newsletter.cli", "send", ISSUE, "--list", "pair", "--yes"],
                             cwd=root, env={**os.environ}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    until(lambda: len(standin.counts()) == 4 and not standin.scripted(), alive=child,
          what="two requests in flight, one of them taken")
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    taken = standin.accepted
    requests = {copy.custom_args["newsletter_batch"]: set() for copy in taken}
    for copy in taken:
        requests[copy.custom_args["newsletter_batch"]].add(copy.email)
    assert len(requests) == 2 and {copy.custom_args["newsletter_run"] for copy in taken} != {""}
    [answered, accepted] = list(requests)  # in arrival order: the answered request, then the one taken
    in_limbo = expected - requests[answered] - requests[accepted]

    # SendGrid's events about every copy it took reach serve's signed webhook
    assert post_events(world.url, keys[0], events_of(taken)).status_code == 200

    asked = cli(root, "resolve", ISSUE, "--list", "pair")
    assert asked.exit_code == 1, asked.output
    assert re.search(rf"batch {accepted}: 2 recipients, requested .*: the provider reported it \(2 processed, "
                     r"2 delivered; first at .*\): settled as sent", asked.output), asked.output
    [other] = re.findall(r"batch (\S+): 2 recipients, requested [^:]+:[^:]+:[^:]+: no event from the provider for "
                         "it, though it reported on 2 batches of this run", asked.output)
    assert other not in requests
    assert "2 recipients: recorded as sent from the provider's events." in asked.output
    assert "2 recipients in 1 batch no event covers" in asked.output
    state = statuses(root, "pair")
    assert {e for e, s in state.items() if s == "unknown"} == in_limbo
    assert all(state[e] == "sent" for e in requests[accepted])

    # the writer answers for the other batch only; the resume sends it, and nobody twice
    resend = cli(root, "resolve", ISSUE, "--list", "pair", "--batch", other, "--as", "resend", "--yes")
    assert resend.exit_code == 0 and "2 recipients: recorded as resend." in resend.output, resend.output
    assert cli(root, "resolve", ISSUE, "--list", "pair").output.startswith("No recipient of list 'pair'")
    resumed = cli(root, "send", ISSUE, "--list", "pair", "--resume", "--yes")
    assert resumed.exit_code == 0, resumed.output
    counts = standin.counts()
    assert set(counts) == expected and max(counts.values()) == 1
    assert set(statuses(root, "pair").values()) == {"sent"}
    status = cli(root, "status", ISSUE, "--list", "pair", "--all").output
    assert "settled as sent from the provider's events" in status


def test_without_events_every_batch_is_asked_and_named_for_the_activity_feed(world, keys):
    """No event has come yet (events lag, or the webhook is not set up): nothing is settled from the absence
    of one; the unknown batch is listed with what to search SendGrid's Activity feed for. Once SendGrid's
    events arrive, the same command settles it."""
    root, standin = world.root, world.standin
    write_list(root, "quiet", 4)
    set_option(root, "send", "batch_size = 2\nmax_in_flight = 4")
    poster = WebhookPoster(standin, world.url, keys[0])
    standin.script(Reply(deliver=True), Reply(drop=True, deliver=True))  # the second taken, its answer lost
    first = cli(root, "send", ISSUE, "--list", "quiet", "--yes")
    assert first.exit_code == 1, first.output
    unknown = {e for e, s in statuses(root, "quiet").items() if s == "unknown"}
    [label] = {copy.custom_args["newsletter_batch"] for copy in standin.accepted if copy.email in unknown}
    listing = cli(root, "resolve", ISSUE, "--list", "quiet")
    assert listing.exit_code == 1
    assert re.search(rf"batch {label}: 2 recipients, requested .*: no event from the provider for this run yet .*"
                     rf"its activity feed shows newsletter_batch = {label} \(newsletter_run = \w+\)",
                     listing.output), listing.output
    assert {e for e, s in statuses(root, "quiet").items() if s == "unknown"} == unknown

    assert poster.post() == 4
    settled = cli(root, "resolve", ISSUE, "--list", "quiet")
    assert settled.exit_code == 0, settled.output
    assert f"batch {label}: 2 recipients" in settled.output and "settled as sent" in settled.output
    assert set(statuses(root, "quiet").values()) == {"sent"}


def test_a_batch_sent_as_several_requests_is_settled_only_when_every_part_was_reported():
    """A batch split into two requests (a value with differing HTML and text forms) is labelled 12-4#1/2 and
    12-4#2/2; a report on the first part alone settles nothing: the second may never have gone."""
    from newsletter.sending.evidence import UnknownBatch, judge
    from newsletter.serve.for_sending import ReportInSeconds as ProviderReport

    batch = UnknownBatch("12-4", "run-uid", False, 3, 1_765_000_000.0)
    first = ProviderReport("12-4#1/2", "processed", 2, 1_765_000_001.0, 1_765_000_001.0)
    second = ProviderReport("12-4#2/2", "processed", 1, 1_765_000_002.0, 1_765_000_002.0)
    other = ProviderReport("12-40", "processed", 5, 1_765_000_003.0, 1_765_000_003.0)  # not a part of 12-4
    assert not judge(batch, [first, other]).accepted
    assert "sent as 2 requests, and the provider reported on part 1 only" in judge(batch, [first, other]).said
    assert judge(batch, [first, second, other]).accepted
    assert not judge(batch, [other]).accepted
    assert "reported on 1 batch of this run" in judge(batch, [other]).said
    assert not judge(UnknownBatch("12-4:sequential", "run-uid", True, 1, None), [first, second]).accepted
