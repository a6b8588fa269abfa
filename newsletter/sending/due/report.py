"""What one ``send --due`` did and what comes next: each send it made, with its report, and the times ahead."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from ...errors import EXIT_FAILED, EXIT_OK
from ..report import SendReport
from .clock import shown


@dataclass
class DueSend:
    """One send ``send --due`` made (or tried): a scheduled issue, a sequence step's due readers, a resume."""

    what: str  # "issues/2027-03-02-spring to list readers (scheduled for ...)"
    report: SendReport | None = None
    error: str = ""  # why it did not go (or stopped), when it failed
    exit_code: int = EXIT_OK
    note: str = ""  # said beside it: a scheduled issue's delay

    @property
    def ok(self) -> bool:
        return not self.error and (self.report is None or self.report.ok)


@dataclass(frozen=True)
class Upcoming:
    """Something due later: when, and what."""

    at: float
    what: str

    def line(self) -> str:
        return f"{shown(self.at)}  {self.what}"


@dataclass
class DueReport:
    now: dt.datetime
    sends: list[DueSend] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # sequences started, readers stopped, the service's events
    upcoming: list[Upcoming] = field(default_factory=list)
    busy: str = ""  # another send --due held the lock: this one did nothing

    @property
    def exit_code(self) -> int:
        codes = [s.exit_code or (EXIT_FAILED if not s.ok else EXIT_OK) for s in self.sends]
        return max(codes, default=EXIT_OK)


SHOWN = 10  # addresses and upcoming items listed before "... and N more"


def lines(report: DueReport) -> list[tuple[str, bool]]:
    """What ``send --due`` prints, as (line, is it an error): notes, each send, then what comes next."""
    if report.busy:
        return [(f"{report.busy}; it sends what is due. Nothing done.", False)]
    out = [(note, False) for note in report.notes]
    for done in report.sends:
        summary = done.report.summary() if done.report is not None else "nothing sent"
        out.append((f"{done.what}: {summary}", False))
        if done.report is not None:
            problems = [("failed", e, r) for e, r in done.report.failed] + [
                ("unknown", e, r) for e, r in done.report.unknown]
            out += [(f"  {kind}: {email}: {reason}", True) for kind, email, reason in problems[:SHOWN]]
            if len(problems) > SHOWN:
                out.append((f"  ... and {len(problems) - SHOWN} more (newsletter status shows them all)", True))
        if done.error:
            out.append((f"  Error: {done.error}", True))
    if not report.sends:
        out.append((f"Nothing is due at {shown(report.now)}.", False))
    if report.upcoming:
        out.append(("Next:", False))
        out += [(f"  {item.line()}", False) for item in report.upcoming[:SHOWN]]
        if len(report.upcoming) > SHOWN:
            out.append((f"  ... and {len(report.upcoming) - SHOWN} more", False))
    else:
        out.append(("Nothing else is scheduled or waiting.", False))
    return out
