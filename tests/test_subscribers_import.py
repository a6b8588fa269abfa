"""`newsletter subscribers import`: bringing a list over from another service, safely and repeatably."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from newsletter.cli import main
from newsletter.lists import import_subscribers

DATA = Path(__file__).resolve().parent / "data" / "subscribers"


def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["subscribers", *args])


def rows(path: Path) -> dict[str, dict[str, str]]:
    """The list's rows by lowercased address; of two rows for one address, the first."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        found: dict[str, dict[str, str]] = {}
        for row in csv.DictReader(handle):
            found.setdefault(row["email"].lower(), row)
        return found


@pytest.fixture
def example(newsletter_root: Path) -> Path:
    return newsletter_root / "subscribers" / "example.csv"


def test_a_mailchimp_export_with_mixed_statuses(example: Path) -> None:
    result = run("import", str(DATA / "mailchimp_members.csv"), "--list", "example")

    assert result.exit_code == 0, result.output
    out = result.stdout.splitlines()
    assert out[0] == "Recognised a Mailchimp export."
    assert out[1].startswith("Ignored columns: Address, Phone Number, MEMBER_RATING, OPTIN_IP,")
    assert out[2] == ("1 address the file says subscribed stays unsubscribed, bounced or complained "
                      "as the list says (--resubscribe overrides).")
    assert out[3] == "subscribers/example.csv: 3 added, 2 updated, 1 unchanged, 3 rejected."
    source = str(DATA / "mailchimp_members.csv")
    assert result.stderr.splitlines() == [
        f"{source}:6: rejected: 'pending@example.com' is not a confirmed subscriber (status 'pending')",
        f"{source}:7: rejected: invalid address 'not-an-email': An email address must have an @-sign.",
        f"{source}:9: rejected: duplicate of line 4 in this file",
    ]
    after = rows(example)
    assert after["alan@example.com"]["status"] == "unsubscribed"  # the list's unsubscribe wins
    assert after["grace@example.org"]["status"] == "unsubscribed"  # the export's unsubscribe is carried over
    assert after["babbage@example.co.uk"]["status"] == "bounced"  # "cleaned" is a bounce
    mary = after["mary@example.net"]
    assert (mary["name"], mary["status"], mary["tags"], mary["subscribed_at"]) == (
        "Mary Somerville", "subscribed", "scientists;readers", "2026-02-01")
    assert after["ada@example.com"]["tags"] == "founders;readers"  # merged, not duplicated
    assert after["sophie@example.fr"]["subscribed_at"] == "2026-06-12"
    assert "pending@example.com" not in after
    assert len(example.read_text().splitlines()) == 1 + 7 + 3  # header, the 7 rows, 3 new: nothing duplicated


def test_importing_the_same_export_twice_changes_nothing(example: Path) -> None:
    run("import", str(DATA / "mailchimp_members.csv"), "--list", "example")
    once = example.read_bytes()
    stamp = example.stat().st_mtime_ns

    again = run("import", str(DATA / "mailchimp_members.csv"), "--list", "example")

    assert again.stdout.splitlines()[-1] == "subscribers/example.csv: 0 added, 0 updated, 6 unchanged, 3 rejected."
    assert example.read_bytes() == once
    assert example.stat().st_mtime_ns == stamp  # not even rewritten


def test_resubscribe_overrides_the_lists_unsubscribes(example: Path) -> None:
    result = run("import", str(DATA / "mailchimp_members.csv"), "--list", "example", "--resubscribe")

    assert result.exit_code == 0
    assert rows(example)["alan@example.com"]["status"] == "subscribed"
    assert rows(example)["bounce@example.org"]["status"] == "bounced"  # not in the export: untouched


def test_mailchimps_unsubscribed_export_carries_its_unsubscribes(example: Path) -> None:
    result = run("import", str(DATA / "mailchimp_unsubscribed.csv"), "--list", "example")

    assert result.stdout.splitlines()[-1] == "subscribers/example.csv: 1 added, 1 updated, 0 unchanged, 0 rejected."
    after = rows(example)
    assert after["katherine@example.org"]["status"] == "unsubscribed"
    assert (after["hedy@example.com"]["name"], after["hedy@example.com"]["status"]) == ("Hedy Lamarr", "unsubscribed")


def test_a_substack_export(example: Path) -> None:
    result = run("import", str(DATA / "substack.csv"), "--list", "example")

    assert result.stdout.splitlines()[0] == "Recognised a Substack export."
    after = rows(example)
    assert (after["rosalind@example.com"]["tags"], after["rosalind@example.com"]["subscribed_at"]) == (
        "paid", "2026-01-10")
    assert after["ada@example.com"]["tags"] == "founders;readers;free"
    assert after["ada@example.com"]["subscribed_at"] == "2026-01-05"  # the first subscription date stays


def test_a_buttondown_export(example: Path) -> None:
    result = run("import", str(DATA / "buttondown.csv"), "--list", "example")

    assert result.stdout.splitlines()[0] == "Recognised a Buttondown export."
    assert "status 'unactivated'" in result.stderr
    after = rows(example)
    assert (after["emmy@example.de"]["tags"], after["emmy@example.de"]["status"]) == (
        "mathematicians;readers", "subscribed")
    assert after["lise@example.at"]["status"] == "unsubscribed"
    assert "dorothy@example.co.uk" not in after


def test_a_listmonk_export_with_attributes(example: Path) -> None:
    result = run("import", str(DATA / "listmonk.csv"), "--list", "example", "--map", "plan=plan")

    assert result.exit_code == 0, result.output
    assert "Ignored columns: uuid, updated_at (" in result.stdout
    after = rows(example)
    marie = after["marie@example.fr"]
    assert (marie["name"], marie["city"], marie["plan"], marie["status"]) == (
        "Marie Curie", "Paris", "gold", "subscribed")
    assert after["spam@example.com"]["status"] == "unsubscribed"  # blocklisted


def test_map_and_status_from_for_an_unknown_export(newsletter_root: Path) -> None:
    source = newsletter_root / "crm.csv"
    source.write_text("E-post;Namn;Stad;Läge;Status\nada@example.com;Ada;London;active;junk\n"
                      "grace@example.org;Grace;Arlington;opted_out;junk\nalan@example.com;Alan;;weird;junk\n",
                      encoding="utf-8")

    result = run("import", "crm.csv", "--list", "crm", "--map", "E-post=email", "--map", "Namn=name",
                 "--map", "Stad=city", "--status-from", "Läge")

    assert result.exit_code == 0, result.output
    assert result.stderr == ("crm.csv:4: rejected: unknown status 'weird' in column 'Läge' "
                             "(use --status-from COLUMN to read another column, or fix the file)\n")
    assert "Ignored columns: Status (" in result.stdout
    created = newsletter_root / "subscribers" / "crm.csv"
    assert created.read_text() == ("email,name,status,tags,subscribed_at,city\n"
                                   "ada@example.com,Ada,subscribed,,,London\n"
                                   "grace@example.org,Grace,unsubscribed,,,Arlington\n")


def test_a_map_naming_a_missing_column_suggests_the_right_one(example: Path) -> None:
    result = run("import", str(DATA / "substack.csv"), "--list", "example", "--map", "nmae=name")

    assert result.exit_code == 2
    assert "--map names a column 'nmae' this file does not have (did you mean 'name'?)" in result.stderr
    assert "Traceback" not in result.output


def test_a_file_without_an_email_column(newsletter_root: Path, example: Path) -> None:
    before = example.read_bytes()
    (newsletter_root / "people.csv").write_text("who,where\nAda,London\n")

    result = run("import", "people.csv", "--list", "example")

    assert result.exit_code == 2
    assert result.stderr == ("Error: people.csv:1: found no email column (columns: who, where) "
                             "(name it with --map 'COLUMN=email')\n")
    assert example.read_bytes() == before


def test_a_file_that_is_not_utf8(newsletter_root: Path) -> None:
    latin1 = "email,name\nada@example.com,Ada\nj@example.com,José\n".encode("latin-1")
    (newsletter_root / "latin1.csv").write_bytes(latin1)

    result = run("import", "latin1.csv", "--list", "example")

    assert result.exit_code == 2
    assert "latin1.csv:3: is not UTF-8 text (save it as UTF-8" in result.stderr


def test_dry_run_writes_nothing(example: Path, newsletter_root: Path) -> None:
    before = example.read_bytes()

    result = run("import", str(DATA / "mailchimp_members.csv"), "--list", "example", "--dry-run")
    fresh = run("import", str(DATA / "substack.csv"), "--list", "brand-new", "--dry-run")

    assert result.stdout.splitlines()[-1] == ("Dry run, nothing written to subscribers/example.csv: 3 added, "
                                              "2 updated, 1 unchanged, 3 rejected. Run without --dry-run to import.")
    assert example.read_bytes() == before
    assert "3 added" in fresh.stdout
    assert list((newsletter_root / "subscribers").glob("brand-new*")) == []  # not even a lock file


def test_the_library_reports_what_it_did(tmp_path: Path) -> None:
    target = tmp_path / "list.csv"
    report = import_subscribers(target, DATA / "listmonk.csv")

    assert (report.added, report.updated, report.unchanged, report.rejected) == (2, 0, 0, [])
    assert report.recognised == "listmonk"
    assert report.ignored_columns == ["uuid", "updated_at", "attributes.city", "attributes.plan"]
