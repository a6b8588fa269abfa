"""Send throughput against its baselines, measured in the same process tree and the same minute.

Each phase runs in its own child process; the SendGrid stand-in (schema validation
off) and an aiosmtpd server run in two more. For each of --pairs back-to-back pairs:

- the project's SendGrid send of N recipients (default 1,000,000, the size the target is set
  for), whole process:
  building and checking the issue, selecting the list into the journal, the journal,
  the requests (body workers included); then the bare official ``sendgrid`` client
  posting bodies of the same shape (1,000 personalizations each, with the per-recipient
  List-Unsubscribe headers, 4 threads, no journal) to the same stand-in. Ratio target:
  >= 0.7x. The minimal bodies earlier runs compared against are measured too, for
  comparison with older figures.
- the project's SMTP send of M messages (default 1,000; sending rate, after
  preparing); then plain smtplib sending the same issue's message bytes, built once,
  over one connection to the same server. Ratio target: >= 0.6x.

Also: peak memory of the sending process and its workers (target < 250 MB), a
projection of 1,000,000 recipients when N is smaller, and a dry run of --dry-recipients
(default 100,000; target < 10 s for 100,000).

    python benchmarks/send.py [--recipients 1000000] [--smtp-messages 1000] [--pairs 3] [--dry-recipients 100000]

Last runs on the 2-core development machine (shared with other work; its speed drifts by tens of
percent from one minute to the next, so each ratio pairs a project run with a baseline run right
after it), 2026-11-26 15:26, with the defaults (1,000,000 recipients, three pairs): SendGrid
63,343/s whole process (15.8 s) against 76,016/s for the bare client with bodies of the same
shape, 0.83x the median of the pairs (0.73x, 0.83x, 0.85x): target met; 0.48x against the
minimal bodies of earlier runs; peak 183 MB for the sending process and its 2 workers. SMTP
0.91x the pre-built-bytes ceiling (0.89x-1.03x). Dry run of 100,000: 2.9 s. At 100,000 recipients
(--recipients 100000) the fixed costs weigh more: 0.59x (0.57x-0.64x).
A fresh send confirmed beforehand (as here, `--yes`) selects its list while it sends; see
docs/sending.md ("Large sends") for where the time goes.
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
    from newsletter.sending import plan as sending
    from newsletter.sending import workers as body_workers

    journal = Clock()  # every journal call of the send
    selecting = Clock()  # selecting the list into the journal: the part of preparing that grows with the list
    # the journal is one class per part (journal/runs.py, recipients.py, flight.py, reading.py)
    from newsletter.sending.journal.flight import InFlight
    from newsletter.sending.journal.reading import JournalView
    from newsletter.sending.journal.recipients import Recipients
    from newsletter.sending.journal.runs import RunLog

    Recipients.select = selecting.timed(Recipients.select)
    for part, names in ((RunLog, ("start",)), (Recipients, ("select",)),
                        (InFlight, ("next_pending", "next_retry_time", "mark_in_flight", "settle", "settle_groups",
                                    "release")), (JournalView, ("selected_status_counts",))):
        for name in names:
            setattr(part, name, journal.timed(getattr(part, name)))

    # Recipients.select consumes the stream of recipients read from the CSV: time that reading apart.
    stream_seconds = 0.0
    read_list = sending.select_rows

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

    sending.select_rows = timed_stream

    class workers:  # counts the worker processes a send starts
        count = 0

    start_workers = body_workers.BodyWorkers.__init__

    def counted(self, *args, **kwargs):
        start_workers(self, *args, **kwargs)
        workers.count += self.processes

    body_workers.BodyWorkers.__init__ = counted
    memory = TreeMemory()
    settings = load_settings(root)
    options = sending.SendOptions(list_name="bench", dry_run=dry_run, samples=3, out_dir=root / "outbox",
                                  confirmed=True)  # as `newsletter send --yes`
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


def bare_client(api_host: str, recipients: int, concurrency: int, minimal: bool = False) -> dict:
    """The baseline: the official sendgrid client posting bodies of the same shape as the project's, no
    journal, no checks: 1,000 personalizations, each the recipient, their name and unsubscribe link as
    substitutions and the per-recipient ``List-Unsubscribe`` headers RFC 8058 requires (an HTTPS link
    with a token as long as the project's, and the mailto naming the address), under the issue's own
    HTML and text. ``minimal``: the bodies this benchmark used before, without the headers and with a
    one-line content (about 190 bytes a personalization against 500), for comparison with older figures."""
    from concurrent.futures import ThreadPoolExecutor

    import sendgrid

    html, text = "<p>Hi NLMRG0001H</p>", ""
    if not minimal:  # the issue's own content, built once, outside the clock
        from newsletter.compose.build import build_issue, make_message
        from newsletter.config import load_settings

        settings = load_settings(REPO)
        message = make_message(settings, build_issue(settings, REPO / "issues" / ISSUE), "bench", "sendgrid")
        html, text = message.html, message.text
    content = [{"type": "text/plain", "value": text}] if text else []
    content.append({"type": "text/html", "value": html})
    client = sendgrid.SendGridAPIClient(api_key=KEY, host=api_host)
    memory = TreeMemory()
    start = time.perf_counter()

    def personalization(i: int) -> dict:
        link = f"https://newsletter.example.com/unsubscribe/{i:054x}"  # as long as the project's tokens
        item = {"to": [{"email": f"reader{i}@example.com", "name": f"Reader {i}"}],
                "substitutions": {"NLMRG0001H": f"Reader {i}", "NLMRG0002H": link}}
        if not minimal:
            item["headers"] = {
                "List-Unsubscribe": f"<{link}>, <mailto:unsubscribe@example.com?subject=unsubscribe%20"
                                    f"reader{i}@example.com>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
        return item

    def post(first: int) -> None:
        body = {"personalizations": [personalization(i) for i in range(first, min(first + 1000, recipients))],
                "from": {"email": "dispatch@example.com"}, "subject": "The First Dispatch", "content": content}
        client.client.mail.send.post(request_body=body)

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(post, range(0, recipients, 1000)))
    seconds = time.perf_counter() - start
    return {"sent": recipients, "seconds": seconds, "tree_peak_mb": memory.stop()}


def smtp_server() -> None:
    """An aiosmtpd server that counts what it receives (a child process of the benchmark); prints its port."""
    from aiosmtpd.controller import Controller

    class Count:
        received = 0

        async def handle_DATA(self, server, session, envelope):
            Count.received += 1
            return "250 OK"

    import socket

    with socket.socket() as probe:  # aiosmtpd checks it is up by connecting: it needs a real port number
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Count(), hostname="127.0.0.1", port=port)
    controller.start()
    print(f"listening on 127.0.0.1:{port}", flush=True)
    try:
        sys.stdin.read()  # until the benchmark closes our stdin
    finally:
        controller.stop()


def smtp_ceiling(port: int, messages: int) -> dict:
    """The ceiling: plain smtplib sending pre-built message bytes over one connection."""
    import smtplib

    from newsletter.compose.build import build_issue, make_message
    from newsletter.compose.personalize import subscriber_values
    from newsletter.config import load_settings
    from newsletter.providers.base import Recipient

    settings = load_settings(REPO)  # the same issue the project's send delivers, built once, outside the clock
    message = make_message(settings, build_issue(settings, REPO / "issues" / ISSUE), "bench", "smtp")
    sample = Recipient("reader@example.com", "reader@example.com", "Reader 1", subscriber_values(
        "reader@example.com", "Reader 1", {"city": "City 1"}, "https://example.com/unsubscribe?t=x"))
    data = message.email_for(sample).as_bytes()
    start = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for i in range(messages):
            smtp.sendmail("dispatch@example.com", [f"reader{i}@example.com"], data)
    return {"sent": messages, "seconds": time.perf_counter() - start}


CLICKS = False  # --clicks: every send of the run counts clicks ([stats] clicks = true: links rewritten, reader parts)


def count_clicks(root: Path) -> None:
    """[stats] clicks = true, with the click service on a loopback port nobody answers (the check only warns)."""
    text = (root / "newsletter.toml").read_text()
    text = text.replace("https://newsletter.example.com/unsubscribe/{token}", "http://127.0.0.1:9/unsubscribe/{token}")
    (root / "newsletter.toml").write_text(text + "\n[stats]\nclicks = true\n")


def run_phase(label: str, api_host: str, recipients: int, batch_size: int, dry_run: bool = False,
              concurrency: int = 4, smtp_port: int = 0) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_newsletter(root, api_host, recipients, batch_size, concurrency)
        if CLICKS:
            count_clicks(root)
        if smtp_port:
            import re

            text = re.sub(r"(?ms)^\[smtp\].*?(?=^\[|\Z)", "", (root / "newsletter.toml").read_text())
            text = text.replace('provider = "sendgrid"', 'provider = "smtp"')
            text += f'\n[smtp]\nhost = "127.0.0.1"\nport = {smtp_port}\nsecurity = "none"\nusername = ""\n'
            (root / "newsletter.toml").write_text(text)
        env = {**os.environ, "SENDGRID_API_KEY": KEY, "NEWSLETTER_UNSUBSCRIBE_SECRET": "benchmark-secret",
               "NO_PROXY": "127.0.0.1,localhost",
               "NEWSLETTER_TEST_SKIP_DOCTOR": "1"}  # no DNS look-ups of example.com from a benchmark
        out = subprocess.run([sys.executable, __file__, "--phase", str(root), *(["--dry"] if dry_run else [])],
                             env=env, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"{label} failed:\n{out.stdout}\n{out.stderr}")
        result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["sent"] != recipients:
        raise SystemExit(f"{label}: sent {result['sent']} of {recipients}")
    return result


def child_json(*args: str) -> dict:
    """Run this script with ``args`` in a child process (same process tree) and read its JSON line."""
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost"}
    out = subprocess.run([sys.executable, __file__, *args], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{args[0]} failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=1_000_000)
    parser.add_argument("--dry-recipients", type=int, default=100_000)
    parser.add_argument("--smtp-messages", type=int, default=1_000)
    parser.add_argument("--pairs", type=int, default=3,
                        help="project/baseline pairs run back to back; the median pair's ratio is reported")
    parser.add_argument("--clicks", action="store_true",
                        help="the project's sends count clicks ([stats] clicks = true): the cost of click links")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--dry", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--bare", help=argparse.SUPPRESS)
    parser.add_argument("--minimal", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ceiling", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--smtp-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    global CLICKS
    CLICKS = args.clicks
    if args.phase:
        print(json.dumps(phase(Path(args.phase), args.dry)))
        return 0
    if args.bare:
        print(json.dumps(bare_client(args.bare, args.recipients, 4, minimal=args.minimal)))
        return 0
    if args.ceiling:
        print(json.dumps(smtp_ceiling(args.ceiling, args.smtp_messages)))
        return 0
    if args.smtp_server:
        smtp_server()
        return 0

    def whole(r: dict) -> float:  # the whole process: building, checking, selecting, journal, requests
        return r["sent"] / r["seconds"]

    standin = subprocess.Popen([sys.executable, str(REPO / "tests" / "sendgrid_standin.py"), "--port", "0",
                                "--no-validate", "--key", KEY], stdout=subprocess.PIPE, text=True)
    smtpd = subprocess.Popen([sys.executable, __file__, "--smtp-server"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        url = standin.stdout.readline().split()[-1]
        smtp_port = int(smtpd.stdout.readline().split(":")[-1])
        # This machine's speed drifts by tens of percent from one minute to the next: each ratio is taken
        # from a project run and its baseline right after it, and the median of the pairs is reported.
        pairs, smtp_pairs = [], []
        for _ in range(max(1, args.pairs)):
            project = run_phase("sendgrid send", url, args.recipients, 1000)
            bare = child_json("--bare", url, "--recipients", str(args.recipients))
            minimal = child_json("--bare", url, "--recipients", str(args.recipients), "--minimal")
            pairs.append((whole(project) / whole(bare), project, bare, whole(project) / whole(minimal), minimal))
            smtp = run_phase("smtp send", url, args.smtp_messages, 50, smtp_port=smtp_port)
            ceiling = child_json("--ceiling", str(smtp_port), "--smtp-messages", str(args.smtp_messages))
            smtp_rate = smtp["sent"] / (smtp["seconds"] - smtp["prepare_seconds"])
            smtp_pairs.append((smtp_rate / whole(ceiling), smtp_rate, whole(ceiling)))
        dry = run_phase("dry run", url, args.dry_recipients, 1000, dry_run=True)
    finally:
        standin.terminate()
        standin.wait()
        smtpd.stdin.close()
        smtpd.wait()

    pairs.sort(key=lambda pair: pair[0])
    ratio, project, bare, _, minimal = pairs[len(pairs) // 2]
    minimal_ratios = sorted(pair[3] for pair in pairs)
    smtp_pairs.sort()
    smtp_ratio, smtp_rate, ceiling_rate = smtp_pairs[len(smtp_pairs) // 2]
    slowest = max((pair[1] for pair in pairs), key=lambda p: p["seconds"])
    fixed = slowest["prepare_seconds"] - slowest["select_seconds"]
    sending_rate = slowest["sent"] / (slowest["seconds"] - slowest["prepare_seconds"])
    projected = fixed + slowest["select_seconds"] * 1_000_000 / args.recipients + 1_000_000 / sending_rate
    peak = max(pair[1]["tree_peak_mb"] for pair in pairs)
    print(f"sendgrid send : {project['sent']:>9,} recipients in {project['seconds']:6.1f} s "
          f"(prepare {project['prepare_seconds']:.1f} s, journal {project['journal_seconds']:.1f} s), "
          f"{whole(project):>8,.0f}/s whole process, peak {project['tree_peak_mb']:.0f} MB "
          f"(with {project['workers']} body workers)")
    print(f"bare client   : {bare['sent']:>9,} recipients in {bare['seconds']:6.1f} s, {whole(bare):>8,.0f}/s "
          f"(official sendgrid client, 1,000 personalizations a body of the same shape, 4 threads, no journal)")
    print(f"ratio send/bare client: {ratio:.2f}x, the median of {len(pairs)} pairs "
          f"({', '.join(f'{pair[0]:.2f}x' for pair in pairs)}) (target >= 0.7x)")
    print(f"  (against the minimal bodies earlier runs used, no List-Unsubscribe headers: "
          f"{whole(minimal):,.0f}/s, ratio {minimal_ratios[len(minimal_ratios) // 2]:.2f}x, "
          f"pairs {', '.join(f'{r:.2f}x' for r in minimal_ratios)})")
    label = "measured" if args.recipients >= 1_000_000 else "projected"
    print(f"1,000,000 recipients: {projected:.0f} s {label} from the slowest run; peak memory of all processes "
          f"{peak:.0f} MB at {args.recipients:,} (target < 250 MB)")
    print(f"smtp send     : {smtp_rate:,.0f} msgs/s; pre-built bytes over one smtplib connection: "
          f"{ceiling_rate:,.0f} msgs/s; ratio {smtp_ratio:.2f}x, the median of {len(smtp_pairs)} "
          f"({', '.join(f'{r:.2f}x' for r, _, _ in smtp_pairs)}) (target >= 0.6x)")
    print(f"dry run       : {dry['sent']:>9,} recipients in {dry['seconds']:6.1f} s "
          f"(target < 10 s for 100,000), peak {dry['tree_peak_mb']:.0f} MB")
    ok = ratio >= 0.7 and smtp_ratio >= 0.6 and peak < 250 and dry["seconds"] * 100_000 / dry["sent"] < 10
    print("targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
