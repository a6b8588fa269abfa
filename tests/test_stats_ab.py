"""Subject A/B tests decided on unique human clickers: the split, the stated test, and whole sends over SMTP
where readers click through newsletter serve, then `send --resume` sends the rest the winner (or says there is
none)."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter

import httpx
import pytest
from click.testing import CliRunner
from click_fixtures import MovableClock, click_links
from conftest import EXAMPLE_ISSUE

from newsletter.cli import main
from newsletter.sending.ab import assign_variants
from newsletter.sending.ab_decision import VariantFigures, decide, fisher_greater

SUBJECTS = ("Diplomacy by phone", "Newsletters in git, and a phone call")
READERS = [f"reader{n:02d}@example.net" for n in range(40)]


@pytest.mark.parametrize("count", [2, 3, 4])
def test_the_split_is_equal_within_one_percent_on_100000_addresses_and_the_same_on_every_run(count):
    addresses = [f"reader{n}@example.com" for n in range(100_000)]
    first = assign_variants("issue-a", addresses, 0.10, count)
    sizes = Counter(first.values())
    assert sum(sizes.values()) == 10_000 and sorted(sizes) == list(range(1, count + 1))
    assert max(sizes.values()) - min(sizes.values()) <= 0.01 * min(sizes.values())
    assert assign_variants("issue-a", list(reversed(addresses)), 0.10, count) == first  # deterministic
    other = assign_variants("issue-b", addresses, 0.10, count)
    assert len(first.keys() & other.keys()) < 2_000  # another issue samples another slice


def test_a_clear_winner_is_chosen_and_a_tie_is_reported_as_a_tie():
    clear = decide([VariantFigures(1, "A", 5000, 150), VariantFigures(2, "B", 5000, 250)], 0.95)
    assert clear.winner == 2 and "variant 2 wins at 95% confidence" in clear.summary(1)
    tie = decide([VariantFigures(1, "A", 5000, 200), VariantFigures(2, "B", 5000, 200)], 0.95)
    assert tie.winner == 0 and tie.summary(1).startswith("no winner at 95% confidence")
    close = decide([VariantFigures(1, "A", 5000, 200), VariantFigures(2, "B", 5000, 215),
                    VariantFigures(3, "C", 5000, 190)], 0.95)
    assert close.winner == 0 and close.leader == 2  # ahead, but not surely: no winner
    assert fisher_greater(3, 10, 0, 10) == pytest.approx(120 / 1140)  # C(10,3) C(10,0) / C(20,3)


@pytest.fixture
def world(tmp_path, monkeypatch):
    from serve_helpers import start_world

    monkeypatch.setenv("NEWSLETTER_UNSUBSCRIBE_SECRET", "test-secret-for-ab-tests")
    clock = MovableClock()
    running = start_world(tmp_path, clock=clock, stats={"clicks": "true"})
    running.clock = clock
    with (running.root / "subscribers" / "example.csv").open("a", encoding="utf-8") as rows:
        rows.writelines(f"{address},,subscribed,readers,2026-05-01,\n" for address in READERS)
    path = running.root / "issues" / EXAMPLE_ISSUE / "issue.md"
    variants = "".join(f"- {subject}\n" for subject in SUBJECTS)
    path.write_text(path.read_text(encoding="utf-8").replace("number: 1\n", f"number: 1\nsubject_variants:\n{variants}",
                                                             1), encoding="utf-8")
    yield running
    running.stop()


def newsletter(world, *args: str) -> str:
    result = CliRunner().invoke(main, ["--root", str(world.root), *args])
    assert result.exit_code == 0, result.output
    return result.output


def subjects_by_reader(world) -> dict[str, str]:
    return {received.rcpt_tos[0]: str(received.message()["Subject"]) for received in world.mail.received}


def readers_click(world, readers: list[str]) -> None:
    """Each of ``readers`` clicks the first link of their copy, ten minutes after the send."""
    world.clock.offset = dt.timedelta(minutes=10)
    for received in world.mail.received:
        if received.rcpt_tos[0] in readers:
            html = received.message().get_body(("html",)).get_content()
            link = click_links(html, world.url)[1]  # [0] is the hidden honeypot
            assert httpx.get(link, headers={"User-Agent": f"reader {received.rcpt_tos[0]}"}).status_code == 302


def send_ab(world, *more: str) -> str:
    issue = str(world.root / "issues" / EXAMPLE_ISSUE)
    return newsletter(world, "send", issue, "--list", "example", "--provider", "smtp", "--yes", "--ab", "50%", *more)


def test_an_ab_test_sends_equal_slices_waits_then_sends_the_rest_the_winner(world):
    output = send_ab(world)
    first = subjects_by_reader(world)
    assert Counter(first.values()) == {SUBJECTS[0]: 11, SUBJECTS[1]: 11}  # 50% of 44 readers, two equal slices
    assert "the other 22 recipients wait for the decision" in output

    readers_click(world, [r for r, subject in first.items() if subject == SUBJECTS[1]][:8])
    readers_click(world, [r for r, subject in first.items() if subject == SUBJECTS[0]][:1])
    issue = str(world.root / "issues" / EXAMPLE_ISSUE)
    output = newsletter(world, "send", issue, "--list", "example", "--resume", "--yes")
    assert "variant 2 wins at 95% confidence" in output
    after = subjects_by_reader(world)
    rest = {reader: subject for reader, subject in after.items() if reader not in first}
    assert len(rest) == 22 and set(rest.values()) == {SUBJECTS[1]}
    assert len(world.mail.received) == 44  # nobody mailed twice

    figures = json.loads(newsletter(world, "stats", issue, "--format", "json"))
    ab = figures["ab_test"]
    assert (ab["winner"], ab["verdict"], ab["sent"], ab["unique_human_clickers"]) == (
        2, "winner", {"1": 11, "2": 11}, {"1": 1, "2": 8})
    assert "Fisher's exact test" in ab["summary"] and "8 of 11" in ab["summary"]
    assert "decision: variant 2 wins" in newsletter(world, "stats", issue)


def test_with_no_winner_it_says_so_and_sends_the_variant_the_writer_named(world):
    send_ab(world, "--ab-fallback", "2")
    first = subjects_by_reader(world)
    for subject in SUBJECTS:
        readers_click(world, [r for r, s in first.items() if s == subject][:2])
    issue = str(world.root / "issues" / EXAMPLE_ISSUE)
    output = newsletter(world, "send", issue, "--list", "example", "--resume", "--yes")
    assert "no winner at 95% confidence" in output and "the rest gets variant 2" in output
    rest = {reader: subject for reader, subject in subjects_by_reader(world).items() if reader not in first}
    assert len(rest) == 22 and set(rest.values()) == {SUBJECTS[1]}
    ab = json.loads(newsletter(world, "stats", issue, "--format", "json"))["ab_test"]
    assert (ab["winner"], ab["verdict"]) == (0, "no winner")


def test_starting_the_test_again_is_refused_and_nobody_is_mailed_twice(world):
    send_ab(world)
    issue = str(world.root / "issues" / EXAMPLE_ISSUE)
    again = CliRunner().invoke(main, ["--root", str(world.root), "send", issue, "--list", "example", "--provider",
                                      "smtp", "--yes", "--ab", "50%"])
    assert again.exit_code == 2 and "--resume continues it" in again.output
    assert len(world.mail.received) == 22


def test_send_due_decides_a_test_whose_wait_is_over_and_sends_the_rest_the_winner(world):
    send_ab(world)
    first = subjects_by_reader(world)
    readers_click(world, [r for r, subject in first.items() if subject == SUBJECTS[1]][:8])
    early = newsletter(world, "send", "--due")  # the wait ([stats] ab_wait_hours) is not over: nothing due
    assert len(world.mail.received) == 22 and "the rest of" not in early
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).isoformat(timespec="minutes")
    output = newsletter(world, "send", "--due", "--now", later)
    assert "after its A/B test" in output, output
    rest = {reader: subject for reader, subject in subjects_by_reader(world).items() if reader not in first}
    assert len(rest) == 22 and set(rest.values()) == {SUBJECTS[1]}
    assert len(world.mail.received) == 44
    again = newsletter(world, "send", "--due", "--now", later)  # decided and sent: nothing more is due
    assert len(world.mail.received) == 44 and "after its A/B test" not in again
