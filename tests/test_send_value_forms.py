"""A batch whose recipients' values agree in different ways goes out as one body per way (issue 13:
no value twice in one personalization), and the engine still tells apart who was refused in which."""

from __future__ import annotations

from pathlib import Path

from journal_reading import statuses
from newsletter_helpers import ISSUE, run, set_option


def test_refusals_in_either_body_of_a_batch_fail_only_their_recipient(fast_retries: Path, sendgrid_standin):
    set_option(fast_retries, "send", "batch_size = 40\nconcurrency = 1")
    plain = [f"reader{i}@example.com" for i in range(30)]
    two_forms = [f"pair{i}@example.org" for i in range(3)]  # names whose HTML and text forms differ
    rows = [f"{a},Reader {i},subscribed" for i, a in enumerate(plain)]
    # first, among and after the others
    for position, (i, address) in zip((0, 12, 31), enumerate(two_forms), strict=True):
        rows.insert(position, f'{address},"Ann & Bob {i}",subscribed')
    (fast_retries / "subscribers" / "mixed.csv").write_text("email,name,status\n" + "\n".join(rows) + "\n")
    sendgrid_standin.refuse_address("reader7@example.com", "The email address is not valid.")
    sendgrid_standin.refuse_address("pair1@example.org", "The email address is not valid.")

    result = run("send", ISSUE, "--list", "mixed", "--yes")

    assert result.exit_code == 1, result.output  # two recipients failed
    state = statuses(fast_retries, "mixed")
    assert {a for a, s in state.items() if s == "failed"} == {"reader7@example.com", "pair1@example.org"}
    counts = sendgrid_standin.counts()
    assert set(counts) == set(plain + two_forms) - {"reader7@example.com", "pair1@example.org"}
    assert max(counts.values()) == 1
    for accepted in sendgrid_standin.accepted:  # each value once per personalization
        values = list(accepted.substitutions.values())
        assert len(values) == len(set(values)), (accepted.email, values)
    # The pairs carry a key more than the plain readers (their name's two forms), and only they do.
    keys = {a.email: len(a.substitutions) for a in sendgrid_standin.accepted}
    assert {keys[a] for a in plain if a in counts} == {min(keys.values())}
    assert {keys[a] for a in two_forms if a in counts} == {min(keys.values()) + 1}
