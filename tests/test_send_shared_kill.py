"""Three senders sharing one send through the PostgreSQL journal, killed with kill -9 at random moments and
started again (as workers), through the SendGrid stand-in, under an hourly cap and a per-domain cap.

Each run: a send started by one process, two workers joining it, one to three kill -9s of any of them at
random moments (each killed sender started again as a worker), then everyone finishes. Counted at the
stand-in and read back from the journal: nobody mailed twice, nobody lost (every recipient delivered or
unknown), every unknown recipient in a batch a killed sender had under way (at most its requests' worth),
and the caps never exceeded by all the senders together, in any window of an hour.

The caps are real (an hour is 3,600 s). So that they bind within a run of a few seconds, each run starts
after an earlier send through the same journal that used the whole hour's room (``fill_the_hour``): its
sends are dated so that they leave the hour one after another over the run's first seconds, and the
senders may only send as they do. (Before that, the earlier runs are moved an hour into the past.)

A few runs in the default suite; ``pytest -m slow tests/test_send_shared_kill.py -s`` runs 32 and prints
the figures.
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest
from newsletter_helpers import set_option
from sendgrid_fixtures import point_at
from sendgrid_standin import DEFAULT_KEY, SendGridStandIn
from shared_senders import execute, most_in_any_window, query, readers, ready, share_journal, start, statuses, until

from newsletter.sending import journal as jn

HOUR = 3600.0
PER_HOUR = 150  # [send] max_per_hour, for every sender together
PER_DOMAIN = {"example.org": 40}  # [send.domains]
DOMAINS = ("example.com", "example.org", "example.net")
SIZE = 120  # recipients a run
BATCH, CONCURRENCY = 20, 2  # a sender has at most 40 recipients under way at once
LEAVING = (2.0, 6.0)  # seconds after it is filled: the earlier send's mail leaves the hour over this span


@pytest.fixture
def shared_standin(newsletter_root: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SENDGRID_API_KEY", DEFAULT_KEY)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with SendGridStandIn(api_key=DEFAULT_KEY, latency=0.02, record_details=False) as standin:
        point_at(newsletter_root, standin.url)
        location = share_journal(newsletter_root, postgres_url,
                                 f"batch_size = {BATCH}\nconcurrency = {CONCURRENCY}\nbackoff_seconds = 0.01\n"
                                 f"max_backoff_seconds = 0.05\nmax_per_hour = {PER_HOUR}")
        set_option(newsletter_root, "send.domains", "\n".join(f'"{d}" = {n}' for d, n in PER_DOMAIN.items()))
        yield newsletter_root, location, standin


def fill_the_hour(root: Path, location: jn.Location, name: str) -> list[tuple[float, str]]:
    """A send of a list of its own that uses the whole hour's room (PER_HOUR, PER_DOMAIN's each), dated as if
    it went out an hour ago, leaving the hour over the next LEAVING seconds; (time, email) of its mail."""
    execute(location, "UPDATE deliveries SET updated = updated - ?", (HOUR,))  # earlier runs: an hour ago
    capped = [f"{name}-{i}@{domain}" for domain, cap in PER_DOMAIN.items() for i in range(cap)]
    emails = capped + [f"{name}-{i}@example.com" for i in range(PER_HOUR - len(capped))]
    (root / "subscribers" / f"{name}.csv").write_text(
        "email,name,status\n" + "".join(f"{email},Earlier,subscribed\n" for email in emails))
    out, err = start(root, "--list", name).communicate(timeout=180)
    assert f"sent {PER_HOUR} of {PER_HOUR}" in out, out + err
    rows = query(location, "SELECT d.id FROM deliveries d JOIN sends s ON s.id = d.send WHERE s.list=? "
                           "ORDER BY d.id", (name,))
    first, (low, high) = time.time() - HOUR, LEAVING
    for place, (row_id,) in enumerate(rows):  # interleaved, so that each domain's room comes back gradually
        execute(location, "UPDATE deliveries SET updated=? WHERE id=?",
                (first + low + (high - low) * ((place * 7919) % len(rows)) / len(rows), row_id))
    return [(float(t), str(e)) for t, e in query(location, "SELECT d.updated, d.email FROM deliveries d JOIN sends "
                                                           "s ON s.id = d.send WHERE s.list=?", (name,))]


def kill_run(root: Path, location: jn.Location, standin: SendGridStandIn, rng: random.Random, name: str) -> dict:
    """One run (see the module docstring); its figures."""
    earlier = fill_the_hour(root, location, f"earlier-{name}")
    expected = readers(root, name, SIZE, DOMAINS)
    starter = start(root, "--list", name)
    until(lambda: ready(location, name), alive=starter, what="the send to begin")
    senders = [starter, *(start(root, "--list", name, "--resume", "--worker") for _ in range(2))]
    killed: list[int] = []
    for _ in range(rng.randint(1, 3)):
        time.sleep(rng.uniform(0.0, 1.0))  # a random moment of the send
        living = [p for p in senders if p.poll() is None]
        if not living:
            break
        victim = rng.choice(living)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        killed.append(victim.pid)
        senders.remove(victim)
        senders.append(start(root, "--list", name, "--resume", "--worker"))  # started again
    for sender in senders:
        out, err = sender.communicate(timeout=180)
        assert sender.returncode in (0, 1), out + err  # 1: some recipients are unknown (a killed request)
    # A sender killed last may have left batches behind after the others finished: one more worker takes them.
    if any(s in ("pending", "in_flight", "waiting") for s in statuses(location, name).values()):
        out, err = start(root, "--list", name, "--resume", "--worker").communicate(timeout=180)
    state = statuses(location, name)
    got = [e for e in standin.counts().elements() if e.startswith(f"{name}-")]
    unknown = {e for e, s in state.items() if s == "unknown"}
    killed_uids = {uid for (uid,) in query(location, "SELECT r.uid FROM runs r JOIN sends s ON s.id = r.send "
                                                     f"WHERE s.list=? AND r.pid IN {_ints(killed)}", (name,))}
    owners = query(location, "SELECT d.email, b.worker FROM deliveries d JOIN sends s ON s.id = d.send LEFT JOIN "
                             "batches b ON b.send = d.send AND b.label = d.batch WHERE s.list=? AND d.status='unknown'",
                   (name,))
    assert all(worker in killed_uids for _, worker in owners), (owners, killed_uids)
    assert len(unknown) <= len(killed) * BATCH * CONCURRENCY, (len(unknown), len(killed))
    assert set(state.values()) <= {"sent", "unknown"}, sorted(set(state.values()))
    mail = earlier + [(t, e) for t, e in standin.delivery_times() if e.startswith(f"{name}-")]
    return {"killed": len(killed), "duplicates": len(got) - len(set(got)),
            "losses": len(expected - set(got) - unknown), "unknown": len(unknown), "recipients": len(expected),
            "most_in_an_hour": caps_kept(mail)}


def _ints(values: list[int]) -> str:
    return "(" + ",".join(str(int(v)) for v in values or [-1]) + ")"


def caps_kept(times: list[tuple[float, str]]) -> dict[str, int]:
    """The most mail in any window of an hour (the earlier send's and what the stand-in saw of the run's),
    overall and for each capped domain."""
    most = {"all": most_in_any_window([t for t, _ in times], HOUR)}
    for domain, cap in PER_DOMAIN.items():
        most[domain] = most_in_any_window([t for t, e in times if e.endswith("@" + domain)], HOUR)
        assert most[domain] <= cap, most
    assert most["all"] <= PER_HOUR, most
    return most


def kill_runs(runs: int, budget: float, shared_standin, seed: int) -> dict:
    root, location, standin = shared_standin
    rng = random.Random(seed)
    totals: dict[str, object] = {"runs": 0, "killed": 0, "duplicates": 0, "losses": 0, "unknown": 0,
                                 "recipients": 0}
    most: list[dict[str, int]] = []
    started = time.monotonic()
    for run in range(runs):
        if time.monotonic() - started > budget:
            break
        figures = kill_run(root, location, standin, rng, f"k{run}")
        most.append(figures.pop("most_in_an_hour"))
        totals["runs"] += 1
        for key, value in figures.items():
            totals[key] += value
    totals["most_in_an_hour"] = {key: max(m[key] for m in most) for key in most[0]} if most else {}
    totals["seconds"] = round(time.monotonic() - started)
    print(f"\nsenders sharing a send, kill -9 runs: {totals}")
    assert totals["runs"] == runs, f"only {totals['runs']} runs within {budget} s"
    assert totals["duplicates"] == 0 and totals["losses"] == 0, totals
    assert totals["killed"] >= runs, totals
    return totals


def test_senders_sharing_a_send_killed_at_random_mail_nobody_twice_and_keep_the_caps(shared_standin) -> None:
    kill_runs(2, 150, shared_standin, seed=int(os.environ.get("KILL_SEED", "19")))


@pytest.mark.slow
def test_32_runs_of_senders_killed_at_random(shared_standin) -> None:
    kill_runs(32, 900, shared_standin, seed=int(os.environ.get("KILL_SEED", "1919")))
