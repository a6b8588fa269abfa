"""Every cache (SpamAssassin verdicts, the doctor's DNS answers, compiled templates) lives in one folder,
the one the system keeps a user's caches in, and never in the newsletter's own folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from newsletter.cli import main

ISSUE = "issues/2026-11-25-first-dispatch"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    monkeypatch.setenv("HOME", str(folder))
    return folder


def test_a_build_keeps_its_caches_in_the_users_cache_folder(newsletter_root: Path, home: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    cache = home / "elsewhere"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))

    result = CliRunner().invoke(main, ["build", ISSUE])

    assert result.exit_code == 0, result.output
    assert any((cache / "newsletter" / "spam").glob("*.json"))  # the stand-in SpamAssassin's verdict
    assert any((cache / "newsletter" / "jinja").iterdir())  # the theme's compiled templates


def test_a_relative_xdg_cache_home_is_ignored_not_written_into_the_newsletter(
        newsletter_root: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The XDG specification: a relative path in XDG_CACHE_HOME is invalid and ignored. Taken as it was,
    it put cache files inside the newsletter's folder, where git would pick them up."""
    monkeypatch.setenv("XDG_CACHE_HOME", "cache")

    result = CliRunner().invoke(main, ["build", ISSUE])

    assert result.exit_code == 0, result.output
    assert not (newsletter_root / "cache").exists()
    assert any((home / ".cache" / "newsletter" / "spam").glob("*.json"))
    assert any((home / ".cache" / "newsletter" / "jinja").iterdir())


def test_the_doctor_keeps_its_answers_beside_the_other_caches(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from newsletter.doctor.cache import cache_dir

    monkeypatch.delenv("XDG_CACHE_HOME")

    assert cache_dir() == home / ".cache" / "newsletter" / "doctor"
