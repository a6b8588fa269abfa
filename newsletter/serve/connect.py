"""Open the event store ``[serve]`` configures: the SQLite file, or PostgreSQL when database_url is set."""

from __future__ import annotations

import os

from ..config import Settings
from .store import EventStore


def store_is_configured(settings: Settings) -> bool:
    """Whether there is a store to read: PostgreSQL is named, or the SQLite file exists already."""
    return bool(settings.serve.database_url) or (settings.root / settings.serve.database).is_file()


def open_store(settings: Settings, *, create: bool = True) -> EventStore:
    """The configured store, its schema created on first open; a NewsletterError if it cannot be reached."""
    serve = settings.serve
    if serve.database_url:
        from .store_postgres import PostgresStore

        return PostgresStore(serve.database_url, password=os.environ.get(serve.database_password_env) or None)
    from .store_sqlite import SqliteStore

    return SqliteStore(settings.root / serve.database, create=create)
