"""Secrets never appear in what the tool prints (issue 20, finding 8).

- A secret pasted where its variable's NAME belongs (``api_key_env``, ``password_env``,
  ``unsubscribe_secret_env``), made only of letters and digits so that ``newsletter.toml`` accepts it
  as a name, is not printed by the "is not set" error, which says to put the variable's NAME there.
- An SMTP server (aiosmtpd) that refuses the login and quotes the password back, in upper case or
  base64-encoded as AUTH PLAIN and LOGIN carry it, never gets it printed.
"""

from __future__ import annotations

import base64
import re
import traceback
from pathlib import Path

import pytest
from click.testing import CliRunner
from smtp_fixtures import SMTP_PASSWORD, SMTP_USER
from test_send import ISSUE
from test_send_smtp import configure_smtp

from newsletter.cli import main
from newsletter.providers.base import AuthError

# Secrets made of letters and digits only: each is also a valid variable name, so the file accepts them.
PASTED = ["sgkeyqwertyzxcvbnmasdfghjkl", "AB12CD34EF56GH78JK90"]


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def set_value(root: Path, key: str, value: str) -> None:
    path = root / "newsletter.toml"
    text, count = re.subn(rf'(?m)^{key} = "[^"]*"', f'{key} = "{value}"', path.read_text())
    assert count == 1
    path.write_text(text)


def shows(output: str, secret: str) -> bool:
    """Whether ``secret`` can be read from ``output``: in any case, or in a base64 word at any alignment."""
    if secret.lower() in output.lower():
        return True
    for offset in range(3):  # its base64, at each alignment, in any case (an upper-cased word cannot be decoded)
        encoded = base64.b64encode(b"\0" * offset + secret.encode()).decode()
        core = encoded[-(-offset // 3) * 4:(offset + len(secret)) // 3 * 4]
        if core.lower() in output.lower():
            return True
    for word in re.findall(r"[A-Za-z0-9+/]{8,}", output):
        for start in range(4):
            part = word[start:][:len(word[start:]) // 4 * 4]
            if secret.lower().encode() in base64.b64decode(part).lower():
                return True
    return False


@pytest.mark.parametrize("pasted", PASTED)
def test_a_sendgrid_key_pasted_as_api_key_env_is_never_printed(newsletter_root: Path, pasted: str) -> None:
    set_value(newsletter_root, "api_key_env", pasted)
    result = run("send", ISSUE, "--list", "example", "--yes")
    assert result.exit_code == 2, result.output
    assert not shows(result.output, pasted), result.output
    assert "the environment variable sendgrid.api_key_env names is not set" in result.output
    assert "must be the NAME of an environment variable, like SENDGRID_API_KEY" in result.output
    assert 'api_key_env = "SENDGRID_API_KEY"' in result.output and "revoke it" in result.output


@pytest.mark.parametrize("pasted", PASTED)
def test_an_smtp_password_pasted_as_password_env_is_never_printed(newsletter_root: Path, pasted: str) -> None:
    set_value(newsletter_root, "password_env", pasted)
    result = run("send", ISSUE, "--list", "example", "--provider", "smtp", "--yes")
    assert result.exit_code == 2, result.output
    assert not shows(result.output, pasted), result.output
    assert "the environment variable smtp.password_env names is not set" in result.output
    assert 'password_env = "SMTP_PASSWORD"' in result.output


@pytest.mark.parametrize("pasted", PASTED)
def test_an_unsubscribe_secret_pasted_as_its_variable_is_never_printed(newsletter_root: Path, pasted: str,
                                                                       sendgrid_api_key: str) -> None:
    set_value(newsletter_root, "unsubscribe_secret_env", pasted)
    result = run("send", ISSUE, "--list", "example", "--yes")
    assert result.exit_code == 2, result.output
    assert not shows(result.output, pasted), result.output
    assert "the environment variable newsletter.unsubscribe_secret_env names is not set" in result.output


def test_a_variable_name_is_still_named(newsletter_root: Path) -> None:
    result = run("send", ISSUE, "--list", "example", "--yes")
    assert "environment variable SENDGRID_API_KEY is not set" in result.output, result.output


ECHOES = {
    "the password in upper case": lambda login, password: f"535 5.7.8 wrong password {password.upper()}",
    "AUTH PLAIN's base64, upper-cased": lambda login, password: (
        "535 5.7.8 rejected " + base64.b64encode(f"\0{login}\0{password}".encode()).decode().upper()),
    "AUTH PLAIN's base64 with an authorization id": lambda login, password: (
        "535 5.7.8 rejected " + base64.b64encode(f"o\0{login}\0{password}".encode()).decode()),
    "AUTH LOGIN's base64, lower-cased": lambda login, password: (
        "535 5.7.8 rejected " + base64.b64encode(password.encode()).decode().lower()),
}


@pytest.mark.parametrize("echo", list(ECHOES), ids=list(ECHOES))
def test_an_smtp_server_echoing_the_password_never_gets_it_printed(newsletter_root: Path, smtp_tls_server,
                                                                   monkeypatch: pytest.MonkeyPatch, echo: str) -> None:
    configure_smtp(newsletter_root, smtp_tls_server, monkeypatch)
    smtp_tls_server.handler.login_refusal = ECHOES[echo]
    result = run("send", ISSUE, "--list", "example", "--provider", "smtp", "--yes")
    assert result.exit_code != 0 and "535" in result.output, result.output
    assert "[redacted]" in result.output, result.output  # the server did quote it
    assert not shows(result.output, SMTP_PASSWORD), result.output
    assert not smtp_tls_server.handler.received

    provider = smtp_tls_server.provider()
    with pytest.raises(AuthError) as refused:
        provider.open()
    everything = str(refused.value) + repr(refused.value) + refused.value.body + \
        "".join(traceback.format_exception(refused.value))
    assert SMTP_USER in str(refused.value) and not shows(everything, SMTP_PASSWORD), everything
