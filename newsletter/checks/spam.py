"""Spam score: run SpamAssassin locally on the message a subscriber would receive.

``spamassassin -t -L`` scores the complete sample message (headers, text and
HTML parts) with local rules only: no DNS blocklists, no network, no Bayes
learning, and a throw-away home folder so nothing is written to the user's.
A score at or above ``checks.spam_threshold`` (default 5.0, SpamAssassin's
own) is an error listing the rules that fired; below it, the score and rules
are a note. When SpamAssassin is not installed the check says so and how to
install it, as a warning, because the issue then goes out unscored.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..cache_folder import cache_folder
from ..errors import display_path
from .framework import ERROR, INFO, WARNING, CheckContext, Finding

SPAMASSASSIN = "spamassassin"
TIMEOUT_SECONDS = 120.0
INSTALL_HINT = ("install SpamAssassin: apt-get install spamassassin (Debian, Ubuntu), dnf install spamassassin "
                "(Fedora), brew install spamassassin (macOS)")
_STATUS = re.compile(r"score=(-?[\d.]+)\s+required=(-?[\d.]+)(?:\s+tests=(\S*))?", re.IGNORECASE)
_REPORT_LINE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s+([A-Z0-9_]+)\s+(.*)$")


class SpamAssassinMissing(Exception):
    """SpamAssassin is not installed (not on PATH)."""


class SpamAssassinFailed(Exception):
    """SpamAssassin ran but gave no score; the message says why."""


@dataclass(frozen=True)
class Rule:
    name: str
    points: float
    description: str = ""

    def __str__(self) -> str:
        text = f"{self.name} ({self.points:+g})"
        return f"{text}: {self.description}" if self.description else text


@dataclass(frozen=True)
class SpamReport:
    score: float
    required: float
    rules: tuple[Rule, ...] = field(default_factory=tuple)

    def ranked_rules(self) -> list[Rule]:
        """Every rule that fired, those adding the most points first."""
        return sorted(self.rules, key=lambda r: -r.points)


def parse_report(output: bytes) -> SpamReport:
    """Read the score, threshold and rules from ``spamassassin -t`` output (the message with its report)."""
    message = email.message_from_bytes(output, policy=email.policy.compat32)
    status = re.sub(r",\s+", ",", " ".join(str(message.get("X-Spam-Status", "")).split()))  # unfold the list
    match = _STATUS.search(status)
    if not match:
        raise SpamAssassinFailed("its output has no X-Spam-Status header with a score")
    names = [n for n in (match[3] or "").split(",") if n and n.lower() != "none"]
    points: dict[str, float] = {}
    descriptions: dict[str, str] = {}
    text = output.decode("utf-8", "replace")
    table = text.split("pts rule name", 1)[1] if "pts rule name" in text else ""
    last = ""
    for line in table.splitlines()[2:]:  # skip the header rule ("---- ----")
        row = _REPORT_LINE.match(line)
        if row:
            last = row[2]
            points[last] = float(row[1]) + 0.0  # + 0.0 turns SpamAssassin's -0.0 into 0
            descriptions[last] = row[3].strip()
        elif line.startswith(" ") and line.strip() and last:  # a description continued on the next line
            descriptions[last] += " " + line.strip()
        elif not line.strip():
            break
    rules = tuple(Rule(n, points.get(n, 0.0), descriptions.get(n, "")) for n in names)
    return SpamReport(float(match[1]) + 0.0, float(match[2]), rules)


def score_message(message: bytes, executable: str | None = None, timeout: float = TIMEOUT_SECONDS) -> SpamReport:
    """Score ``message`` (RFC 5322 bytes) with SpamAssassin, locally and without side effects."""
    program = executable or shutil.which(SPAMASSASSIN)
    if not program:
        raise SpamAssassinMissing(SPAMASSASSIN)
    with tempfile.TemporaryDirectory(prefix="newsletter-spam-") as home:
        prefs = Path(home) / "user_prefs"
        prefs.write_text("", encoding="utf-8")
        command = [program, "-t", "-L", "-p", str(prefs), "--cf=use_bayes 0", "--cf=bayes_auto_learn 0"]
        env = {**os.environ, "HOME": home}
        try:
            done = subprocess.run(command, input=message, capture_output=True, timeout=timeout, env=env,
                                  check=False)
        except subprocess.TimeoutExpired:
            raise SpamAssassinFailed(f"it did not finish within {timeout:g} s") from None
        except OSError as err:
            raise SpamAssassinFailed(f"it could not be started: {err.strerror}") from None
    if done.returncode != 0:
        detail = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise SpamAssassinFailed(f"it exited with status {done.returncode}"
                                 + (f": {detail[-1]}" if detail else ""))
    return parse_report(done.stdout)


_VOLATILE_HEADER = re.compile(rb"^(Date|Message-ID):[^\r\n]*\r?\n", re.IGNORECASE | re.MULTILINE)


_BOUNDARY = re.compile(rb'boundary="?([^";\r\n]+)"?', re.IGNORECASE)


def _stable_content(message: bytes) -> bytes:
    """The message without what changes on every build but never the verdict: Date, Message-ID, MIME boundaries."""
    stable = _VOLATILE_HEADER.sub(b"", message)
    for boundary in set(_BOUNDARY.findall(stable)):
        stable = stable.replace(boundary, b"BOUNDARY")
    return stable


def score_message_cached(message: bytes) -> SpamReport:
    """score_message, remembered per message content and SpamAssassin installation.

    SpamAssassin takes seconds to start, and check, build, preview and send all score
    the same issue again and again. Date and Message-ID change on every build without
    changing the verdict, so they are left out of the key; the rules' files are in it.
    """
    program = shutil.which(SPAMASSASSIN)
    if not program:
        raise SpamAssassinMissing(SPAMASSASSIN)
    rules = [Path(program), Path("/var/lib/spamassassin"), Path("/usr/share/spamassassin"), Path("/etc/spamassassin")]
    stamp = ";".join(f"{p}:{p.stat().st_mtime_ns}" for p in rules if p.exists())
    digest = hashlib.sha256(stamp.encode() + b"\0" + _stable_content(message)).hexdigest()
    path = cache_folder("spam") / f"{digest}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return SpamReport(data["score"], data["required"], tuple(Rule(*r) for r in data["rules"]))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    report = score_message(message, program)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps({"score": report.score, "required": report.required,
                                         "rules": [[r.name, r.points, r.description] for r in report.rules]}),
                             encoding="utf-8")
        os.replace(temporary, path)
    except OSError:
        pass  # a read-only home only costs speed
    return report


def check_spam_score(ctx: CheckContext) -> Iterator[Finding]:
    where = display_path(ctx.issue_file)
    threshold = ctx.settings.checks.spam_threshold
    try:
        report = score_message_cached(ctx.message_bytes)
    except SpamAssassinMissing:
        yield Finding(WARNING, "spam-not-checked", "SpamAssassin is not installed, so the spam score was not "
                      "checked", where, fix=INSTALL_HINT)
        return
    except SpamAssassinFailed as err:
        yield Finding(WARNING, "spam-not-checked", f"SpamAssassin could not score the message: {err}", where,
                      fix="run 'spamassassin -t -L < build/<issue>/message.eml' to see why")
        return
    listed = "; ".join(str(r) for r in report.ranked_rules()) or "none"
    if report.score >= threshold:
        yield Finding(ERROR, "spam-score", f"SpamAssassin scores the message {report.score:g} (the limit is "
                      f"{threshold:g}); rules that fired: {listed}", where,
                      fix="change what those rules point at (wording, links, images, headers) and check again")
    else:
        yield Finding(INFO, "spam-score", f"SpamAssassin score {report.score:g} (limit {threshold:g}); rules that "
                      f"fired: {listed}", where)


CHECKS = [check_spam_score]
