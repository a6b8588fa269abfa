"""The static web archive: a page per issue, an index newest first, an Atom feed with absolute links,
and nothing about any subscriber."""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from click.testing import CliRunner

from newsletter.archive import write_archive
from newsletter.build import SAMPLE_RECIPIENT
from newsletter.cli import main
from newsletter.config import load_settings
from newsletter.content import load_issue
from newsletter.errors import NewsletterError

ATOM = "{http://www.w3.org/2005/Atom}"
PIXEL_PNG = bytes.fromhex("89504e470d0a1a0a")  # enough for a copy: the archive does not read images


@pytest.fixture
def two_issues(newsletter_root: Path, example_issue: Path) -> tuple[Path, Path]:
    """The example issue and an older one with an image beside its article."""
    older = newsletter_root / "issues" / "2026-10-01-zeroth-dispatch"
    older.mkdir()
    (older / "issue.md").write_text(
        "---\nsubject: The Zeroth Dispatch\npreheader: Before the first.\ndate: 2026-10-01\n"
        "articles:\n- photo-story.md\n---\n\nHello {{ subscriber.name | default('reader') }}!\n", encoding="utf-8")
    (older / "photo-story.md").write_text(
        "---\ntitle: A story with a photo\nimage: photo.png\nimage_alt: A grey square\n---\n\n"
        "See the ![diagram](img/diagram.png) and [the first issue](../2026-11-25-first-dispatch/).\n",
        encoding="utf-8")
    (older / "photo.png").write_bytes(PIXEL_PNG)
    (older / "img").mkdir()
    (older / "img" / "diagram.png").write_bytes(PIXEL_PNG)
    return example_issue, older


def subscriber_strings(root: Path) -> set[str]:
    """Every address and name in every list: none may be published."""
    found = {SAMPLE_RECIPIENT["email"], SAMPLE_RECIPIENT["name"]}
    for path in (root / "subscribers").glob("*.csv"):
        with path.open(encoding="utf-8-sig", newline="") as handle:
            for row in csv.DictReader(handle):
                found.update(v for k, v in row.items() if k in ("email", "name") and v)
    return found


def test_archive_writes_a_page_per_issue_an_index_newest_first_and_a_feed(settings, two_issues, tmp_path):
    newest, older = two_issues
    site = tmp_path / "site"
    archive = write_archive(settings, site)

    assert [i.name for i in archive.issues] == [newest.name, older.name]
    for folder in (newest, older):
        page = site / folder.name / "index.html"
        assert page.is_file()
        assert load_issue(folder).subject.split(":")[0] in page.read_text(encoding="utf-8")
    assert (site / older.name / "photo.png").read_bytes() == PIXEL_PNG
    assert (site / older.name / "img" / "diagram.png").is_file()
    older_page = (site / older.name / "index.html").read_text(encoding="utf-8")
    assert f'src="{settings.base_url}{older.name}/photo.png"' in older_page  # where the copy now lives

    index = (site / "index.html").read_text(encoding="utf-8")
    links = re.findall(r"<li><time[^>]*>[^<]*</time><a href=\"([^\"]+)\">", index)
    assert links == [f"{newest.name}/", f"{older.name}/"]
    assert 'type="application/atom+xml"' in index


def test_feed_is_atom_with_absolute_links(settings, two_issues, tmp_path):
    newest, older = two_issues
    archive = write_archive(settings, tmp_path / "site")
    feed = ET.parse(archive.feed).getroot()

    assert feed.tag == f"{ATOM}feed"
    for required in ("id", "title", "updated", "author"):
        assert feed.find(f"{ATOM}{required}") is not None, required
    assert feed.find(f"{ATOM}link[@rel='self']").get("href") == f"{settings.base_url}feed.xml"
    entries = feed.findall(f"{ATOM}entry")
    assert [e.findtext(f"{ATOM}title") for e in entries] == [load_issue(newest).subject, "The Zeroth Dispatch"]
    for entry in entries:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT00:00:00Z", entry.findtext(f"{ATOM}updated"))
        assert entry.findtext(f"{ATOM}id").startswith(settings.base_url)
        assert entry.find(f"{ATOM}content").get("type") == "html"
    hrefs = [link.get("href") for link in feed.iter(f"{ATOM}link")]
    assert f"{settings.base_url}{older.name}/" in hrefs
    assert all(h.startswith("https://") for h in hrefs)
    content = "".join(e.findtext(f"{ATOM}content") for e in entries)
    for url in re.findall(r'(?:href|src)="([^"]*)"', content):
        assert url.startswith(("https://", "mailto:", "#")), url


def test_nothing_personal_is_published(settings, two_issues, tmp_path, newsletter_root):
    archive = write_archive(settings, tmp_path / "site")
    published = "\n".join(p.read_text(encoding="utf-8") for p in archive.out_dir.rglob("*")
                          if p.suffix in (".html", ".xml"))
    for value in subscriber_strings(newsletter_root):
        assert value not in published, value
    assert "NLMRG" not in published  # no merge token left
    assert "token=" not in published and "unsubscribe?" not in published.lower()
    assert "Hello reader!" in published and "Hi there" in published  # fallbacks, not a person's name


def test_rewriting_an_archive_is_allowed_but_a_foreign_folder_is_not(settings, two_issues, tmp_path):
    site = tmp_path / "site"
    write_archive(settings, site)
    write_archive(settings, site)  # its own output: rebuilt in place
    foreign = tmp_path / "documents"
    foreign.mkdir()
    (foreign / "taxes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(NewsletterError, match="not empty"):
        write_archive(settings, foreign)
    assert [p.name for p in foreign.iterdir()] == ["taxes.txt"]


def test_a_broken_issue_stops_the_archive_before_anything_is_written(settings, two_issues, tmp_path):
    _, older = two_issues
    (older / "photo-story.md").write_text("---\ntitle: [unclosed\n---\nbody\n", encoding="utf-8")
    with pytest.raises(NewsletterError, match="photo-story.md"):
        write_archive(settings, tmp_path / "site")
    assert not (tmp_path / "site").exists()


def test_cli_archive_writes_site_by_default(newsletter_root, two_issues):
    result = CliRunner().invoke(main, ["archive"])
    assert result.exit_code == 0, result.output
    assert (newsletter_root / "site" / "feed.xml").is_file()
    assert "Archived 2 issues" in result.output and "https://newsletter.example.com/" in result.output


def test_cli_archive_needs_a_base_url(newsletter_root, example_issue, tmp_path):
    toml = newsletter_root / "newsletter.toml"
    toml.write_text(re.sub(r"(?m)^base_url = .*\n", "", toml.read_text(encoding="utf-8")), encoding="utf-8")
    assert load_settings(newsletter_root).base_url == ""
    result = CliRunner().invoke(main, ["archive", "--out", str(tmp_path / "site")])
    assert result.exit_code == 2
    assert "base_url" in result.output
    assert not (tmp_path / "site").exists()


def test_an_issue_folder_without_issues_says_how_to_start(newsletter_root, tmp_path):
    shutil.rmtree(newsletter_root / "issues")
    result = CliRunner().invoke(main, ["archive", "--out", str(tmp_path / "site")])
    assert result.exit_code == 2
    assert "no issues to archive" in result.output and "newsletter new" in result.output
