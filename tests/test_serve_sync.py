"""`newsletter subscribers sync` as a whole: the service's events, then SendGrid's suppressions (the SendGrid
stand-in), with one precedence for both and an honest account when the SendGrid part cannot run."""

from __future__ import annotations

from click.testing import CliRunner
from serve_helpers import list_rows

from newsletter.cli import main
from newsletter.config import load_settings
from newsletter.lists import set_status
from newsletter.serve.connect import open_store
from newsletter.serve.store import CONFIRMED, UNSUBSCRIBED, Event, now_utc, stamp


def record(root, *events: tuple[str, str]) -> None:
    store = open_store(load_settings(root))
    try:
        store.append([Event(list_name="example", kind=kind, email=email, key=email, at=stamp(now_utc()),
                            asked_at=stamp(now_utc()), source="web") for kind, email in events])
    finally:
        store.close()


def sync(root, *more: str):
    return CliRunner().invoke(main, ["--root", str(root), "subscribers", "sync", "--list", "example", *more])


def test_without_a_sendgrid_key_sync_applies_the_events_and_says_the_suppressions_were_skipped(newsletter_root):
    """The example sends through SendGrid; the writer syncs on a laptop without the API key."""
    assert load_settings(newsletter_root).provider == "sendgrid"
    record(newsletter_root, (UNSUBSCRIBED, "ada@example.com"), (CONFIRMED, "new.reader@example.com"))

    result = sync(newsletter_root)

    assert result.exit_code == 1, result.output  # part of the sync was not done
    assert "Traceback" not in result.output and "Error:" not in result.output
    assert "ada@example.com: subscribed -> unsubscribed" in result.output
    assert "new.reader@example.com: not on the list -> subscribed" in result.output
    assert "changed 2 address(es)" in result.output
    assert "Skipped SendGrid's suppressions" in result.output
    assert "SENDGRID_API_KEY is not set" in result.output
    rows = list_rows(newsletter_root / "subscribers" / "example.csv")
    assert rows["ada@example.com"]["status"] == "unsubscribed" and "new.reader@example.com" in rows

    again = sync(newsletter_root)  # the events were applied once: the cursor moved
    assert again.exit_code == 1 and "0 new events" in again.output and "already agrees" in again.output


def test_a_dry_run_without_a_key_says_the_same_and_writes_nothing(newsletter_root):
    record(newsletter_root, (UNSUBSCRIBED, "ada@example.com"))
    path = newsletter_root / "subscribers" / "example.csv"
    before = path.read_bytes()

    result = sync(newsletter_root, "--dry-run")

    assert result.exit_code == 1 and "Dry run" in result.output and "Skipped SendGrid's suppressions" in result.output
    assert path.read_bytes() == before


def test_sendgrid_suppressions_follow_the_same_precedence(sendgrid_newsletter, sendgrid_standin):
    """complained > bounced > unsubscribed: a row moves only up, whichever source says it."""
    path = sendgrid_newsletter / "subscribers" / "example.csv"
    set_status(path, {"katherine@example.org": "complained"})
    sendgrid_standin.add_suppressions("bounces", ["alan@example.com"])  # unsubscribed in the list
    sendgrid_standin.add_suppressions("unsubscribes", ["katherine@example.org", "grace@example.org"])
    sendgrid_standin.add_suppressions("bounces", ["grace@example.org"])

    result = sync(sendgrid_newsletter)

    assert result.exit_code == 0, result.output
    rows = list_rows(path)
    assert (rows["alan@example.com"]["status"], rows["katherine@example.org"]["status"],
            rows["grace@example.org"]["status"]) == ("bounced", "complained", "bounced")
    assert "alan@example.com: unsubscribed -> bounced" in result.output
