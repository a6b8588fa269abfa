"""Send throughput and CPU against their baselines, measured in the same process tree and the same minutes.

Each phase runs in its own child process; the SendGrid stand-in, an aiosmtpd server and a
throwaway PostgreSQL cluster run beside them. The stand-in parses every request body as a
real server does (``json.loads`` of each body, its recipients read out of it; the schema
check that tests use is left off). For each of --pairs back-to-back rounds:

- the project's SendGrid send of N recipients (default 1,000,000) with the SQLite journal,
  whole process: building and checking the issue, selecting the list into the journal,
  the journal, the requests (body workers included);
- the bare official ``sendgrid`` client posting bodies of the same shape (1,000
  personalizations each, with the per-recipient List-Unsubscribe headers, 4 threads, no
  journal) to the same stand-in, from its first request to its last answer;
- the same send with the PostgreSQL journal, by 1, 2 and 3 senders sharing it
  (``send --workers K``: the process that starts it and K-1 workers beside it), whole
  process tree, each on a new journal;
- the project's SMTP send of M messages (default 1,000; sending rate, after preparing) and
  plain smtplib sending the same issue's message bytes, built once, over one connection.

For each: the rate (recipients a second), its ratio to the bare client's in the same round,
and the CPU time (user + system) of the sending process tree per recipient beside it; for
PostgreSQL also the database server's CPU per recipient. The median round is printed.
Targets (issue 19, for the SQLite journal): at least 0.8x the bare client's rate and at most
1.5x its CPU per recipient. Also: peak memory of the sending process tree (target < 250 MB)
and a dry run of --dry-recipients (default 100,000; target < 10 s).

    python benchmarks/send.py [--recipients 1000000] [--pairs 3] [--senders 1,2,3] [--smtp-messages 1000]
                              [--dry-recipients 100000] [--clicks]

Figures of the last runs are in docs/sending.md ("Large sends").
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from doctor_dns import point_doctor_at_standin  # noqa: E402 - tests/ is on the path from here

ISSUE = "2026-11-25-first-dispatch"
KEY = "SG.benchmark-key"
CLICKS = False  # --clicks: every send of the run counts clicks ([stats] clicks = true: links rewritten, reader parts)


def make_newsletter(root: Path, api_host: str, recipients: int, batch_size: int, concurrency: int = 4,
                    journal_url: str = "") -> None:
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
    if journal_url:
        text += f'journal_url = "{journal_url}"\n'
    (root / "newsletter.toml").write_text(text)
    point_doctor_at_standin(root)  # the send's doctor gate asks a DNS stand-in in this process, never the network


def count_clicks(root: Path) -> None:
    """[stats] clicks = true, with the click service on a loopback port nobody answers (the check only warns)."""
    text = (root / "newsletter.toml").read_text()
    text = text.replace("https://newsletter.example.com/unsubscribe/{token}", "http://127.0.0.1:9/unsubscribe/{token}")
    (root / "newsletter.toml").write_text(text + "\n[stats]\nclicks = true\n")


def cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def tree_cpu() -> float:
    """CPU of this process and of every child it has waited for (body workers, workers, their children)."""
    return cpu_seconds(resource.RUSAGE_SELF) + cpu_seconds(resource.RUSAGE_CHILDREN)


class TreeMemory:
    """Peak resident memory of this process and its descendants together (body workers, workers).

    Sampled from /proc every 50 ms: getrusage cannot add up processes, and it charges a spawned
    worker with its parent's memory for the instant between fork and exec.
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

    @staticmethod
    def _family(pid: int) -> list[int]:
        found, todo = [], [pid]
        while todo:
            current = todo.pop()
            found.append(current)
            try:
                todo += [int(c) for c in Path(f"/proc/{current}/task/{current}/children").read_text().split()]
            except OSError:
                pass
        return found

    def _sample(self) -> None:
        me = os.getpid()
        while not self._done.wait(0.05):
            self.peak_kb = max(self.peak_kb, sum(self._rss_kb(pid) for pid in self._family(me)))

    def stop(self) -> float:
        self._done.set()
        self._thread.join()
        return max(self.peak_kb, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


def phase(root: Path, dry_run: bool, workers: int) -> dict:
    """Run one send in this process (``workers``: senders sharing it); its figures (called in a child)."""
    from newsletter.config import load_settings
    from newsletter.sending import engine
    from newsletter.sending import plan as sending
    from newsletter.sending.modes import choose_mode

    memory = TreeMemory()
    settings = load_settings(root)
    options = sending.SendOptions(list_name="bench", mode=choose_mode(dry_run=dry_run, samples=3,
                                                                      out_dir=root / "outbox"),
                                  confirmed=True, workers=workers)  # as `newsletter send --yes --workers K`
    cpu, start = tree_cpu(), time.perf_counter()
    prepared = []
    report = engine.send(settings, root / "issues" / ISSUE, options,
                         on_plan=lambda plan, report: prepared.append(time.perf_counter() - start))
    total = time.perf_counter() - start
    if report.helper_errors:
        raise SystemExit("\n".join(report.helper_errors))
    return {"sent": report.sent, "to_send": report.to_send, "batches": report.batches, "seconds": total,
            "prepare_seconds": prepared[0] if prepared and not dry_run else 0.0, "cpu": tree_cpu() - cpu,
            "senders": report.senders, "body_workers": report.body_workers, "tree_peak_mb": memory.stop()}


def bare_client(api_host: str, recipients: int, concurrency: int) -> dict:
    """The baseline: the official sendgrid client posting bodies of the same shape as the project's, no
    journal, no checks: 1,000 personalizations, each the recipient, their name and unsubscribe link as
    substitutions and the per-recipient ``List-Unsubscribe`` headers RFC 8058 requires (an HTTPS link
    with a token as long as the project's, and the mailto naming the address), under the issue's own
    HTML and text. Timed (wall and CPU) from its first request to its last answer."""
    from concurrent.futures import ThreadPoolExecutor

    import sendgrid

    from newsletter.compose.build import build_issue, make_message
    from newsletter.config import load_settings
    from newsletter.providers import registry

    settings = load_settings(REPO)  # the issue's own content, built once, outside the clock
    message = make_message(settings, build_issue(settings, REPO / "issues" / ISSUE), "bench", registry.kind("sendgrid"))
    content = [{"type": "text/plain", "value": message.text}, {"type": "text/html", "value": message.html}]
    client = sendgrid.SendGridAPIClient(api_key=KEY, host=api_host)
    memory = TreeMemory()

    def personalization(i: int) -> dict:
        link = f"https://newsletter.example.com/unsubscribe/{i:054x}"  # as long as the project's tokens
        return {"to": [{"email": f"reader{i}@example.com", "name": f"Reader {i}"}],
                "substitutions": {"NLMRG0001H": f"Reader {i}", "NLMRG0002H": link},
                "headers": {"List-Unsubscribe": f"<{link}>, <mailto:unsubscribe@example.com?subject=unsubscribe%20"
                                                f"reader{i}@example.com>",
                            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}}

    def post(first: int) -> None:
        body = {"personalizations": [personalization(i) for i in range(first, min(first + 1000, recipients))],
                "from": {"email": "dispatch@example.com"}, "subject": "The First Dispatch", "content": content}
        client.client.mail.send.post(request_body=body)

    cpu, start = tree_cpu(), time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(post, range(0, recipients, 1000)))
    return {"sent": recipients, "seconds": time.perf_counter() - start, "cpu": tree_cpu() - cpu,
            "tree_peak_mb": memory.stop()}


def smtp_server() -> None:
    """An aiosmtpd server that counts what it receives (a child process of the benchmark); prints its port."""
    import socket

    from aiosmtpd.controller import Controller

    class Count:
        received = 0

        async def handle_DATA(self, server, session, envelope):
            Count.received += 1
            return "250 OK"

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
    from newsletter.providers import registry
    from newsletter.providers.base import Recipient

    settings = load_settings(REPO)  # the same issue the project's send delivers, built once, outside the clock
    message = make_message(settings, build_issue(settings, REPO / "issues" / ISSUE), "bench", registry.kind("smtp"))
    sample = Recipient("reader@example.com", "reader@example.com", "Reader 1", subscriber_values(
        "reader@example.com", "Reader 1", {"city": "City 1"}, "https://example.com/unsubscribe?t=x"))
    data = message.email_for(sample).as_bytes()
    start = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for i in range(messages):
            smtp.sendmail("dispatch@example.com", [f"reader{i}@example.com"], data)
    return {"sent": messages, "seconds": time.perf_counter() - start}


class PostgresServer:
    """The throwaway cluster the tests use, with fsync on (as a real server): a new schema per send, and the
    CPU its processes have used (the postmaster, its live backends, and those it reaped)."""

    def __init__(self, stack: ExitStack):
        from postgres_fixtures import throwaway_cluster

        self.url = stack.enter_context(throwaway_cluster(fsync=True))
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            folder = conn.execute("SHOW data_directory").fetchone()[0]
        self.postmaster = int(Path(folder, "postmaster.pid").read_text().split()[0])
        self.tick = os.sysconf("SC_CLK_TCK")

    def fresh_url(self) -> str:
        from journal_fixtures import fresh_schema_url

        return fresh_schema_url(self.url)

    def cpu(self) -> float:
        def stat(pid: int) -> list[str]:
            try:
                return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                return []

        fields = stat(self.postmaster)
        ticks = sum(int(v) for v in fields[11:15]) if fields else 0  # utime, stime, cutime, cstime
        children = Path(f"/proc/{self.postmaster}/task/{self.postmaster}/children").read_text().split()
        for child in children:
            fields = stat(int(child))
            ticks += sum(int(v) for v in fields[11:13]) if fields else 0
        return ticks / self.tick


def run_phase(label: str, api_host: str, recipients: int, batch_size: int, dry_run: bool = False,
              concurrency: int = 4, smtp_port: int = 0, journal_url: str = "", workers: int = 1) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_newsletter(root, api_host, recipients, batch_size, concurrency, journal_url)
        if CLICKS:
            count_clicks(root)
        if smtp_port:
            import re

            text = re.sub(r"(?ms)^\[smtp\].*?(?=^\[|\Z)", "", (root / "newsletter.toml").read_text())
            text = text.replace('provider = "sendgrid"', 'provider = "smtp"')
            text += f'\n[smtp]\nhost = "127.0.0.1"\nport = {smtp_port}\nsecurity = "none"\nusername = ""\n'
            (root / "newsletter.toml").write_text(text)
        env = {**os.environ, "SENDGRID_API_KEY": KEY, "NEWSLETTER_UNSUBSCRIBE_SECRET": "benchmark-secret",
               "NO_PROXY": "127.0.0.1,localhost"}
        out = subprocess.run([sys.executable, __file__, "--phase", str(root), "--workers", str(workers),
                              *(["--dry"] if dry_run else [])], env=env, capture_output=True, text=True, cwd=root)
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


def rate(r: dict) -> float:
    return r["sent"] / r["seconds"]


def cpu_us(r: dict) -> float:
    return r["cpu"] / r["sent"] * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=1_000_000)
    parser.add_argument("--dry-recipients", type=int, default=100_000)
    parser.add_argument("--smtp-messages", type=int, default=1_000)
    parser.add_argument("--pairs", type=int, default=3, help="rounds run back to back; the median is reported")
    parser.add_argument("--senders", default="1,2,3",
                        help="how many senders share the PostgreSQL sends measured, comma-separated ('' for none)")
    parser.add_argument("--clicks", action="store_true",
                        help="the project's sends count clicks ([stats] clicks = true): the cost of click links")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--dry", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--bare", help=argparse.SUPPRESS)
    parser.add_argument("--ceiling", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--smtp-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    global CLICKS
    CLICKS = args.clicks
    if args.phase:
        print(json.dumps(phase(Path(args.phase), args.dry, args.workers)))
        return 0
    if args.bare:
        print(json.dumps(bare_client(args.bare, args.recipients, 4)))
        return 0
    if args.ceiling:
        print(json.dumps(smtp_ceiling(args.ceiling, args.smtp_messages)))
        return 0
    if args.smtp_server:
        smtp_server()
        return 0

    n = args.recipients
    senders = [int(k) for k in args.senders.split(",") if k.strip()]
    rounds: list[dict] = []
    with ExitStack() as stack:
        standin = subprocess.Popen([sys.executable, str(REPO / "tests" / "sendgrid_standin.py"), "--port", "0",
                                    "--no-validate", "--key", KEY], stdout=subprocess.PIPE, text=True)
        stack.callback(lambda: (standin.terminate(), standin.wait()))
        smtpd = subprocess.Popen([sys.executable, __file__, "--smtp-server"], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
        stack.callback(lambda: (smtpd.stdin.close(), smtpd.wait()))
        postgres = PostgresServer(stack) if senders else None
        url = standin.stdout.readline().split()[-1]
        smtp_port = int(smtpd.stdout.readline().split(":")[-1])
        # This machine's speed drifts by tens of percent from one minute to the next: each ratio is taken
        # within a round, against the bare client run right after the SQLite send; the median is reported.
        for number in range(max(1, args.pairs)):
            measured = {"sqlite": run_phase("sendgrid send, SQLite journal", url, n, 1000)}
            measured["bare"] = child_json("--bare", url, "--recipients", str(n))
            for k in senders:
                assert postgres is not None
                before = postgres.cpu()
                result = run_phase(f"sendgrid send, PostgreSQL journal, {k} senders", url, n, 1000,
                                   journal_url=postgres.fresh_url(), workers=k)
                result["server_cpu"] = postgres.cpu() - before
                measured[f"pg{k}"] = result
            smtp = run_phase("smtp send", url, args.smtp_messages, 50, smtp_port=smtp_port)
            measured["smtp_rate"] = smtp["sent"] / (smtp["seconds"] - smtp["prepare_seconds"])
            measured["smtp_ceiling"] = rate(child_json("--ceiling", str(smtp_port), "--smtp-messages",
                                                       str(args.smtp_messages)))
            rounds.append(measured)
            print(f"round {number + 1}: " + ", ".join(
                f"{kind} {rate(measured[kind]):,.0f}/s {cpu_us(measured[kind]):.1f} µs"
                for kind in ("sqlite", "bare", *(f"pg{k}" for k in senders))), flush=True)
        dry = run_phase("dry run", url, args.dry_recipients, 1000, dry_run=True)

    def median_round(key) -> dict:
        ordered = sorted(rounds, key=key)
        return ordered[len(ordered) // 2]

    def ratios(kind: str) -> tuple[list[float], list[float]]:
        return ([rate(r[kind]) / rate(r["bare"]) for r in rounds],
                [cpu_us(r[kind]) / cpu_us(r["bare"]) for r in rounds])

    print(f"\nSendGrid, {n:,} recipients, whole process tree; the median of {len(rounds)} rounds "
          "(ratios to the bare client of the same round):")
    print(f"  {'':<34} {'seconds':>8} {'rate/s':>9} {'x bare':>7} {'CPU µs/rcpt':>12} {'x bare':>7} {'peak MB':>8}")
    bare = median_round(lambda r: rate(r["bare"]))["bare"]
    print(f"  {'bare sendgrid client (no journal)':<34} {bare['seconds']:8.1f} {rate(bare):9,.0f} {'1.00':>7} "
          f"{cpu_us(bare):12.1f} {'1.00':>7} {bare['tree_peak_mb']:8.0f}")
    targets = {}
    for kind, label in (("sqlite", "SQLite journal"), *((f"pg{k}", f"PostgreSQL journal, {k} sender"
                                                          + "s" * (k > 1)) for k in senders)):
        speed, cpu = ratios(kind)
        middle = median_round(lambda r, kind=kind: rate(r[kind]) / rate(r["bare"]))[kind]
        line = (f"  {label:<34} {middle['seconds']:8.1f} {rate(middle):9,.0f} {statistics.median(speed):6.2f}x "
                f"{cpu_us(middle):12.1f} {statistics.median(cpu):6.2f}x {middle['tree_peak_mb']:8.0f}")
        if kind.startswith("pg"):
            line += f"  (server CPU {middle['server_cpu'] / n * 1e6:.1f} µs/rcpt)"
        print(line)
        print(f"  {'':<34} rounds: {', '.join(f'{x:.2f}x' for x in speed)} rate; "
              f"{', '.join(f'{x:.2f}x' for x in cpu)} CPU")
        targets[kind] = (statistics.median(speed), statistics.median(cpu))
    smtp = sorted(r["smtp_rate"] / r["smtp_ceiling"] for r in rounds)
    print(f"smtp send: {statistics.median(r['smtp_rate'] for r in rounds):,.0f} msgs/s; pre-built bytes over one "
          f"smtplib connection {statistics.median(r['smtp_ceiling'] for r in rounds):,.0f} msgs/s: "
          f"{smtp[len(smtp) // 2]:.2f}x (target >= 0.6x)")
    print(f"dry run: {dry['sent']:,} recipients in {dry['seconds']:.1f} s (target < 10 s for 100,000)")
    peak = max(r["sqlite"]["tree_peak_mb"] for r in rounds)
    speed, cpu = targets["sqlite"]
    ok = speed >= 0.8 and cpu <= 1.5 and peak < 250 and smtp[len(smtp) // 2] >= 0.6 and \
        dry["seconds"] * 100_000 / dry["sent"] < 10
    print(f"SQLite journal: {speed:.2f}x the bare client's rate (target >= 0.8x), {cpu:.2f}x its CPU per recipient "
          f"(target <= 1.5x), peak {peak:.0f} MB (target < 250 MB): {'targets met' if ok else 'TARGET MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
