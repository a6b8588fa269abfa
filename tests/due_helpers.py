"""Helpers for the tests of `send --due`: a newsletter sending over SMTP to aiosmtpd, sequences as files,
and the CLI run in-process (CliRunner) or as a real process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner, Result

from newsletter.cli import main

DAY = 86_400


def send_over_smtp(root: Path, server) -> None:
    """newsletter.toml: the provider is SMTP, to ``server`` (plain, no login: a local relay)."""
    config = root / "newsletter.toml"
    text = re.sub(r"(?ms)^\[smtp\].*?(?=^\[|\Z)", "", config.read_text())
    text = text.replace('provider = "sendgrid"', 'provider = "smtp"')
    text += (f'\n[smtp]\nhost = "{server.host}"\nport = {server.port}\nsecurity = "none"\nusername = ""\n'
             'timeout = 5\n')
    config.write_text(text)


def write_readers(root: Path, name: str, emails: list[str], extra: str = "") -> None:
    rows = [f"{email},Reader {i},subscribed,{extra}" for i, email in enumerate(emails)]
    (root / "subscribers" / f"{name}.csv").write_text("email,name,status,tags\n" + "\n".join(rows) + "\n")


def make_sequence(root: Path, name: str, list_name: str, steps: list[tuple[str, str]], *, trigger: str = "added",
                  stop: str = "[]", timezone: str = "UTC") -> Path:
    """sequences/NAME/ with sequence.toml and one step per (subject, delay), in order."""
    folder = root / "sequences" / name
    folder.mkdir(parents=True)
    (folder / "sequence.toml").write_text(f'list = "{list_name}"\ntrigger = "{trigger}"\nstop = {stop}\n'
                                          f'timezone = "{timezone}"\n')
    for number, (subject, delay) in enumerate(steps, 1):
        step = folder / f"{number:02d}-step"
        step.mkdir()
        (step / "issue.md").write_text(f'---\nsubject: "{subject}"\npreheader: "{subject}"\ndelay: "{delay}"\n'
                                       f"---\nHello {{{{ subscriber.name }}}}, this is {subject}.\n")
    return folder


def cli(root: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--root", str(root), *args], catch_exceptions=False)


def due(root: Path, now: float | None = None, *args: str) -> Result:
    """`newsletter send --due` in this process, at ``now`` (Unix seconds) when given."""
    import datetime as dt

    when = ["--now", dt.datetime.fromtimestamp(now, dt.UTC).isoformat()] if now is not None else []
    return cli(root, "send", "--due", *when, *args)


def due_process(root: Path, now: float | None = None) -> subprocess.Popen[bytes]:
    """`newsletter send --due` as a process of its own."""
    import datetime as dt

    when = ["--now", dt.datetime.fromtimestamp(now, dt.UTC).isoformat()] if now is not None else []
    return subprocess.Popen([sys.executable, "-m", "newsletter.cli", "--root", str(root), "send", "--due", *when],
                            env={**os.environ}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def subjects_of(handler, address: str) -> list[str]:
    """The subjects of every message that reached ``address``, in order of arrival."""
    return [str(r.message()["Subject"]) for r in list(handler.received) if address in r.rcpt_tos]
