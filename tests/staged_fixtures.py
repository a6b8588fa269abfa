"""A staged send's set-up, shared by the staged-send tests: 200 readers in ``subscribers/readers.csv``, the
stages they fall in (worked out as the send does), ``newsletter send`` as a real process, and canned bounces
put into the SendGrid stand-in as another process would (``POST /_standin/suppressions``).

A pytest plugin (conftest.py's ``pytest_plugins``), for its ``staged`` fixture.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from newsletter_helpers import ISSUE

from newsletter.compose.content import load_issue, write_issue_id
from newsletter.sending.stage_rules import assign_stages, parse_stages

READERS = [f"reader{i}@example.com" for i in range(200)]
STAGES = "1%,10%,100%"


@pytest.fixture
def staged(sendgrid_newsletter: Path) -> Path:
    rows = [f"{email},Reader {i},subscribed" for i, email in enumerate(READERS)]
    (sendgrid_newsletter / "subscribers" / "readers.csv").write_text("email,name,status\n" + "\n".join(rows) + "\n")
    write_issue_id(sendgrid_newsletter / ISSUE, "staged-issue")  # kept if the issue has an id already
    return sendgrid_newsletter


def stage_members(root: Path) -> dict[int, set[str]]:
    """Who is in which stage, worked out here from the issue's id as the send does."""
    issue_id = load_issue(root / ISSUE).id
    assert issue_id
    assigned = assign_stages(issue_id, READERS, parse_stages(STAGES))
    return {n: {a for a, s in assigned.items() if s == n} for n in (1, 2, 3)}


def send(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "newsletter.cli", "send", ISSUE, "--list", "readers", "--yes",
                           *args], cwd=root, env={**os.environ}, capture_output=True, text=True, timeout=120)


def start_send(root: Path, *args: str, **streams) -> subprocess.Popen:
    """``send`` as a background process (to bounce, stop or kill it while it waits between stages)."""
    return subprocess.Popen([sys.executable, "-m", "newsletter.cli", "send", ISSUE, "--list", "readers", "--yes",
                             *args], cwd=root, env={**os.environ}, text=True,
                            **(streams or {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}))


def halt_at_stage_one(root: Path, standin, members: dict[int, set[str]]) -> None:
    """A staged send whose first stage has one hard bounce in two (it halts there, exit 1)."""
    process = start_send(root, "--stages", STAGES, "--stage-wait", "0.05")
    standin.wait_until(lambda counts: len(counts) >= 2, 60, give_up=lambda: process.poll() is not None)
    canned_bounces(standin, sorted(members[1])[:1], created=int(time.time()))  # comes back during the wait
    out, err = process.communicate(timeout=60)
    assert process.returncode == 1, out + err
    assert "Halted at stage 1: hard bounces 50.00%" in err
    assert f"newsletter send {ISSUE} --list readers --resume" in err


def canned_bounces(standin, emails, created: int) -> None:
    request = urllib.request.Request(f"{standin.url}/_standin/suppressions", method="POST",
                                     data=json.dumps({"kind": "bounces", "emails": sorted(emails),
                                                      "created": created}).encode())
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def order_of_delivery(standin) -> list[str]:
    return [a.email for a in standin.accepted]
