"""select_recipients: who a send mails, and why everyone else is skipped."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.errors import NewsletterError
from newsletter.lists import SKIP_REASONS, list_stats, select_recipients, select_rows

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "subscribers" / "example.csv"


def select(path: Path, **filters) -> tuple[list[str], list[tuple[str, str, int]]]:
    skipped: list[tuple[str, str, int]] = []
    sent = [r.email for r in select_recipients(path, on_skip=lambda *args: skipped.append(args), **filters)]
    return sent, skipped


def test_the_example_list_mails_each_subscribed_person_once() -> None:
    sent, skipped = select(EXAMPLE)

    assert sent == ["ada@example.com", "grace@example.org", "katherine@example.org", "edsger@example.com"]
    assert skipped == [("alan@example.com", "unsubscribed", 4), ("Ada@EXAMPLE.com", "duplicate", 7),
                       ("bounce@example.org", "bounced", 8)]
    assert {reason for _, reason, _ in skipped} <= set(SKIP_REASONS)


def test_recipients_carry_their_merge_fields_and_line() -> None:
    ada = next(select_recipients(EXAMPLE))

    assert ada.key == "ada@example.com"
    assert ada.name == "Ada Lovelace"
    assert ada.tags == ("founders", "readers")
    assert ada.fields["city"] == "London"
    assert ada.fields["subscribed_at"] == "2026-01-05"
    assert ada.line == 2


def test_tags_and_where_select_a_segment_and_only_the_segment_reports_skips() -> None:
    sent, skipped = select(EXAMPLE, tags=["READERS"], where={"City": "london"})

    assert sent == ["ada@example.com"]
    assert skipped == [("Ada@EXAMPLE.com", "duplicate", 7)]


def test_every_tag_must_match() -> None:
    sent, _ = select(EXAMPLE, tags=["founders", "readers"])
    assert sent == ["ada@example.com"]


def test_a_filter_on_a_missing_column_is_an_error_not_an_empty_send() -> None:
    with pytest.raises(NewsletterError, match=r"no row has a column 'cty' to filter on: the list's columns are "
                                              r"email, .*city.* \(did you mean --where city=\.\.\.\?\)"):
        select_recipients(EXAMPLE, where={"cty": "London"})


def test_an_address_unsubscribed_on_any_row_is_never_mailed(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text("email,status\nada@example.com,subscribed\ngrace@example.org,subscribed\n"
                    "ADA@example.com,unsubscribed\nGrace@Example.org,complained\n")

    sent, skipped = select(path)

    assert sent == []
    assert skipped == [("ada@example.com", "unsubscribed", 2), ("grace@example.org", "complained", 3),
                       ("ADA@example.com", "unsubscribed", 4), ("Grace@Example.org", "complained", 5)]


def test_invalid_addresses_and_unknown_statuses_are_skipped_as_invalid(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text("email,name,status\nnot-an-address,X,subscribed\nada@example.com,Ada,subscribd\n"
                    ",Nobody,subscribed\n,,\ngrace@example.org,Grace,\n")

    sent, skipped = select(path)

    assert sent == ["grace@example.org"]  # an empty status cell means subscribed
    assert skipped == [("not-an-address", "invalid", 2), ("ada@example.com", "invalid", 3), ("", "invalid", 4)]


def test_a_list_without_status_column_is_all_subscribed(tmp_path: Path) -> None:
    path = tmp_path / "plain.csv"
    path.write_text("Email\nada@example.com\nüser@bücher.example\n")

    assert select(path) == (["ada@example.com", "üser@bücher.example"], [])


def test_a_broken_row_fails_before_the_first_recipient(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text("email,name\nada@example.com,Ada\n" * 1 + "grace@example.org,Grace,extra\n")

    with pytest.raises(NewsletterError, match=r"list.csv:3: this row has 3 fields but the header has 2"):
        select_recipients(path)


def test_a_missing_list_names_the_lists_there_are(tmp_path: Path) -> None:
    (tmp_path / "weekly.csv").write_text("email\n")
    with pytest.raises(NewsletterError, match=r"weakly.csv: no such list \(did you mean 'weekly'\?\)"):
        select_recipients(tmp_path / "weakly.csv")


def test_stats_count_what_a_send_would_do() -> None:
    stats = list_stats(EXAMPLE)

    assert stats.rows == 7
    assert stats.recipients == 4 == len(select(EXAMPLE)[0])
    assert stats.by_status == {"subscribed": 5, "unsubscribed": 1, "bounced": 1}
    assert stats.by_tag == {"readers": 6, "founders": 2}
    assert (stats.duplicates, stats.invalid) == (1, 0)


def test_a_send_reads_the_same_selection_as_journal_rows_with_only_the_fields_it_uses(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text("email,name,status,tags,city\n"
                    " Ada@Example.com ,  Ada ,subscribed,readers, London \n"
                    "grace@example.org,Grace,Subscribed ,founders,Arlington\n"
                    "ada@example.com,Ada again,,readers,Paris\n"
                    "mary@example.net,Mary,subscribed,readers,Leeds\n"
                    "MARY@example.net,,unsubscribed,,\n"
                    "not-an-address,X,subscribed,readers,\n")
    skipped: list[tuple[str, str, int]] = []

    rows = list(select_rows(path, columns=["city", "country"], tags=["Readers"],
                            on_skip=lambda *args: skipped.append(args)))

    # The merge fields come as the JSON text the journal keeps (what json.dumps would write).
    assert rows == [("ada@example.com", "Ada@Example.com", "Ada", '{"city": "London", "country": ""}')]
    assert skipped == [("ada@example.com", "duplicate", 4), ("mary@example.net", "unsubscribed", 5),
                       ("not-an-address", "invalid", 7)]
    everyone = [(key, email) for key, email, _, fields in select_rows(path) if fields == ""]
    assert everyone == [(r.key, r.email) for r in select_recipients(path)] == [
        ("ada@example.com", "Ada@Example.com"), ("grace@example.org", "grace@example.org")]
    assert [key for key, *_ in select_rows(path, where={"CITY": " arlington"})] == ["grace@example.org"]


def test_a_send_fails_on_a_broken_row_before_its_first_journal_row(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text("email,status\nada@example.com,subscribed\ngrace@example.org,\"subscribed\n"
                    "mary@example.net,subscribed\n")

    with pytest.raises(NewsletterError, match=r"list.csv:3: a quote .* is never closed"):
        select_rows(path)
