"""Shared fixtures: a private copy of the example newsletter for each test that edits files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import doctor_dns
import pytest

pytest_plugins = ["smtp_fixtures", "sendgrid_fixtures", "postgres_fixtures", "journal_fixtures", "staged_fixtures",
                  "click_fixtures"]

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_ISSUE = "2026-11-25-first-dispatch"
SEED = REPO / "tests" / "data" / "import" / "seed.txt"


def _example_files() -> dict[str, bytes]:
    """The example newsletter's own files, as committed: tests work on copies and must never edit these."""
    paths = [REPO / "newsletter.toml", *(p for folder in ("issues", "subscribers", "templates")
                                         for p in sorted((REPO / folder).rglob("*")) if p.is_file())]
    return {str(p.relative_to(REPO)): p.read_bytes() for p in paths}


@pytest.fixture(scope="session", autouse=True)
def example_left_untouched():
    """Fail the run if any test wrote into the repository's example newsletter (a relative path
    resolved against the repository instead of the test's copy, say)."""
    before = _example_files()
    yield
    after = _example_files()
    changed = sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))
    assert not changed, f"tests changed the repository's example newsletter: {', '.join(changed)}"


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache folder for the whole run (SpamAssassin verdicts), never the user's ~/.cache."""
    folder = tmp_path_factory.mktemp("cache")
    os.environ["XDG_CACHE_HOME"] = str(folder)
    return folder


@pytest.fixture(scope="session", autouse=True)
def passing_dns():
    """The DNS stand-in every test newsletter's doctor asks (tests/doctor_dns.py): a live send checks the
    sending setup as a writer's does, and no test asks a real resolver."""
    server = doctor_dns.start()
    yield server
    doctor_dns.stop()


@pytest.fixture
def newsletter_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of this repository's example newsletter in tmp_path, with the cwd set to it."""
    root = tmp_path / "letter"
    root.mkdir()
    shutil.copy(REPO / "newsletter.toml", root / "newsletter.toml")
    for folder in ("templates", "subscribers", "issues"):
        shutil.copytree(REPO / folder, root / folder)
    doctor_dns.point_doctor_at_standin(root)
    monkeypatch.chdir(root)
    monkeypatch.delenv("SENDGRID_API_KEY", raising=False)
    monkeypatch.delenv("SMTP_PASSWORD", raising=False)
    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", "test-secret-for-unsubscribe-links")
    return root


@pytest.fixture
def own_theme(newsletter_root: Path) -> Path:
    """The shipped default theme copied into the newsletter's ``templates/default/`` (as
    ``newsletter theme copy default`` does), for tests that edit the theme's files."""
    from newsletter.config import load_settings
    from newsletter.themes import copy_theme

    return copy_theme(load_settings(newsletter_root), "default")


@pytest.fixture
def example_issue(newsletter_root: Path) -> Path:
    return newsletter_root / "issues" / EXAMPLE_ISSUE


@pytest.fixture
def settings(newsletter_root: Path):
    from newsletter.config import load_settings

    return load_settings(newsletter_root)


STANDIN_SPAMASSASSIN = """#!/bin/sh
# Stands in for spamassassin -t: a clean verdict, then the message, as the real one prints them.
printf 'X-Spam-Status: No, score=0.0 required=5.0 tests=none autolearn=disabled version=4.0.1\\n'
cat
"""
REAL_PATH = os.environ.get("PATH", "")


@pytest.fixture(scope="session", autouse=True)
def spamassassin_standin_by_default(tmp_path_factory: pytest.TempPathFactory, private_cache: Path) -> Path:
    """Every test that builds, checks or sends scores its message with a stand-in ``spamassassin``
    (first on PATH, also for child processes): a real run takes seconds, and only the spam tests
    (tests/test_checks_spam.py, through ``real_spamassassin``) are about the score."""
    folder = tmp_path_factory.mktemp("standin-bin")
    program = folder / "spamassassin"
    program.write_text(STANDIN_SPAMASSASSIN, encoding="utf-8")
    program.chmod(0o755)
    os.environ["PATH"] = f"{folder}{os.pathsep}{REAL_PATH}"
    return program


@pytest.fixture
def spamassassin_standin(spamassassin_standin_by_default: Path, tmp_path_factory: pytest.TempPathFactory,
                         monkeypatch: pytest.MonkeyPatch) -> Path:
    """The stand-in, with a spam-verdict cache of its own (for tests that look at the cache)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("standin-cache")))
    return spamassassin_standin_by_default


@pytest.fixture
def real_spamassassin(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> str:
    """The installed SpamAssassin, first on PATH again, with a verdict cache no stand-in wrote to."""
    import shutil

    path = shutil.which("spamassassin", path=REAL_PATH)
    if not path:
        pytest.fail("SpamAssassin is not installed; install it to run these tests: apt-get install spamassassin")
    monkeypatch.setenv("PATH", REAL_PATH)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("real-spam-cache")))
    return path
