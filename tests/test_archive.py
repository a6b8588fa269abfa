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

from newsletter.cli import main
from newsletter.compose.build import SAMPLE_RECIPIENT
from newsletter.compose.content import load_issue
from newsletter.config import load_settings
from newsletter.errors import NewsletterError
from newsletter.looking.archive import write_archive

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
    with pytest.raises(NewsletterError, match=r"photo-story\.md"):
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


# -- what is published ---------------------------------------------------------------------------------

def _add_issue(root: Path, name: str, front: str) -> Path:
    folder = root / "issues" / name
    folder.mkdir()
    (folder / "issue.md").write_text(f"---\n{front}\narticles: []\n---\n\nHello.\n", encoding="utf-8")
    return folder


def _published(site: Path) -> tuple[str, str]:
    return (site / "index.html").read_text(encoding="utf-8"), (site / "feed.xml").read_text(encoding="utf-8")


def test_drafts_and_future_issues_stay_out_unless_asked(settings, newsletter_root, example_issue, tmp_path):
    _add_issue(newsletter_root, "2026-11-01-half-written", "subject: Half written\ndate: 2026-11-01\ndraft: true")
    _add_issue(newsletter_root, "2099-01-01-next-century", "subject: Next century\ndate: 2099-01-01")
    site = tmp_path / "site"

    archive = write_archive(settings, site)
    assert [i.name for i in archive.issues] == [example_issue.name]
    index, feed = _published(site)
    for hidden in ("Half written", "Next century", "2026-11-01-half-written", "2099-01-01-next-century"):
        assert hidden not in index and hidden not in feed
    assert not (site / "2026-11-01-half-written").exists() and not (site / "2099-01-01-next-century").exists()
    assert {item.name: item.reason.split(" ")[0] for item in archive.left_out} == {
        "2026-11-01-half-written": "draft:", "2099-01-01-next-century": "dated"}

    with_drafts = write_archive(settings, site, drafts=True)
    assert len(with_drafts.issues) == 3
    index, feed = _published(site)
    assert "Half written" in index and "Next century" in feed

    write_archive(settings, site)  # published once by mistake: the page goes when the issue is left out
    assert not (site / "2026-11-01-half-written").exists()
    assert "Half written" not in _published(site)[0]


def test_an_issue_dated_today_is_published(settings, newsletter_root, tmp_path):
    import datetime as dt

    today = dt.date(2027, 5, 4)
    _add_issue(newsletter_root, "2027-05-04-may-the-fourth", "subject: Fourth\ndate: 2027-05-04")
    archive = write_archive(settings, tmp_path / "site", today=today)
    assert archive.issues[0].name == "2027-05-04-may-the-fourth"
    tomorrow = write_archive(settings, tmp_path / "site", today=today - dt.timedelta(days=1))
    assert "2027-05-04-may-the-fourth" not in [i.name for i in tomorrow.issues]


def test_draft_must_be_true_or_false(newsletter_root, example_issue, tmp_path):
    _add_issue(newsletter_root, "2026-11-02-unsure", "subject: Unsure\ndate: 2026-11-02\ndraft: maybe")
    result = CliRunner().invoke(main, ["archive", "--out", str(tmp_path / "site")])
    assert result.exit_code == 2
    assert "'draft' must be true or false" in result.output and "2026-11-02-unsure" in result.output


def test_cli_archive_says_what_it_left_out_and_drafts_puts_it_back(newsletter_root, example_issue):
    _add_issue(newsletter_root, "2026-11-01-half-written", "subject: Half written\ndate: 2026-11-01\ndraft: true")
    result = CliRunner().invoke(main, ["archive"])
    assert result.exit_code == 0, result.output
    assert "left out 2026-11-01-half-written: draft: true" in result.output and "Archived 1 issue " in result.output
    result = CliRunner().invoke(main, ["archive", "--drafts"])
    assert result.exit_code == 0 and "Archived 2 issues" in result.output


def test_sent_only_publishes_the_issues_the_journal_shows_as_sent(sendgrid_newsletter, two_issues,
                                                                    spamassassin_standin, sendgrid_standin):
    newest, older = two_issues
    run = CliRunner().invoke
    assert run(main, ["send", str(newest), "--list", "example", "--yes"]).exit_code == 0
    assert run(main, ["send", str(older), "--test-to", "editor@example.com"]).exit_code == 0  # a test: not sent
    assert run(main, ["send", str(older), "--list", "example", "--dry-run"]).exit_code == 0  # nor a dry run

    settings = load_settings(sendgrid_newsletter)
    from newsletter.looking.archive import sent_issue_keys
    assert sent_issue_keys(settings) == {newest.name}
    result = run(main, ["archive", "--sent-only"])
    assert result.exit_code == 0, result.output
    index, feed = _published(sendgrid_newsletter / "site")
    assert "The Zeroth Dispatch" not in index and "The Zeroth Dispatch" not in feed
    assert load_issue(newest).subject in feed
    assert f"left out {older.name}: not sent" in result.output
    assert run(main, ["archive"]).exit_code == 0  # without --sent-only every published issue goes in
    assert "The Zeroth Dispatch" in _published(sendgrid_newsletter / "site")[0]


def test_sent_only_with_nothing_sent_is_a_clear_error(newsletter_root, example_issue, tmp_path):
    result = CliRunner().invoke(main, ["archive", "--sent-only", "--out", str(tmp_path / "site")])
    assert result.exit_code == 2
    assert "no published issues" in result.output and "not sent yet" in result.output
    assert not (tmp_path / "site").exists()


# -- the index page ------------------------------------------------------------------------------------

def _head(index: str):
    import lxml.html

    document = lxml.html.document_fromstring(index)
    meta = {m.get("property") or m.get("name"): m.get("content") for m in document.iter("meta")}
    links = {(link.get("rel"), link.get("type")): link.get("href") for link in document.iter("link")}
    return document, meta, links


def test_index_carries_canonical_open_graph_and_feed_discovery_tags(settings, two_issues, tmp_path):
    write_archive(settings, tmp_path / "site")
    _, meta, links = _head((tmp_path / "site" / "index.html").read_text(encoding="utf-8"))
    assert links[("canonical", None)] == settings.base_url
    assert links[("alternate", "application/atom+xml")] == f"{settings.base_url}feed.xml"
    assert meta["og:url"] == settings.base_url and meta["og:type"] == "website"
    assert meta["og:title"] == settings.name and meta["og:site_name"] == settings.name
    assert settings.name in meta["og:description"] and meta["description"] == meta["og:description"]


def _subscribe_links(site: Path) -> list[str]:
    document, _, _ = _head((site / "index.html").read_text(encoding="utf-8"))
    return [a.get("href") for a in document.iter("a") if "subscribe" in (a.text_content() or "").lower()]


def test_index_links_to_the_subscribe_page_only_when_one_is_configured(newsletter_root, two_issues, tmp_path):
    site = tmp_path / "site"
    toml = newsletter_root / "newsletter.toml"
    example = toml.read_text(encoding="utf-8")
    assert 'lists = ["example"]' in example
    toml.write_text(example.replace('lists = ["example"]', "lists = []"), encoding="utf-8")
    write_archive(load_settings(newsletter_root), site)
    assert _subscribe_links(site) == []  # no sign-up page anywhere: no link

    toml.write_text(example, encoding="utf-8")  # `newsletter serve` takes sign-ups for the list "example"
    write_archive(load_settings(newsletter_root), site)
    assert _subscribe_links(site) == ["https://newsletter.example.com/subscribe/example"]

    toml.write_text(example.replace(
        "[newsletter]\n", '[newsletter]\nsubscribe_url = "https://newsletter.example.com/join"\n'), encoding="utf-8")
    write_archive(load_settings(newsletter_root), site)
    assert _subscribe_links(site) == ["https://newsletter.example.com/join"]  # the writer's own page wins


def test_subscribe_url_must_be_a_web_address(newsletter_root):
    toml = newsletter_root / "newsletter.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace(
        "[newsletter]\n", '[newsletter]\nsubscribe_url = "subscribe.html"\n'), encoding="utf-8")
    with pytest.raises(NewsletterError, match="subscribe_url' must be an https:// URL"):
        load_settings(newsletter_root)


def test_index_uses_the_themes_look(settings, two_issues, tmp_path):
    from newsletter.themes import theme_folder

    write_archive(settings, tmp_path / "site")
    index = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    style = (theme_folder(settings, "default") / "style.css").read_text(encoding="utf-8")
    assert style.strip() in index  # the theme's own rules: colours, fonts, dark mode
    document, _, _ = _head(index)
    assert document.find_class("masthead")[0].text_content() == settings.name
    assert document.find_class("card") and document.find_class("container")


def test_index_follows_a_writers_own_theme(own_theme, newsletter_root, two_issues, tmp_path):
    style = own_theme / "style.css"
    style.write_text(style.read_text(encoding="utf-8").replace("#f4f1ec", "#102030"), encoding="utf-8")
    write_archive(load_settings(newsletter_root), tmp_path / "site")
    index = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert "#102030" in index and "#f4f1ec" not in index
    (own_theme / "archive-index.html.j2").write_text("<p>{{ newsletter.name }}: {{ issues | length }} issues</p>")
    write_archive(load_settings(newsletter_root), tmp_path / "site")
    assert (tmp_path / "site" / "index.html").read_text() == "<p>The Plain Files Dispatch: 2 issues</p>"


def test_a_file_the_issue_links_to_is_published_beside_its_page(settings, example_issue, tmp_path):
    """A PDF linked from an article is at the address the email gives it, and check stops asking for it."""
    (example_issue / "report.pdf").write_bytes(b"%PDF-1.4\n")
    (example_issue / "notes.txt").write_text("private: not linked\n", encoding="utf-8")
    issue = load_issue(example_issue)
    article = issue.articles[0].path
    article.write_text(article.read_text(encoding="utf-8") + "\nRead [the report](report.pdf).\n", encoding="utf-8")
    site = tmp_path / "site"

    write_archive(settings, site)

    assert (site / example_issue.name / "report.pdf").read_bytes() == b"%PDF-1.4\n"
    assert not (site / example_issue.name / "notes.txt").exists()  # only what the issue links to
    result = CliRunner().invoke(main, ["check", str(example_issue), "--archive", str(site)])
    assert "report.pdf" not in result.output


def test_an_image_the_issue_does_not_use_is_not_published(settings, two_issues, tmp_path):
    """The archive is public: a photo kept in the issue folder but used nowhere stays private."""
    _, older = two_issues
    (older / "drafts").mkdir()
    (older / "drafts" / "private-photo.jpg").write_bytes(PIXEL_PNG)
    site = tmp_path / "site"

    write_archive(settings, site)

    assert not (site / older.name / "drafts").exists()
    assert (site / older.name / "photo.png").is_file()  # the article's lead image
    assert (site / older.name / "img" / "diagram.png").is_file()  # an image in its text
