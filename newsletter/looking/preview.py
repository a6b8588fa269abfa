"""A local preview of an issue that rebuilds itself while the writer edits.

``Preview`` holds what the page shows (preview_server.py serves it). A background thread watches
the issue, the templates, the settings and the chosen subscriber list with
watchfiles and rebuilds on every change; the page long-polls ``/api/wait`` for
the build number and refreshes itself, keeping the view the writer chose. A
build that fails keeps the server running and shows the file, line and message.

Subscriber data picked with ``--list`` stays in this process and the local
page: the unsubscribe links shown are signed with the sample secret, so they
are not the recipient's real links.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..compose.build import SAMPLE_RECIPIENT, BuiltIssue, sample_values
from ..compose.content import Issue, load_issue
from ..compose.personalize import Personalizer, merge_values
from ..compose.unsubscribe import unsubscribe_url
from ..config import Settings, load_settings
from ..errors import NewsletterError, display_path
from .browser_email import dark_variant, email_for_browser

if TYPE_CHECKING:
    from ..checks import Finding

MAX_RECIPIENTS = 500  # the picker lists this many of the list's recipients
WAIT_SECONDS = 20.0  # longest a /api/wait request is held open
ISSUE_FILES_ROUTE = "/issue-files/"  # where the page finds the issue folder's images (preview_server.py)


# --- what the preview shows ----------------------------------------------------

@dataclass(frozen=True)
class PickerEntry:
    """A row of the chosen list as the picker shows it; its values never leave this process but to the page."""

    label: str
    values: dict[str, str]


@dataclass(frozen=True)
class BuildError:
    """Why the last rebuild failed: the file and line to fix, what is wrong, and the fix."""

    message: str
    where: str = ""
    line: int | None = None
    hint: str = ""
    details: str = ""

    @classmethod
    def of(cls, err: BaseException) -> BuildError:
        if isinstance(err, NewsletterError):
            return cls(err.reason, err.where or "", err.line, err.hint or "")
        return cls(f"internal error: {type(err).__name__}: {err}",
                   details="".join(traceback.format_exception(err)))

    def __str__(self) -> str:
        location = f"{self.where}:{self.line}" if self.where and self.line else self.where
        text = f"{location}: {self.message}" if location else self.message
        return f"{text} ({self.hint})" if self.hint else text


@dataclass(frozen=True)
class Snapshot:
    """What the page shows at one moment: the last good build, its findings, and the last error.

    ``version`` counts every change the page should fetch; ``build`` counts
    builds of the email, so findings arriving later do not reload the frame.
    ``findings`` is None while the checks of this build still run.
    """

    version: int
    build: int = 0
    settings: Settings | None = None
    issue: Issue | None = None
    built: BuiltIssue | None = None
    findings: tuple[Finding, ...] | None = None
    check_error: BuildError | None = None
    recipients: tuple[PickerEntry, ...] = ()
    error: BuildError | None = None
    seconds: float = 0.0

    def values(self, recipient: int | None) -> dict[str, str]:
        if recipient is not None and 0 <= recipient < len(self.recipients):
            return self.recipients[recipient].values
        return sample_values(self.settings) if self.settings else {}


def load_recipients(settings: Settings, list_name: str, limit: int = MAX_RECIPIENTS) -> tuple[PickerEntry, ...]:
    """The first ``limit`` recipients a send to ``list_name`` would reach, with their merge values."""
    from ..lists import select_recipients

    selection = select_recipients(settings.list_path(list_name))
    with contextlib.closing(selection):
        rows = list(itertools.islice(selection, limit))
    recipients = []
    for sub in rows:
        columns = {**sub.fields, "email": sub.email, "name": sub.name}
        link = unsubscribe_url(settings, list_name, sub.email, None)  # sample secret: not a working link
        label = f"{sub.name} <{sub.email}>" if sub.name else sub.email
        recipients.append(PickerEntry(label, merge_values(columns, link)))
    return tuple(recipients)


class Preview:
    """The issue being previewed: rebuilds on demand, hands out the latest build, wakes waiting pages."""

    def __init__(self, root: Path, issue_dir: Path, list_name: str | None = None,
                 on_rebuild: Callable[[Snapshot, Iterable[str]], None] | None = None):
        self.root = Path(root).resolve()
        self.issue_dir = Path(issue_dir).resolve()
        self.list_name = list_name
        self.on_rebuild = on_rebuild
        self._changed = threading.Condition()
        self._checking = threading.Lock()  # one check run at a time
        self._closing = False
        self.snapshot = Snapshot(version=0)
        self._stop = threading.Event()
        self._watchers: list[threading.Thread] = []
        self._building = threading.Lock()  # watchers of several folders may ask at once

    def rebuild(self, changed: Iterable[str] = ()) -> Snapshot:
        """Build the issue again and publish it; its checks follow in a worker thread.

        A build that fails keeps the last good one on the page and adds the error.
        Checks (some run external programs) never hold up the email itself.
        """
        with self._building:
            return self._rebuild(changed)

    def _rebuild(self, changed: Iterable[str]) -> Snapshot:
        from ..compose.build import build

        started = time.monotonic()
        previous = self.snapshot
        try:
            settings = load_settings(self.root)
            issue = load_issue(self.issue_dir)
            built = build(settings, dataclasses.replace(issue, missing_articles=()))  # as `newsletter check` does
            recipients = load_recipients(settings, self.list_name) if self.list_name else ()
            snapshot = Snapshot(previous.version + 1, previous.build + 1, settings, issue, built, None, None,
                                recipients, seconds=time.monotonic() - started)
        except Exception as err:  # noqa: BLE001 - any failure belongs in the page; the server keeps running
            snapshot = dataclasses.replace(previous, version=previous.version + 1, error=BuildError.of(err),
                                           seconds=time.monotonic() - started)
        self._publish(snapshot, changed)
        if snapshot.error is None:
            threading.Thread(target=self._check, args=(snapshot,), name="newsletter-preview-check",
                             daemon=True).start()
        return snapshot

    def _publish(self, snapshot: Snapshot, changed: Iterable[str] = ()) -> None:
        with self._changed:
            self.snapshot = snapshot
            self._changed.notify_all()
        if self.on_rebuild:
            self.on_rebuild(snapshot, changed)

    def _check(self, snapshot: Snapshot) -> None:
        """Run `newsletter check`'s checks on a build; drop the result if a newer build came meanwhile."""
        from ..checks import CheckContext, run_checks_on

        with self._checking:
            if self.snapshot.build != snapshot.build:
                return
            if snapshot.settings is None or snapshot.issue is None or snapshot.built is None:
                return  # no build to check (they are set together)
            findings: tuple[Finding, ...] = ()
            problem = None
            try:
                ctx = CheckContext(snapshot.settings, snapshot.issue, snapshot.built)
                findings = tuple(run_checks_on(ctx))
            except Exception as err:  # noqa: BLE001 - a failing check is shown, not fatal
                problem = BuildError.of(err)
            with self._changed:
                current = self.snapshot
                if current.build != snapshot.build:
                    return
                updated = dataclasses.replace(current, version=current.version + 1, findings=findings,
                                              check_error=problem)
            self._publish(updated)

    def wait_for_checks(self, timeout: float = 60.0) -> Snapshot:
        """The snapshot once the checks of the latest build are in (for tests and scripts)."""
        with self._changed:
            self._changed.wait_for(lambda: self.snapshot.findings is not None or self.snapshot.built is None
                                   or self._closing, timeout)
            return self.snapshot

    def wait(self, since: int, timeout: float = WAIT_SECONDS) -> int:
        """Block until the build number passes ``since`` (or the timeout); return the build number."""
        with self._changed:
            self._changed.wait_for(lambda: self.snapshot.version != since or self._closing, timeout)
            return self.snapshot.version

    # watching

    def watch_plan(self) -> list[tuple[list[Path], bool]]:
        """(folders, recursive) to watch: the issue and the templates deeply; the folders of
        newsletter.toml and of the chosen list only at their top, so a big checkout
        (.venv, build/, site/) costs no watches."""
        deep = [p for p in (self.issue_dir, self.root / "templates") if p.is_dir()]
        flat = [self.root, *(p.parent for p in self._list_paths() if p.parent != self.root)]
        return [(deep, True), (flat, False)]

    def is_relevant(self, path: str) -> bool:
        """A change to the issue, a template, newsletter.toml or the chosen list triggers a rebuild."""
        changed = Path(path).resolve()
        if changed in (self.root / "newsletter.toml", *self._list_paths()):
            return True
        return any(changed.is_relative_to(folder) for folder in (self.issue_dir, self.root / "templates"))

    def _list_paths(self) -> list[Path]:
        return [self.root / "subscribers" / f"{self.list_name}.csv"] if self.list_name else []

    def start_watching(self) -> None:
        """Rebuild in background threads whenever a relevant file changes."""
        import watchfiles

        default = watchfiles.DefaultFilter()

        def accept(change: Any, path: str) -> bool:
            return default(change, path) and self.is_relevant(path)

        def run(paths: list[Path], recursive: bool) -> None:
            for changes in watchfiles.watch(*paths, watch_filter=accept, stop_event=self._stop, recursive=recursive,
                                            debounce=400, step=50, rust_timeout=500, raise_interrupt=False):
                if self._stop.is_set():
                    break
                changed = {path for _, path in changes}
                shown = {p for p in changed if Path(p).exists()} or changed  # not an editor's vanished temp file
                self.rebuild(sorted(display_path(p) for p in shown))

        for paths, recursive in self.watch_plan():
            if paths:
                watcher = threading.Thread(target=run, args=(paths, recursive), name="newsletter-preview-watch",
                                           daemon=True)
                watcher.start()
                self._watchers.append(watcher)

    def close(self) -> None:
        self._stop.set()
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        for watcher in self._watchers:
            watcher.join(timeout=5)

    # what the page asks for

    def email_html(self, recipient: int | None = None, dark: bool = False) -> str | None:
        """The email as the recipient (or the sample reader) receives it, images served locally."""
        snap = self.snapshot
        if snap.built is None or snap.settings is None:
            return None
        html = Personalizer(snap.built.html, snap.built.fields).fill(snap.values(recipient))
        html = email_for_browser(html, snap.settings, snap.built.issue, self.image_url)
        return dark_variant(html) if dark else html

    def image_url(self, path: Path) -> str:
        relative = path.relative_to(self.issue_dir.resolve())
        return ISSUE_FILES_ROUTE + "/".join(relative.parts)

    def state(self, recipient: int | None = None) -> dict[str, Any]:
        """Everything the page shows besides the email itself, as JSON-ready data."""
        from ..checks import GMAIL_CLIP_BYTES

        snap = self.snapshot
        state: dict[str, Any] = {
            "version": snap.version,
            "build": snap.build,
            "seconds": round(snap.seconds, 3),
            "error": dataclasses.asdict(snap.error) | {"text": str(snap.error)} if snap.error else None,
            "list": self.list_name,
            "recipients": [{"id": i, "label": r.label} for i, r in enumerate(snap.recipients)],
            "recipient_limit": MAX_RECIPIENTS,
            "ready": snap.built is not None,
        }
        if snap.built is None or snap.settings is None:
            return state
        values = snap.values(recipient)
        html_part, text_part = snap.built.personalizers()
        size = len(html_part.fill(values).encode("utf-8"))
        issue = snap.built.issue
        state.update({
            "issue": {"name": issue.name, "subject": issue.subject, "preheader": issue.preheader,
                      "date": issue.date.isoformat(), "number": issue.number},
            "from": snap.settings.from_address,
            "reply_to": snap.settings.reply_to,
            "to": values.get("subscriber.email", SAMPLE_RECIPIENT["email"]),
            "text": text_part.fill(values),
            "size": size,
            "size_limit": GMAIL_CLIP_BYTES,
            "findings": None if snap.findings is None else [
                {**f.to_dict(), "location": f.location()} for f in snap.findings],
            "check_error": str(snap.check_error) if snap.check_error else None,
        })
        return state
