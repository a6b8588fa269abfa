"""What the journal's modules share beneath the connection: its error, its ids, and what a statement runs on.

Kept apart from ``database.py`` so that ``schema.py`` (which ``database.py`` uses to create the tables) and
the connection do not import each other.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from ...errors import NewsletterError


class JournalError(NewsletterError):
    """The journal could not be read or written: nothing more is sent until it can be."""


class Cursor(Protocol):
    """What a statement gives back, on either database."""

    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Described(Protocol):
    def describe(self) -> str: ...


class Statements(Protocol):
    """What creating the schema needs of a connection (``database.JournalDB`` is one)."""

    @property
    def dialect(self) -> str: ...

    @property
    def location(self) -> Described: ...

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor: ...

    def transaction(self, durable: bool = True) -> AbstractContextManager[Any]: ...


def new_journal_id() -> str:
    return uuid.uuid4().hex
