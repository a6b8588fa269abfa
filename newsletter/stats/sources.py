"""Reading what ``newsletter stats`` counts: the send journal (read-only) and the subscriber service's store."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..compose.content import Issue, load_issue
from ..config import Settings
from ..errors import NewsletterError, display_path
from ..providers import registry
from ..sending import ab as ab_test
from ..sending import journal as jn
from ..serve.connect import open_store, store_is_configured
from ..serve.store import ClickRecord, Event, EventStore, MessageEvent, stamp
from .figures import IssueFigures, SentCopies, figures, group_counts, human_clicks, parse_stamp


@dataclass(frozen=True)
class SentIssue:
    """An issue the journal knows: its id, folder and when it first went to each list."""

    issue_id: str
    folder: str
    first_sent: float
    lists: tuple[str, ...]


def sent_issues(settings: Settings) -> list[SentIssue]:
    """Every issue with a send run in the journal, oldest first."""
    location = jn.location_of(settings)
    if not location.may_exist():
        return []
    db = jn.open_database(location, read_only=True)
    try:
        rows = db.execute("SELECT s.issue, COALESCE(s.folder, ''), s.list, MIN(r.started) FROM sends s "
                          "JOIN runs r ON r.send = s.id WHERE r.kind = 'send' GROUP BY s.issue, s.folder, s.list"
                          ).fetchall()
    finally:
        db.close()
    found: dict[str, SentIssue] = {}
    for issue, folder, list_name, started in rows:
        known = found.get(issue)
        lists = tuple(sorted({*(known.lists if known else ()), str(list_name)}))
        first = min(float(started), known.first_sent) if known else float(started)
        found[str(issue)] = SentIssue(str(issue), str(folder or (known.folder if known else "")), first, lists)
    return sorted(found.values(), key=lambda issue: issue.first_sent)


def sent_copies(settings: Settings, issue_id: str, folder: str) -> SentCopies:
    """The journal's account of one issue (every list it went to)."""
    location = jn.location_of(settings)
    lists = jn.lists_of(location, issue_id)
    accepted = hard = soft = deferred = 0
    first = 0.0
    record: ab_test.AbRecord | None = None
    sizes: dict[int, int] = {}
    emails: list[str] = []
    for list_name in lists:
        journal = jn.Journal.read_only(location, issue_id, list_name)
        try:
            runs = journal.runs.history()
            if runs:
                first = min(first or runs[0].started, runs[0].started)
            provider = runs[-1].audience.provider if runs else ""
            for email, status, reason in journal.db.execute(
                    "SELECT email, status, COALESCE(reason, '') FROM deliveries WHERE send=? AND status IN "
                    "('sent', 'failed', 'deferred')", (journal.send,)).fetchall():
                if status == jn.SENT:
                    accepted += 1
                    emails.append(str(email))
                elif status == jn.FAILED:
                    if provider and registry.is_hard_refusal(provider, str(reason)):
                        hard += 1
                    else:
                        soft += 1
                else:
                    deferred += 1
            record = record or ab_test.record_of(journal)
            if record is not None and not sizes:
                sizes = ab_test.variant_sizes(journal)
        finally:
            journal.close()
    groups = group_counts(emails)
    return SentCopies(issue_id, folder, tuple(lists), first, accepted, hard, soft, deferred, groups, record, sizes)


@contextmanager
def event_store(settings: Settings) -> Iterator[EventStore | None]:
    """The configured event store, or None when there is none yet (nothing served, nothing counted)."""
    if not store_is_configured(settings):
        yield None
        return
    store = open_store(settings, create=False)
    try:
        yield store
    finally:
        store.close()


def find_issue(settings: Settings, issue_dir: Path) -> tuple[Issue, str]:
    issue = load_issue(issue_dir)
    issue_id = issue.id or issue.name
    if not issue.id:
        raise NewsletterError("this issue was never sent (it has no id: yet)", where=display_path(issue_dir),
                              hint="newsletter stats counts what a send did; send it first")
    return issue, issue_id


def _departures(store: EventStore, lists: tuple[str, ...], since: float, until: float | None) -> list[Event]:
    found = []
    for list_name in lists:
        for event in store.events_since(list_name, stamp_of(since)):
            if until is None or parse_stamp(event.at) < until:
                found.append(event)
    return found


def stamp_of(moment: float) -> str:
    import datetime as dt

    return stamp(dt.datetime.fromtimestamp(moment, dt.UTC))


def issue_figures(settings: Settings, issue_id: str, folder: str, subject: str,
                  store: EventStore | None) -> IssueFigures:
    """The figures of one issue (its id); ``store`` None: the journal's part alone, with a note saying so."""
    copies = sent_copies(settings, issue_id, folder)
    if not copies.lists:
        raise NewsletterError(f"the journal has no send of {folder or issue_id}",
                              hint="newsletter stats counts what a send did; send it first")
    clicks: list[ClickRecord] = []
    events: list[MessageEvent] = []
    departures: list[Event] = []
    note = ""
    if store is None:
        note = ("no event store yet: clicks and provider events are counted by newsletter serve "
                "(docs/stats.md)")
    else:
        clicks = store.clicks_of(issue_id)
        events = store.message_events_of(issue_id)
        later = [s.first_sent for s in sent_issues(settings)
                 if s.first_sent > copies.first_sent and set(s.lists) & set(copies.lists)]
        departures = _departures(store, copies.lists, copies.first_sent, min(later) if later else None)
    return figures(settings, copies, subject, clicks, events, departures, store_note=note)


def stats_of_issue(settings: Settings, issue_dir: Path) -> IssueFigures:
    """``newsletter stats ISSUE``."""
    issue, issue_id = find_issue(settings, issue_dir)
    with event_store(settings) as store:
        return issue_figures(settings, issue_id, issue.name, issue.subject, store)


class StoreClicks:
    """``sending.ab.ClickCounts`` from the event store: unique human clickers per A/B variant."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def unique_human_clickers(self, issue_id: str) -> Mapping[int, int]:
        with event_store(self.settings) as store:
            if store is None:
                raise NewsletterError("an A/B test is decided on clicks, and there is no event store yet",
                                      hint="clicks are counted by newsletter serve with [stats] clicks = true "
                                           "(docs/stats.md)")
            clicks = store.clicks_of(issue_id)
            delivered = {e.reader: parse_stamp(e.at) for e in store.message_events_of(issue_id)
                         if e.kind == "delivered"}
        counted = human_clicks(clicks, delivered, self.settings.stats.human_after_seconds)
        readers: dict[int, set[str]] = {}
        for click in counted:
            if click.variant:
                readers.setdefault(click.variant, set()).add(click.reader)
        return {variant: len(found) for variant, found in readers.items()}


@dataclass(frozen=True)
class Growth:
    """One week of a list, from the service's events: who joined (confirmed) and who left."""

    week: str  # ISO week's Monday, YYYY-MM-DD
    joined: int
    left: int


@dataclass
class Overview:
    """``newsletter stats`` without an issue: the last issues side by side, and each served list's growth."""

    issues: list[IssueFigures]
    growth: dict[str, list[Growth]]
    notes: list[str]


def list_growth(store: EventStore, list_name: str) -> list[Growth]:
    import datetime as dt

    weeks: dict[str, list[int]] = {}
    for event in store.events_since(list_name, ""):
        if event.list_name != list_name:
            continue  # an event for every list ("*"): a bounce with no list named
        day = dt.datetime.fromtimestamp(parse_stamp(event.at), dt.UTC).date()
        week = (day - dt.timedelta(days=day.weekday())).isoformat()
        counts = weeks.setdefault(week, [0, 0])
        if event.kind == "confirmed":
            counts[0] += 1
        elif event.kind in ("unsubscribed", "bounced", "complained"):
            counts[1] += 1
    return [Growth(week, joined, left) for week, (joined, left) in sorted(weeks.items())]


def overview(settings: Settings, last: int = 5) -> Overview:
    """The last ``last`` issues sent, oldest first, and the growth of every list ``[serve]`` serves."""
    issues = sent_issues(settings)[-last:] if last > 0 else []
    notes = []
    with event_store(settings) as store:
        found = []
        for sent in issues:
            folder = settings.issues_dir / sent.folder
            subject = load_issue(folder).subject if (folder / "issue.md").is_file() else ""
            found.append(issue_figures(settings, sent.issue_id, sent.folder, subject, store))
        growth = {name: list_growth(store, name) for name in settings.serve.lists} if store else {}
        if store is None:
            notes.append("no event store yet: clicks, provider events and list growth come from newsletter serve")
    return Overview(found, growth, notes)
