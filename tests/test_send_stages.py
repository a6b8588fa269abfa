"""Staged send building blocks: stages parsed, recipients assigned to stages for an issue, SendGrid's
signals read through the real client from the stand-in, and the circuit breaker's verdict."""

from __future__ import annotations

import dataclasses

import pytest

from newsletter.config import SendSettings, load_settings
from newsletter.errors import NewsletterError
from newsletter.providers.sendgrid import fetch_signals
from newsletter.sending.stage_rules import (
    StageSignals,
    assign_stages,
    judge_stage,
    parse_stages,
    stage_signals,
    stages_of,
)


def test_stages_parse_as_cumulative_shares():
    assert parse_stages("1%,10%,100%") == (0.01, 0.1, 1.0)
    assert parse_stages(["5%", " 100% "]) == (0.05, 1.0)
    assert parse_stages("") == (1.0,)


@pytest.mark.parametrize("text, says", [
    ("1%,10%,50%", "never be sent"),
    ("10%,5%,100%", "larger than the one before"),
    ("1,100%", "not a percentage"),
    ("0%,100%", "not a percentage"),
    ("1%,150%", "not a percentage"),
])
def test_bad_stages_say_what_to_write(text, says):
    with pytest.raises(NewsletterError, match=says) as error:
        parse_stages(text)
    assert error.value.exit_code == 2


def test_stages_and_thresholds_from_newsletter_toml(newsletter_root):
    path = newsletter_root / "newsletter.toml"
    path.write_text(path.read_text() + '\n[send]\nstages = ["2%", "100%"]\nmax_hard_bounce_rate = 0.05\n'
                    '\n[send.domains]\n"Gmail.com" = 2000\n')
    settings = load_settings(newsletter_root)
    assert stages_of(settings.send) == (0.02, 1.0)
    assert stages_of(settings.send, "50%,100%") == (0.5, 1.0)  # the option wins
    assert settings.send.max_hard_bounce_rate == 0.05
    assert settings.send.domains == (("gmail.com", 2000),)

    path.write_text(path.read_text().replace('"2%", "100%"', '"2%", "20%"'))
    with pytest.raises(NewsletterError, match=r"send\.stages"):
        stages_of(load_settings(newsletter_root).send)


ADDRESSES = [f"reader{i}@example.com" for i in range(1000)]


def test_each_recipient_lands_in_one_stage_the_same_way_every_run():
    shares = parse_stages("1%,10%,100%")
    first = assign_stages("2026-11-25-first-dispatch", ADDRESSES, shares)
    again = assign_stages("2026-11-25-first-dispatch", list(reversed(ADDRESSES)), shares)
    assert first == again  # the order of the list does not matter: a resume finds the same stages
    sizes = [sum(1 for s in first.values() if s == n) for n in (1, 2, 3)]
    assert sizes == [10, 90, 900]
    assert set(first) == set(ADDRESSES)

    other_issue = assign_stages("2026-12-02-second-dispatch", ADDRESSES, shares)
    stage_one = {a for a, s in first.items() if s == 1}
    assert stage_one != {a for a, s in other_issue.items() if s == 1}  # each issue samples afresh
    assert stage_one != set(ADDRESSES[:10])  # not the top of the file


def test_a_tiny_list_still_starts_with_one_recipient():
    stages = assign_stages("issue", ["a@example.com", "b@example.com", "A@example.com"], parse_stages("1%,100%"))
    assert sorted(stages.values()) == [1, 2]


@pytest.mark.parametrize("signals, halts", [
    (StageSignals(sent=100, hard_bounces=2), False),  # exactly 2%: not above
    (StageSignals(sent=100, hard_bounces=3), True),
    (StageSignals(sent=1000, complaints=1), False),  # exactly 0.1%
    (StageSignals(sent=1000, complaints=2), True),
    (StageSignals(sent=100, blocks=40, soft_bounces=10), False),  # neither is a hard bounce or complaint
])
def test_the_breaker_halts_above_the_thresholds(signals, halts):
    decision = judge_stage(signals, SendSettings())
    assert decision.halt is halts
    assert decision.summary().startswith("halted" if halts else "healthy")


def test_thresholds_are_configurable():
    lenient = dataclasses.replace(SendSettings(), max_hard_bounce_rate=0.05)
    assert not judge_stage(StageSignals(sent=100, hard_bounces=3), lenient).halt
    decision = judge_stage(StageSignals(sent=100, hard_bounces=6), lenient)
    assert "send.max_hard_bounce_rate" in decision.summary()


def test_signals_from_sendgrid_since_the_stage_halt_it(sendgrid_newsletter, sendgrid_standin):
    """Canned bounces at the stand-in, read through the real client with start_time; old ones are ignored."""
    sent_at = 1_800_000_000
    stage = ADDRESSES[:100]
    sendgrid_standin.add_suppressions("bounces", ["reader500@example.com"], created=sent_at - 86400)  # old news
    sendgrid_standin.add_suppressions("bounces", stage[:3], created=sent_at + 60)
    sendgrid_standin.add_suppressions("bounces", [stage[3]], created=sent_at + 70, status="4.2.2",
                                      reason="452 4.2.2 mailbox full")
    sendgrid_standin.add_suppressions("blocks", [stage[4]], created=sent_at + 80)
    sendgrid_standin.add_suppressions("spam_reports", [stage[5], "stranger@example.org"], created=sent_at + 90)

    signals = fetch_signals(load_settings(sendgrid_newsletter), since=sent_at, page_size=2)

    assert sorted(b["email"] for b in signals["bounces"]) == sorted([*stage[:3], stage[3]])
    assert [b["email"] for b in signals["blocks"]] == [stage[4]]
    assert {s["email"] for s in signals["spam_reports"]} == {stage[5], "stranger@example.org"}
    queries = [r.query for r in sendgrid_standin.requests if r.path == "/v3/suppression/bounces"]
    assert all(q["start_time"] == str(sent_at) for q in queries) and len(queries) == 3  # paged by 2

    counted = stage_signals(stage, signals, hard_refusals=[stage[10]])
    assert counted == StageSignals(sent=100, hard_bounces=4, soft_bounces=1, blocks=1, complaints=1)
    decision = judge_stage(counted, SendSettings())
    assert decision.halt
    assert "hard bounces 4.00%" in decision.summary() and "complaints 1.00%" in decision.summary()


def test_another_process_can_add_canned_bounces_to_the_standin(sendgrid_newsletter, sendgrid_standin):
    """A staged send running as a real process is steered through the stand-in's control endpoint."""
    import json
    import urllib.request

    request = urllib.request.Request(
        f"{sendgrid_standin.url}/_standin/suppressions", method="POST",
        data=json.dumps({"kind": "bounces", "emails": ["gone@example.com"], "created": 1_900_000_100}).encode())
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200

    signals = fetch_signals(load_settings(sendgrid_newsletter), since=1_900_000_000, until=1_900_000_200)
    assert [(b["email"], b["created"], b["status"]) for b in signals["bounces"]] == [
        ("gone@example.com", 1_900_000_100, "5.1.1")]
    assert fetch_signals(load_settings(sendgrid_newsletter), since=1_900_000_101)["bounces"] == []
