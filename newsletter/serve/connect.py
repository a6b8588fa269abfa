"""Open the event store ``[serve]`` configures: the SQLite file, or PostgreSQL when database_url is set."""

from __future__ import annotations

import os

from ..config import Settings
from .store import EventStore

# How long one store call of the running service may wait (for a connection, or for SQLite's write lock)
# before the reader is told "try again" with a 503: a store that is down must not hold every request.
SERVICE_WAIT_SECONDS = 0.75
# The commands (sync, a send's departures) are patient: nobody is waiting on a page.
COMMAND_WAIT_SECONDS = 30.0


def store_is_configured(settings: Settings) -> bool:
    """Whether there is a store to read: PostgreSQL is named, or the SQLite file exists already."""
    return bool(settings.serve.database_url) or (settings.root / settings.serve.database).is_file()


def open_store(settings: Settings, *, create: bool = True, wait: float = COMMAND_WAIT_SECONDS) -> EventStore:
    """The configured store, its schema created on first open; a NewsletterError if it cannot be reached.

    ``wait`` bounds each later call's wait for a connection or a lock (``SERVICE_WAIT_SECONDS`` for the service).
    """
    serve = settings.serve
    if serve.database_url:
        from .store_postgres import PostgresStore

        return PostgresStore(serve.database_url, password=os.environ.get(serve.database_password_env) or None,
                             wait=wait)
    from .store_sqlite import SqliteStore

    return SqliteStore(settings.root / serve.database, create=create, wait=wait)
