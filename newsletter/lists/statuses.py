"""The statuses a row of a list can have, apart from everything that reads lists: the CLI offers them
as ``--status`` choices without loading the list machinery (and email-validator) at start-up."""

from __future__ import annotations

STATUSES = ("subscribed", "unsubscribed", "bounced", "complained")
SUPPRESSED = ("unsubscribed", "bounced", "complained")  # statuses that are never mailed
