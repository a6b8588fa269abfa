"""`newsletter digest FEED --issue-from TEMPLATE --list L`: a draft issue of the items not yet sent to the
list. Over a feed whose items change order, are edited and gain new ones, each reader gets each item once,
however often the digest is made again; nothing new, no digest."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from due_helpers import cli, due, send_over_smtp, write_readers

READERS = ["ada@example.com", "grace@example.org"]


def _feed(path: Path, items: list[tuple[str, str, str]]) -> str:
    """An Atom feed of (id, title, summary) items, in that order."""
    entries = "".join(
        f"<entry><id>https://site.example.com/{ident}</id><title>{title}</title>"
        f'<link href="https://site.example.com/{ident}"/><updated>2031-01-01T00:00:00Z</updated>'
        f'<summary type="html">&lt;p&gt;{summary}&lt;/p&gt;</summary></entry>' for ident, title, summary in items)
    path.write_text('<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
                    "<title>Site</title><id>https://site.example.com/</id><updated>2031-01-01T00:00:00Z</updated>"
                    f"{entries}</feed>", encoding="utf-8")
    return str(path)


def _items_received(handler, address: str) -> list[str]:
    """The titles of the digest items (article headings) in every message ``address`` received."""
    found = []
    for received in handler.received:
        if address in received.rcpt_tos:
            text = received.message().get_body(("plain",)).get_content()
            found += re.findall(r"^(Item \w+(?: \(edited\))?)\r?\n-+\r?$", text, flags=re.M)  # a heading
    return found


def _template(root: Path) -> Path:
    folder = root / "digest-template"
    folder.mkdir()
    (folder / "issue.md").write_text("---\nsubject: \"New on the site\"\npreheader: \"What is new\"\n---\n"
                                     "Hi {{ subscriber.name | default('there') }}, here is what is new.\n")
    return folder


def _digest_and_send(root: Path, feed: str, template: Path, when: dt.datetime):
    made = cli(root, "digest", feed, "--issue-from", str(template), "--list", "readers", "--at", when.isoformat())
    assert made.exit_code == 0, made.output
    if "no digest made" not in made.output:
        sent = due(root, when.timestamp() + 60)
        assert sent.exit_code == 0, sent.output
    return made


def test_each_reader_gets_each_item_once_as_the_feed_changes(newsletter_root, smtp_server):
    send_over_smtp(newsletter_root, smtp_server)
    write_readers(newsletter_root, "readers", READERS)
    template = _template(newsletter_root)
    feed = newsletter_root / "feed.xml"
    when = dt.datetime(2031, 1, 6, 9, 0, tzinfo=dt.UTC)

    first = _digest_and_send(newsletter_root, _feed(feed, [("a", "Item A", "first"), ("b", "Item B", "second")]),
                             template, when)
    assert "with 2 items not yet sent to list readers" in first.output
    # the feed changes: B moves first, A is edited, C is new; a digest made twice before it is sent
    changed = [("b", "Item B", "second"), ("a", "Item A (edited)", "first, edited"), ("c", "Item C", "third")]
    draft = cli(newsletter_root, "digest", _feed(feed, changed), "--issue-from", str(template), "--list", "readers")
    assert "with 1 item not yet sent to list readers" in draft.output and "Item C" in draft.output
    changed.append(("d", "Item D", "fourth"))
    rebuilt = _digest_and_send(newsletter_root, _feed(feed, changed), template, when + dt.timedelta(days=7))
    assert "Rebuilt" in rebuilt.output and "with 2 items" in rebuilt.output
    nothing = _digest_and_send(newsletter_root, _feed(feed, list(reversed(changed))), template,
                               when + dt.timedelta(days=14))
    assert "Nothing new in" in nothing.output and "no digest made" in nothing.output

    for reader in READERS:
        assert sorted(_items_received(smtp_server.handler, reader)) == ["Item A", "Item B", "Item C", "Item D"]
    assert len(smtp_server.handler.received) == 2 * len(READERS)  # two digests, each once per reader
    assert len(list((newsletter_root / "issues").glob("*new-on-the-site*"))) == 2


def test_a_feed_that_is_not_one_is_said_with_the_fix(newsletter_root, tmp_path):
    page = tmp_path / "page.html"
    page.write_text("<html><body><p>not a feed</p></body></html>")
    template = _template(newsletter_root)
    result = cli(newsletter_root, "digest", str(page), "--issue-from", str(template), "--list", "example")
    assert result.exit_code == 2 and "is not an Atom or RSS feed" in result.output
    missing = cli(newsletter_root, "digest", str(tmp_path / "gone.xml"), "--issue-from", str(template),
                  "--list", "example")
    assert missing.exit_code == 2 and "cannot read the feed" in missing.output
