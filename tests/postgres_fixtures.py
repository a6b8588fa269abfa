"""A real PostgreSQL server for the event store tests.

``postgres_url`` (session): ``NEWSLETTER_TEST_DATABASE_URL`` when set (CI or
a developer's own server); otherwise a throwaway cluster made with Debian's
``initdb`` in a temporary folder and started on a free loopback port, run as
the ``postgres`` user when the tests run as root (PostgreSQL refuses root).
Without PostgreSQL the tests fail with what to install; they never skip.
Each test that wants a clean database asks ``fresh_postgres_url``.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

HOST = "127.0.0.1"


def _binaries() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(found[-1]) if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _as_owner(command: list[str], user: str | None) -> list[str]:
    return ["runuser", "-u", user, "--", *command] if user else command


class NoPostgres(Exception):
    """PostgreSQL is not installed or would not start; the message says what to do."""


@contextmanager
def throwaway_cluster(*, fsync: bool = True) -> Iterator[str]:
    """A new PostgreSQL cluster in a temporary folder on a free loopback port; its URL, removed after.

    ``fsync=False`` (tests) trades durability against power loss, which no test needs, for speed.
    """
    bin_dir = _binaries()
    if bin_dir is None:
        raise NoPostgres("PostgreSQL is not installed: apt-get install postgresql "
                         "(or set NEWSLETTER_TEST_DATABASE_URL to a server the tests may use)")
    user = None
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        try:
            user = pwd.getpwnam("postgres").pw_name
        except KeyError:
            raise NoPostgres("running as root, PostgreSQL is started as the 'postgres' user, which does not "
                             "exist; apt-get install postgresql creates it") from None
    folder = tempfile.mkdtemp(prefix="newsletter-pg-")
    data = os.path.join(folder, "data")
    if user:
        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    port = _free_port()
    run = {"check": True, "capture_output": True, "text": True, "timeout": 120}
    options = f"-h {HOST} -p {port} -k {folder}" + ("" if fsync else " -F")
    try:
        subprocess.run(_as_owner([f"{bin_dir}/initdb", "-D", data, "-U", "newsletter", "--auth=trust",
                                  "--no-sync", "-E", "UTF8", "--locale=C"], user), **run)
        subprocess.run(_as_owner([f"{bin_dir}/pg_ctl", "-D", data, "-l", os.path.join(folder, "log"), "-w",
                                  "-o", options, "start"], user), **run)
    except subprocess.CalledProcessError as err:
        shutil.rmtree(folder, ignore_errors=True)
        raise NoPostgres(f"could not start a throwaway PostgreSQL: {err.stderr or err.stdout}") from None
    try:
        yield f"postgresql://newsletter@{HOST}:{port}/postgres"
    finally:
        subprocess.run(_as_owner([f"{bin_dir}/pg_ctl", "-D", data, "-m", "immediate", "stop"], user),
                       capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    url = os.environ.get("NEWSLETTER_TEST_DATABASE_URL")
    if url:
        yield url
        return
    try:
        with throwaway_cluster(fsync=False) as started:
            yield started
    except NoPostgres as err:
        pytest.fail(f"the PostgreSQL event store tests need PostgreSQL: {err}", pytrace=False)


@pytest.fixture
def fresh_postgres_url(postgres_url: str) -> str:
    """The test server with a new, empty schema first on the search path, so each test starts with no tables.

    (A schema takes milliseconds where CREATE DATABASE takes about a second.)
    """
    import psycopg

    name = f"nl_{secrets.token_hex(6)}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    separator = "&" if "?" in postgres_url else "?"
    return f"{postgres_url}{separator}options=-csearch_path%3D{name}"
