"""Building an issue: the writer's story from folder to the four files a mail client opens."""

from __future__ import annotations

import email
import email.policy
import re
from pathlib import Path

import lxml.html
from click.testing import CliRunner

from newsletter.cli import main

SEED = Path(__file__).parent / "data" / "import" / "seed.txt"


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_example_issue_builds_all_four_files(example_issue: Path, newsletter_root: Path):
    result = run("build", str(example_issue))
    assert result.exit_code == 0, result.output
    out = newsletter_root / "build" / example_issue.name
    for name in ("email.html", "email.txt", "message.eml", "web.html"):
        assert (out / name).stat().st_size > 1000
        assert f"wrote build/{example_issue.name}/{name}" in result.output
    assert "0 errors" in result.output


def test_inlined_html_has_style_attributes_and_keeps_media_queries(example_issue: Path, newsletter_root: Path):
    run("build", str(example_issue))
    html = (newsletter_root / "build" / example_issue.name / "email.html").read_text()
    doc = lxml.html.document_fromstring(html)
    paragraphs = doc.xpath("//td[contains(@class,'article')]//p")
    assert paragraphs and all("margin" in (p.get("style") or "") for p in paragraphs)
    styles = " ".join(s.text_content() for s in doc.iter("style"))
    assert "@media only screen and (max-width: 620px)" in styles
    assert "prefers-color-scheme: dark" in styles
    assert "[data-ogsc]" in styles  # Outlook.com dark-mode rules survive untouched
    assert "<!--[if mso]>" in html


def test_seed_article_is_in_the_email_with_its_sections(example_issue: Path, newsletter_root: Path):
    run("build", str(example_issue))
    html = (newsletter_root / "build" / example_issue.name / "email.html").read_text()
    doc = lxml.html.document_fromstring(html)
    titles = [h.text_content() for h in doc.xpath("//h2[contains(@class,'article-title')]")]
    assert titles[0] == "Trump’s Phone Call with Putin: A Closer Look at U.S. Strategy"
    assert len(doc.xpath("(//td[contains(@class,'article')])[1]//h3")) == 6
    toc = [li.text_content() for li in doc.xpath("//li[contains(@class,'toc-item')]")]
    assert toc == titles  # two articles: a table of contents


def test_message_eml_is_multipart_alternative_text_first(example_issue: Path, newsletter_root: Path):
    run("build", str(example_issue))
    raw = (newsletter_root / "build" / example_issue.name / "message.eml").read_bytes()
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    for header in ("From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "List-Unsubscribe"):
        assert msg[header], header
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert re.fullmatch(r"<https://\S+>, <mailto:\S+>", str(msg["List-Unsubscribe"]))
    assert msg.get_content_type() == "multipart/alternative"
    parts = [part.get_content_type() for part in msg.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    text = msg.get_body(("plain",)).get_content()
    assert "Hi Sample Reader," in text


def test_text_part_is_written_for_people(example_issue: Path, newsletter_root: Path):
    run("build", str(example_issue))
    text = (newsletter_root / "build" / example_issue.name / "email.txt").read_text()
    assert "<" not in text.replace("<https", "")  # no HTML tags
    assert "Why this newsletter lives in a git repository\n-----" in text
    assert "1. *History.*" in text
    assert re.search(r"read past issues on the web \[\d+\]", text)
    assert re.search(r"^\[\d+\] https://newsletter\.example\.com/$", text, re.M)  # relative link made absolute
    assert "Unsubscribe: https://newsletter.example.com/unsubscribe/" in text
    assert "Plain Files Press, 100 Example Street" in text


def test_web_version_has_no_personal_data(example_issue: Path, newsletter_root: Path):
    run("build", str(example_issue))
    web = (newsletter_root / "build" / example_issue.name / "web.html").read_text()
    assert "Sample Reader" not in web and "reader@example.com" not in web
    assert "token=" not in web and "Unsubscribe" not in web
    assert "Hi there," in web  # merge fields fall back to their defaults
    assert "<style>" in web


def test_new_creates_an_issue_to_fill_in_and_never_overwrites(newsletter_root: Path):
    result = run("new", "Spring Notes!", "--date", "2027-03-01")
    assert result.exit_code == 0, result.output
    issue_md = newsletter_root / "issues" / "2027-03-01-spring-notes" / "issue.md"
    assert "subject: Spring Notes!" in issue_md.read_text()
    again = run("new", "Spring Notes!", "--date", "2027-03-01")
    assert again.exit_code == 2 and "already exists" in again.output


def test_new_issue_builds_after_importing_an_article(newsletter_root: Path):
    run("new", "Second", "--date", "2027-01-01")
    folder = newsletter_root / "issues" / "2027-01-01-second"
    assert run("import", str(SEED), "--issue", str(folder)).exit_code == 0
    result = run("build", str(folder))
    assert result.exit_code == 0, result.output
    text = (newsletter_root / "build" / folder.name / "email.txt").read_text()
    assert "Hi Sample Reader!" in " ".join(text.split())
