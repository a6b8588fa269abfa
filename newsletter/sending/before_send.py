"""What a send settles before it selects anyone: the doctor's gate, a halted or shared send, and which list
a ``--resume`` without ``--list`` continues. Each raises a NewsletterError that says why and what to do."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..config import Settings
from ..doctor import AudienceQuery, doctor_gate, refuse_on_errors
from ..errors import NewsletterError, display_path
from . import holds
from . import journal as jn
from .plan import SendOptions, command_path, resume_command


def doctor_gate_note(settings: Settings, options: SendOptions) -> str:
    """The DNS part of ``newsletter doctor`` (cached for a day) before a live send: refuse on an error
    unless ``--ignore-doctor``; returns the note recorded on the run when the errors were overridden."""
    if options.provider:  # --provider: check the setup of the provider this send goes through
        settings = dataclasses.replace(settings, provider=options.provider)
    findings = doctor_gate(settings, nameserver=options.nameserver or settings.doctor.nameserver or None,
                           audience=AudienceQuery(options.list_name, tuple(options.tags), tuple(options.where.items())))
    errors = [f for f in findings if f.severity == "error"]
    if not errors:
        return ""
    if not options.ignore_doctor:
        refuse_on_errors(findings)
    return "sent despite doctor errors (--ignore-doctor): " + ", ".join(sorted({f.code for f in errors}))


def check_before_live_run(database: jn.JournalDB, issue_id: str, options: SendOptions, issue_dir: Path) -> None:
    """A send whose circuit breaker halted it continues only with ``--resume``; a send that workers are still
    sending is theirs until they finish. (Recipients held back by an earlier staged or paced run go back to
    pending in the run's own provisional transaction: ``plan.select``.)"""
    journal = jn.Journal(database, issue_id, options.list_name, create=False)
    if journal.send < 0:
        return  # never sent to this list
    refuse_while_shared(journal, issue_dir)
    halted = holds.halted_stage(journal)
    if halted is not None and not options.resume:
        raise NewsletterError(f"this send halted at stage {halted.number}: {halted.summary}",
                              hint="look at the bounces and complaints (newsletter status), then continue with: "
                                   + resume_command(issue_dir, options.list_name))


def refuse_while_shared(journal: jn.Journal, issue_dir: Path) -> None:
    """Workers of this send still running (a PostgreSQL journal): a new start would decide the send anew
    under them; wait for them, or join them."""
    alive = journal.runs.senders_alive()
    if alive:
        pids = ", ".join(f"{kind} pid {pid}" for kind, pid in alive)
        raise NewsletterError(f"this issue is still being sent to list '{journal.list}' by {len(alive)} "
                              f"process{'es' * (len(alive) != 1)} sharing the send ({pids})",
                              hint="wait for them to finish, or help them: newsletter send "
                                   f"{command_path(issue_dir)} --list {journal.list} --resume --worker")


def unfinished_list(location: jn.Location, issue_id: str, issue_dir: Path) -> str:
    """The one list this issue has an unfinished send to (for ``--resume`` without ``--list``)."""
    names = jn.lists_of(location, issue_id)
    unfinished = []
    for name in names:
        journal = jn.Journal.read_only(location, issue_id, name)
        try:
            if journal.runs.unfinished() is not None:
                unfinished.append(name)
        finally:
            journal.close()
    candidates = unfinished or names
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise NewsletterError(f"nothing to resume: {display_path(issue_dir)} was never sent",
                              hint=f"start a send with: newsletter send {command_path(issue_dir)} --list NAME")
    raise NewsletterError(f"{display_path(issue_dir)} has sends to several lists ({', '.join(candidates)})",
                          hint="say which to resume with --list NAME")
