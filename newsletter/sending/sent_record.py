"""A sent issue knows it was sent, in git: the ``sent:`` record in issue.md's front matter.

The send journal is the record of who got what, but it lives on one disk (or in
one database), and a newsletter kept in git is cloned, sent from CI and edited
by two people. So the first live send of an issue to a list also writes a small
record into the issue itself, one line per (list, first run)::

    sent:
    - {list: readers, run: 3f9a1c2b4d5e6f70, at: "2026-12-07T21:30:00Z", recipients: 50, sent: 50,
       journal: "sqlite:.newsletter/journal.sqlite"}

leaving every other byte of issue.md as it was. The writer commits it. A live
send (or a dry run of one) of an issue whose record for the list names only runs
the journal in use does not hold is refused before anything goes out: that
journal has no idea who was mailed. The ways forward are to point at the shared
journal, restore the journal file, or ``--journal-lost``, which sends only to
readers who joined after the recorded send.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fcntl
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..compose.content import ISSUE_FILE, split_front_matter
from ..errors import NewsletterError

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .journal import Journal

KEY = "sent"
_LINE = re.compile(r"^(\s*)- \{.*\}\s*$")


@dataclass(frozen=True)
class SentEntry:
    """One line of the record: a list the issue went to, the run that first sent it, and where it is journaled."""

    list: str
    run: str  # the run's uid (unique across journals)
    at: str  # when that run started, ISO 8601 in UTC
    recipients: int  # how many it was going to (selected when it started)
    journal: str  # the journal that holds the run, as ``Location.describe`` says it
    sent: int | None = None  # how many the journal records as sent, when the run ended
    journal_lost: bool = False  # sent with --journal-lost: only to readers who joined after the earlier record

    @property
    def moment(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.at.replace("Z", "+00:00"))

    def describe(self) -> str:
        when = self.moment.strftime("%Y-%m-%d %H:%M UTC")
        sent = f", {self.sent} sent" if self.sent is not None else ""
        return f"run {self.run}, {when}, to {self.recipients} recipients{sent}, journal {self.journal}"

    def line(self) -> str:
        """The entry as one YAML flow-mapping line (strings quoted as JSON is: valid YAML)."""
        fields: dict[str, Any] = {"list": self.list, "run": self.run, "at": self.at, "recipients": self.recipients}
        if self.sent is not None:
            fields["sent"] = self.sent
        fields["journal"] = self.journal
        if self.journal_lost:
            fields["journal_lost"] = True
        text = ", ".join(f"{key}: {json.dumps(value, ensure_ascii=False)}" for key, value in fields.items())
        return "- {" + text + "}"


def now_stamp(moment: dt.datetime | None = None) -> str:
    return (moment or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_record(issue_dir: Path) -> list[SentEntry]:
    """Every entry of the issue's sent record (none when it has none); a NewsletterError naming the file
    when the record is there but not in its shape."""
    path = Path(issue_dir) / ISSUE_FILE
    meta, _, _ = split_front_matter(path.read_text(encoding="utf-8-sig"), path)
    return _entries(meta.get(KEY), path)


def _entries(value: object, path: Path) -> list[SentEntry]:
    if value is None:
        return []
    fix = ("restore the 'sent:' lines a send wrote (git log -p issue.md shows them); they record that the issue "
           "went out, so that no clone sends it again")
    if not isinstance(value, list):
        raise NewsletterError("'sent' must be a list of the sends that record this issue went out",
                              where=path, hint=fix)
    entries = []
    for item in value:
        if not isinstance(item, dict) or not all(isinstance(item.get(k), str) and item.get(k)
                                                 for k in ("list", "run", "at", "journal")):
            raise NewsletterError(f"an entry of 'sent' lacks its list, run, at or journal: {item!r}",
                                  where=path, hint=fix)
        try:
            entry = SentEntry(list=item["list"], run=item["run"], at=item["at"],
                              recipients=int(item.get("recipients") or 0), journal=item["journal"],
                              sent=int(item["sent"]) if item.get("sent") is not None else None,
                              journal_lost=bool(item.get("journal_lost")))
            entry.moment  # noqa: B018 - a time that does not parse is refused here, not at send time
        except (TypeError, ValueError):
            raise NewsletterError(f"an entry of 'sent' has a value that is not what a send wrote: {item!r}",
                                  where=path, hint=fix) from None
        entries.append(entry)
    return entries


def for_list(entries: list[SentEntry], list_name: str) -> list[SentEntry]:
    return [entry for entry in entries if entry.list == list_name]


def write_entry(issue_dir: Path, entry: SentEntry) -> Path:
    """Add ``entry`` to the issue's record (or replace the line of the same run and list), leaving every
    other byte of issue.md as it was; returns issue.md's path."""
    path = Path(issue_dir) / ISSUE_FILE
    try:
        with open(path, "r+b") as file:
            fcntl.flock(file, fcntl.LOCK_EX)
            data = file.read()
            updated = _with_entry(data, entry, path)
            if updated != data:
                file.seek(0)
                file.write(updated)
                file.truncate()
    except OSError as err:
        raise NewsletterError(f"cannot record in issue.md that this issue was sent: {err.strerror}",
                              where=path,
                              hint="make the file writable, then add this line under 'sent:' in its front matter "
                                   f"yourself and commit it: {entry.line()}") from None
    return path


def _with_entry(data: bytes, entry: SentEntry, path: Path) -> bytes:
    text = data.decode("utf-8-sig")
    bom = b"\xef\xbb\xbf" if data.startswith(b"\xef\xbb\xbf") else b""
    newline = "\r\n" if "\r\n" in text.split("\n", 1)[0] + "\n" else "\n"
    lines = text.split(newline)
    if not lines or lines[0].rstrip() != "---":
        raise NewsletterError("has no front matter to record the send in", where=path,
                              hint="start the file with a '---' line and the issue's fields")
    end = next((i for i in range(1, len(lines)) if lines[i].rstrip() in ("---", "...")), None)
    if end is None:
        raise NewsletterError("its front matter has no closing '---' line", where=path,
                              hint="end the front matter with a line of three dashes")
    meta, _, _ = split_front_matter(text, path)
    entries = _entries(meta.get(KEY), path)
    start = next((i for i in range(1, end) if re.match(rf"^{KEY}\s*:", lines[i])), None)
    kept = [e for e in entries if not (e.run == entry.run and e.list == entry.list)]
    replaced = len(kept) != len(entries)
    if start is not None:
        block_end = start + 1
        while block_end < end and (lines[block_end].startswith((" ", "-", "\t")) or not lines[block_end].strip()):
            block_end += 1
        ours = all(_LINE.match(line) for line in lines[start + 1:block_end] if line.strip())
        if ours and lines[start].rstrip() == f"{KEY}:":
            block = lines[start + 1:block_end]
            if replaced:  # the same run's line, updated in place
                block = [entry.line() if _names(line, entry) else line for line in block]
            else:
                block = [line for line in block if line.strip()] + [entry.line()]
            lines[start + 1:block_end] = block
        else:  # a record reformatted by hand: written again in the shape a send writes
            lines[start:block_end] = [f"{KEY}:", *(e.line() for e in (*kept, entry))]
    else:
        lines[end:end] = [f"{KEY}:", entry.line()]
    return bom + newline.join(lines).encode("utf-8")


def _names(line: str, entry: SentEntry) -> bool:
    import yaml

    try:
        [item] = yaml.safe_load(line) or [None]
    except (yaml.YAMLError, ValueError):
        return False
    return isinstance(item, dict) and item.get("run") == entry.run and item.get("list") == entry.list


def check_against(journal: Journal, issue_dir: Path, list_name: str, *, journal_lost: bool) -> SentEntry | None:
    """The entry after whose time only readers who joined later may be sent, or None for no such limit;
    a NewsletterError when the issue's record says it went to ``list_name`` through runs ``journal`` does
    not hold and the writer has not said the journal that holds them is lost.

    Before anything is selected or sent: a journal without those runs cannot know who was mailed. Once a
    ``--journal-lost`` send is in this journal, every later send of the issue to the list keeps its limit
    (the journal still does not know who the earlier send reached).
    """
    path = Path(issue_dir) / ISSUE_FILE
    entries = for_list(read_record(issue_dir), list_name)
    held = [entry for entry in entries if journal.runs.holds_uid(entry.run)]
    unheld = [entry for entry in entries if entry not in held]
    here = journal.db.location.describe()
    if not unheld:
        if journal_lost and not entries:
            raise NewsletterError(f"--journal-lost: issue.md records no send of this issue to list '{list_name}'",
                                  where=path,
                                  hint="leave out --journal-lost: it is for an issue whose recorded send's journal "
                                       "is gone")
        if journal_lost:
            raise NewsletterError(f"--journal-lost: the journal in use ({here}) holds the recorded send "
                                  f"({held[-1].describe()}): nothing is lost", where=path,
                                  hint="leave out --journal-lost; an unfinished send goes on with --resume")
        return None
    latest = max(unheld, key=lambda entry: entry.moment)
    if journal_lost or held:
        return latest
    raise NewsletterError(
        f"this issue was already sent to list '{list_name}' ({latest.describe()}), and the journal in use "
        f"({here}) has no record of that send: sending now could mail those readers again",
        where=path,
        hint=(f"use the journal that holds it: set [send] journal_url to the shared journal, or restore "
              f"{latest.journal.removeprefix('sqlite:')} from the machine or backup that sent it; if that journal "
              "is lost for good, send with --journal-lost: only readers who joined after "
              f"{latest.moment.strftime('%Y-%m-%d %H:%M UTC')} get it, and the override is recorded"))


def record_send(issue_dir: Path, journal: Journal, *, recipients: int, journal_lost: bool) -> Path | None:
    """Write the record of this live run into issue.md if no entry for its list names a run this journal
    holds (its first send to the list, or one after ``--journal-lost``); the path written, else None."""
    entries = for_list(read_record(issue_dir), journal.list)
    if any(journal.runs.holds_uid(entry.run) for entry in entries):
        return None  # this journal's send to the list is on record already (this is a resume, or more after it)
    # The run that started this journal's send to the list names it: a clone that resumes it writes the same line.
    first = journal.runs.history()[0]
    entry = SentEntry(list=journal.list, run=first.uid or journal.run_uid,
                      at=now_stamp(dt.datetime.fromtimestamp(first.started, dt.UTC)), recipients=recipients,
                      journal=journal.db.location.describe(), journal_lost=journal_lost)
    return write_entry(issue_dir, entry)


def record_outcome(issue_dir: Path, journal: Journal, *, recipients: int | None = None,
                   sent: int | None = None) -> Path | None:
    """After a live run: the entry for this journal's send to the list says how many are sent by now (and,
    for the run that wrote it, how many it selected in the end: a large send selects while it sends).
    ``sent``: that count as the caller already read it (each read is a pass over the send)."""
    entries = [entry for entry in for_list(read_record(issue_dir), journal.list)
               if journal.runs.holds_uid(entry.run)]
    if not entries:
        return None
    latest = max(entries, key=lambda entry: entry.moment)
    updated = dataclasses.replace(latest, sent=journal.view.sent_count() if sent is None else sent)
    if recipients is not None and journal.runs.count() == 1:  # the first run: the count it ended with
        updated = dataclasses.replace(updated, recipients=recipients)
    return None if updated == latest else write_entry(issue_dir, updated)
