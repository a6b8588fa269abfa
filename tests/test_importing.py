"""Importing articles: scraped text, a web page and Markdown become clean, safe article files."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from markdown_it import MarkdownIt

from newsletter.cli import main
from newsletter.compose import content, importing, issue_folder
from newsletter.errors import NewsletterError

DATA = Path(__file__).parent / "data" / "import"
SEED = DATA / "seed.txt"
QUIRKS = DATA / "quirks.txt"
PAGE = DATA / "page.html"
ROOT = Path(__file__).resolve().parent.parent
SEED_TITLE = "Trump\u2019s Phone Call with Putin: A Closer Look at U.S. Strategy"


def paragraphs(markdown: str) -> list[str]:
    return markdown.split("\n\n")


def lone_lines(markdown: str) -> set[str]:
    return {line.strip() for line in markdown.splitlines()}


def rendered(markdown: str) -> str:
    """The Markdown as a browser would see it with raw HTML allowed: no sanitizer to hide behind."""
    return MarkdownIt("commonmark", {"html": True}).render(markdown)


@pytest.fixture
def newsletter_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh newsletter folder with the example settings and one empty issue."""
    shutil.copy(ROOT / "newsletter.toml", tmp_path / "newsletter.toml")
    issue_folder.new_issue(tmp_path / "issues", "The First Dispatch", dt.date(2026, 11, 25))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def issue(newsletter_dir: Path) -> Path:
    return newsletter_dir / "issues" / "2026-11-25-the-first-dispatch"


# --- the seed article (scraped text) -----------------------------------------


def test_seed_article_imports_with_its_title_sections_and_numbered_points():
    article = importing.import_article(SEED)

    assert article.title == SEED_TITLE
    assert article.path == Path("trumps-phone-call-with-putin-a-closer-look-at-u-s-strategy.md")
    sections = re.findall(r"^### (.+)$", article.body, flags=re.M)
    assert sections == [
        "Context of the Ukraine Conflict",
        "Trump\u2019s Approach to Foreign Policy",
        "The Recent Phone Call: A Diplomatic Gesture?",
        "The Implications for U.S. Foreign Policy",
        "The Bigger Picture: A Dangerous Precedent?",
        "Conclusion",
    ]
    points = re.findall(r"^(\d)\. \*\*(.+?):\*\* ", article.body, flags=re.M)
    assert points == [
        ("1", "Trump\u2019s Vision of Diplomacy"),
        ("2", "U.S. Military Strategy in Europe"),
        ("3", "Domestic Political Calculations"),
        ("4", "Global Perceptions and Alliances"),
    ]


def test_seed_article_loses_the_site_around_it():
    body = importing.import_article(SEED).body

    assert "Leave a Comment" not in body
    assert SEED_TITLE not in body  # the repeated title is gone
    assert body.startswith("In a recent phone call between former President Donald Trump")
    assert all(p.strip(" \u00a0\n") for p in paragraphs(body)), "no blank or U+00A0-only paragraphs"
    assert "\u00a0\n" not in body and "\n\u00a0" not in body
    assert "\n\n\n" not in body
    assert body.rstrip().endswith("the Washington Post reported.")


def test_seed_article_has_no_author_and_keeps_the_given_url():
    article = importing.import_article(SEED, url="https://news.example.org/2024/trump-putin-call")

    assert article.author == ""
    assert article.source_url == "https://news.example.org/2024/trump-putin-call"


# --- scraped text with every quirk ---------------------------------------------


def test_quirks_fixture_really_is_crlf_with_non_breaking_spaces():
    data = QUIRKS.read_bytes()
    assert data.count(b"\r\n") == data.count(b"\n") > 50
    assert "\u00a0".encode() in data


def test_scraped_text_byline_becomes_the_author():
    article = importing.import_article(QUIRKS)

    assert article.title == "Five Ways Libraries Are Reinventing the Reading Room"
    assert article.author == "Jonas Whitfield"
    assert "By Jonas Whitfield" not in article.body
    assert article.title not in article.body
    assert "\r" not in article.body


def test_scraped_text_bullet_characters_become_one_markdown_list():
    body = importing.import_article(QUIRKS).body

    assert (
        "- Quiet zones with no phones and no meetings\n"
        "- Maker spaces with sewing machines and 3D printers\n"
        "- Seed libraries where gardeners borrow and return seeds\n"
        "- Bookable study rooms for tutoring and job interviews\n"
        "- Late opening on weekday evenings\n"
    ) in body
    assert not re.search(r"^[•●▪–]", body, flags=re.M)


def test_scraped_text_boilerplate_goes_between_paragraphs_and_at_the_end():
    body = importing.import_article(QUIRKS).body

    lines = lone_lines(body)
    for clutter in ("Share this:", "Facebook", "X", "Twitter", "LinkedIn", "Pinterest", "WhatsApp", "Email",
                    "Print", "Advertisement", "Related Posts", "Leave a Comment"):
        assert clutter not in lines, clutter
    for related in ("How one branch doubled", "March 1, 2025", "Why overdue fines", "neighbourhood bookshop",
                    "Ten novels"):
        assert related not in body, related
    # ...while the article around the clutter is all there, in order.
    kept = ["Public libraries were supposed", "### The room is the service", "Library directors we spoke with",
            "The most common changes", "### What the numbers say", "1. **Visits are up:**",
            "2. **Loans are flat:**", "worth the walk."]
    positions = [body.index(text) for text in kept]
    assert positions == sorted(positions)
    assert body.rstrip().endswith("worth the walk.")


def test_scraped_text_that_looks_like_html_stays_text(tmp_path: Path):
    source = tmp_path / "post.txt"
    source.write_text(
        "A Post About Markup\n\nWrite <script>alert('x')</script> and <img src=x onerror=alert(1)> as text.\n\n"
        "Click [here](javascript:alert(1)) or [there](https://example.org/ok).\n",
        encoding="utf-8",
    )
    article = importing.import_article(source)

    html = rendered(article.body)
    assert "<script" not in html and "<img" not in html and "javascript:" not in html
    assert "&lt;script&gt;alert('x')&lt;/script&gt;" in html  # the words are kept, as words
    assert "Click here or [there](https://example.org/ok)." in article.body


# --- a web page ---------------------------------------------------------------


def test_web_page_article_is_extracted_with_its_metadata():
    article = importing.import_article(PAGE)

    assert article.title == "Why Community Gardens Outlast Their Founders"
    assert article.author == "Maria Okafor"
    assert article.summary.startswith("Three decades of neighbourhood plots")
    assert article.source_url == "https://ledger.example.org/2025/04/community-gardens"  # from rel=canonical
    assert article.path == Path("why-community-gardens-outlast-their-founders.md")


def test_web_page_body_keeps_headings_lists_links_and_images():
    body = importing.import_article(PAGE).body

    assert not body.startswith("#"), "the title is not repeated as a heading"
    assert re.findall(r"^#+ .+$", body, flags=re.M) == [
        "### What the long-lived gardens share",
        "### How a garden changes hands",
        "#### Where to start",
    ]
    assert "- A rotating coordinator role, usually for one year at a time." in body
    assert "1. The outgoing coordinator announces the handover" in body
    assert "3. The new coordinator takes the keys at the spring seed swap." in body
    assert ("![Raised vegetable beds behind the old tram depot]"
            "(https://ledger.example.org/media/2025/04/garden-beds.jpg)") in body
    assert "[city's own survey of shared plots](https://ledger.example.org/data/gardens-survey.csv)" in body
    assert "[vacant lots approved for growing](https://parks.example.gov/gardens/vacant-lots)" in body


@pytest.mark.parametrize("left_behind", [
    pytest.param(["City Hall", "Neighbourhoods", "Subscribe"], id="navigation"),
    pytest.param(["Advertisement", "garden hoses", "Hot tubs", "ads.example.net"], id="ads"),
    pytest.param(["Most read this week", "Bridge closure", "School budget"], id="sidebar"),
    pytest.param(["GreenThumb42", "Earn $500", "Leave a Reply", "thoughts on"], id="comments"),
    pytest.param(["All rights reserved", "Privacy policy", "Contact us"], id="footer"),
    pytest.param(["Share this", "Facebook"], id="share buttons"),
    pytest.param(["<script", "gtag", "dataLayer", "document.write", "Sponsored"], id="scripts"),
    pytest.param(["onclick", "trackRead", "javascript:", "gotcha"], id="event handlers and javascript links"),
])
def test_web_page_leaves_the_site_behind(left_behind: list[str]):
    body = importing.import_article(PAGE).body

    for text in left_behind:
        assert text not in body, text


def test_web_page_javascript_link_keeps_its_words_but_not_its_target():
    body = importing.import_article(PAGE).body

    assert "its coordinator contact form is a clipboard" in body
    html = rendered(body)
    assert "<script" not in html and "javascript:" not in html and " on" not in re.sub(r">[^<]*<", "><", html)


def test_web_page_links_follow_the_given_url():
    article = importing.import_article(PAGE, url="https://mirror.example.org/gardens/story")

    assert article.source_url == "https://mirror.example.org/gardens/story"
    assert "(https://mirror.example.org/data/gardens-survey.csv)" in article.body
    assert "(https://mirror.example.org/resources/plot-agreement-template/)" in article.body
    assert "(https://mirror.example.org/media/2025/04/garden-beds.jpg)" in article.body


def test_web_page_without_its_address_keeps_relative_links(tmp_path: Path):
    page = tmp_path / "page.html"
    html = PAGE.read_text(encoding="utf-8")
    page.write_text(re.sub(r".*(canonical|og:url).*\n", "", html), encoding="utf-8")

    article = importing.import_article(page)

    assert article.source_url == ""
    assert "(/data/gardens-survey.csv)" in article.body  # `newsletter check` reports it later
    assert "(../resources/plot-agreement-template/)" in article.body


def test_web_page_in_another_charset(tmp_path: Path):
    page = tmp_path / "latin1.html"
    page.write_bytes(PAGE.read_text(encoding="utf-8").replace('charset="utf-8"', 'charset="windows-1252"')
                     .encode("cp1252", errors="replace"))

    article = importing.import_article(page)

    assert "“We stopped thinking of it as our garden" in article.body


def test_web_page_with_no_article_is_an_error(tmp_path: Path):
    page = tmp_path / "empty.html"
    page.write_text("<html><head><title>Home</title></head><body><script>app.mount()</script></body></html>")

    with pytest.raises(NewsletterError, match=r"empty\.html: found no article text in the page"):
        importing.import_article(page)


# --- Markdown with front matter ------------------------------------------------


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_markdown_article_is_kept_as_it_is(tmp_path: Path):
    body = "Some **bold** words and <em>raw HTML</em> the writer chose.\n\n### A section\n\nMore.\n"
    source = write(tmp_path / "note.md", f"---\ntitle: A Note\nauthor: Ann\n---\n{body}")

    article = importing.import_article(source, url="https://example.org/note")

    assert (article.title, article.author, article.body) == ("A Note", "Ann", body)
    assert article.source_url == "https://example.org/note"  # filled in, since the file had none
    assert article.path == Path("a-note.md")


def test_markdown_source_url_is_not_replaced_by_url(tmp_path: Path):
    source = write(tmp_path / "note.md", "---\ntitle: A Note\nsource_url: https://example.org/own\n---\nText.\n")

    assert importing.import_article(source, url="https://example.org/other").source_url == "https://example.org/own"


@pytest.mark.parametrize(("text", "message"), [
    ("---\nauthor: Ann\n---\nText.\n", r"note\.md: article has no 'title' in its front matter \(add 'title: "),
    ("---\ntitle: A Note\n---\n\n  \n", r"note\.md: article is empty"),
    ("---\ntitle: A Note\nauthor: [Ann\n---\nText.\n", r"note\.md:\d+: front matter is not valid YAML"),
    ("---\ntitle: A Note\ntitel: x\n---\nText.\n", r"unknown front matter field 'titel'"),
    ("---\ntitle: Caf\xe9\n---\nText.\n".encode("latin-1"), r"note\.md:2: is not UTF-8 text \(save the file as UTF-8"),
])
def test_bad_markdown_is_a_clear_error(tmp_path: Path, text: str | bytes, message: str):
    source = write(tmp_path / "note.md", text)

    with pytest.raises(NewsletterError, match=message):
        importing.import_article(source)


def test_bad_yaml_names_its_line(tmp_path: Path):
    source = write(tmp_path / "note.md", "---\ntitle: A Note\nauthor: [Ann\nsummary: x\n---\nText.\n")

    with pytest.raises(NewsletterError) as err:
        importing.import_article(source)
    assert err.value.line in (3, 4, 5)


# --- files of other kinds -------------------------------------------------------


@pytest.mark.parametrize(("name", "text", "kind"), [
    ("saved.page", PAGE.read_text(encoding="utf-8"), "web page"),
    ("fragment.out", "<div><p>Hello</p></div>", "web page"),
    ("note.notes", "---\ntitle: A Note\n---\nText.\n", "markdown"),
    ("clipping", "A Title\n\nSome text.\n", "scraped text"),
])
def test_unknown_extensions_are_sniffed(tmp_path: Path, name: str, text: str, kind: str):
    assert importing.reader_for(write(tmp_path / name, text)).kind == kind


def test_sniffed_web_page_imports(tmp_path: Path):
    article = importing.import_article(write(tmp_path / "saved.page", PAGE.read_text(encoding="utf-8")))

    assert article.title == "Why Community Gardens Outlast Their Founders"


def test_binary_file_is_a_clear_error(tmp_path: Path):
    source = write(tmp_path / "photo.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))

    with pytest.raises(NewsletterError, match=r"photo\.png: cannot import a '\.png' file: it is not text \(save"):
        importing.import_article(source)


def test_missing_source_is_a_clear_error(tmp_path: Path):
    with pytest.raises(NewsletterError, match=r"nothing\.txt: file not found"):
        importing.import_article(tmp_path / "nothing.txt")


def test_bad_url_is_a_clear_error():
    with pytest.raises(NewsletterError, match=r"--url 'news\.example\.org/x' is not a full web address"):
        importing.import_article(SEED, url="news.example.org/x")


# --- into an issue ----------------------------------------------------------------


def test_import_into_issue_writes_the_article_and_lists_it(issue: Path):
    path = importing.import_into_issue(SEED, issue, url="https://news.example.org/2024/trump-putin-call")

    assert path == issue / "trumps-phone-call-with-putin-a-closer-look-at-u-s-strategy.md"
    loaded = content.load_issue(issue)
    assert [a.path.name for a in loaded.articles] == [path.name]
    article = loaded.articles[0]
    assert article.title == SEED_TITLE
    assert article.source_url == "https://news.example.org/2024/trump-putin-call"
    assert article.body == importing.import_article(SEED).body
    assert path.read_text(encoding="utf-8").startswith(f"---\ntitle: '{SEED_TITLE}'\nsource_url: ")


def test_import_into_issue_appends_in_order(issue: Path):
    importing.import_into_issue(SEED, issue)
    importing.import_into_issue(QUIRKS, issue)
    importing.import_into_issue(PAGE, issue)

    names = [a.path.name for a in content.load_issue(issue).articles]
    assert names == [
        "trumps-phone-call-with-putin-a-closer-look-at-u-s-strategy.md",
        "five-ways-libraries-are-reinventing-the-reading-room.md",
        "why-community-gardens-outlast-their-founders.md",
    ]


def test_import_into_issue_never_replaces_an_article_unless_asked(issue: Path):
    path = importing.import_into_issue(QUIRKS, issue)
    path.write_text(path.read_text(encoding="utf-8") + "\nThe editor's own note.\n", encoding="utf-8")

    with pytest.raises(NewsletterError, match=r"five-ways.*\.md: an article file with this name already exists"):
        importing.import_into_issue(QUIRKS, issue)
    assert "The editor's own note." in path.read_text(encoding="utf-8")

    importing.import_into_issue(QUIRKS, issue, overwrite=True)
    assert "The editor's own note." not in path.read_text(encoding="utf-8")
    assert [a.path.name for a in content.load_issue(issue).articles] == [path.name]  # listed once


def test_import_into_a_missing_issue_is_a_clear_error(newsletter_dir: Path):
    with pytest.raises(NewsletterError, match=r"issues/nope: issue folder not found \(create the issue first"):
        importing.import_into_issue(SEED, newsletter_dir / "issues" / "nope")


def test_word_count_counts_words_not_urls():
    assert importing.word_count("### Two words\n\nA [linked phrase](https://example.org/a/b/c) and "
                                "![alt](https://example.org/i.png) U.S. don’t.") == 8


# --- the command ------------------------------------------------------------------


def test_import_command_prints_what_it_wrote(newsletter_dir: Path, issue: Path):
    result = CliRunner().invoke(main, [
        "import", str(SEED), "--issue", str(issue), "--url", "https://news.example.org/2024/trump-putin-call",
    ])

    assert result.exit_code == 0, result.output
    path = "issues/2026-11-25-the-first-dispatch/trumps-phone-call-with-putin-a-closer-look-at-u-s-strategy.md"
    assert f"wrote {path} and added it to issues/2026-11-25-the-first-dispatch/issue.md" in result.output
    assert f"title:  {SEED_TITLE}" in result.output
    assert "author: (none found" in result.output
    assert "source: https://news.example.org/2024/trump-putin-call" in result.output
    words = int(re.search(r"words:\s+(\d+)", result.output).group(1))
    assert 1400 < words < 1700
    assert (newsletter_dir / path).is_file()


def test_import_command_shows_the_author_of_a_page(newsletter_dir: Path, issue: Path):
    result = CliRunner().invoke(main, ["import", str(PAGE), "--issue", str(issue)])

    assert result.exit_code == 0, result.output
    assert "author: Maria Okafor" in result.output


def test_import_command_refuses_to_overwrite_without_force(newsletter_dir: Path, issue: Path):
    runner = CliRunner()
    assert runner.invoke(main, ["import", str(QUIRKS), "--issue", str(issue)]).exit_code == 0

    again = runner.invoke(main, ["import", str(QUIRKS), "--issue", str(issue)])
    assert again.exit_code == 2
    assert "already exists (pass --force to replace it" in again.output
    assert "Traceback" not in again.output

    forced = runner.invoke(main, ["import", str(QUIRKS), "--issue", str(issue), "--force"])
    assert forced.exit_code == 0, forced.output


@pytest.mark.parametrize(("args", "message"), [
    (["missing.txt", "--issue", "issues/2026-11-25-the-first-dispatch"], "missing.txt: file not found"),
    ([str(SEED), "--issue", "issues/nope"], "issues/nope: issue folder not found"),
    ([str(SEED), "--issue", "issues/2026-11-25-the-first-dispatch", "--url", "example.org"], "not a full web address"),
])
def test_import_command_errors_exit_2_without_traceback(newsletter_dir: Path, args: list[str], message: str):
    result = CliRunner().invoke(main, ["import", *args])

    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(("text", "message"), [
    ("\u00a0\n \n\n", r"blank\.txt: has no text to import"),
    ("Just A Title\n\nShare this:\nFacebook\nLeave a Comment\n", r"blank\.txt: found no article text to import"),
])
def test_scraped_text_without_an_article_is_a_clear_error(tmp_path: Path, text: str, message: str):
    with pytest.raises(NewsletterError, match=message):
        importing.import_article(write(tmp_path / "blank.txt", text))


def test_import_into_an_issue_with_broken_front_matter_writes_nothing(issue: Path):
    (issue / "issue.md").write_text("---\nsubject: [oops\n---\nHello\n", encoding="utf-8")

    with pytest.raises(NewsletterError, match=r"issue\.md:\d+: front matter is not valid YAML"):
        importing.import_into_issue(SEED, issue)
    assert sorted(p.name for p in issue.iterdir()) == ["issue.md"]


# --- the date of a byline -----------------------------------------------------------


LAGOON_BODY = (
    "The lagoon rises twice a day, and the fishermen of Makoko know its rhythm better than any chart. "
    "For three generations their families have built on stilts above the water.\n\n"
    "Engineers arrived last year with plans for a seawall. The fishermen listened politely, then explained "
    "what the water had taught them about walls: they move the problem somewhere else.\n"
)


@pytest.mark.parametrize("top, author, date", [
    ("By Marta Oyelaran | March 3, 2026", "Marta Oyelaran", dt.date(2026, 3, 3)),
    ("By Marta Oyelaran, Lagoon Ledger · 3 Mar 2026", "Marta Oyelaran", dt.date(2026, 3, 3)),
    ("Written by Marta Oyelaran on March 3rd, 2026", "Marta Oyelaran", dt.date(2026, 3, 3)),
    ("By Marta Oyelaran\n\nPublished: March 3, 2026", "Marta Oyelaran", dt.date(2026, 3, 3)),
    ("March 3, 2026", "", dt.date(2026, 3, 3)),
    ("By Marta Oyelaran | March 2026", "Marta Oyelaran", None),  # no day: not a date to keep
    ("By Marta Oyelaran | 5 min read", "Marta Oyelaran", None),
])
def test_scraped_text_byline_date_becomes_the_date(tmp_path: Path, top: str, author: str, date):
    source = write(tmp_path / "lagoon.txt", f"Tides of the Lagos Lagoon\n\n{top}\n\n{LAGOON_BODY}")
    article = importing.import_article(source)

    assert (article.author, article.date) == (author, date)
    assert article.body.startswith("The lagoon rises")
    if date:
        assert "2026" not in article.body


def test_quirks_fixture_byline_date_is_kept():
    article = importing.import_article(QUIRKS)
    assert article.date == dt.date(2025, 3, 3)
    assert "March 3, 2025" not in article.body


LAGOON_PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>Tides of the Lagos Lagoon</title></head>
<body><header><nav><a href="/">Home</a> <a href="/about">About</a></nav></header>
<main><article><h1>Tides of the Lagos Lagoon</h1>
{byline}
<p>The lagoon rises twice a day, and the fishermen of Makoko know its rhythm better than any chart. For three
generations their families have built on stilts above the water, and the tide decides when children go to school.</p>
<p>Engineers arrived last year with plans for a seawall. The fishermen listened politely, then explained what the
water had taught them about walls: they move the problem somewhere else, usually to someone poorer.</p>
</article></main><footer>&copy; 2024 Lagoon Ledger</footer></body></html>
"""


def test_web_page_byline_date_becomes_the_date(tmp_path: Path):
    page = write(tmp_path / "lagoon.html",
                 LAGOON_PAGE.format(byline='<p class="byline">By Marta Oyelaran | March 3, 2026</p>'))
    article = importing.import_article(page)

    assert article.author == "Marta Oyelaran"  # not "Marta Oyelaran; March 3"
    assert article.date == dt.date(2026, 3, 3)
    assert importing.import_article(PAGE).date == dt.date(2025, 4, 12)  # article:published_time


def test_web_page_without_a_date_gets_none_rather_than_a_guess(tmp_path: Path):
    page = write(tmp_path / "lagoon.html", LAGOON_PAGE.format(byline='<p class="byline">By Marta Oyelaran</p>'))
    assert importing.import_article(page).date is None  # not 2024-01-01 from the footer's copyright


def test_imported_date_is_written_to_the_front_matter_and_builds(issue: Path, newsletter_dir: Path):
    result = CliRunner().invoke(main, ["import", str(QUIRKS), "--issue", str(issue)])
    assert result.exit_code == 0, result.output
    assert "date:   2025-03-03" in result.output
    path = next(issue.glob("five-ways-*.md"))
    assert "\ndate: 2025-03-03\n" in path.read_text(encoding="utf-8")
    assert content.load_article(path).date == dt.date(2025, 3, 3)


def test_an_article_date_that_is_not_a_date_names_the_file(tmp_path: Path):
    path = write(tmp_path / "a.md", "---\ntitle: A\ndate: March the third\n---\n\nText.\n")
    with pytest.raises(NewsletterError, match="article date 'March the third' is not a date") as caught:
        content.load_article(path)
    assert "a.md" in str(caught.value) and "YYYY-MM-DD" in str(caught.value)
