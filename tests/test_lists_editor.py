"""The list editor: the one path every change to a list takes (add, import, unsubscribe, SendGrid sync,
the subscriber service's sync), with the same rules for each caller."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from newsletter.errors import NewsletterError
from newsletter.lists import Entry, select_recipients, set_status, upsert

LIST = (
    "email,name,status,tags,subscribed_at\n"
    "ada@example.com,Ada,subscribed,founders,2026-01-05\n"
    "alan@example.com,Alan,unsubscribed,readers,2026-03-02\n"
    "grace@example.org,Grace,subscribed,,\n"
)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    target = tmp_path / "news.csv"
    target.write_text(LIST, encoding="utf-8")
    return target


def rows(path: Path) -> list[list[str]]:
    return [line.split(",") for line in path.read_text(encoding="utf-8").splitlines()]


def test_many_confirmed_subscribers_join_in_one_rewrite_with_their_consent_dates(path: Path) -> None:
    """What the subscriber service's sync needs: new people appended with extra columns, known ones updated,
    someone who left staying away unless they asked to come back."""
    before = path.stat().st_ino
    report = upsert(path, [
        Entry("mary@example.net", name="Mary", subscribed_at="2026-11-20",
              fields={"consent_confirmed_at": "2026-11-20T10:00:00Z"}),
        Entry("GRACE@example.org", tags=("readers",), fields={"consent_confirmed_at": "2026-11-21T09:00:00Z"}),
        Entry("alan@example.com", status="subscribed"),
    ])

    assert report.outcomes == {"mary@example.net": "added", "grace@example.org": "updated",
                               "alan@example.com": "unchanged"}
    assert report.kept_suppressed == {"alan@example.com"}
    assert path.stat().st_ino != before  # replaced once, atomically
    assert rows(path) == [
        ["email", "name", "status", "tags", "subscribed_at", "consent_confirmed_at"],
        ["ada@example.com", "Ada", "subscribed", "founders", "2026-01-05", ""],
        ["alan@example.com", "Alan", "unsubscribed", "readers", "2026-03-02", ""],
        ["grace@example.org", "Grace", "subscribed", "readers", "", "2026-11-21T09:00:00Z"],
        ["mary@example.net", "Mary", "subscribed", "", "2026-11-20", "2026-11-20T10:00:00Z"],
    ]
    assert [r.email for r in select_recipients(path)] == ["ada@example.com", "grace@example.org", "mary@example.net"]


def test_resubscribe_brings_back_who_left_with_the_date_they_came_back(path: Path) -> None:
    report = upsert(path, [Entry("alan@example.com")], resubscribe=True, today=datetime.date(2026, 11, 26))

    assert report.outcomes == {"alan@example.com": "resubscribed"}
    assert rows(path)[2] == ["alan@example.com", "Alan", "subscribed", "readers", "2026-11-26"]


def test_an_entry_that_says_bounced_marks_the_row_and_never_unmarks_another_status(path: Path) -> None:
    upsert(path, [Entry("ada@example.com", status="bounced"), Entry("alan@example.com", status="complained")])

    assert [row[2] for row in rows(path)[1:]] == ["bounced", "unsubscribed", "subscribed"]


def test_a_dry_run_reports_and_writes_nothing(path: Path) -> None:
    report = upsert(path, [Entry("mary@example.net")], dry_run=True)

    assert report.outcomes == {"mary@example.net": "added"}
    assert path.read_text(encoding="utf-8") == LIST


def test_an_unknown_status_or_a_bad_address_is_refused_before_anything_is_written(path: Path) -> None:
    with pytest.raises(NewsletterError, match="unknown status 'gone'"):
        upsert(path, [Entry("mary@example.net"), Entry("ada@example.com", status="gone")])
    with pytest.raises(NewsletterError, match="'not-an-address' is not a valid email address"):
        upsert(path, [Entry("mary@example.net"), Entry("not-an-address")])

    assert path.read_text(encoding="utf-8") == LIST


def test_set_status_takes_addresses_as_written_and_keeps_what_it_is_told_to(path: Path) -> None:
    changed = set_status(path, {"ADA@Example.com": "unsubscribed", "alan@example.com": "bounced",
                                "not-an-address": "bounced"}, keep=("unsubscribed",))

    assert changed == 1
    assert [row[2] for row in rows(path)[1:]] == ["unsubscribed", "unsubscribed", "subscribed"]
