"""``send --due`` and what it sends: scheduled issues, sequences (welcome series kept as folders) and
digests of a feed, each exactly once per reader, through the same engine as a manual send.

- ``clock.py``: the one place that asks what time it is (``--now`` gives another);
- ``schedules.py``: ``send --at`` / ``send_at:``, held in the journal until due;
- ``sequences.py`` (the files), ``delays.py`` (``delay:``), ``triggers.py`` (what the list says),
  ``enrolments.py`` (who is where, in the journal), ``steps.py`` (a sequence's turn), ``status.py``;
- ``digests.py``: ``newsletter digest FEED``: a draft issue of the items not yet sent to a list;
- ``runner.py``: ``run_due``, with ``lock.py`` (one at a time) and ``report.py`` (what it did and what is next).
"""

from .clock import Clock, fixed_clock, parse_moment, system_clock
from .report import DueReport, lines
from .runner import run_due
from .schedules import Schedule, Scheduled, cancel, listing, schedule_issue

__all__ = ["Clock", "DueReport", "Schedule", "Scheduled", "cancel", "fixed_clock", "lines",
           "listing", "parse_moment", "run_due", "schedule_issue", "system_clock"]
