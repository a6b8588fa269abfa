"""The send journal's two homes for tests: a SQLite file, and a schema of its own in the test PostgreSQL.

``journal_location`` runs a test once on each; ``new_journal_location`` makes more journals of the same
kind in one test (a copy's target, a second sender's journal).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from newsletter.sending.journal import Location

PASSWORD_ENV = "NEWSLETTER_DATABASE_PASSWORD"


@pytest.fixture(params=["sqlite", "postgresql"])
def journal_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def new_journal_location(journal_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[], Location]:
    """Each call: a new, empty journal's location of this test's kind."""
    made = 0

    def make() -> Location:
        nonlocal made
        made += 1
        if journal_kind == "sqlite":
            return Location("sqlite", path=tmp_path / f"journal-{made}.sqlite")
        url = request.getfixturevalue("postgres_url")
        return Location("postgresql", url=fresh_schema_url(url), password_env=PASSWORD_ENV)

    return make


@pytest.fixture
def journal_location(new_journal_location: Callable[[], Location]) -> Location:
    return new_journal_location()


def fresh_schema_url(postgres_url: str) -> str:
    """The test server's URL with a new, empty schema first on its search path (the journal keeps its tables
    there), so each journal starts with none."""
    import secrets

    import psycopg

    name = f"nl_{secrets.token_hex(6)}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    separator = "&" if "?" in postgres_url else "?"
    return f"{postgres_url}{separator}options=-csearch_path%3D{name}"
