"""Several senders share one send (a PostgreSQL journal): workers join the send another process started.

The process that starts a send (``send ISSUE --list L``) decides, once for the
whole send: it holds the send lock, runs the doctor gate, selects the audience
into the journal, fingerprints the issue, asks before sending. When it begins
delivering it marks its run ready (``RunLog.mark_ready``), with what shapes each
request beyond the fingerprint (``--at``, ``--sandbox``, the stages).

A worker (``send ISSUE --resume --worker``, on this machine or any other that
shares the journal) joins that run: it waits while the run is being prepared,
builds the issue from its own copy and refuses if the fingerprint differs from
the run's, records a run of its own (kind ``worker``) for what it sends, and
takes the run's recipients through the journal's leased claims
(``journal/leased.py``), within the same stages and caps, until none is left.
It never selects, never runs the doctor gate, never writes the sent record.

``send --workers N`` starts N-1 such workers on this machine beside itself
(``Helpers``), and waits for them before its summary.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..compose.build import build, make_message
from ..compose.content import Issue, require_complete
from ..compose.unsubscribe import read_secret
from ..config import Settings
from ..errors import NewsletterError, display_path
from ..lists import list_columns
from ..providers import registry
from . import ab as ab_test
from . import journal as jn
from .modes import TEST_SUBJECT_PREFIX, DryRun, SendMode
from .plan import PARTS, SendOptions, SendPlan, command_path, fingerprint
from .plan import _needs_secret as needs_secret  # the one rule for whether links are signed
from .stage_rules import stages_of

WAIT_SECONDS = 0.5  # how often a worker looks again while the send it joins is being prepared
# Options that would decide something the process that started the send decided (field: option): a worker
# takes all of that from the send it joins.
STARTER_ONLY = {"tags": "--tag", "where": "--where", "provider": "--provider", "send_at": "--provider-at",
                "sandbox": "--sandbox", "ab": "--ab", "retry_unknown": "--retry-unknown",
                "retry_failed": "--retry-failed", "allow_changed": "--allow-changed", "journal_lost": "--journal-lost",
                "stages": "--stages", "stage_wait_minutes": "--stage-wait", "ignore_doctor": "--ignore-doctor"}


def _mode_options(mode: SendMode) -> list[str]:
    """The options that chose a mode other than a live send (a worker only ever helps a live one)."""
    options = [mode.option] if mode.option else []
    if isinstance(mode, DryRun) and mode.of is not None:
        options.append(mode.of.option)
    if mode.addresses and mode.subject_prefix != TEST_SUBJECT_PREFIX:
        options.append("--test-prefix")
    return options


def require_shared(location: jn.Location, option: str) -> None:
    """``--worker`` and ``--workers`` need the journal that several senders can share."""
    if location.dialect != "postgresql":
        raise NewsletterError(
            f"{option}: several senders can share a send only through a PostgreSQL journal; the journal in use "
            f"({location.describe()}) is one machine's file, with one sender at a time",
            hint='set [send] journal_url = "postgresql://user@host/database" in newsletter.toml (newsletter journal '
                 "copy --to URL moves the journal there first), or send without it")


def check_worker_options(options: SendOptions) -> None:
    """A worker joins the send as it was started: refuse options that would change it."""
    given = [option for name, option in STARTER_ONLY.items() if getattr(options, name) not in (None, False, "", (), {})]
    given += _mode_options(options.mode)
    if options.workers > 1:
        given.append("--workers")
    if given:
        raise NewsletterError(f"--worker joins the send as the process that started it decided it: "
                              f"{', '.join(given)} cannot be given to a worker",
                              hint="leave them out: newsletter send ISSUE --resume --worker [--list NAME]")


def check_workers_option(options: SendOptions, location: jn.Location) -> None:
    """``--workers N``: a live send, through a journal several senders can share."""
    if options.workers <= 1:
        return
    if not options.mode.records:
        raise NewsletterError("--workers shares a live send among processes; a dry run or a test send has one",
                              hint="leave out --workers")
    if options.ab is not None:
        raise NewsletterError("--workers and --ab cannot be combined: a subject A/B test is sent by one process",
                              hint="leave out --workers for this send")
    require_shared(location, "--workers")


def known_id(issue: Issue) -> str:
    """The issue's id, which a worker needs to find the send (it never gives one: the starter did)."""
    if not issue.id:
        raise NewsletterError("has no id, so this copy of the issue cannot be found in the journal; the send "
                              "started elsewhere gave it one (id: in its front matter)",
                              where=issue.path / "issue.md",
                              hint="get the commit that added it (git pull), then join again")
    return issue.id


def delivery_of(options: SendOptions, shares: tuple[float, ...], stage_wait_minutes: float) -> dict[str, Any]:
    """What a worker needs to send as the run does, beyond the fingerprint (recorded by ``mark_ready``)."""
    return {"send_at": options.send_at.isoformat() if options.send_at else None, "sandbox": options.sandbox,
            "stages": list(shares), "stage_wait_minutes": stage_wait_minutes}


@dataclass
class Joined:
    """Why a worker has nothing to do, or the plan it sends by."""

    plan: SendPlan | None
    reason: str = ""  # when there is no plan: why (the send is over, say)


def join(settings: Settings, issue: Issue, options: SendOptions, database: jn.JournalDB, *,
         wait: Callable[[float], None] = time.sleep, stop: Callable[[], bool] = lambda: False) -> Joined:
    """Join the unfinished send of ``issue`` to ``options.list_name`` as a worker: the plan it sends by."""
    issue_dir = issue.path
    where = display_path(issue_dir / "issue.md")
    journal, run, reason = _current_run(database, known_id(issue), options.list_name, wait, stop)
    if journal is None or run is None:
        return Joined(None, reason.replace("ISSUE", display_path(issue_dir)))
    try:
        if ab_test.record_of(journal) is not None:
            raise NewsletterError(f"the send of this issue to list '{journal.list}' is a subject A/B test, which one "
                                  "process sends: it cannot be shared", where=where,
                                  hint="let the process that started it finish, or resume it without --worker")
        require_complete(issue)
        list_path = settings.list_path(journal.list)
        built = build(settings, issue, list_columns(list_path) if list_path.is_file() else None)
        delivery = run.delivery or {}
        send_at = delivery.get("send_at")
        message = make_message(settings, built, journal.list, registry.kind_or_none(run.audience.provider),
                               send_at=dt.datetime.fromisoformat(send_at) if send_at else None,
                               sandbox=bool(delivery.get("sandbox")))
        whole, parts = fingerprint(message)
        if whole != run.fingerprint:
            changed = [p for p in PARTS if run.parts.get(p) != parts.get(p)]
            raise NewsletterError(
                f"this copy of the issue differs from the one being sent to list '{journal.list}' "
                f"({', '.join(changed) or 'content'} changed): a worker sends exactly what the send started with",
                where=where, hint="make this copy the same as the sender's (git pull, or undo the change), then join "
                                  f"again with: newsletter send {command_path(issue_dir)} --resume --worker")
        secret = read_secret(settings, required=needs_secret(settings, message))
        journal.runs.join(run, whole, parts)
    except BaseException:
        journal.close()
        raise
    options = dataclasses.replace(options, stages=",".join(f"{share * 100:g}%" for share in delivery.get("stages")
                                                           or (1.0,)),
                                  stage_wait_minutes=delivery.get("stage_wait_minutes"), resume=True)
    stages_of(settings.send, options.stages)
    plan = SendPlan(settings, options, issue, journal.issue, built, message, journal, run.audience, whole, [],
                    Counter(), secret, parts=parts, list_path=list_path if list_path.is_file() else None)
    return Joined(plan)


def _current_run(database: jn.JournalDB, issue_id: str, list_name: str, wait: Callable[[float], None],
                 stop: Callable[[], bool]) -> tuple[jn.Journal | None, jn.RunRecord | None, str]:
    """The send run to join, once it is delivering, after settling what dead senders left in flight; or why
    there is none. While another process holds the send lock without delivering a run a worker can see (it
    is preparing one: a run is on record from its first request), the worker waits."""
    lock = jn.send_lock_name(issue_id, list_name)
    while True:
        journal = jn.Journal(database, issue_id, list_name, create=False)
        run = None
        if journal.send >= 0:
            with journal.transaction() as tx:
                journal.flight.recover(tx)
            runs = journal.runs.history()
            run = runs[-1] if runs else None
        starting = database.held_elsewhere(lock)
        if run is not None and run.ready is not None and (not starting or _alive(database, run)):
            if journal.runs.unfinished() is None:
                return None, None, "the send is finished: every recipient is settled, or being sent by another sender"
            return journal, run, ""
        if not starting:
            if run is None:
                return None, None, f"ISSUE was never sent to list '{list_name}'"
            if journal.runs.unfinished() is None:
                return None, None, "the send is finished: every recipient is settled"
            raise NewsletterError(
                f"the unfinished send of this issue to list '{list_name}' was started by an earlier version of "
                "newsletter, which did not record what workers need to join it",
                hint=f"go on with it once more without --worker: newsletter send ISSUE --list {list_name} --resume")
        if stop():
            return None, None, "stopped while the send was being prepared"
        wait(WAIT_SECONDS)


def _alive(database: jn.JournalDB, run: jn.RunRecord) -> bool:
    """Whether the process that started ``run`` is still running (it holds its sender's lock)."""
    return bool(run.uid) and database.held_elsewhere(jn.sender_lock_name(run.uid))


# -- workers on this machine (send --workers N) ---------------------------------------------------------


@dataclass
class Helper:
    """A worker process this send started beside itself, and where its output goes."""

    process: subprocess.Popen[bytes]
    output: IO[bytes]

    def finish(self) -> tuple[int, int, str]:
        """Wait for it: (pid, exit code, what it printed last: its summary, or its error)."""
        code = self.process.wait()
        self.output.seek(0)
        lines = [line.strip() for line in self.output.read().decode("utf-8", "replace").splitlines() if line.strip()]
        self.output.close()
        summary = next((line for line in reversed(lines) if line.startswith(("Worker:", "Error:"))),
                       lines[-1] if lines else "")
        return self.process.pid, code, summary


def start_helpers(settings: Settings, issue_dir: Path, list_name: str, count: int) -> list[Helper]:
    """Start ``count`` workers (``newsletter send ISSUE --list L --resume --worker --yes``) beside this process,
    in the same folder and environment; their output is kept for the summary."""
    helpers = []
    command = [sys.executable, "-m", "newsletter.cli", "--root", str(settings.root), "send", str(Path(issue_dir)),
               "--list", list_name, "--resume", "--worker", "--yes"]
    for _ in range(count):
        output = tempfile.TemporaryFile()  # noqa: SIM115 - closed by Helper.finish, once the process ends
        process = subprocess.Popen(command, cwd=os.getcwd(), stdin=subprocess.DEVNULL, stdout=output,
                                   stderr=subprocess.STDOUT)
        helpers.append(Helper(process, output))
    return helpers
