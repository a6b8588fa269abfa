"""The progress of a live send as the writer sees it: a progress bar on a terminal, a line per batch in a log."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

from sendgrid_standin import SendGridStandIn

ISSUE = "issues/2026-11-25-first-dispatch"


def _list_of(root: Path, count: int) -> None:
    rows = "".join(f"reader{i}@example.com,Reader {i},subscribed\n" for i in range(count))
    (root / "subscribers" / "many.csv").write_text("email,name,status\n" + rows, encoding="utf-8")
    config = root / "newsletter.toml"
    config.write_text(config.read_text(encoding="utf-8") + "\n[send]\nbatch_size = 10\nconcurrency = 1\n",
                      encoding="utf-8")


def _send(root: Path, *, terminal: bool) -> str:
    """``newsletter send`` in its own process, its standard output a terminal (a pseudo-terminal) or a pipe."""
    command = [sys.executable, "-m", "newsletter.cli", "send", ISSUE, "--list", "many", "--yes"]
    if not terminal:
        done = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout
    leader, follower = pty.openpty()
    child = subprocess.Popen(command, cwd=root, stdout=follower, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed the terminal (EIO)
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    _, errors = child.communicate(timeout=120)
    assert child.returncode == 0, errors.decode()
    return b"".join(chunks).decode("utf-8", "replace")


def test_a_send_on_a_terminal_shows_a_progress_bar_then_its_summary_on_a_line_of_its_own(
        sendgrid_newsletter: Path, sendgrid_standin: SendGridStandIn) -> None:
    _list_of(sendgrid_newsletter, 50)

    output = _send(sendgrid_newsletter, terminal=True)

    assert sum(sendgrid_standin.counts().values()) == 50
    frames = [frame.replace("\x1b[?25l", "") for frame in output.replace("\r\n", "\n").split("\r")[1:]]
    assert len(frames) >= 2 and all(frame.startswith("Sending  [") for frame in frames), output
    assert any("/50" in frame and "50/50" not in frame for frame in frames[:-1]), output  # drawn on its way
    bar_line, *after = frames[-1].split("\n")
    assert "50/50" in bar_line and "100%" in bar_line and "/s" in bar_line, output  # done, share, rate
    assert bar_line.endswith("\x1b[?25h"), output  # the cursor the bar hid is shown again
    assert after and after[0].startswith("sent 50 of 50"), output  # the summary starts a line of its own


def test_a_send_into_a_log_prints_a_line_per_batch_and_no_bar(sendgrid_newsletter: Path) -> None:
    _list_of(sendgrid_newsletter, 30)

    output = _send(sendgrid_newsletter, terminal=False)

    batches = [line for line in output.splitlines() if line.startswith("batch ")]
    assert len(batches) == 3 and batches[-1].startswith("batch 3: 30/30 done, 0 failed, "), output
    assert "\r" not in output and "Sending  [" not in output
