"""Provider trouble, measured: real ``newsletter send`` processes against a misbehaving SendGrid stand-in.

Each scenario sends N recipients (default 20,000, 1,000 a request: two requests under way at
most, the default ``[send] max_in_flight``) with the default ``[send]`` settings, to a stand-in
that misbehaves in one way (issue 20, findings 2-5):

- ``baseline``: no trouble (the same run's reference for the time to finish);
- ``slow``: every answer (mail and reads) 3 s late, with ``[sendgrid] timeout = 1``;
- ``probe-404``: ``GET /v3/scopes`` answers 404 and one mail answer comes 3 s late (timeout 1);
- ``burst-500``: the first 30 mail sends answer HTTP 500;
- ``burst-429``: the first 30 mail sends answer 429 with ``Retry-After: 1``;
- ``killed``: the stand-in stops listening once 4,000 are delivered and is back 5 s later (a request
  that reached it as it went down is reset: unknown, and not delivered);
- ``lost``: the answers of two requests are lost (the mail was delivered).

For each: how many recipients ended unknown, the seconds from the first trouble (an error answer,
a lost or late answer, the stand-in going down) to the answer of the next request that arrived after it
and was accepted ("recover"),
the seconds the whole send took ("finish", and its ratio to the baseline), whether it paused, its
duplicates, and the unknown count its closing line printed. Targets: unknown at most one request
(1,000), except ``lost`` (exactly the two requests); recovery within seconds; no pause; 0 duplicates.

    python benchmarks/trouble.py [--recipients 20000] [--only slow,burst-500]

Last run (2 loaded cores, 2026-12-08, 20,000 recipients; the table in docs/sending.md, "Provider trouble"):

    scenario    exit  unknown  summary  recover s  finish s  x base paused delivered  dupl  target
    baseline       0        0        0        0.0       8.2    1.00     no     20000     0  met
    slow           1     1000     1000       10.0      44.8    5.47     no     20000     0  met
    probe-404      1     1000     1000        1.1       6.7    0.82     no     20000     0  met
    burst-500      0        0        0       60.8      74.8    9.14     no     20000     0  met
    burst-429      0        0        0       18.5      29.6    3.61     no     20000     0  met
    killed         0        0        0        7.6      17.0    2.08     no     20000     0  met
    lost           1     2000     2000        0.3      10.6    1.29     no     20000     0  met
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from doctor_dns import point_doctor_at_standin  # noqa: E402
from sendgrid_standin import DEFAULT_KEY, MAIL_SEND, Reply, SendGridStandIn  # noqa: E402

ISSUE = "issues/2026-11-25-first-dispatch"
BATCH = 1000


@dataclass(frozen=True)
class Scenario:
    name: str
    prepare: Callable[[SendGridStandIn], None]
    timeout: float = 30.0  # [sendgrid] timeout
    during: Callable[[SendGridStandIn, list[float]], None] | None = None  # beside the send (a thread); notes when
    # it took the stand-in down


@dataclass(frozen=True)
class Result:
    scenario: str
    exit: int
    unknown: int  # in the journal
    said_unknown: int  # in the closing line
    recover: float | None
    finish: float
    paused: bool
    delivered: int
    duplicates: int
    errors: list[str]


def _slow(standin: SendGridStandIn) -> None:
    standin.answer_delay = 3.0


def _probe_404(standin: SendGridStandIn) -> None:
    standin.scopes_status = 404
    standin.script(Reply(delay=3.0, deliver=True, path=MAIL_SEND))


def _kill_and_restart(standin: SendGridStandIn, went_down: list[float]) -> None:
    standin.wait_until(lambda counts: sum(counts.values()) >= 4 * BATCH, 600)
    went_down.append(time.time())
    standin.down()
    time.sleep(5.0)  # the outage itself: five seconds without SendGrid
    went_down.append(time.time())
    standin.up()


SCENARIOS = [
    Scenario("baseline", lambda s: None),
    Scenario("slow", _slow, timeout=1.0),
    Scenario("probe-404", _probe_404, timeout=1.0),
    Scenario("burst-500", lambda s: s.answer(500, times=30)),
    Scenario("burst-429", lambda s: s.answer(429, times=30, headers={"Retry-After": "1"})),
    Scenario("killed", lambda s: None, during=_kill_and_restart),
    Scenario("lost", lambda s: s.drop(times=2, deliver=True)),
]


def make_newsletter(root: Path, api_host: str, recipients: int, timeout: float) -> None:
    shutil.copy(REPO / "newsletter.toml", root / "newsletter.toml")
    for folder in ("templates", "issues"):
        shutil.copytree(REPO / folder, root / folder)
    (root / "subscribers").mkdir()
    rows = "".join(f"reader{i}@example.com,Reader {i},subscribed\n" for i in range(recipients))
    (root / "subscribers" / "trouble.csv").write_text("email,name,status\n" + rows)
    text = (root / "newsletter.toml").read_text()
    text = text.replace("[sendgrid]", f'[sendgrid]\napi_host = "{api_host}"\ntimeout = {timeout}', 1)
    (root / "newsletter.toml").write_text(text + f"\n[send]\nbatch_size = {BATCH}\n")
    point_doctor_at_standin(root)  # the send's doctor gate asks a DNS stand-in in this process, never the network


def unknown_in_journal(root: Path) -> int:
    db = sqlite3.connect(root / ".newsletter" / "journal.sqlite")
    try:
        return int(db.execute("SELECT COUNT(*) FROM deliveries WHERE status='unknown'").fetchone()[0])
    finally:
        db.close()


def recovery(standin: SendGridStandIn, timeout: float, down: list[float]) -> float | None:
    """Seconds from the first trouble (an error answer, a lost answer, one later than ``timeout``, the stand-in
    going down) to the answer of the next mail send that arrived after it ended (the stand-in back up) and was
    accepted (2xx, answered)."""
    mail = sorted(standin.mail_requests(), key=lambda r: r.arrived or r.at)
    troubled = [r for r in mail if r.status is None or not 200 <= r.status < 300 or r.at - r.arrived > timeout]
    starts = [r.arrived for r in troubled[:1]] + down[:1]
    if not starts:
        return 0.0
    began = min(starts)
    after = down[-1] if down else began
    accepted = [r.at for r in mail if r.status is not None and 200 <= r.status < 300 and r.arrived > after]
    return min(accepted) - began if accepted else None


def run(scenario: Scenario, recipients: int) -> Result:
    with tempfile.TemporaryDirectory() as tmp, SendGridStandIn(api_key=DEFAULT_KEY, validate=False,
                                                               record_details=False) as standin:
        root = Path(tmp)
        make_newsletter(root, standin.url, recipients, scenario.timeout)
        scenario.prepare(standin)
        went_down: list[float] = []
        env = {**os.environ, "SENDGRID_API_KEY": DEFAULT_KEY, "NO_PROXY": "127.0.0.1,localhost",
               "no_proxy": "127.0.0.1,localhost", "NEWSLETTER_UNSUBSCRIBE_SECRET": "benchmark-secret-0123456789",
               "PYTHONPATH": str(REPO)}
        helper = (threading.Thread(target=scenario.during, args=(standin, went_down), daemon=True)
                  if scenario.during else None)
        started = time.monotonic()
        if helper:
            helper.start()
        done = subprocess.run([sys.executable, "-m", "newsletter.cli", "send", ISSUE, "--list", "trouble", "--yes"],
                              cwd=root, env=env, capture_output=True, text=True, timeout=3600)
        seconds = time.monotonic() - started
        if helper:
            helper.join(timeout=60)
        standin.wait_answered(60)  # a late answer is on record once it has left
        counts = standin.counts()
        said = re.search(r"(\d+) unknown", done.stdout)
        return Result(scenario.name, done.returncode, unknown_in_journal(root), int(said.group(1)) if said else 0,
                      recovery(standin, scenario.timeout, went_down), seconds,
                      "Paused" in done.stderr, len(counts), sum(n - 1 for n in counts.values() if n > 1),
                      [line for line in done.stderr.splitlines() if "Traceback" in line or line.startswith("Error:")])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--only", default="", help="comma-separated scenario names (baseline always runs)")
    args = parser.parse_args()
    chosen = {name for name in args.only.split(",") if name} | {"baseline"}
    results = [run(s, args.recipients) for s in SCENARIOS if not args.only or s.name in chosen]
    baseline = next(r for r in results if r.scenario == "baseline").finish
    print(f"{args.recipients:,} recipients, {BATCH:,} a request; command: python benchmarks/trouble.py "
          f"--recipients {args.recipients}" + (f" --only {args.only}" if args.only else ""))
    print(f"{'scenario':<11} {'exit':>4} {'unknown':>8} {'summary':>8} {'recover s':>10} {'finish s':>9} "
          f"{'x base':>7} {'paused':>6} {'delivered':>9} {'dupl':>5}  target")
    for r in results:
        recover = "-" if r.recover is None else f"{r.recover:.1f}"
        target_unknown = 2 * BATCH if r.scenario == "lost" else BATCH
        met = (r.unknown <= target_unknown and not r.paused and r.duplicates == 0 and r.said_unknown == r.unknown
               and r.delivered >= args.recipients - r.unknown)  # (unknown: delivered or not, it cannot know)
        print(f"{r.scenario:<11} {r.exit:>4} {r.unknown:>8} {r.said_unknown:>8} {recover:>10} {r.finish:>9.1f} "
              f"{r.finish / baseline:>7.2f} {'yes' if r.paused else 'no':>6} {r.delivered:>9} {r.duplicates:>5}  "
              f"{'met' if met else 'MISSED'}")
        for line in r.errors:
            print(f"    {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
