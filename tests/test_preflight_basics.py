"""`newsletter check`: the findings issue 2 defines, each triggered from a small issue."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from newsletter_helpers import write_issue

from newsletter.cli import main

# These tests edit the theme or name its files: they work on an own copy of the default theme.
pytestmark = pytest.mark.usefixtures("own_theme")


def check(folder: Path):
    return CliRunner().invoke(main, ["check", str(folder)], catch_exceptions=False)


def test_example_issue_passes(example_issue):
    result = check(example_issue)
    assert result.exit_code == 0, result.output
    assert "0 errors" in result.output


def test_no_subject_is_an_error(newsletter_root):
    result = check(write_issue(newsletter_root, front="preheader: P"))
    assert result.exit_code == 1
    assert "error: issues/2027-02-02-test/issue.md: the issue has no subject" in result.output
    assert "fix: add 'subject: ...'" in result.output


def test_missing_article_is_an_error_with_its_line(newsletter_root):
    folder = write_issue(newsletter_root)
    (folder / "a.md").unlink()
    result = check(folder)
    assert result.exit_code == 1
    assert "issue.md:5: article 'a.md' is listed but the file does not exist" in result.output


def test_image_without_alt_names_the_article_and_line(newsletter_root):
    article = "---\ntitle: Pics\n---\n\nIntro.\n\n![](https://example.com/photo.png)\n"
    result = check(write_issue(newsletter_root, articles={"a.md": article}))
    assert result.exit_code == 1
    assert "a.md:7: image https://example.com/photo.png has no alt text" in result.output


def test_front_matter_image_needs_image_alt(newsletter_root):
    article = "---\ntitle: Pics\nimage: https://example.com/lead.png\n---\n\nText.\n"
    result = check(write_issue(newsletter_root, articles={"a.md": article}))
    assert result.exit_code == 1 and "a.md:3: the article's image has no image_alt" in result.output


def test_relative_link_without_base_url_is_an_error(newsletter_root):
    config = newsletter_root / "newsletter.toml"
    config.write_text(config.read_text().replace('base_url = "https://newsletter.example.com/"\n', ""))
    article = "---\ntitle: Links\n---\n\nSee [the notes](notes.html).\n"
    result = check(write_issue(newsletter_root, articles={"a.md": article}))
    assert result.exit_code == 1
    assert "a.md:5: relative link 'notes.html' cannot be made absolute" in result.output
    assert "set base_url in newsletter.toml" in result.output


def test_relative_link_is_made_absolute_with_base_url(newsletter_root):
    article = "---\ntitle: Links\n---\n\nSee [the notes](notes.html).\n"
    result = check(write_issue(newsletter_root, articles={"a.md": article}))
    assert result.exit_code == 0, result.output


def test_template_without_unsubscribe_link_is_an_error(newsletter_root):
    template = newsletter_root / "templates" / "default" / "email.html.j2"
    template.write_text(template.read_text().replace(
        ' &middot; <a class="footer-link" href="{{ unsubscribe_url }}">Unsubscribe</a>', ""))
    result = check(write_issue(newsletter_root))
    assert result.exit_code == 1
    assert "templates/default/email.html.j2: the email has no unsubscribe link" in result.output


def test_template_without_postal_address_is_an_error(newsletter_root):
    template = newsletter_root / "templates" / "default" / "email.html.j2"
    template.write_text(template.read_text().replace("{{ newsletter.postal_address }}", ""))
    result = check(write_issue(newsletter_root))
    assert result.exit_code == 1
    assert "the email does not show the postal address" in result.output


def test_no_unsubscribe_url_configured_is_an_error(newsletter_root):
    config = newsletter_root / "newsletter.toml"
    config.write_text("\n".join(line for line in config.read_text().splitlines()
                                if not line.startswith("unsubscribe_url")))
    result = check(write_issue(newsletter_root))
    assert result.exit_code == 1 and "no unsubscribe address is configured" in result.output


def test_an_unsubscribe_url_without_a_token_is_an_error(newsletter_root):
    """Every reader would get the same link, and the page it opens could not tell who asked to leave."""
    config = newsletter_root / "newsletter.toml"
    lines = config.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("unsubscribe_url"))
    lines[at] = 'unsubscribe_url = "https://newsletter.example.com/unsubscribe"'
    config.write_text("\n".join(lines) + "\n")
    result = check(write_issue(newsletter_root))
    assert result.exit_code == 1
    assert f"newsletter.toml:{at + 1}" in result.output and "{token}" in result.output


@pytest.mark.parametrize("front, expected", [
    ("subject: Fine", "the issue has no preheader"),
    ("subject: " + "A very long subject line " * 4 + "\npreheader: P", "the subject is 99 characters"),
])
def test_warnings_do_not_fail_the_check(newsletter_root, front, expected):
    result = check(write_issue(newsletter_root, front=front))
    assert result.exit_code == 0
    assert "warning: " in result.output and expected in result.output


def test_html_over_gmail_clipping_limit_is_a_warning(newsletter_root):
    body = "\n\n".join(f"Paragraph {i} " + "words " * 60 for i in range(400))
    result = check(write_issue(newsletter_root, articles={"a.md": f"---\ntitle: Long\n---\n\n{body}\n"}))
    assert result.exit_code == 0
    assert "Gmail clips messages over 102 KB" in result.output


def test_a_theme_acknowledges_features_it_uses_with_a_fallback(newsletter_root):
    import json

    folder = write_issue(newsletter_root)
    result = CliRunner().invoke(main, ["check", str(folder), "--format", "json"])
    findings = {f["code"]: f for f in json.loads(result.output)["findings"]}
    doctype = findings["client-support:html-doctype"]
    assert doctype["severity"] == "info" and "acknowledged by the theme" in doctype["message"]
    (newsletter_root / "templates" / "default" / "checks.toml").unlink()
    result = CliRunner().invoke(main, ["check", str(folder), "--format", "json"])
    findings = {f["code"]: f for f in json.loads(result.output)["findings"]}
    assert findings["client-support:html-doctype"]["severity"] == "warning"


def test_a_broken_acknowledgements_file_is_named(newsletter_root):
    (newsletter_root / "templates" / "default" / "checks.toml").write_text("[acknowledged\n")
    result = check(write_issue(newsletter_root))
    assert result.exit_code == 2 and "templates/default/checks.toml: is not valid TOML" in result.output
