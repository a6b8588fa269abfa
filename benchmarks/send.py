"""Send throughput against the local SendGrid stand-in, measured in one run.

Prints: recipients per second for N recipients (default 100,000) sent
through the SendGrid provider with batching; the same for a naive loop of
one request per recipient on 2,000 recipients; their ratio; the journal's
share of the batched send's time; peak memory of each phase; and a dry run
of N recipients. Each phase runs in its own process and the stand-in runs in
another, with schema validation off. The batched send is large enough to
build its request bodies in worker processes ([send] parallel_from), so its
peak memory is that of the sending process and its workers together, sampled
from /proc. The naive loop is the same send with batch_size = 1 and
concurrency = 1: one request per recipient, each journaled, one at a time.
The batched send and the naive loop run in --pairs back-to-back pairs (this
machine's speed drifts between minutes); the median pair's ratio is printed,
and the 1,000,000 figure comes from the slowest batched run.

Targets (2-core machine): 1,000,000 recipients in under 60 s with peak
memory under 400 MB (run with --recipients 1000000 --pairs 1 to measure it
rather than project it from the rate); batched at least 100x the naive rate; dry run of
100,000 recipients under 10 s.

    python benchmarks/send.py [--recipients 100000] [--naive 2000] [--pairs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

ISSUE = "2026-11-25-first-dispatch"
KEY = "SG.benchmark-key"


def make_newsletter(root: Path, api_host: str, recipients: int, batch_size: int, concurrency: int = 4) -> None:
    shutil.copy(REPO / "newsletter.toml", root / "newsletter.toml")
    for folder in ("templates", "issues"):
        shutil.copytree(REPO / folder, root / folder)
    (root / "subscribers").mkdir()
    with open(root / "subscribers" / "bench.csv", "w") as out:
        out.write("email,name,status,city\n")
        for i in range(recipients):
            out.write(f"reader{i}@example.com,Reader {i},subscribed,City {i % 100}\n")
    text = (root / "newsletter.toml").read_text()
    text = text.replace("[sendgrid]", f'[sendgrid]\napi_host = "{api_host}"', 1)
    text += f"\n[send]\nbatch_size = {batch_size}\nconcurrency = {concurrency}\n"
    (root / "newsletter.toml").write_text(text)


class TreeMemory:
    """Peak resident memory of this process and its children (a large send's body workers) together.

    Sampled from /proc every 50 ms: getrusage cannot add up processes, and it
    charges a spawned worker with its parent's memory for the instant between
    fork and exec.
    """

    def __init__(self):
        self.peak_kb = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    @staticmethod
    def _rss_kb(pid: int) -> int:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except (OSError, ValueError):
            pass
        return 0

    def _sample(self) -> None:
        me = os.getpid()
        while not self._done.wait(0.05):
            try:
                children = Path(f"/proc/{me}/task/{me}/children").read_text().split()
            except OSError:
                children = []
            total = self._rss_kb(me) + sum(self._rss_kb(int(pid)) for pid in children)
            self.peak_kb = max(self.peak_kb, total)

    def stop(self) -> float:
        self._done.set()
        self._thread.join()
        return max(self.peak_kb, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


class Clock:
    """Wall time spent inside the methods it wraps; a call made from inside another counts once."""

    def __init__(self):
        self.seconds = 0.0
        self._depth = 0  # journal methods call one another (settle -> settle_groups)

    def timed(self, method):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            self._depth += 1
            try:
                return method(*args, **kwargs)
            finally:
                self._depth -= 1
                if not self._depth:
                    self.seconds += time.perf_counter() - start
        return wrapper


def phase(root: Path, dry_run: bool) -> dict:
    """Run one send in this process; return its timings (called in a child process)."""
    from newsletter.config import load_settings
    from newsletter.sending import engine
    from newsletter.sending import journal as jn
    from newsletter.sending import plan as sending
    from newsletter.sending import workers as body_workers

    journal = Clock()  # every journal call of the send
    selecting = Clock()  # selecting the list into the journal: the part of preparing that grows with the list
    jn.Journal.select = selecting.timed(jn.Journal.select)
    for name in ("start_run", "select", "next_pending", "next_retry_time", "mark_in_flight", "settle",
                 "settle_groups", "release", "selected_status_counts"):
        setattr(jn.Journal, name, journal.timed(getattr(jn.Journal, name)))

    # Journal.select consumes the stream of recipients read from the CSV: time that reading apart.
    stream_seconds = 0.0
    read_list = sending.select_recipients

    def timed_stream(*args, **kwargs):
        nonlocal stream_seconds
        recipients = read_list(*args, **kwargs)
        while True:
            start = time.perf_counter()
            try:
                item = next(recipients)
            except StopIteration:
                stream_seconds += time.perf_counter() - start
                return
            stream_seconds += time.perf_counter() - start
            yield item

    sending.select_recipients = timed_stream

    class workers:  # counts the worker processes a send starts
        count = 0

    start_workers = body_workers.BodyWorkers.__init__

    def counted(self, *args, **kwargs):
        start_workers(self, *args, **kwargs)
        workers.count += self.processes

    body_workers.BodyWorkers.__init__ = counted
    memory = TreeMemory()
    settings = load_settings(root)
    options = sending.SendOptions(list_name="bench", dry_run=dry_run, samples=3, out_dir=root / "outbox")
    start = time.perf_counter()
    prepared = []
    report = engine.send(settings, root / "issues" / ISSUE, options,
                         on_plan=lambda plan, report: prepared.append(time.perf_counter() - start))
    prepare_s = prepared[0] if prepared and not dry_run else 0.0
    total = time.perf_counter() - start
    return {"sent": report.sent, "to_send": report.to_send, "batches": report.batches, "seconds": total,
            "prepare_seconds": prepare_s, "select_seconds": selecting.seconds,
            "journal_seconds": journal.seconds - stream_seconds,
            "list_seconds": stream_seconds,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "workers": workers.count, "tree_peak_mb": memory.stop()}


def run_phase(label: str, api_host: str, recipients: int, batch_size: int, dry_run: bool = False,
              concurrency: int = 4) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_newsletter(root, api_host, recipients, batch_size, concurrency)
        env = {**os.environ, "SENDGRID_API_KEY": KEY, "NEWSLETTER_UNSUBSCRIBE_SECRET": "benchmark-secret",
               "NO_PROXY": "127.0.0.1,localhost"}
        out = subprocess.run([sys.executable, __file__, "--phase", str(root), *(["--dry"] if dry_run else [])],
                             env=env, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"{label} failed:\n{out.stdout}\n{out.stderr}")
        result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["sent"] != recipients:
        raise SystemExit(f"{label}: sent {result['sent']} of {recipients}")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--naive", type=int, default=2_000)
    parser.add_argument("--pairs", type=int, default=3,
                        help="batched/naive pairs run back to back; the median pair's ratio is reported")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--dry", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(phase(Path(args.phase), args.dry)))
        return 0

    def rate(r: dict) -> float:
        return r["sent"] / (r["seconds"] - r["prepare_seconds"])

    standin = subprocess.Popen([sys.executable, str(REPO / "tests" / "sendgrid_standin.py"), "--port", "0",
                                "--no-validate", "--key", KEY], stdout=subprocess.PIPE, text=True)
    try:
        url = standin.stdout.readline().split()[-1]
        # This machine's speed drifts by tens of percent from one minute to the next: each ratio is taken
        # from a batched run and the naive loop right after it, and the median of the pairs is reported.
        pairs = []
        for _ in range(max(1, args.pairs)):
            batched = run_phase("batched", url, args.recipients, 1000)
            naive = run_phase("naive", url, args.naive, 1, concurrency=1)  # a plain loop: one request at a time
            pairs.append((rate(batched) / rate(naive), batched, naive))
        dry = run_phase("dry run", url, args.recipients, 1000, dry_run=True)
    finally:
        standin.terminate()
        standin.wait()

    def total_mb(r: dict) -> float:
        return r["tree_peak_mb"]

    def memory(r: dict) -> str:
        workers = f" with its {r['workers']} body workers" if r["workers"] else ""
        return f"{total_mb(r):.0f} MB (sending process {r['peak_mb']:.0f} MB{workers})"

    pairs.sort(key=lambda pair: pair[0])
    ratio, batched, naive = pairs[len(pairs) // 2]
    slowest = max((b for _, b, _ in pairs), key=lambda b: b["seconds"])  # the time target, conservatively
    journal_share = batched["journal_seconds"] / batched["seconds"]
    # Preparing is building and checking the issue (the same for any list) plus selecting the list into
    # the journal (which grows with it): only the second is scaled up.
    fixed = slowest["prepare_seconds"] - slowest["select_seconds"]
    projected = fixed + slowest["select_seconds"] * 1_000_000 / args.recipients + 1_000_000 / rate(slowest)
    peak = max(total_mb(b) for _, b, _ in pairs)
    print(f"batched : {batched['sent']:>9,} recipients in {batched['seconds']:6.1f} s "
          f"(prepare {batched['prepare_seconds']:.1f} s), {rate(batched):>8,.0f}/s, peak {memory(batched)}")
    print(f"naive   : {naive['sent']:>9,} recipients in {naive['seconds']:6.1f} s, {rate(naive):>8,.0f}/s, "
          f"peak {memory(naive)}")
    print(f"ratio batched/naive: {ratio:,.0f}x, the median of {len(pairs)} pairs "
          f"({', '.join(f'{r:,.0f}x' for r, _, _ in pairs)}) (target >= 100x)")
    print(f"journal share of the batched send: {journal_share:.0%} "
          f"(reading the list: {batched['list_seconds'] / batched['seconds']:.0%})")
    label = "measured" if args.recipients >= 1_000_000 else "projected"
    print(f"1,000,000 recipients: {projected:.0f} s {label} from the slowest batched run (target < 60 s), "
          f"peak {peak:.0f} MB at {args.recipients:,} (target < 400 MB)")
    print(f"dry run : {dry['sent']:>9,} recipients in {dry['seconds']:6.1f} s "
          f"(target < 10 s for 100,000), peak {memory(dry)}")
    ok = ratio >= 100 and projected < 60 and peak < 400 and dry["seconds"] * 100_000 / args.recipients < 10
    print("targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
