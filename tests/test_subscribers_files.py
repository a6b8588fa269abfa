"""List files a writer can trust: hand-edit quirks read right, writes are atomic, locked and minimal."""

from __future__ import annotations

import datetime
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from journal_reading import said_line

from newsletter.errors import NewsletterError
from newsletter.lists import (
    add_subscriber,
    list_columns,
    normalize_key,
    remove_subscriber,
    select_recipients,
    set_status,
    unsubscribe,
)

# A list as a spreadsheet on Windows saves it, then edited by hand: byte-order mark, ';' between
# cells, CRLF line endings, a quoted cell holding a line break and a ';', blank lines, an unknown
# column, trailing spaces, and a row with one empty cell too many.
QUIRKY = (
    "\ufeffemail;name;status;tags;city\r\n"
    "ada@example.com;Ada Lovelace;subscribed;founders;London\r\n"
    "\r\n"
    "grace@example.org;\"Grace Hopper\r\nRear Admiral; USN\";subscribed;readers;Arlington\r\n"
    "\r\n"
    "  katherine@example.org ;Katherine Johnson;Subscribed;readers;Hampton;\r\n"
    "alan@example.com;Alan Turing;unsubscribed;readers;Manchester\r\n"
).encode("utf-8")


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def test_a_hand_edited_list_reads_correctly(tmp_path: Path) -> None:
    path = write(tmp_path / "quirky.csv", QUIRKY)

    recipients = list(select_recipients(path))

    assert [(r.email, r.line) for r in recipients] == [
        ("ada@example.com", 2), ("grace@example.org", 4), ("katherine@example.org", 7)]
    grace = recipients[1]
    assert grace.name == "Grace Hopper\r\nRear Admiral; USN"
    assert grace.fields == {"email": "grace@example.org", "name": "Grace Hopper\r\nRear Admiral; USN",
                            "status": "subscribed", "tags": "readers", "city": "Arlington"}
    assert recipients[2].status == "subscribed"
    assert list_columns(path) == ["email", "name", "status", "tags", "city"]


def test_a_write_keeps_the_dialect_and_every_untouched_byte(tmp_path: Path) -> None:
    path = write(tmp_path / "quirky.csv", QUIRKY)

    assert add_subscriber(path, "mary@example.net", name="Mary Somerville", tags=["readers"]) == "added"

    data = path.read_bytes()
    assert data.startswith(QUIRKY)  # the mark, the blank lines, the quoted line break: all as they were
    new_row = data[len(QUIRKY):].decode("utf-8")
    assert new_row == "mary@example.net;Mary Somerville;subscribed;readers;\r\n"


def test_changing_one_row_rewrites_only_that_row(tmp_path: Path) -> None:
    path = write(tmp_path / "quirky.csv", QUIRKY)

    assert unsubscribe(path, "ADA@example.com") == "subscribed"

    expected = QUIRKY.replace(b"ada@example.com;Ada Lovelace;subscribed;",
                              b"ada@example.com;Ada Lovelace;unsubscribed;")
    assert path.read_bytes() == expected


def test_a_file_without_a_final_line_break_gets_one_before_a_new_row(tmp_path: Path) -> None:
    path = write(tmp_path / "short.csv", "email,name\nada@example.com,Ada")

    add_subscriber(path, "grace@example.org", name="Grace")

    assert path.read_text() == "email,name\nada@example.com,Ada\ngrace@example.org,Grace\n"


def test_a_new_list_is_created_with_a_header(tmp_path: Path) -> None:
    path = tmp_path / "subscribers" / "weekly.csv"

    add_subscriber(path, "ada@example.com", fields={"city": "London"}, today=datetime.date(2026, 1, 2))

    assert path.read_text() == ("email,name,status,tags,subscribed_at,city\n"
                                "ada@example.com,,subscribed,,2026-01-02,London\n")
    umask = os.umask(0o022)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # like any new file, not a private temp file


@pytest.mark.parametrize(("content", "line", "words"), [
    (b"name,status\nAda,subscribed\n", 1, ["no 'email' column", "the header has: name, status"]),
    (b"email,name\nada@example.com,Ada\ngrace@example.org,Gr\xe2ce\n", 3, ["not UTF-8", "CSV UTF-8"]),
    (b"email,name,city\nada@example.com,Ada,London\ngrace@example.org,Grace\n", 3,
     ["2 fields but the header has 3", "every row needs 2 separators"]),
    (b"email,name,email\nada@example.com,Ada,x\n", 1, ["names the column 'email' twice"]),
    (b"email,name\nada@example.com,\"Ada\n" + b"x" * (1 << 20) + b"\n", 2,
     ["quote (\") opened in this row is never closed", "close the quote"]),
    (b"", None, ["is empty", "header"]),
])
def test_an_unreadable_list_names_file_line_and_fix_and_nothing_is_written(
        tmp_path: Path, content: bytes, line: int | None, words: list[str]) -> None:
    path = write(tmp_path / "broken.csv", content)

    for attempt in (lambda: list(select_recipients(path)),
                    lambda: set_status(path, {normalize_key("ada@example.com"): "unsubscribed"})):
        with pytest.raises(NewsletterError) as caught:
            attempt()
        message = str(caught.value)
        assert message.startswith(f"{path}:{line}: " if line else f"{path}: "), message
        for word in words:
            assert word in message
    assert path.read_bytes() == content
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []


def test_set_status_changes_every_row_of_an_address_and_reports_the_count(tmp_path: Path) -> None:
    path = write(tmp_path / "list.csv", "email,status\nada@example.com,subscribed\nAda@Example.COM,\n"
                                        "grace@example.org,subscribed\n")

    changed = set_status(path, {normalize_key("ADA@example.com"): "bounced", "nobody@example.com": "bounced"})

    assert changed == 2
    assert path.read_text() == ("email,status\nada@example.com,bounced\nAda@Example.COM,bounced\n"
                                "grace@example.org,subscribed\n")
    before = path.stat().st_mtime_ns
    assert set_status(path, {normalize_key("ada@example.com"): "bounced"}) == 0
    assert path.stat().st_mtime_ns == before  # nothing to change: the file is not rewritten


def test_set_status_adds_a_status_column_to_a_list_without_one(tmp_path: Path) -> None:
    path = write(tmp_path / "plain.csv", "email\nada@example.com\ngrace@example.org\n")

    assert set_status(path, {"grace@example.org": "complained"}) == 1

    assert path.read_text() == "email,status\nada@example.com,\ngrace@example.org,complained\n"
    assert [r.email for r in select_recipients(path)] == ["ada@example.com"]


def test_set_status_refuses_a_status_outside_the_vocabulary(tmp_path: Path) -> None:
    path = write(tmp_path / "list.csv", "email,status\nada@example.com,subscribed\n")
    with pytest.raises(NewsletterError, match="unknown status 'gone'"):
        set_status(path, {"ada@example.com": "gone"})


def test_remove_deletes_only_that_address(tmp_path: Path) -> None:
    path = write(tmp_path / "list.csv", "email,name\r\nada@example.com,Ada\r\nADA@example.com,Ada again\r\n"
                                        "grace@example.org,Grace\r\n")

    assert remove_subscriber(path, "ada@EXAMPLE.com") == 2

    assert path.read_bytes() == b"email,name\r\ngrace@example.org,Grace\r\n"


def test_a_write_keeps_the_file_permissions(tmp_path: Path) -> None:
    path = write(tmp_path / "list.csv", "email\nada@example.com\n")
    path.chmod(0o640)

    add_subscriber(path, "grace@example.org")

    assert path.stat().st_mode & 0o777 == 0o640


def _big_list(path: Path, rows: int) -> bytes:
    lines = ["email,name,status,tags,city"]
    lines += [f"reader{i}@example.com,Reader {i},subscribed,readers,Paris" for i in range(rows)]
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(data)
    return data


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGINT], ids=["killed", "ctrl-c"])
def test_a_write_stopped_halfway_leaves_the_old_file_intact(tmp_path: Path, signum: int) -> None:
    path = tmp_path / "big.csv"
    original = _big_list(path, 100_000)
    # The edit every change to a list goes through (set_status's, here: every second reader unsubscribed),
    # which halfway through the rewrite says so and waits to be stopped: stopped there, not at a moment
    # a loaded machine happens to reach.
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import signal, sys
        from pathlib import Path
        from newsletter.lists.csvfile import rewrite_list

        # Ctrl-C as at a terminal, even when the tests were started in the background of a script
        # (which leaves SIGINT ignored in every child, so the signal would never arrive)
        signal.signal(signal.SIGINT, signal.default_int_handler)

        def unsubscribe_every_second(rewrite, rows):
            for n, (record, cells) in enumerate(rows):
                if cells is not None and n % 2 == 0:
                    cells[2] = "unsubscribed"
                    yield rewrite.row(cells)
                else:
                    yield record.raw
                if n == 50_000:
                    print("halfway", flush=True)
                    sys.stdin.readline()  # the test never writes: this waits for the signal

        rewrite_list(Path({str(path)!r}), unsubscribe_every_second)
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        said_line(child.stdout, "halfway", 60)
        assert [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")], "no new file was being written"
        os.kill(child.pid, signum)
        child.wait(60)
    finally:
        child.kill()
        child.wait()
        child.stdin.close()

    assert path.read_bytes() == original
    leftovers = [p.name for p in tmp_path.iterdir() if p.name not in ("big.csv", "big.csv.lock")]
    if signum == signal.SIGINT:
        assert leftovers == []  # Ctrl-C cleans up its temporary file
    else:  # a killed process cannot; what it leaves is never mistaken for a list
        assert all(name.startswith(".big.csv.") and name.endswith(".tmp") for name in leftovers)
    # The stopped writer's lock went with it: the next write goes through.
    assert set_status(path, {"reader1@example.com": "bounced"}) == 1


def test_two_writers_at_once_lose_nothing(tmp_path: Path) -> None:
    path = write(tmp_path / "shared.csv", "email,name,status,tags,subscribed_at\n")
    script = textwrap.dedent("""
        import sys
        from pathlib import Path
        from newsletter.lists import add_subscriber
        for i in range(25):
            add_subscriber(Path(sys.argv[1]), f"{sys.argv[2]}{i}@example.com")
    """)
    writers = [subprocess.Popen([sys.executable, "-c", script, str(path), prefix]) for prefix in ("left", "right")]
    for writer in writers:
        assert writer.wait(timeout=120) == 0

    emails = {r.email for r in select_recipients(path)}
    assert emails == {f"{side}{i}@example.com" for side in ("left", "right") for i in range(25)}
    assert (tmp_path / "shared.csv.lock").exists()


def test_a_send_reads_one_version_of_the_list_even_if_it_is_replaced_meanwhile(tmp_path: Path) -> None:
    path = write(tmp_path / "list.csv", "email,status\nada@example.com,subscribed\ngrace@example.org,subscribed\n")

    stream = select_recipients(path)
    first = next(stream)
    add_subscriber(path, "katherine@example.org")  # replaces the file while the send is under way
    rest = list(stream)

    assert [first.email] + [r.email for r in rest] == ["ada@example.com", "grace@example.org"]


def test_a_tab_separated_list_reads_and_stays_tab_separated(tmp_path: Path) -> None:
    path = write(tmp_path / "tabs.csv", "email\tname\tcity\nada@example.com\tAda\tLondon, UK\n")

    assert [(r.email, r.fields["city"]) for r in select_recipients(path)] == [("ada@example.com", "London, UK")]
    add_subscriber(path, "grace@example.org", name="Grace", fields={"city": "Arlington"})
    assert path.read_text() == ("email\tname\tcity\nada@example.com\tAda\tLondon, UK\n"
                                "grace@example.org\tGrace\tArlington\n")
