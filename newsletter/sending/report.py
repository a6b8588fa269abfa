"""What a run did, read back from the journal (the only record of outcomes), and ``status``."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import asdict, dataclass, field

from ..checks import Finding
from ..config import Settings
from . import holds
from . import journal as jn


@dataclass
class SendReport:
    """What a send did, for the closing summary, ``report.json`` and the exit code.

    While the loop runs, its counters feed the progress line; at the end every
    outcome is read back from the journal (``fill_from``), so the summary says
    what the journal says.
    """

    issue: str
    list_name: str
    provider: str
    dry_run: bool
    scratch: bool = False  # a dry run or a test send: in a scratch journal, so nothing to resume or resolve
    issue_id: str = ""
    fingerprint: str = ""
    resume_hint: str = ""  # the command that continues exactly this send
    selected: int = 0  # subscribed, valid, de-duplicated recipients matching the filters
    to_send: int = 0  # of those, not settled by an earlier run
    skipped: Counter[str] = field(default_factory=Counter)
    sent: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    unknown: list[tuple[str, str]] = field(default_factory=list)
    deferred: list[tuple[str, str]] = field(default_factory=list)
    batches: int = 0
    retries: int = 0
    paused: str = ""
    interrupted: bool = False
    html_bytes: int = 0
    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0
    samples: list[str] = field(default_factory=list)
    scheduled_for: str = ""
    body_workers: int = 0  # worker processes started to build request bodies (a large send), else 0
    worker_batches: int = 0  # batches whose body one of them built (the first go out while they start)
    body_workers_lost: str = ""  # a worker process died mid-send: the rest were built in the sending process
    unknown_count: int = 0  # recipients this run left unknown (``unknown`` lists at most 1000 of them)
    failed_count: int = 0  # recipients this run failed (``failed`` lists at most 1000 of them)
    unknown_total: int = 0  # every recipient of this send whose delivery is unknown (this run's and earlier)
    halted: str = ""  # a staged send's circuit breaker stopped it: which stage and why
    recorded_in: str = ""  # issue.md, when this run wrote or updated the issue's sent record (to commit)
    record_problem: str = ""  # the sent record could not be brought up to date: why
    worker: str = ""  # a worker (send --worker): the send it joined, or why it had nothing to send
    senders: dict[str, int] = field(default_factory=dict)  # send --workers N: who sent how many (this one first)
    helper_errors: list[str] = field(default_factory=list)  # send --workers N: workers that stopped on an error
    nothing_to_send: str = ""  # why nobody was to be sent (what the selection matched), when nobody was
    recorded: bool = True  # False: a live run that sent nothing, and so left nothing in the journal or issue.md
    ab: str = ""  # a subject A/B test: its slices sent and waiting, or its decision (sending/ab.py)

    @property
    def ok(self) -> bool:
        return not (self.failed or self.unknown or self.deferred or self.paused or self.interrupted
                    or self.unknown_total or self.halted or self.helper_errors)

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["skipped"] = dict(self.skipped)
        data["findings"] = [f.to_dict() for f in self.findings]
        data["failed"] = [{"email": e, "reason": r} for e, r in self.failed]
        data["unknown"] = [{"email": e, "reason": r} for e, r in self.unknown]
        data["deferred"] = [{"email": e, "reason": r} for e, r in self.deferred]
        return data

    def fill_from(self, journal: jn.Journal, max_attempts: int, *, with_joined: bool = False) -> int:
        """Replace the loop's running counts with what the journal records for this run (``with_joined``:
        and for the workers that joined it); returns how many of the send's recipients are sent by now,
        from the same pass (for the sent record, which would otherwise read the send again)."""
        view = journal.view
        counts, unknown, deferred, sent = view.outcome_counts(max_attempts, with_joined=with_joined)
        problems = view.run_outcomes(with_joined=with_joined)[1] if counts.get(jn.FAILED) or counts.get(jn.UNKNOWN) \
            else []
        self.sent = counts.get(jn.SENT, 0)
        self.failed = [(email, reason) for status, email, reason in problems if status == jn.FAILED]
        self.unknown = [(email, reason) for status, email, reason in problems if status == jn.UNKNOWN]
        self.deferred = view.deferred(max_attempts) if deferred else []
        self.unknown_count = counts.get(jn.UNKNOWN, 0)
        self.failed_count = counts.get(jn.FAILED, 0)
        self.unknown_total = unknown
        if self.interrupted:
            # Ctrl-C while the last requests were answered: nothing of this run is left to send, so
            # there is nothing to resume and the send is finished (the other outcomes still count).
            left = journal.view.selected_status_counts()
            self.interrupted = any(left.get(status) for status in (jn.PENDING, jn.IN_FLIGHT, holds.WAITING, holds.HELD))
        return sent

    def summary(self) -> str:
        if self.worker and not self.fingerprint:  # a worker that found no send to join
            return f"Worker: {self.worker}"
        verb = "would send" if self.dry_run else "sent"
        skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items()) if n) or "none"
        parts = [f"{'Dry run: ' if self.dry_run else ''}{verb} {self.sent} of {self.to_send}",
                 f"skipped {skipped}"]
        if self.worker:
            parts = [f"Worker: sent {self.sent} of the {self.to_send} left when it joined {self.worker}"]
        if self.senders:
            shares = ", ".join(f"{n} by {who}" for who, n in self.senders.items())
            parts.append(f"{len(self.senders)} senders: {shares}")
        failed = max(self.failed_count, len(self.failed))
        if failed:
            parts.append(f"{failed} failed")
        unknown = max(self.unknown_count, len(self.unknown))
        if unknown:
            parts.append(f"{unknown} unknown")
        if self.deferred:
            parts.append(f"{len(self.deferred)} deferred")
        parts.append(f"{self.batches} batch{'es' * (self.batches != 1)} in {self.seconds:.1f} s")
        if self.body_workers:
            parts.append(f"{self.worker_batches} of them built by {self.body_workers} worker processes")
        if self.body_workers_lost:
            parts.append(self.body_workers_lost)
        return "; ".join(parts)


@dataclass
class ListStatus:
    """``status`` for one list: counts, the runs (when, audience, provider, fingerprint, counts), problems."""

    list_name: str
    counts: dict[str, int]
    runs: list[jn.RunRecord]
    problems: list[tuple[str, str, str]]
    stages: list[holds.StageRecord] = field(default_factory=list)

    def run_lines(self) -> list[str]:
        lines = []
        for run in self.runs:
            when = dt.datetime.fromtimestamp(run.started).isoformat(sep=" ", timespec="seconds")
            counts = ", ".join(f"{n} {s}" for s, n in sorted(run.counts.items()) if n) or "nothing settled"
            if run.kind in ("resolve", "abandon"):
                lines.append(f"{when}  {run.kind}: {run.note}; {counts}")
                continue
            audience = [f"list {self.list_name}"]
            if run.audience.tags:
                audience.append("tags " + ", ".join(run.audience.tags))
            if run.audience.where:
                audience.append("where " + ", ".join(f"{k}={v}" for k, v in run.audience.where))
            changed = " (sent although the issue had changed: --allow-changed)" if run.allow_changed else ""
            note = f" ({run.note})" if run.note else ""
            lines.append(f"{when}  {run.kind} via {run.audience.provider}; {'; '.join(audience)}; "
                         f"fingerprint {run.fingerprint}{changed}{note}; {counts}")
        return lines


    def problem_lines(self, every: bool = False, shown: int = 3) -> list[str]:
        """One line per (state, reason), naming how many and the first few addresses: after an outage
        thousands of recipients share one reason, and a line each would bury the runs above them.
        ``every``: one line per recipient instead (``status --all``), to check each against the provider."""
        if every:
            return [f"{state.replace('_', ' ')}: {email}: {reason}" for email, state, reason in self.problems]
        groups: dict[tuple[str, str], list[str]] = {}
        for email, state, reason in self.problems:
            groups.setdefault((state, reason), []).append(email)
        lines = []
        for (state, reason), emails in groups.items():
            if len(emails) == 1:
                lines.append(f"{state.replace('_', ' ')}: {emails[0]}: {reason}")
                continue
            named = ", ".join(emails[:shown]) + (", ... (every address: --all)" if len(emails) > shown else "")
            lines.append(f"{state.replace('_', ' ')}: {len(emails)} recipients ({named}): {reason}")
        return lines


def recipients(count: int) -> str:
    """"1 recipient", "2 recipients": what a writer reads in a question or a summary."""
    return f"{count} recipient" if count == 1 else f"{count} recipients"


def status(settings: Settings, issue_id: str, list_name: str | None = None) -> list[ListStatus]:
    """For each list the issue (its id) was sent to: counts, runs and problem rows, read-only."""
    location = jn.location_of(settings)
    result = []
    for name, counts in jn.summarize(location, issue_id, list_name):
        journal = jn.Journal.read_only(location, issue_id, name)
        try:
            result.append(ListStatus(name, counts, journal.runs.history(("send", "worker", "resolve", "abandon")),
                                     journal.view.problems(), holds.stage_records(journal)))
        finally:
            journal.close()
    return result
