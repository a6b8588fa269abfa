"""Review of the exactly-once / resume / retry machinery (send.py, journal.py, cli send/status).

Each test states one guarantee from docs/sending.md or issue 5. A failing test here is a bug report;
see the docstring of each for what goes wrong and why.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from click.testing import CliRunner
from newsletter_helpers import EXAMPLE_SUBSCRIBED, ISSUE, run, set_option, write_list

from newsletter.cli import main

ISSUE_NAME = "2026-11-25-first-dispatch"


def tail(result, lines: int = 6) -> str:
    """The last lines of a command's output (the summary), without the checks' long findings."""
    return "\n".join(result.output.strip().splitlines()[-lines:])


def rows(root: Path, list_name: str = "example") -> dict[str, tuple]:
    """email -> (status, attempts, reason, name, fields) for one list's journal rows."""
    db = sqlite3.connect(root / ".newsletter" / "journal.sqlite")
    try:
        return {e: (s, a, r, n, f) for e, s, a, r, n, f in db.execute(
            "SELECT d.email, d.status, d.attempts, d.reason, d.name, d.fields FROM deliveries d "
            "JOIN sends s ON s.id = d.send WHERE s.list = ?", (list_name,))}
    finally:
        db.close()


def statuses(root: Path, list_name: str = "example") -> dict[str, str]:
    return {e: v[0] for e, v in rows(root, list_name).items()}



# -- 1. nobody twice --------------------------------------------------------------------------------------


def test_review_issue_given_as_dot_is_the_same_send(fast_retries: Path, sendgrid_standin):
    """Regression test (a bug found in review, now fixed): the journal keys a send by ``Path(issue_dir).name``
    (content.load_issue does not resolve), while the lock and ``status`` use ``issue_dir.resolve().name``.
    ``newsletter send . --list example`` from inside the issue folder is journaled as issue "" (and a symlinked
    folder under the link's name), so it is a *different* send: everyone already mailed is mailed again."""
    assert run("send", ISSUE, "--list", "example", "--yes").exit_code == 0
    os.chdir(fast_retries / ISSUE)
    again = run("send", ".", "--list", "example", "--yes")
    assert max(sendgrid_standin.counts().values()) == 1, (
        "re-running the same send from inside the issue folder mailed everyone again:\n" + tail(again))


def test_review_two_issues_given_as_dot_do_not_share_a_journal(fast_retries: Path, sendgrid_standin):
    """BUG (same cause): two different issues both sent as ``.`` share journal issue "", so the
    second one believes every recipient was "already sent" and silently mails nobody (exit 0)."""
    second = fast_retries / "issues" / "2026-12-02-second-dispatch"
    import shutil

    shutil.copytree(fast_retries / ISSUE, second)
    os.chdir(fast_retries / ISSUE)
    assert run("send", ".", "--list", "example", "--yes").exit_code == 0
    os.chdir(second)
    sendgrid_standin.reset()
    result = run("send", ".", "--list", "example", "--yes")
    assert set(sendgrid_standin.counts()) == EXAMPLE_SUBSCRIBED, (
        "the second issue was never sent to anyone:\n" + tail(result))


def test_review_issue_given_through_a_symlink_is_the_same_send(fast_retries: Path, sendgrid_standin):
    """BUG (same cause as the ``.`` case): ``issues/latest -> 2026-11-25-first-dispatch`` is journaled
    as issue "latest" (the lock and ``status`` resolve it, the journal does not): everyone twice."""
    (fast_retries / "issues" / "latest").symlink_to(ISSUE_NAME)
    assert run("send", ISSUE, "--list", "example", "--yes").exit_code == 0
    again = run("send", "issues/latest", "--list", "example", "--yes")
    assert max(sendgrid_standin.counts().values()) == 1, "mailed everyone again:\n" + tail(again)


def test_review_journal_commits_survive_power_loss(fast_retries: Path):
    """Regression test (a bug found in review, now fixed): docs/sending.md promises resume without duplicates after
    "power loss", but ``Journal.open`` sets ``PRAGMA synchronous=NORMAL`` with WAL, under which SQLite documents
    that a committed transaction may roll back after a power loss or OS crash. The lost commit can be the
    ``mark_in_flight`` of a batch whose request went out: after reboot the rows read ``pending`` and are sent again.
    The in-flight commit must be durable before the request (synchronous=FULL)."""
    from newsletter.sending.journal import Journal, Location

    journal = Journal.open(Location("sqlite", path=fast_retries / ".newsletter" / "journal.sqlite"), ISSUE_NAME,
                           "example")
    try:
        assert journal.db.execute("PRAGMA synchronous").fetchone()[0] >= 2, "synchronous is not FULL"
    finally:
        journal.close()


def test_review_list_edited_case_and_duplicates_between_runs(fast_retries: Path, sendgrid_standin):
    """Confirmed: an address whose case changed, and a duplicate row added since, are not mailed again."""
    assert run("send", ISSUE, "--list", "example", "--yes").exit_code == 0
    csv_path = fast_retries / "subscribers" / "example.csv"
    text = csv_path.read_text().replace("grace@example.org", "GRACE@Example.ORG")
    text += "Katherine@EXAMPLE.org,Dup,subscribed,,2026-05-01,\nnew@example.com,New,subscribed,,2026-05-01,\n"
    csv_path.write_text(text)
    result = run("send", ISSUE, "--list", "example", "--yes")
    assert result.exit_code == 0, result.output
    counts = sendgrid_standin.counts()
    assert set(counts) == EXAMPLE_SUBSCRIBED | {"new@example.com"} and max(counts.values()) == 1


def test_review_concurrent_batches_with_splits_and_5xx_lose_and_duplicate_no_one(fast_retries: Path, sendgrid_standin):
    """Confirmed: with 4 batches in flight, personalizations.N refusals (others released behind the
    forward cursor), 5xx and 429 retries, every recipient but the refused ones is mailed exactly once."""
    set_option(fast_retries, "send", "batch_size = 7")
    expected = write_list(fast_retries, "mix", 120)
    refused = {"reader3@example.com", "reader50@example.com", "reader51@example.com", "reader119@example.com"}
    for address in refused:
        sendgrid_standin.refuse_address(address, "The email address is not valid.")
    sendgrid_standin.answer(500, times=3)
    sendgrid_standin.rate_limit(times=2, reset_in=0.02)
    result = run("send", ISSUE, "--list", "mix", "--yes")
    assert result.exit_code == 1, result.output  # the refused ones failed
    counts = sendgrid_standin.counts()
    assert set(counts) == expected - refused and max(counts.values()) == 1
    state = statuses(fast_retries, "mix")
    assert {e for e, s in state.items() if s == "failed"} == refused
    assert {e for e, s in state.items() if s != "failed"} == expected - refused
    assert set(state.values()) == {"sent", "failed"}


def test_review_bisection_without_field_isolates_the_culprit(fast_retries: Path, sendgrid_standin):
    """Confirmed: a 400 naming no field splits the batch in halves until the one bad recipient fails."""
    set_option(fast_retries, "send", "batch_size = 8")
    expected = write_list(fast_retries, "bis", 8)
    # A 400 with no field for every request carrying reader5: the stand-in's refusal names the field,
    # so script the whole first request, then let refuse_address (with a field) take over.
    sendgrid_standin.answer(400, errors=[{"message": "bad request", "field": None}])
    sendgrid_standin.refuse_address("reader5@example.com", "invalid")
    result = run("send", ISSUE, "--list", "bis", "--yes")
    assert result.exit_code == 1
    counts = sendgrid_standin.counts()
    assert set(counts) == expected - {"reader5@example.com"} and max(counts.values()) == 1


def test_review_auth_error_during_bisection_stops_all_requests(fast_retries: Path, sendgrid_standin):
    """Regression test (a bug found in review, now fixed): a 401/403 must stop the whole send at once, with no
    further requests (issue 5). While a refused batch is being bisected (``_Batches.rejected``), a 401 on the first
    half only sets ``fatal``; the loop in ``rejected`` checks ``should_pause()`` but not ``fatal`` (nor
    ``stop.requested``), so the second half is still sent after the key was refused."""
    set_option(fast_retries, "send", "batch_size = 4\nconcurrency = 1")
    sendgrid_standin.answer(400, errors=[{"message": "bad request", "field": None}])
    sendgrid_standin.answer(401)
    result = run("send", ISSUE, "--list", "example", "--yes")
    assert result.exit_code != 0
    requests = sendgrid_standin.mail_requests()
    assert len(requests) == 2, f"{len(requests)} requests: the send went on after SendGrid refused the key"


# -- retry flags ------------------------------------------------------------------------------------------


def test_review_retry_failed_sends_the_corrected_name(fast_retries: Path, sendgrid_standin):
    """Regression test (a bug found in review, now fixed): a recipient failed for a line break in the name; the
    writer fixes the list and runs ``--retry-failed``. ``Journal.select`` refreshes email/name/fields only for rows
    that are *pending* at that moment, and ``prepare`` calls ``requeue`` after ``select``, so the requeued row keeps
    the stale name and fails again, for ever."""
    csv_path = fast_retries / "subscribers" / "example.csv"
    csv_path.write_text(csv_path.read_text().replace("Grace Hopper", '"Grace\nBcc: victim@example.org"'))
    first = run("send", ISSUE, "--list", "example", "--yes")
    assert first.exit_code == 1 and "failed: grace@example.org" in first.output
    csv_path.write_text(csv_path.read_text().replace('"Grace\nBcc: victim@example.org"', "Grace Hopper"))
    retried = run("send", ISSUE, "--list", "example", "--yes", "--retry-failed")
    assert "grace@example.org" in sendgrid_standin.counts(), "the fixed recipient failed again:\n" + tail(retried)
    assert retried.exit_code == 0


def test_review_retry_failed_keeps_custom_merge_fields(fast_retries: Path, sendgrid_standin):
    """Regression test (a bug found in review, now fixed): ``Journal.settle`` clears ``fields`` (the merge values
    other than email/name) for failed rows; ``--retry-failed`` requeues the row after ``select`` declined to refresh
    it (not pending), so the resent copy has every custom merge field blank."""
    issue_md = fast_retries / ISSUE / "issue.md"
    issue_md.write_text(issue_md.read_text().replace(
        "Hi {{ subscriber.name | default('there') }},",
        "Hi {{ subscriber.name | default('there') }} of {{ subscriber.city | default('nowhere') }},"))
    sendgrid_standin.refuse_address("grace@example.org")
    first = run("send", ISSUE, "--list", "example", "--yes")
    assert first.exit_code == 1, first.output
    ada = next(a for a in sendgrid_standin.accepted if a.email == "ada@example.com")
    assert "London" in ada.substitutions.values()  # the field does reach SendGrid on a first send
    sendgrid_standin.reset()
    retried = run("send", ISSUE, "--list", "example", "--yes", "--retry-failed")
    assert retried.exit_code == 0, retried.output
    grace = next(a for a in sendgrid_standin.accepted if a.email == "grace@example.org")
    assert "Arlington" in grace.substitutions.values(), f"city lost on retry: {grace.substitutions}"


def test_review_retry_unknown_keeps_merge_fields_and_sends_once(fast_retries: Path, sendgrid_standin):
    """Confirmed: unknown rows keep their merge values; --retry-unknown resends them once, others never."""
    set_option(fast_retries, "send", "batch_size = 2\nconcurrency = 1")
    sendgrid_standin.drop(deliver=False)
    first = run("send", ISSUE, "--list", "example", "--yes")
    assert first.exit_code == 1 and "2 unknown" in first.output
    unknown = {e for e, s in statuses(fast_retries).items() if s == "unknown"}
    assert len(unknown) == 2
    retried = run("send", ISSUE, "--list", "example", "--yes", "--retry-unknown")
    assert retried.exit_code == 0, retried.output
    counts = sendgrid_standin.counts()
    assert set(counts) == EXAMPLE_SUBSCRIBED and max(counts.values()) == 1
    assert set(statuses(fast_retries).values()) == {"sent"}


# -- 2. nobody forgotten ----------------------------------------------------------------------------------


def test_review_batch_entirely_refused_by_start_does_not_stop_the_send(fast_retries: Path, sendgrid_standin):
    """Confirmed: a batch whose every row fails in start() (unsafe names) is skipped, the rest go out."""
    set_option(fast_retries, "send", "batch_size = 2")
    (fast_retries / "subscribers" / "bad.csv").write_text(
        "email,name,status\n"
        'a@example.com,"A\nBcc: x@example.org",subscribed\n'
        'b@example.com,"B\rCc: x@example.org",subscribed\n'
        "c@example.com,C,subscribed\nd@example.com,D,subscribed\ne@example.com,E,subscribed\n")
    result = run("send", ISSUE, "--list", "bad", "--yes")
    assert result.exit_code == 1
    assert set(sendgrid_standin.counts()) == {"c@example.com", "d@example.com", "e@example.com"}
    assert "2 failed" in result.output


def test_a_5xx_burst_backs_off_instead_of_giving_up(fast_retries: Path, sendgrid_standin):
    """Issue 13: a short 5xx burst is waited out (back-off), not counted against max_attempts until the
    recipients are deferred: the send finishes, everyone once, exit 0."""
    set_option(fast_retries, "send", "batch_size = 2\nconcurrency = 1\nmax_attempts = 2")
    sendgrid_standin.answer(500, times=4)  # more failures than max_attempts allows each batch
    first = run("send", ISSUE, "--list", "example", "--yes")
    assert first.exit_code == 0, first.output
    assert "sent 4 of 4" in first.output
    counts = sendgrid_standin.counts()
    assert set(counts) == EXAMPLE_SUBSCRIBED and max(counts.values()) == 1


def test_review_deferred_report_names_only_rows_out_of_attempts(sendgrid_newsletter: Path, sendgrid_standin):
    """MINOR: ``finish`` decides "deferred for good" from ``max(row.attempts) + 1`` for the whole
    batch. A retry batch can mix rows with different attempt counts (rows released by a
    personalizations.N split keep theirs), so a row with attempts left is reported deferred, then
    retried and sent in the same run: the summary lists a delivered recipient as deferred."""
    from sendgrid_standin import Reply

    set_option(sendgrid_newsletter, "send", "batch_size = 4\nconcurrency = 1\nmax_attempts = 2\n"
                             "backoff_seconds = 0\nmax_backoff_seconds = 0")
    write_list(sendgrid_newsletter, "att", 6)
    sendgrid_standin.refuse_address("reader4@example.com", "invalid")
    sendgrid_standin.answer(400, errors=[{"message": "bad request", "field": None}])  # [r0..r3]: bisect
    sendgrid_standin.answer(500)  # [r0, r1]: attempts 1
    sendgrid_standin.script(Reply(), Reply())  # [r2, r3] sent; [r4, r5]: r4 refused, r5 released (attempts 0)
    sendgrid_standin.answer(500)  # [r0, r1, r5]: r0, r1 out of attempts, r5 is not
    result = run("send", ISSUE, "--list", "att", "--yes")
    state = statuses(sendgrid_newsletter, "att")
    assert state["reader5@example.com"] == "sent"
    assert "deferred: reader5@example.com" not in result.output, "a delivered recipient reported deferred:\n" + tail(
        result, 8)


# -- 3. unexpected faults ---------------------------------------------------------------------------------


def test_review_plain_provider_error_leaves_no_row_in_flight(fast_retries: Path, sendgrid_standin):
    """Confirmed: an unexpected HTTP answer (404: plain ProviderError) stops the send; the batch is
    released to pending (nothing stuck in flight), other in-flight batches are recorded."""
    set_option(fast_retries, "send", "batch_size = 10")
    write_list(fast_retries, "p", 100)
    sendgrid_standin.answer(404, errors=[{"message": "not found", "field": None}])
    result = run("send", ISSUE, "--list", "p", "--yes")
    assert result.exit_code == 2 and "HTTP 404" in result.output
    state = statuses(fast_retries, "p")
    assert "in_flight" not in state.values()
    sent = {e for e, s in state.items() if s == "sent"}
    assert sent == set(sendgrid_standin.counts())
    # and the lock was released: the same command runs again and finishes the job
    again = run("send", ISSUE, "--list", "p", "--yes")
    assert again.exit_code == 0, again.output
    assert len(sendgrid_standin.counts()) == 100 and max(sendgrid_standin.counts().values()) == 1


def test_review_unexpected_exception_mid_smtp_batch_is_not_treated_as_nothing_sent(
        newsletter_root: Path, smtp_tls_server, monkeypatch):
    """Regression test (a bug found in review, now fixed): ``_Batches.finish``'s last branch treats *any* other
    exception as "nothing was delivered" and releases the whole batch to pending. The SMTP provider delivers a batch
    one recipient at a time and only converts ProviderError into DEFERRED after a partial delivery; any other
    exception (here a ValueError while building the 3rd message) escapes after 2 messages went out, the 2 are
    released, and the next run mails them again."""
    from newsletter_helpers import configure_smtp

    from newsletter.providers import smtp

    configure_smtp(newsletter_root, smtp_tls_server, monkeypatch)
    write_list(newsletter_root, "smtp", 5)
    original = smtp.WireTemplate.copy

    def copy(self, recipient, date):
        if recipient.email == "reader2@example.com":
            raise ValueError("something unforeseen while building the message")
        return original(self, recipient, date)

    monkeypatch.setattr(smtp.WireTemplate, "copy", copy)
    first = run("send", ISSUE, "--list", "smtp", "--provider", "smtp", "--yes")
    # Issue 13: each message is built before its batch goes in flight, so a bug while building one
    # stops the send before any of that batch is sent (they stay pending, none is lost or unknown).
    assert first.exit_code == 2 and "could not build the request" in first.output, first.output
    monkeypatch.setattr(smtp.WireTemplate, "copy", original)
    run("send", ISSUE, "--list", "smtp", "--provider", "smtp", "--yes")
    got = smtp_tls_server.handler.recipients()
    assert len(got) == len(set(got)), f"mailed twice: {sorted(got)}"


# -- 4. status, dry run, lock -----------------------------------------------------------------------------


def test_review_dry_run_leaves_every_journal_file_as_it_was(fast_retries: Path, sendgrid_standin):
    """Confirmed for the database file and its WAL, even with an uncheckpointed WAL (a send killed
    mid-run) and --retry-unknown/--retry-failed: the dry run works on a scratch copy."""
    set_option(fast_retries, "send", "batch_size = 2\nconcurrency = 1")
    sendgrid_standin.drop(deliver=True)
    run("send", ISSUE, "--list", "example", "--yes")
    folder = fast_retries / ".newsletter"
    # Keep a writer open with a committed-but-uncheckpointed WAL, as a killed send leaves it.
    writer = sqlite3.connect(folder / "journal.sqlite", isolation_level=None)
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("UPDATE deliveries SET status='in_flight' WHERE status='unknown'")
    try:
        before = {p.name: p.read_bytes() for p in folder.glob("journal.sqlite*")}
        result = run("send", ISSUE, "--list", "example", "--dry-run", "--retry-unknown", "--retry-failed")
        assert result.exit_code == 0, result.output
        assert "would send 2 of 2" in result.output
        after = {p.name: p.read_bytes() for p in folder.glob("journal.sqlite*")}
    finally:
        writer.close()
    assert after.keys() == before.keys()
    assert after["journal.sqlite"] == before["journal.sqlite"]
    assert after["journal.sqlite-wal"] == before["journal.sqlite-wal"]


def test_review_status_lists_unknown_and_failed(fast_retries: Path, sendgrid_standin):
    """``status`` shows counts, and names the failed and unknown recipients."""
    set_option(fast_retries, "send", "batch_size = 1\nconcurrency = 1")
    sendgrid_standin.refuse_address("grace@example.org", "The email address is not valid.")
    sendgrid_standin.drop(deliver=True)
    run("send", ISSUE, "--list", "example", "--yes")
    out = run("status", ISSUE, "--list", "example").output
    assert "failed: grace@example.org: " in out and "The email address is not valid." in out
    unknown = [e for e, s in statuses(fast_retries).items() if s == "unknown"]
    assert len(unknown) == 1 and f"unknown: {unknown[0]}" in out
    assert "2 sent" in out and "1 failed" in out and "1 unknown" in out


def test_review_status_names_rows_a_dead_send_left_in_flight(fast_retries: Path, sendgrid_standin):
    """MINOR: after a kill -9 (rows left ``in_flight``), the docs say ``newsletter status`` lists the
    batches whose outcome is unknown; it only prints "N in flight" and names none of them, because
    ``Journal.problems`` selects failed/unknown/deferred rows only. They are named only after the next
    ``send`` has turned them into ``unknown``."""
    assert run("send", ISSUE, "--list", "example", "--yes").exit_code == 0
    db = sqlite3.connect(fast_retries / ".newsletter" / "journal.sqlite", isolation_level=None)
    db.execute("UPDATE deliveries SET status='in_flight' WHERE email='ada@example.com'")  # as kill -9 leaves it
    db.close()
    out = run("status", ISSUE).output
    assert "1 in flight" in out
    assert "ada@example.com" in out, "status does not name the recipient whose delivery is unknown:\n" + out


def test_review_fatal_error_mid_send_still_prints_the_summary(fast_retries: Path, sendgrid_standin):
    """MINOR: when a send stops on an error after some batches went out (a 401/403, a 404 from a
    wrong api_host, a 400 about the request), the ProviderError escapes ``execute`` and the CLI
    prints only the error: no summary of who was sent, no "To resume" line."""
    set_option(fast_retries, "send", "batch_size = 2\nconcurrency = 1")
    sendgrid_standin.answer(202)
    sendgrid_standin.answer(404, errors=[{"message": "not found", "field": None}])
    result = run("send", ISSUE, "--list", "example", "--yes")
    assert result.exit_code != 0
    assert set(statuses(fast_retries).values()) == {"sent", "pending"}  # the journal itself is right
    assert "sent 2 of 4" in result.output, "no summary after the error:\n" + tail(result)


def test_review_lock_is_released_after_an_auth_error(fast_retries: Path, sendgrid_standin, monkeypatch):
    """Confirmed: after a send that stopped with an error, the next one is not refused by the lock."""
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.wrong")
    assert run("send", ISSUE, "--list", "example", "--yes").exit_code == 2
    monkeypatch.setenv("SENDGRID_API_KEY", sendgrid_standin.api_key)
    result = run("send", ISSUE, "--list", "example", "--yes")
    assert result.exit_code == 0, result.output


def test_review_test_to_same_address_twice_in_other_case(fast_retries: Path, sendgrid_standin):
    """Regression test (a bug found in review, now fixed): ``send_test`` de-duplicates --test-to addresses exactly
    (``dict.fromkeys``), so ``--test-to a@x --test-to A@x`` reaches the SendGrid encoder, whose ValueError ("appears
    twice in one batch") escapes as a traceback instead of one message or a clear error. The two are one
    address: the test send goes out, once."""
    result = CliRunner().invoke(main, ["send", ISSUE, "--test-to", "editor@example.com",
                                       "--test-to", "Editor@example.com"])
    assert result.exception is None and result.exit_code == 0, f"{result.exception!r}: {result.output}"
    assert "sent 1 of 1" in result.output
    assert sendgrid_standin.counts() == {"editor@example.com": 1}


# -- 5. summary and exit code -----------------------------------------------------------------------------


def test_review_first_ctrl_c_stops_after_the_batch_then_resume(fast_retries: Path, sendgrid_standin, monkeypatch):
    """Confirmed: a first Ctrl-C (SIGINT) finishes the batches in flight, exits 1 with how to resume;
    the next run sends the rest; nobody twice, nobody lost."""
    import _thread

    from newsletter.providers import sendgrid as sg

    set_option(fast_retries, "send", "batch_size = 10")
    expected = write_list(fast_retries, "int", 200)
    original = sg.SendGridProvider.deliver
    calls = []

    def deliver(self, payload):
        calls.append(len(payload.keys))
        if len(calls) == 2:
            _thread.interrupt_main()  # SIGINT handler runs in the main thread: sets the stop flag
        yield from original(self, payload)

    monkeypatch.setattr(sg.SendGridProvider, "deliver", deliver)
    first = run("send", ISSUE, "--list", "int", "--yes")
    assert first.exit_code == 1 and "To resume" in first.output, first.output
    assert 0 < len(sendgrid_standin.counts()) < 200
    assert {"in_flight", "unknown"}.isdisjoint(statuses(fast_retries, "int").values())
    second = run("send", ISSUE, "--list", "int", "--yes")
    assert second.exit_code == 0, second.output
    counts = sendgrid_standin.counts()
    assert set(counts) == expected and max(counts.values()) == 1


def test_review_second_ctrl_c_marks_in_flight_unknown(fast_retries: Path, sendgrid_standin, monkeypatch):
    """Confirmed: a second Ctrl-C abandons the batches in flight; they become unknown (never resent
    by default), the rest stay pending and go out on resume, exit 1."""
    import _thread
    import threading

    from newsletter.providers import sendgrid as sg

    set_option(fast_retries, "send", "batch_size = 10")
    expected = write_list(fast_retries, "int2", 200)
    original = sg.SendGridProvider.deliver
    calls = []
    lock = threading.Lock()

    def deliver(self, payload):
        with lock:
            calls.append(1)
            n = len(calls)
        import time

        # interrupt_main, unlike a real SIGINT, does not wake the main thread, and two of them before
        # it wakes count as one. So batch 4's answer wakes it between the two Ctrl-Cs, and batch 1's
        # after the second, while batch 3 is still being delivered (batches already answered are
        # recorded as they went, not as unknown).
        if n == 3:
            _thread.interrupt_main()
            time.sleep(0.4)
            _thread.interrupt_main()  # the handler raises KeyboardInterrupt this time
            time.sleep(1.0)
        elif n == 4:
            time.sleep(0.2)
        elif n == 1:
            time.sleep(0.6)
        yield from original(self, payload)

    monkeypatch.setattr(sg.SendGridProvider, "deliver", deliver)
    first = run("send", ISSUE, "--list", "int2", "--yes")
    assert first.exit_code == 1, first.output
    state = statuses(fast_retries, "int2")
    assert "in_flight" not in state.values()
    unknown = {e for e, s in state.items() if s == "unknown"}
    assert unknown and unknown <= expected
    second = run("send", ISSUE, "--list", "int2", "--yes")
    assert second.exit_code == 1 and "newsletter resolve" in second.output, second.output  # unknowns remain
    counts = sendgrid_standin.counts()
    assert max(counts.values()) == 1
    assert set(counts) | unknown == expected
