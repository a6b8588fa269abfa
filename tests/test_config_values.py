"""Each value in newsletter.toml is read as the type its setting is declared with: a value of the wrong
kind, or a number no setting can mean (``inf``, ``nan``, a negative timeout), is an error that names the
file, the ``table.key`` and the line to write instead, exit 2, before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.config import load_settings
from newsletter.errors import NewsletterError


def _with(root: Path, section: str, line: str) -> Path:
    """newsletter.toml with ``line`` added to a ``[section]`` of its own (TOML allows a table once, so the
    example's table of the same name, if any, loses its keys of the same name)."""
    path = root / "newsletter.toml"
    key = line.split("=")[0].strip()
    text = path.read_text(encoding="utf-8")
    header = f"[{section}]\n"
    if header in text:
        before, _, after = text.partition(header)
        kept = [row for row in after.split("\n") if row.split("=")[0].strip() != key]
        text = before + header + line + "\n" + "\n".join(kept)
    else:
        text += f"\n{header}{line}\n"
    path.write_text(text, encoding="utf-8")
    return path


def _refused(root: Path) -> NewsletterError:
    with pytest.raises(NewsletterError) as caught:
        load_settings(root)
    assert caught.value.exit_code == 2
    return caught.value


@pytest.mark.parametrize(("section", "line", "expected"), [
    ("sendgrid", "timeout = inf", "'sendgrid.timeout' must be a finite number, not inf"),
    ("smtp", "timeout = +inf", "'smtp.timeout' must be a finite number, not inf"),
    ("checks", "link_timeout = nan", "'checks.link_timeout' must be a finite number, not nan"),
    ("checks", "spam_threshold = nan", "'checks.spam_threshold' must be a finite number, not nan"),
    ("serve", "confirm_hours = nan", "'serve.confirm_hours' must be a finite number, not nan"),
    ("send", "max_complaint_rate = -inf", "'send.max_complaint_rate' must be a finite number, not -inf"),
    ("doctor", "dns_timeout = inf", "'doctor.dns_timeout' must be a finite number, not inf"),
])
def test_a_number_that_is_not_finite_is_refused(newsletter_root: Path, section: str, line: str,
                                                expected: str) -> None:
    """``timeout = inf`` was accepted and a send waited for ever on a silent server; ``nan`` passed every
    range check, since it compares false with everything."""
    path = _with(newsletter_root, section, line)

    error = _refused(newsletter_root)

    key = line.split("=")[0].strip()
    assert error.where is not None and Path(error.where).resolve() == path.resolve()
    assert expected in str(error)
    assert f"under [{section}], or remove the line for the default" in str(error.hint)
    assert str(error.hint).startswith(f"write {key} = ")


@pytest.mark.parametrize(("section", "line", "expected"), [
    ("doctor", "dns_timeout = -1", "'doctor.dns_timeout' must be greater than 0 (seconds to wait for a DNS answer)"),
    ("doctor", "probe_timeout = 0", "'doctor.probe_timeout' must be greater than 0"),
    ("serve", "confirm_hours = -48", "'serve.confirm_hours' must be greater than 0"),
    ("serve", "port = 0", "'serve.port' must be between 1 and 65535"),
])
def test_a_negative_or_zero_wait_is_refused_with_its_line(newsletter_root: Path, section: str, line: str,
                                                          expected: str) -> None:
    """These were accepted when the file was read; only the serve settings were checked, without a line."""
    path = _with(newsletter_root, section, line)

    error = _refused(newsletter_root)

    lines = path.read_text(encoding="utf-8").split("\n")
    assert error.line is not None and lines[error.line - 1] == line
    assert expected in str(error)
    assert "or remove the line for the default" in str(error.hint)


@pytest.mark.parametrize(("section", "line", "message", "fix"), [
    ("send", 'batch_size = "10"', "'send.batch_size' must be a whole number, not '10'", "write batch_size = 1000"),
    ("send", "batch_size = 10.5", "'send.batch_size' must be a whole number, not 10.5", "write batch_size = 1000"),
    ("send", "warmup = 1", "'send.warmup' must be true or false, not 1", "write warmup = false"),
    ("sendgrid", "timeout = true", "'sendgrid.timeout' must be a number, not True", "write timeout = 30.0"),
    ("sendgrid", 'unsubscribe_group = "42"', "'sendgrid.unsubscribe_group' must be a whole number, not '42'",
     "write unsubscribe_group = 1"),
    ("send", 'stages = "1%, 100%"', "'send.stages' must be a list of strings", 'write stages = ["..."]'),
    ("smtp", "host = 127", "'smtp.host' must be a string in quotes, not 127", 'write host = "localhost"'),
    ("newsletter", "language = 1", "'newsletter.language' must be a string in quotes, not 1",
     'write language = "en"'),
])
def test_a_value_of_the_wrong_kind_names_the_setting_and_the_fix(newsletter_root: Path, section: str, line: str,
                                                                  message: str, fix: str) -> None:
    _with(newsletter_root, section, line)

    error = _refused(newsletter_root)

    assert f"newsletter.toml: {message}" in str(error)
    assert str(error.hint).startswith(f"{fix} under [{section}]")


def test_an_env_setting_of_the_wrong_kind_shows_the_default_name_never_the_value(newsletter_root: Path) -> None:
    _with(newsletter_root, "smtp", "password_env = 31415926535897")

    error = _refused(newsletter_root)

    assert "'smtp.password_env' must be a string in quotes" in str(error)
    assert 'write password_env = "SMTP_PASSWORD" under [smtp]' in str(error)
    assert "31415926535897" not in str(error)

