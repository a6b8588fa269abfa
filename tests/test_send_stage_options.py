"""``--stages`` as a writer tries it: checked before anything is recorded (a dry run too), and a resume that
names other stages than the send was started with is refused rather than silently ignored."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from newsletter_helpers import ISSUE
from staged_fixtures import READERS, STAGES, halt_at_stage_one, send, stage_members

from newsletter.cli import main


@pytest.mark.parametrize("spec", ["abc", "0%", "50%,10%", "100"])
def test_a_dry_run_checks_the_stages_it_would_use(staged, sendgrid_standin, spec):
    tried = send(staged, "--dry-run", "--stages", spec)

    assert tried.returncode == 2, tried.stdout + tried.stderr
    assert "--stages" in tried.stderr and "1%,10%,100%" in tried.stderr


def test_bad_stages_refuse_a_live_send_before_it_is_recorded(staged, sendgrid_standin):
    tried = send(staged, "--stages", "abc")

    assert tried.returncode == 2 and "'abc' is not a percentage" in tried.stderr
    assert not sendgrid_standin.counts()
    status = CliRunner().invoke(main, ["status", ISSUE]).output
    assert "run " not in status  # no run recorded for a send that never started


def test_a_resume_naming_other_stages_is_refused_and_mails_nobody(staged, sendgrid_standin):
    members = stage_members(staged)
    halt_at_stage_one(staged, sendgrid_standin, members)

    other = send(staged, "--resume", "--stages", "50%,100%", "--stage-wait", "0.01")

    assert other.returncode == 2, other.stdout + other.stderr
    assert "1%,10%,100%" in other.stderr and "50%,100%" in other.stderr
    assert set(sendgrid_standin.counts()) == members[1]

    same = send(staged, "--resume", "--stages", STAGES, "--stage-wait", "0.01")
    assert same.returncode == 0, same.stdout + same.stderr
    counts = sendgrid_standin.counts()
    assert set(counts) == set(READERS) and max(counts.values()) == 1
