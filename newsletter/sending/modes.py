"""How a send goes out: live, a dry run, or a test send, chosen once where the command is read.

The mode is an object the send carries (``SendOptions.mode``), not a flag each step tests again:

- ``LiveSend``: the list, through the provider, recorded in the journal on disk under its lock, and in
  issue.md's sent record; the doctor gate, the subscriber service's departures, stages, caps and workers
  apply. A live send's run is provisional until its first request (``Journal.begin_run``).
- ``TestSend``: only the given addresses, through the provider, in a scratch journal in memory (the real
  one is untouched): no list, no stages or caps, no click tracking (the writer's clicks are not the
  readers'); the subject starts with ``[Test] `` and the issue's own images travel inside the message.
- ``DryRun``: everything a live send (or, with ``of``, a test send) does but the delivery, in a scratch
  copy of the journal: the dry-run provider runs the real provider's ``encode`` and writes samples and
  ``report.json``; the preflight checks' errors are reported rather than refused.

``choose_mode`` turns the command line's ``--dry-run``, ``--test-to`` and ``--test-prefix`` into one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..compose.message import refuse_line_breaks
from ..config import Settings
from ..errors import NewsletterError, display_path
from ..lists import normalize_key
from ..providers import registry
from ..providers.base import Provider
from . import journal as jn

if TYPE_CHECKING:
    from ..compose.content import Issue
    from .report import SendReport

TEST_LIST = "test"  # the list name a --test-to send signs its unsubscribe links with
TEST_SUBJECT_PREFIX = "[Test] "  # marks a --test-to message in the inbox, unless told otherwise

TestRow = tuple[str, str, str, str]  # (key, email, name, fields: "" for none), as lists.select_rows yields them


@dataclass(frozen=True)
class SendMode:
    """What differs between the modes, asked of the mode (the base class is the live send's answers)."""

    kind: ClassVar[str] = "send"  # the run's kind in the journal
    option: ClassVar[str] = ""  # the command-line option that chose this mode ("" for a live send)
    records: ClassVar[bool] = True  # the journal on disk, its lock, the sent record; doctor, stages, caps, workers
    delivers: ClassVar[bool] = True  # requests go to the provider (a dry run writes samples instead)

    @property
    def addresses(self) -> tuple[str, ...]:
        """A test send's recipients, instead of a list (empty: the list is the audience)."""
        return ()

    @property
    def subject_prefix(self) -> str:
        return ""

    @property
    def inline_images(self) -> bool:
        """The issue's own images inside the message (a test send goes out before the archive is published)."""
        return bool(self.addresses)

    def list_name(self, asked: str) -> str:
        """The journal's list for this send (a test send signs its links with ``TEST_LIST``)."""
        return TEST_LIST if self.addresses else asked

    def open_journal(self, settings: Settings, issue: Issue, issue_id: str, list_name: str,
                     database: jn.JournalDB | None) -> jn.Journal:
        """The live send's journal in ``database`` (opened and locked by the engine), its run provisional
        until its first request; without one, an in-memory copy of the configured journal's records (a
        schedule prepares the send as a live one would, to record what it will be, and sends nothing)."""
        if database is None:
            return jn.Journal.scratch_copy(jn.location_of(settings), issue_id, list_name, folder=issue.name)
        return jn.Journal(database, issue_id, list_name, folder=issue.name, provisional=True)

    def test_rows(self) -> list[TestRow]:
        """The recipients of a test send, one per address however it is spelled."""
        unique: dict[str, str] = {}
        for address in self.addresses:
            refuse_line_breaks("--test-to address", address)
            unique.setdefault(normalize_key(address), address.strip())
        return [(key, address, "", "") for key, address in unique.items()]

    def provider(self, settings: Settings, provider_name: str, outbox: Path) -> Provider[Any]:
        """What the send delivers through (``outbox``: where a dry run writes, when not told)."""
        return registry.open_provider(settings, provider_name)

    def finish(self, report: SendReport, provider: Provider[Any], outbox: Path) -> None:
        """After delivery: a dry run's samples and report.json."""


@dataclass(frozen=True)
class LiveSend(SendMode):
    """The list, delivered and recorded."""


@dataclass(frozen=True)
class TestSend(SendMode):
    """Only these addresses, delivered, recorded nowhere (a scratch journal)."""

    to: tuple[str, ...] = ()
    prefix: str | None = None  # the subject's prefix; None: TEST_SUBJECT_PREFIX, "": none

    kind: ClassVar[str] = "send"
    option: ClassVar[str] = "--test-to"
    records: ClassVar[bool] = False

    @property
    def addresses(self) -> tuple[str, ...]:
        return self.to

    @property
    def subject_prefix(self) -> str:
        return TEST_SUBJECT_PREFIX if self.prefix is None else self.prefix

    def open_journal(self, settings: Settings, issue: Issue, issue_id: str, list_name: str,
                     database: jn.JournalDB | None) -> jn.Journal:
        return jn.Journal.scratch_copy(None, issue_id, list_name)


@dataclass(frozen=True)
class DryRun(SendMode):
    """Everything but the delivery: samples and report.json; ``of`` a test send, or of a live send's list."""

    samples: int = 3
    out_dir: Path | None = None  # None: outbox/<issue>/
    of: TestSend | None = None

    kind: ClassVar[str] = "dry run"
    option: ClassVar[str] = "--dry-run"
    records: ClassVar[bool] = False
    delivers: ClassVar[bool] = False

    @property
    def addresses(self) -> tuple[str, ...]:
        return self.of.addresses if self.of else ()

    @property
    def subject_prefix(self) -> str:
        return self.of.subject_prefix if self.of else ""

    def open_journal(self, settings: Settings, issue: Issue, issue_id: str, list_name: str,
                     database: jn.JournalDB | None) -> jn.Journal:
        """An in-memory copy of the configured journal's records: the real one stays untouched."""
        if self.of is not None:
            return self.of.open_journal(settings, issue, issue_id, list_name, database)
        return jn.Journal.scratch_copy(jn.location_of(settings), issue_id, list_name, folder=issue.name)

    def provider(self, settings: Settings, provider_name: str, outbox: Path) -> Provider[Any]:
        from ..providers.dryrun import DryRunProvider

        kind = registry.kind(provider_name)
        return DryRunProvider(self.out_dir or outbox, stands_in_for=provider_name,
                              capabilities=kind.capabilities, encode=kind.encode, samples=self.samples)

    def finish(self, report: SendReport, provider: Provider[Any], outbox: Path) -> None:
        from ..providers.dryrun import DryRunProvider

        if isinstance(provider, DryRunProvider):  # a provider given by a test or a benchmark has no samples
            report.samples = [display_path(path) for path in provider.sample_paths]
        write_report(report, self.out_dir or outbox)


LIVE = LiveSend()


def choose_mode(*, dry_run: bool = False, test_to: tuple[str, ...] = (), test_prefix: str | None = None,
                samples: int = 3, out_dir: Path | None = None) -> SendMode:
    """The mode the command line asks for (``--dry-run``, ``--test-to``, ``--test-prefix``)."""
    if test_prefix is not None and not test_to:
        raise NewsletterError("--test-prefix marks the subject of a test send, and this is not one",
                              hint="add --test-to YOUR@ADDRESS, or leave --test-prefix out")
    test = TestSend(tuple(test_to), test_prefix) if test_to else None
    if dry_run:
        return DryRun(samples, out_dir, test)
    return test or LIVE


def write_report(report: SendReport, out_dir: Path) -> Path:
    """A dry run's report.json: who would get it, who is skipped and why."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / "report.json"
        path.write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    except OSError as err:
        raise NewsletterError(f"cannot write the dry run's report: {err.strerror}", where=out_dir,
                              hint="check the folder is writable, or pass --out") from None
    return path


__all__ = ["LIVE", "TEST_LIST", "TEST_SUBJECT_PREFIX", "DryRun", "LiveSend", "SendMode", "TestSend", "choose_mode",
           "write_report"]
