"""Planning a send: which issue (its stable id), what exactly goes out (its fingerprint), to whom
(the selection, recorded with the provider as the run's audience), before anything is delivered.

A resume repeats the recorded audience; a send that would change the audience or
the content of an unfinished or partly delivered send is refused with what differs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..checks import CheckContext, Finding, format_finding, has_errors, run_checks_on
from ..compose.build import BuiltIssue, build, make_message
from ..compose.click_tokens import ReaderParts
from ..compose.content import Issue, require_complete
from ..compose.unsubscribe import read_secret
from ..config import Settings
from ..errors import NewsletterError, SendFailed, display_path
from ..lists import list_columns, require_list, select_rows
from ..providers import registry
from ..providers.base import Message
from . import holds
from . import journal as jn
from .clicks import prepare_clicks
from .modes import LIVE, SendMode
from .selection import PendingSelection, may_select_while_sending
from .sent_record import check_against
from .workers import BodyWorkers


@dataclass(frozen=True)
class SendOptions:
    """What the writer asked for on the command line; never changed once given (``dataclasses.replace`` makes
    the options a step settles, such as the list a ``--resume`` finds)."""

    list_name: str = ""
    provider: str = ""  # "" = newsletter.toml's provider (or, with ``resume``, the recorded one)
    tags: tuple[str, ...] = ()
    where: Mapping[str, str] = field(default_factory=dict)
    mode: SendMode = LIVE  # live, a dry run (--dry-run) or a test send (--test-to): modes.py
    send_at: dt.datetime | None = None
    sandbox: bool = False
    retry_unknown: bool = False
    retry_failed: bool = False
    resume: bool = False  # continue the recorded send exactly: its list, tags, where and provider
    allow_changed: bool = False  # send even though the issue changed since part of it went out (recorded)
    ignore_doctor: bool = False  # a live send goes ahead despite doctor errors (recorded on the run)
    nameserver: str = ""  # the DNS server the doctor gate asks ("" = [doctor] nameserver, else the system's)
    stages: str | None = None  # --stages 1%,10%,100% (None = [send] stages)
    stage_wait_minutes: float | None = None  # --stage-wait (None = [send] stage_wait_minutes)
    confirmed: bool = False  # said yes beforehand (--yes): a large fresh send may start before its list is selected
    journal_lost: bool = False  # the recorded send's journal is gone: only readers who joined after it (recorded)
    run_note: str = ""  # recorded on the run (e.g. the doctor override, a scheduled send's delay)
    ab: float | None = None  # --ab 10%: the share of the list a subject A/B test takes (sending/ab.py)
    ab_fallback: int = 1  # the variant the rest gets when the test finds no winner
    readers: int = 0  # only the readers of this recorded audience (journal/audiences.py: a sequence step's due ones)
    # called with the fingerprint before anything is recorded; raises to refuse (a scheduled issue edited since)
    content_check: Callable[[str, Mapping[str, str]], None] | None = None
    worker: bool = False  # join the unfinished send another process started (PostgreSQL journal: sharing.py)
    workers: int = 1  # senders of this send on this machine, this process included (--workers N)


@dataclass
class SendPlan:
    """A send ready to go: the issue built and checked, the recipients selected into the journal."""

    settings: Settings
    options: SendOptions
    issue: Issue
    issue_id: str
    built: BuiltIssue
    message: Message
    journal: jn.Journal
    audience: jn.Audience
    fingerprint: str
    findings: list[Finding]
    skipped: Counter[str]
    secret: bytes | None
    # The send loop's body workers while it runs (a large send): started once the recipients are
    # selected, not before, so they and the selection's set of addresses are never in memory at once.
    bodies: BodyWorkers | None = None
    # A fresh large send's list still being selected while its first batches go out (``selection``).
    selection: PendingSelection | None = None
    parts: dict[str, str] = field(default_factory=dict)  # the fingerprint of each part (to say what changed)
    run_note: str = ""  # recorded on the run
    list_path: Path | None = None  # the list's file (None for a test send)
    unfinished_before: bool = False  # an earlier send run was unfinished when this one was prepared
    nothing_to_send: str = ""  # why nobody is to be sent, said with what the selection matched ("" if someone is)
    # Each recipient's click-link value, when [stats] clicks is on (sending/clicks.py); the A/B test sets its variant.
    readers: ReaderParts | None = None

    @property
    def provider_name(self) -> str:
        return self.audience.provider

    @property
    def mode(self) -> SendMode:
        return self.options.mode

    @property
    def list_name(self) -> str:
        return self.journal.list

    def close(self) -> None:
        if self.selection is not None:
            self.selection.close()
        self.journal.close()
        if self.bodies is not None:
            self.bodies.close()


# -- identity and fingerprint ------------------------------------------------------------------------


PARTS = ("subject", "html", "text", "headers")


def fingerprint(message: Message) -> tuple[str, dict[str, str]]:
    """A digest of exactly what goes out, before personalization, and one per part (to say what changed)."""
    headers = json.dumps([message.from_address, message.reply_to, message.unsubscribe_mailto,
                          list(message.categories), message.unsubscribe_group, [list(h) for h in message.headers]])
    parts = {name: hashlib.sha256(value.encode("utf-8")).hexdigest()[:16]
             for name, value in zip(PARTS, (message.subject, message.html, message.text, headers), strict=True)}
    whole = hashlib.sha256("".join(parts[p] for p in PARTS).encode()).hexdigest()[:16]
    return whole, parts


def describe_audience(list_name: str, audience: jn.Audience) -> str:
    """The command-line words that select this audience: what a resume hint repeats."""
    words = [f"--list {list_name}"]
    words += [f"--tag {_quote(t)}" for t in audience.tags]
    words += [f"--where {_quote(f'{k}={v}')}" for k, v in audience.where]
    if audience.joined_after:
        words.append("--journal-lost")
    words.append(f"--provider {audience.provider}")
    return " ".join(words)


def _words(option: str, values: Iterable[str]) -> str:
    """``--tag a --tag b`` as the writer typed it, or ``no --tag``."""
    return " ".join(f"{option} {_quote(v)}" for v in values) or f"no {option}"


def _quote(word: str) -> str:
    import shlex

    return shlex.quote(word)


def command_path(issue_dir: Path | str) -> str:
    """The issue folder as a hint's command must write it: quoted when it has a space or a quote."""
    return _quote(display_path(issue_dir))


def resume_command(issue_dir: Path | str, list_name: str) -> str:
    return f"newsletter send {command_path(issue_dir)} --list {list_name} --resume"


def _audience_of(options: SendOptions, settings: Settings, joined_after: str = "") -> jn.Audience:
    if any(not tag.strip() for tag in options.tags):
        # An empty tag (`--tag "$TAG"` with TAG unset) would otherwise narrow nothing: the whole list.
        raise NewsletterError("--tag is empty", hint="give the tag to select, like --tag founders, or leave "
                                                     "--tag out to send to everyone on the list")
    return jn.Audience(options.provider or settings.provider, tuple(sorted(set(options.tags))),
                       tuple(sorted(options.where.items())), joined_after, options.readers)


def settle_audience(journal: jn.Journal, options: SendOptions, settings: Settings, issue_dir: Path,
                    joined_after: str = "") -> jn.Audience:
    """The audience of this run: the recorded one for ``--resume``; the asked one otherwise, refused
    if it differs from an unfinished send's (which would change who gets the rest)."""
    unfinished = journal.runs.unfinished()
    if options.resume:
        runs = journal.runs.history()
        if not runs:
            raise NewsletterError(f"nothing to resume: this issue was never sent to list '{journal.list}'",
                                  hint=f"start it with: newsletter send {command_path(issue_dir)} "
                                       f"--list {journal.list}")
        recorded = (unfinished or runs[-1]).audience
        if (options.provider and options.provider != recorded.provider) or options.tags or options.where:
            raise NewsletterError("--resume repeats the recorded send (" + describe_audience(journal.list, recorded)
                                  + "); do not add --provider, --tag or --where to it")
        return recorded
    asked = _audience_of(options, settings, joined_after)
    if unfinished is not None and unfinished.audience != asked:
        recorded = unfinished.audience
        differences = []
        if recorded.provider != asked.provider:
            differences.append(f"provider {asked.provider} instead of {recorded.provider}")
        if recorded.tags != asked.tags:
            differences.append(f"{_words('--tag', asked.tags)} instead of {_words('--tag', recorded.tags)}")
        if recorded.where != asked.where:
            differences.append(f"{_words('--where', [f'{k}={v}' for k, v in asked.where])} instead of "
                               f"{_words('--where', [f'{k}={v}' for k, v in recorded.where])}")
        if recorded.readers != asked.readers:
            differences.append(f"{_readers_words(journal, asked.readers)} instead of "
                               f"{_readers_words(journal, recorded.readers)}")
        started = dt.datetime.fromtimestamp(unfinished.started).isoformat(timespec="minutes")
        raise NewsletterError(
            f"an unfinished send of this issue to list '{journal.list}' (started {started}: "
            f"{describe_audience(journal.list, recorded)}) went to a different audience: {'; '.join(differences)}",
            hint=f"finish it with: {resume_command(issue_dir, journal.list)}; or abandon what it has not sent "
                 f"with: newsletter resolve {command_path(issue_dir)} --list {journal.list} --abandon")
    return asked


def _readers_words(journal: jn.Journal, readers: int) -> str:
    """A restricted audience as a refusal names it: "the readers of sequence welcome, step 2 (3 readers)"."""
    return f"the readers of {jn.audiences.label(journal.db, readers)}" if readers else "everyone selected"


def check_fingerprint(journal: jn.Journal, whole: str, parts: Mapping[str, str], options: SendOptions,
                      issue_dir: Path, *, message: Message | None = None, base_url: str = "") -> None:
    """Refuse to send a changed issue to the rest of a list that already got part of it (unless told to).

    A renamed folder is said as such (with ``message`` and ``base_url``): the folder's name is in the links
    to the issue's web archive, so the rest would get other links, though nothing else changed."""
    sent = journal.view.sent_count()
    if not sent or options.allow_changed:
        return
    earlier = [run for run in journal.runs.history() if run.fingerprint and run.counts.get(jn.SENT)]
    if not earlier or earlier[-1].fingerprint == whole:
        return
    changed = [p for p in PARTS if earlier[-1].parts.get(p) != parts.get(p)]
    old_name = _folder_when_first_sent(journal)
    if old_name and old_name != issue_dir.name:
        only = message is not None and fingerprint(_renamed_back(message, base_url, issue_dir.name, old_name))[0] \
            == earlier[-1].fingerprint
        links = f" ({base_url}{old_name}/ became {base_url}{issue_dir.name}/)" if base_url else ""
        raise NewsletterError(
            f"the issue's folder was renamed from {old_name} to {issue_dir.name} since {sent} recipients of list "
            f"'{journal.list}' were sent it, which changes the links to its web archive{links}: the rest would get "
            + ("other links than the first readers (that is all that changed: " if only else
               "a different issue (") + f"{', '.join(changed) or 'content'} changed)",
            hint=f"rename the folder back (git mv {command_path(issue_dir)} "
                 f"{command_path(issue_dir.parent / old_name)}) to send the rest the same issue; or pass "
                 "--allow-changed to send them the issue as it is now "
                 "(recorded in the journal), and publish the web archive under both names (newsletter archive), so "
                 "that the links both groups got work")
    raise NewsletterError(
        f"the issue changed since {sent} recipients of list '{journal.list}' were sent it "
        f"({', '.join(changed) or 'content'} changed); the rest would get a different issue",
        hint="undo the change to send the same issue to the rest, or pass --allow-changed to send the changed "
             "issue to them anyway (the override is recorded in the journal)")


def _folder_when_first_sent(journal: jn.Journal) -> str:
    """The issue's folder name when it was first sent to this list (the journal keeps it with the send)."""
    row = journal.db.execute("SELECT folder FROM sends WHERE id=?", (journal.send,)).fetchone()
    return str(row[0]) if row and row[0] else ""


def _renamed_back(message: Message, base_url: str, name: str, old_name: str) -> Message:
    """``message`` with the links to the web archive under the folder's old name: what it would be, had the
    folder not been renamed (to tell whether the rename is all that changed)."""
    import dataclasses

    new, old = f"{base_url}{name}/", f"{base_url}{old_name}/"
    if not base_url:
        new, old = f"/{name}/", f"/{old_name}/"
    return dataclasses.replace(message, html=message.html.replace(new, old), text=message.text.replace(new, old),
                               headers=tuple((k, v.replace(new, old)) for k, v in message.headers))


def check_not_a_copy(journal: jn.Journal, whole: str, parts: Mapping[str, str], options: SendOptions,
                     issue_dir: Path) -> None:
    """Everyone already got this issue id, yet the subject that would go out differs: most likely a new issue
    made by copying an old folder (its ``id:`` came along), which would otherwise be skipped as "already settled"."""
    if options.allow_changed or not journal.view.sent_count():
        return
    earlier = [run for run in journal.runs.history() if run.fingerprint and run.counts.get(jn.SENT)]
    # A renamed folder changes only the links to the web archive; a new issue has a subject of its own.
    if not earlier or earlier[-1].parts.get("subject") in (None, parts.get("subject")):
        return
    raise NewsletterError(
        f"every selected recipient of list '{journal.list}' already got the issue with this id, under another "
        "subject, so nobody would get this one",
        where=issue_dir / "issue.md",
        hint="a new issue made by copying an old folder keeps the old one's id: delete the 'id:' line at the top "
             "of issue.md and send again (it gets its own id); if this is the sent issue edited afterwards, "
             "there is nobody left to send it to")


# -- preparing ---------------------------------------------------------------------------------------


def used_columns(built: BuiltIssue) -> tuple[str, ...]:
    """The subscriber columns the issue's merge fields read: all a recipient's copy needs of their row."""
    return tuple(sorted({f.name.split(".", 1)[1] for f in built.fields if f.name.startswith("subscriber.")}))


def _needs_secret(settings: Settings, message: Message) -> bool:
    """Links are signed with the secret unless the provider hosts them (an unsubscribe group)."""
    return bool(settings.unsubscribe_url) and message.unsubscribe_group is None


def _check_schedule(send_at: dt.datetime | None, provider: str) -> None:
    if send_at is None:
        return
    if send_at <= dt.datetime.now(dt.UTC):
        raise NewsletterError(f"--provider-at {send_at.isoformat()} is in the past", hint="give a future time")
    registry.kind(provider).check_schedule(send_at)


def prepare(settings: Settings, issue: Issue, issue_id: str, options: SendOptions, *,
            database: jn.JournalDB | None = None) -> SendPlan:
    """Build and check the issue, settle the audience, and select its recipients into the journal
    (``database``: a live send's journal; None for a dry run or a test send, which use a copy in memory).

    A live send's run and selection are provisional (one transaction): the engine commits them when the first
    request is about to go (``Journal.commit_run``) and rolls them back otherwise (``Journal.discard_run``)."""
    require_complete(issue)
    mode = options.mode
    list_name = mode.list_name(options.list_name)
    journal = mode.open_journal(settings, issue, issue_id, list_name, database)
    try:
        if mode.addresses:  # a test send: the given addresses, nothing recorded to go by
            lost, unfinished, audience = None, None, _audience_of(options, settings)
        else:  # a list: as the journal and the issue's sent record have it
            # the issue's sent record, before anyone is selected: a journal that lacks its run cannot know who
            # was mailed (a dry run says so too); --journal-lost narrows the audience to readers who joined since
            lost = check_against(journal, issue.path, list_name, journal_lost=options.journal_lost)
            unfinished = journal.runs.unfinished()
            audience = settle_audience(journal, options, settings, issue.path, lost.at if lost else "")
        provider = audience.provider
        registry.kind(provider)  # an unknown name fails here, naming the known ones
        _check_schedule(options.send_at, provider)
        list_path = None if mode.addresses else require_list(settings.list_path(list_name))
        built = build(settings, issue, list_columns(list_path) if list_path else None)
        findings = run_checks_on(CheckContext(settings, issue, built))
        if has_errors(findings) and mode.delivers:  # a dry run reports them
            listing = "\n".join(format_finding(f) for f in findings if f.severity == "error")
            raise SendFailed(f"refusing to send: the preflight checks found errors\n{listing}",
                             hint=f"fix them, then run: newsletter check {display_path(issue.path)}")
        built, readers = prepare_clicks(settings, built, issue_id, mode, send_at=options.send_at)
        message = make_message(settings, built, list_name, registry.kind_or_none(provider), send_at=options.send_at,
                               sandbox=options.sandbox, subject_prefix=mode.subject_prefix,
                               inline_images=mode.inline_images)
        message = dataclasses.replace(message, labels=(("issue_id", issue_id),))  # on each provider event
        secret = read_secret(settings, required=mode.delivers and _needs_secret(settings, message))
        whole, parts = fingerprint(message)
        if options.content_check is not None and list_path is not None:
            options.content_check(whole, parts)
        note = options.run_note
        if lost is not None:
            note = "; ".join(filter(None, [note, f"journal lost (--journal-lost): only readers who joined after "
                                                 f"{lost.at}, the recorded send ({lost.describe()})"]))
        plan = SendPlan(settings, options, issue, issue_id, built, message, journal, audience, whole, findings,
                        Counter(), secret, parts=parts, run_note=note, list_path=list_path,
                        unfinished_before=unfinished is not None, readers=readers)
    except BaseException:
        journal.close()
        raise
    try:
        select(plan)
    except BaseException:
        plan.close()  # a live send's provisional run is rolled back: nothing of it stays in the journal
        raise
    return plan


def select(plan: SendPlan) -> None:
    """Record the run and select its recipients into the journal (again, after ``Journal.discard_run``: the
    engine does not hold the journal while the writer answers its question)."""
    options, settings, journal, audience = plan.options, plan.settings, plan.journal, plan.audience
    if plan.mode.records:  # a live send's journal: provisional until its first request
        journal.begin_run()
        holds.release(journal)  # held back by an earlier staged or paced run: this run applies stages and caps afresh
    whole, parts = plan.fingerprint, plan.parts
    journal.runs.start(audience, whole, parts, kind=plan.mode.kind,
                       allow_changed=options.allow_changed and journal.view.sent_count() > 0, note=plan.run_note)
    skipped = plan.skipped
    skipped.clear()
    if plan.selection is not None:  # a selection made before (and discarded): start again from the list's top
        plan.selection.close()
        plan.selection = None
    list_path = plan.list_path
    streaming = list_path is not None and may_select_while_sending(
        settings, journal, list_path, confirmed=options.confirmed and options.workers <= 1,  # --workers: select first
        mode=plan.mode, retrying=options.retry_unknown or options.retry_failed,
        stages=options.stages) and options.ab is None
    listed = None  # the list's rows, read as they are taken
    rows: Iterable[tuple[str, str, str, str]]
    if list_path is None:
        rows = plan.mode.test_rows()
    else:
        def on_skip(email: str, reason: str, line: int) -> None:
            skipped[reason] += 1

        extra = [c for c in used_columns(plan.built) if c not in ("email", "name")]  # email and name have columns
        joined_after = (dt.datetime.fromisoformat(audience.joined_after.replace("Z", "+00:00"))
                        if audience.joined_after else None)
        rows = listed = select_rows(list_path, columns=extra, tags=audience.tags, where=dict(audience.where),
                           on_skip=on_skip, dedupe=not streaming,  # streaming: the journal drops repeats
                           joined_after=joined_after,
                           only=jn.audiences.readers(journal.db, audience.readers) if audience.readers else None)
    refresh = (jn.PENDING, *([jn.UNKNOWN] if options.retry_unknown else []),
               *([jn.FAILED] if options.retry_failed else []))
    if streaming and listed is not None:
        plan.selection = PendingSelection(journal, listed, skipped, settings.send.batch_size)
        while plan.selection.advance() and not journal.view.selected_status_counts()[jn.PENDING]:
            pass  # until the first recipient to send (or the list's end), so "nothing to send" is true
    else:
        journal.recipients.select(rows, refresh=refresh)
    if options.retry_unknown:
        journal.recipients.requeue(jn.UNKNOWN)
    if options.retry_failed:
        journal.recipients.requeue(jn.FAILED)
    if list_path is None:  # a test send: nothing recorded to compare with
        return
    counts = journal.view.selected_status_counts()
    # A new restricted audience (a sequence step's due readers) is readers who have had no version of this
    # issue: an edited step simply goes to them as it is now. Its resume is checked like any other.
    if audience.readers and not options.resume:
        plan.nothing_to_send = "" if counts[jn.PENDING] else nothing_to_send(plan, sum(counts.values()))
        return
    if counts[jn.PENDING]:
        check_fingerprint(journal, whole, parts, options, plan.issue.path,  # only when someone would get it
                          message=plan.message, base_url=plan.settings.base_url)
        plan.nothing_to_send = ""
        return
    check_not_a_copy(journal, whole, parts, options, plan.issue.path)
    plan.nothing_to_send = nothing_to_send(plan, sum(counts.values()))


def nothing_to_send(plan: SendPlan, selected: int) -> str:
    """Why nobody is to be sent, with what the selection matched; a filter that matches no row of the list
    (a tag or a value nobody has: a typo, most likely) is an error, with what the list does have."""
    list_name, audience, skipped = plan.list_name, plan.audience, plan.skipped
    if selected:
        return "every selected recipient is already settled"
    matched = sum(skipped.values())
    wanted = " and ".join([f"tag {t}" for t in audience.tags] + [f"{k}={v}" for k, v in audience.where])
    if not matched and wanted:
        raise NewsletterError(f"no recipient of list '{list_name}' has {wanted}", where=plan.list_path,
                              hint=_what_the_list_has(plan))
    rows = f"{matched} row{'s' * (matched != 1)}" + (f" with {wanted}" if wanted else "")
    if not matched:
        return f"list '{list_name}' has no subscribers"
    reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(skipped.items()) if n)
    return f"none of the {rows} of list '{list_name}' can be sent it ({reasons})"


def _what_the_list_has(plan: SendPlan) -> str:
    """The tags the list's rows have (for a tag nobody has), or how values compare (for --where)."""
    from ..lists import list_stats

    assert plan.list_path is not None
    audience = plan.audience
    if audience.tags:
        tags = list_stats(plan.list_path).by_tag
        missing = [t for t in audience.tags if t.strip().lower() not in {k.lower() for k in tags}]
        if missing:
            known = ", ".join(sorted(tags)) if tags else "none"
            return f"the list's tags are: {known}; check the spelling of --tag {_quote(missing[0])}"
        return "each of these tags is on some row, but no row has them all (--tag repeated means every tag)"
    return "no row has that value in that column (compared ignoring case and surrounding spaces); check it"
