"""The send journal: one row per (issue, list, recipient), so each is mailed once.

In a SQLite file by default, or in PostgreSQL (``[send] journal_url``) shared by
several senders and CI. See ``journal.py`` for the model and ``database.py`` for
the two homes.
"""

from ...providers.base import Status
from . import audiences
from .basics import JournalError
from .core import Row
from .database import JournalDB, open_database, send_lock_name, sender_lock_name
from .flight import SEQUENTIAL
from .journal import Journal
from .leased import PACING_LOCK
from .location import Location, describe_url, location_from_text, location_of
from .reading import NOT_SELECTED, NOT_SELECTED_REASON, STATUSES, carried_ids, lists_of, summarize
from .runs import Audience, RunRecord

PENDING, IN_FLIGHT, SENT, FAILED, UNKNOWN = (Status.PENDING, Status.IN_FLIGHT, Status.SENT, Status.FAILED,
                                             Status.UNKNOWN)

__all__ = ["FAILED", "IN_FLIGHT", "NOT_SELECTED", "NOT_SELECTED_REASON", "PACING_LOCK", "PENDING", "SENT", "SEQUENTIAL",
           "STATUSES",
           "UNKNOWN", "Audience", "Journal", "JournalDB", "JournalError", "Location", "Row", "RunRecord", "Status",
           "audiences", "carried_ids", "describe_url", "lists_of", "location_from_text", "location_of",
           "open_database", "send_lock_name", "sender_lock_name", "summarize"]
