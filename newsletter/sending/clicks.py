"""Click counting for a send: the issue's links pointed at the click route once, and each recipient's value.

With ``[stats] clicks = true``, a send (and its dry run) rewrites the built issue's links
once (``compose/click_links.py``) and hands the send loop a ``ReaderParts``, which makes
every recipient's reader part as a merge value a batch at a time. A test send
(``--test-to``) is left as it is: the writer's own clicks are not the readers'.
"""

from __future__ import annotations

import datetime as dt

from ..compose.build import BuiltIssue
from ..compose.click_links import track_clicks
from ..compose.click_tokens import ClickKeys, ReaderParts
from ..compose.unsubscribe import SAMPLE_SECRET, read_secret
from ..config import Settings
from .modes import SendMode


def prepare_clicks(settings: Settings, built: BuiltIssue, issue_id: str, mode: SendMode, *,
                   send_at: dt.datetime | None) -> tuple[BuiltIssue, ReaderParts | None]:
    """(the issue as it goes out, the reader parts of its recipients); unchanged and None when clicks are off.
    A dry run without the secret signs with the sample secret, as its unsubscribe links do."""
    if not settings.stats.clicks or mode.addresses:  # a test send's clicks are the writer's
        return built, None
    secret = read_secret(settings, required=mode.delivers) or SAMPLE_SECRET
    keys = ClickKeys(secret)
    tracked, _ = track_clicks(settings, built, issue_id, keys, built.issue.untracked_links)
    not_before = send_at.timestamp() if send_at is not None else 0.0
    return tracked, ReaderParts(keys, issue_id, not_before=not_before)
