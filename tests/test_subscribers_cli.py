"""`newsletter subscribers ...`: each command as a writer uses it, on a copy of the example newsletter."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from newsletter.cli import main
from newsletter.lists import neutralize, validate_list

EXAMPLE_ROWS = (Path(__file__).resolve().parent.parent / "subscribers" / "example.csv").read_bytes()


def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["subscribers", *args])


@pytest.fixture
def example(newsletter_root: Path) -> Path:
    return newsletter_root / "subscribers" / "example.csv"


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def test_add_creates_the_list_then_updates_instead_of_duplicating(newsletter_root: Path) -> None:
    weekly = newsletter_root / "subscribers" / "weekly.csv"

    first = run("add", "ada@example.com", "--list", "weekly", "--name", "Ada", "--tag", "founders",
                "--field", "city=London")
    again = run("add", "ADA@example.com", "--list", "weekly", "--tag", "founders")
    more = run("add", "ada@example.com", "--list", "weekly", "--tag", "readers", "--field", "plan=gold")

    assert first.exit_code == 0, first.output
    assert first.stdout == "Added ada@example.com to subscribers/weekly.csv.\n"
    assert again.stdout == "ADA@example.com is already subscribed in subscribers/weekly.csv; nothing changed.\n"
    assert more.stdout == "Updated ada@example.com in subscribers/weekly.csv.\n"
    [ada] = rows(weekly)
    assert ada["email"] == "ada@example.com"
    assert (ada["name"], ada["status"], ada["tags"], ada["city"], ada["plan"]) == (
        "Ada", "subscribed", "founders;readers", "London", "gold")
    assert ada["subscribed_at"]


def test_add_resubscribes_someone_who_left(example: Path) -> None:
    result = run("add", "alan@example.com", "--list", "example")

    assert result.stdout == "Re-subscribed alan@example.com in subscribers/example.csv.\n"
    assert rows(example)[2]["status"] == "subscribed"


def test_add_refuses_an_invalid_address_without_a_traceback(example: Path) -> None:
    result = run("add", "ada@@example.com", "--list", "example")

    assert result.exit_code == 2
    assert "Error: 'ada@@example.com' is not a valid email address" in result.stderr
    assert "Traceback" not in result.output
    assert example.read_bytes() == EXAMPLE_ROWS


@pytest.mark.parametrize(("args", "message"), [
    (["--list", "weekly", "--field", "nocolon"], "'nocolon' is not KEY=VALUE (for example city=London)"),
    (["--list", "../escape"], "'../escape' is not a list name"),
])
def test_add_refuses_bad_options(newsletter_root: Path, args: list[str], message: str) -> None:
    result = run("add", "ada@example.com", *args)

    assert result.exit_code == 2
    assert message in result.output
    assert not (newsletter_root / "escape.csv").exists()
    assert not (newsletter_root / "subscribers" / "weekly.csv").exists()


def test_unsubscribe_keeps_the_row_and_changes_nothing_else(example: Path) -> None:
    result = run("unsubscribe", "Grace@Example.org", "--list", "example")

    assert result.exit_code == 0
    assert result.stdout == "Unsubscribed Grace@Example.org in subscribers/example.csv.\n"
    expected = EXAMPLE_ROWS.replace(b"grace@example.org,Grace Hopper,subscribed,",
                                    b"grace@example.org,Grace Hopper,unsubscribed,")
    assert example.read_bytes() == expected


def test_unsubscribe_leaves_a_bounce_a_bounce(example: Path) -> None:
    result = run("unsubscribe", "bounce@example.org", "--list", "example")

    assert result.stdout == "bounce@example.org is already bounced in subscribers/example.csv; nothing changed.\n"
    assert example.read_bytes() == EXAMPLE_ROWS


def test_unsubscribe_of_an_unknown_address_says_so(example: Path) -> None:
    result = run("unsubscribe", "nobody@example.com", "--list", "example")

    assert result.exit_code == 2
    assert "subscribers/example.csv: 'nobody@example.com' is not on this list" in result.stderr


def test_remove_erases_every_row_of_the_address(example: Path) -> None:
    result = run("remove", "ada@example.com", "--list", "example")

    assert result.stdout == "Removed ada@example.com from subscribers/example.csv (2 rows).\n"
    assert b"ada@example.com" not in example.read_bytes().lower()
    assert len(rows(example)) == 5


def test_commands_on_a_missing_list_suggest_the_right_one(newsletter_root: Path) -> None:
    result = run("list", "--list", "exmaple")

    assert result.exit_code == 2
    assert "subscribers/exmaple.csv: no such list (did you mean 'example'?)" in result.stderr


def test_list_prints_matching_rows_with_their_lines(example: Path) -> None:
    result = run("list", "--list", "example", "--tag", "readers", "--where", "city=london")

    assert result.stdout.splitlines() == [
        "     2  ada@example.com  Ada Lovelace  subscribed  founders;readers",
        "     7  Ada@EXAMPLE.com  Ada (duplicate row)  subscribed  readers",
    ]
    assert result.stderr == "2 rows of subscribers/example.csv matched.\n"


def test_list_by_status(example: Path) -> None:
    result = run("list", "--list", "example", "--status", "unsubscribed", "--status", "bounced")
    assert [line.split()[1] for line in result.stdout.splitlines()] == ["alan@example.com", "bounce@example.org"]


def test_stats(example: Path) -> None:
    result = run("stats", "--list", "example")

    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "subscribers/example.csv: 7 rows, 4 would receive mail"
    assert [line.split() for line in lines[1:]] == [
        ["subscribed", "5"], ["unsubscribed", "1"], ["bounced", "1"], ["complained", "0"], ["duplicates", "1"],
        ["invalid", "0"], ["tags"], ["readers", "6"], ["founders", "2"]]


def test_export_neutralises_formulas_for_spreadsheets(example: Path, newsletter_root: Path) -> None:
    run("add", "eve@example.com", "--list", "example", "--name", "=HYPERLINK(\"http://evil.example\",\"x\")",
        "--field", "city=+1 555", "--field", "note=@SUM(A1)", "--tag", "-readers")
    run("add", "tab@example.com", "--list", "example", "--name", "\tTab", "--field", "city=\rCR")
    with example.open("a") as handle:  # a hand edit: a cell starting with CR, another with a tab
        handle.write('cr@example.com,"\r=1+1",subscribed,,,\t@x,\n')
    out = newsletter_root / "export.csv"

    result = run("export", "--list", "example", "--out", "export.csv")

    assert result.exit_code == 0, result.output
    assert result.stderr == "Exported 10 rows of subscribers/example.csv to export.csv.\n"
    assert out.read_bytes().startswith(b"\xef\xbb\xbfemail,name,status")  # Excel reads it as UTF-8
    exported = {row["email"]: row for row in rows(out)}
    eve = exported["eve@example.com"]
    assert eve["name"] == "'=HYPERLINK(\"http://evil.example\",\"x\")"
    assert (eve["city"], eve["note"], eve["tags"]) == ("'+1 555", "'@SUM(A1)", "'-readers")
    assert (exported["tab@example.com"]["name"], exported["tab@example.com"]["city"]) == ("Tab", "CR")  # trimmed
    assert (exported["cr@example.com"]["name"], exported["cr@example.com"]["city"]) == ("'=1+1", "'@x")
    assert exported["ada@example.com"]["name"] == "Ada Lovelace"  # ordinary cells are untouched


@pytest.mark.parametrize(("cell", "shown"), [
    ("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@A1", "'@A1"), ("\t=1", "'\t=1"), ("\r=1", "'\r=1"),
    ("a=1", "a=1"), ("", ""), ("Ada", "Ada"),
])
def test_neutralize(cell: str, shown: str) -> None:
    assert neutralize(cell) == shown


def test_export_refuses_to_overwrite_unless_forced(example: Path, newsletter_root: Path) -> None:
    (newsletter_root / "out.json").write_text("keep me")

    refused = run("export", "--list", "example", "--out", "out.json", "--format", "json")
    forced = run("export", "--list", "example", "--out", "out.json", "--format", "json", "--force",
                 "--status", "subscribed", "--tag", "founders")

    assert refused.exit_code == 2
    assert "out.json: already exists (add --force to replace it)" in refused.stderr
    assert forced.exit_code == 0
    data = json.loads((newsletter_root / "out.json").read_text())
    assert [d["email"] for d in data] == ["ada@example.com", "katherine@example.org"]
    assert data[0] == {"email": "ada@example.com", "name": "Ada Lovelace", "status": "subscribed",
                       "tags": "founders;readers", "subscribed_at": "2026-01-05", "city": "London"}


def test_export_to_standard_output(example: Path) -> None:
    result = run("export", "--list", "example", "--where", "city=Hampton")
    assert list(csv.reader(io.StringIO(result.stdout))) == [
        ["email", "name", "status", "tags", "subscribed_at", "city"],
        ["katherine@example.org", "Katherine Johnson", "subscribed", "founders", "2026-03-15", "Hampton"]]


def test_validate_reports_every_problem_with_its_line_and_exits_1(newsletter_root: Path) -> None:
    path = newsletter_root / "subscribers" / "messy.csv"
    path.write_text(
        "email,name,status,subscribed_at\n"
        "ada@example.com,Ada,subscribed,2026-01-05\n"
        "ada@example..com,Typo,subscribed,2026-01-05\n"
        "ADA@example.com,Again,subscribed,2026-01-06\n"
        "Ada@Example.com,Left,unsubscribed,\n"
        "grace@example.org,Grace,subscirbed,2026-13-01\n"
        "katherine@example.org,Katherine\n"
        "\n"
        "\"edsger@example.com\",Edsger,unsubscribed,2026-04-01T10:00:00Z\n"
    )

    result = run("validate", "--list", "messy")

    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        ("subscribers/messy.csv:3: invalid address 'ada@example..com': "
         "An email address cannot have two periods in a row."),
        "subscribers/messy.csv:4: duplicate address 'ADA@example.com', same as line 2 (keep one row per address)",
        ("subscribers/messy.csv:5: duplicate address 'Ada@Example.com', same as line 2; 'unsubscribed' wins, "
         "so it receives no mail (keep one row per address)"),
        "subscribers/messy.csv:6: unknown status 'subscirbed' (did you mean 'subscribed'?)",
        "subscribers/messy.csv:6: subscribed_at '2026-13-01' is not a date (write it as YYYY-MM-DD)",
        ("subscribers/messy.csv:7: this row has 2 fields but the header has 4 "
         "(every row needs 3 separators ','; quote values that contain one)"),
    ]
    assert result.stderr == ("Error: subscribers/messy.csv: 6 problems found "
                             "(fix the lines above, then validate again)\n")


def test_validate_a_clean_list(newsletter_root: Path) -> None:
    run("remove", "Ada@EXAMPLE.com", "--list", "example")
    run("add", "ada@example.com", "--list", "example")

    result = run("validate", "--list", "example")

    assert result.exit_code == 0
    assert result.stdout == "subscribers/example.csv: no problems found.\n"


class _NoSuchDomain:
    """A DNS resolver that knows one domain, so the test needs no network."""

    def resolve(self, domain: str, rtype: str):
        import dns.resolver

        if domain == "example.org" and rtype == "MX":
            class Mx:
                preference, exchange = 10, "mail.example.org."
            return [Mx()]
        raise dns.resolver.NXDOMAIN()


def test_validate_with_dns_asks_once_per_domain(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text("email\nada@example.org\ngrace@nowhere.example\nalan@nowhere.example\n")

    problems = list(validate_list(path, check_dns=True, dns_resolver=_NoSuchDomain()))

    assert [(p.line, p.message) for p in problems] == [
        (3, "domain 'nowhere.example' cannot receive mail: The domain name nowhere.example does not exist."),
        (4, "domain 'nowhere.example' cannot receive mail: The domain name nowhere.example does not exist."),
    ]


def test_addresses_are_stored_as_given_and_compared_normalized(newsletter_root: Path) -> None:
    first = run("add", "  Üser@Bücher.Example ", "--list", "intl")
    again = run("add", "üser@xn--bcher-kva.example", "--list", "intl", "--tag", "readers")

    assert first.exit_code == 0, first.output
    assert again.stdout == "Updated üser@xn--bcher-kva.example in subscribers/intl.csv.\n"
    [row] = rows(newsletter_root / "subscribers" / "intl.csv")
    assert (row["email"], row["tags"]) == ("Üser@Bücher.Example", "readers")
