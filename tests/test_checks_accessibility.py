"""Accessibility: language, title, layout tables, alt and link text, headings and contrast in both modes."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_render import write_issue

from newsletter.checks import accessibility
from newsletter.checks.accessibility import contrast_ratio, parse_color
from newsletter.compose.build import build
from newsletter.checks import WARNING, CheckContext, Finding, line_of, run_checks_on
from newsletter.compose.content import load_issue

# These tests edit the theme or name its files: they work on an own copy of the default theme.
pytestmark = pytest.mark.usefixtures("own_theme")

THEME = Path("templates") / "default"


def findings_of(settings, folder: Path) -> list[Finding]:
    issue = load_issue(folder)
    return run_checks_on(CheckContext(settings, issue, build(settings, issue)), accessibility.CHECKS)


def by_code(findings: list[Finding], code: str) -> list[Finding]:
    return [f for f in findings if f.code == code]


def edit(root: Path, file: str, old: str, new: str) -> None:
    path = root / THEME / file
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {file}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_contrast_maths_matches_wcag():
    assert contrast_ratio(parse_color("#000"), parse_color("#fff")) == pytest.approx(21)
    assert contrast_ratio(parse_color("#777777"), parse_color("white")) == pytest.approx(4.48, abs=0.01)
    assert parse_color("rgba(0, 0, 0, 0.5)")[3] == 0.5 and parse_color("inherit") is None


def test_default_theme_is_accessible(settings, newsletter_root):
    assert findings_of(settings, write_issue(newsletter_root)) == []


@pytest.mark.parametrize("old, new, code", [
    ('<html lang="{{ newsletter.language }}" dir="ltr"', '<html dir="ltr"', "no-lang"),
    ('<html lang="{{ newsletter.language }}" dir="ltr"', '<html lang="english please" dir="ltr"', "bad-lang"),
    ('<html lang="{{ newsletter.language }}" dir="ltr"', '<html lang="{{ newsletter.language }}"', "no-dir"),
])
def test_root_needs_lang_and_dir(settings, newsletter_root, old, new, code):
    edit(newsletter_root, "base.html.j2", old, new)
    [finding] = by_code(findings_of(settings, write_issue(newsletter_root)), code)
    assert finding.severity == WARNING
    assert (finding.where, finding.line) == ("templates/default/base.html.j2", 5)


def test_email_needs_a_title(settings, newsletter_root):
    edit(newsletter_root, "base.html.j2", "<title>{{ issue.subject }}</title>", "")
    [finding] = by_code(findings_of(settings, write_issue(newsletter_root)), "no-title")
    assert finding.where == "templates/default/base.html.j2" and finding.line == 6


def test_layout_table_needs_role_presentation(settings, newsletter_root):
    edit(newsletter_root, "base.html.j2", '<table role="presentation" class="container"', '<table class="container"')
    [finding] = by_code(findings_of(settings, write_issue(newsletter_root)), "layout-table")
    assert (finding.where, finding.line) == ("templates/default/base.html.j2", 58)
    assert 'role="presentation"' in finding.fix


def test_data_table_with_header_row_is_not_a_layout_table(settings, newsletter_root):
    article = "---\ntitle: Numbers\n---\n\n| Month | Opens |\n| --- | --- |\n| May | 41% |\n"
    assert by_code(findings_of(settings, write_issue(newsletter_root, articles={"a.md": article})),
                   "layout-table") == []


@pytest.mark.parametrize("text", ["click here", "Here", "Read more", "link"])
def test_link_text_must_say_where_it_goes(settings, newsletter_root, text):
    article = f"---\ntitle: Report\n---\n\nOur annual report is out.\n\nTo read it, [{text}](https://example.com/report).\n"
    [finding] = by_code(findings_of(settings, write_issue(newsletter_root, articles={"a.md": article})),
                        "vague-link-text")
    assert finding.where.endswith("2027-02-02-test/a.md") and finding.line == 7
    assert f'"{text}"' in finding.message and "https://example.com/report" in finding.message


def test_link_with_only_an_unlabelled_image_has_no_text(settings, newsletter_root):
    template = newsletter_root / THEME / "email.html.j2"
    template.write_text(template.read_text().replace(
        '<h1 class="masthead">', '<a href="https://example.com/"><img src="https://example.com/logo.png" alt=""></a>'
        '<h1 class="masthead">'), encoding="utf-8")
    [finding] = by_code(findings_of(settings, write_issue(newsletter_root)), "link-no-text")
    assert "https://example.com/" in finding.message


def test_alt_text_that_is_a_file_name_says_nothing(settings, newsletter_root):
    article = "---\ntitle: Pics\n---\n\nLook:\n\n![IMG_1234.jpg](https://example.com/IMG_1234.jpg)\n"
    [finding] = by_code(findings_of(settings, write_issue(newsletter_root, articles={"a.md": article})),
                        "image-meaningless-alt")
    assert finding.where.endswith("a.md") and finding.line == 7


def test_headings_must_not_skip_a_level(settings, newsletter_root):
    article = "---\ntitle: Deep\n---\n\nIntro.\n\n#### Too deep\n\nText.\n"
    [finding] = by_code(findings_of(settings, write_issue(newsletter_root, articles={"a.md": article})),
                        "heading-skipped")
    assert finding.where.endswith("a.md") and finding.line == 7
    assert "<h4>" in finding.message and "level 3 is skipped" in finding.message
    assert "### in Markdown" in finding.fix


def test_low_contrast_in_light_mode_names_the_css_line(settings, newsletter_root):
    edit(newsletter_root, "style.css", ".footer-text { margin: 0 0 10px 0; color: #52606d; }",
         ".footer-text { margin: 0 0 10px 0; color: #a0a0a0; }")
    [finding] = by_code(findings_of(settings, write_issue(newsletter_root)), "low-contrast-light")
    assert (finding.where, finding.line) == ("templates/default/style.css", 37)
    assert "#a0a0a0 on #f4f1ec" in finding.message and "below WCAG AA 4.5:1" in finding.message


def test_low_contrast_in_dark_mode_names_the_dark_rule(settings, newsletter_root):
    edit(newsletter_root, "style.css", "border-bottom-color: #111418 !important; color: #e6e8eb !important;",
         "border-bottom-color: #111418 !important; color: #3a3f45 !important;")
    findings = findings_of(settings, write_issue(newsletter_root))
    assert by_code(findings, "low-contrast-light") == []
    dark = by_code(findings, "low-contrast-dark")
    assert dark and all(f.severity == WARNING for f in dark)
    path = Path(settings.root) / THEME / "style.css"
    assert (dark[0].where, dark[0].line) == ("templates/default/style.css", line_of(path, "#3a3f45"))
    assert "#3a3f45 on #1c2128" in dark[0].message


def test_colour_without_a_dark_value_is_caught_on_the_dark_background(settings, newsletter_root):
    """A text colour the dark rules forget stays dark on the dark background."""
    edit(newsletter_root, "style.css", ".header-meta, .byline, .toc-title,", ".byline, .toc-title,")
    [finding] = by_code(findings_of(settings, write_issue(newsletter_root)), "low-contrast-dark")
    assert "#52606d on #111418" in finding.message
    assert (finding.where, finding.line) == ("templates/default/style.css", 11)  # the light rule to override


@pytest.mark.parametrize("value, expected", [
    ("rebeccapurple", (0.4, 0.2, 0.6, 1.0)),
    ("rgb(1 2 3 / 50%)", (1 / 255, 2 / 255, 3 / 255, 0.5)),
    ("hsl(0 0% 60% / 1)", (0.6, 0.6, 0.6, 1.0)),
    ("hwb(0 60% 40%)", (0.6, 0.6, 0.6, 1.0)),
    ("#00000080", (0.0, 0.0, 0.0, 128 / 255)),
    ("lab(50% 0 0)", (0.4663, 0.4663, 0.4663, 1.0)),  # CIE L* 50 is #777777
    ("oklch(1 0 0)", (1.0, 1.0, 1.0, 1.0)),
    ("color(display-p3 1 1 1)", (1.0, 1.0, 1.0, 1.0)),
    ("color(srgb-linear 0.2158605 0.2158605 0.2158605)", (0.502, 0.502, 0.502, 1.0)),
    ("color(display-p3 1 0 0)", (1.0, 0.0, 0.0, 1.0)),  # outside sRGB: clipped
])
def test_css_color_4_colours_are_read(value, expected):
    """cssutils read none of these, so the contrast check skipped the text they colour."""
    assert parse_color(value) == pytest.approx(expected, abs=0.002)


def test_contrast_of_css_color_4_colours():
    assert contrast_ratio(parse_color("lab(50% 0 0)"), parse_color("white")) == pytest.approx(4.48, abs=0.02)
    assert contrast_ratio(parse_color("hwb(0 0% 100%)"), parse_color("oklab(1 0 0)")) == pytest.approx(21, abs=0.01)


@pytest.mark.parametrize("value, shown", [("hwb(0 63% 37%)", "#a1a1a1"), ("lab(66% 0 0)", "#a0a0a0")])
def test_low_contrast_of_a_css_color_4_colour_in_light_mode_is_found(settings, newsletter_root, value, shown):
    edit(newsletter_root, "style.css", ".footer-text { margin: 0 0 10px 0; color: #52606d; }",
         f".footer-text {{ margin: 0 0 10px 0; color: {value}; }}")
    [finding] = by_code(findings_of(settings, write_issue(newsletter_root)), "low-contrast-light")
    assert (finding.where, finding.line) == ("templates/default/style.css", 37)
    assert f"{shown} on #f4f1ec" in finding.message and "below WCAG AA 4.5:1" in finding.message


def test_low_contrast_of_a_named_css_color_4_colour_in_dark_mode_is_found(settings, newsletter_root):
    edit(newsletter_root, "style.css", "border-bottom-color: #111418 !important; color: #e6e8eb !important;",
         "border-bottom-color: #111418 !important; color: rebeccapurple !important;")
    findings = findings_of(settings, write_issue(newsletter_root))
    assert by_code(findings, "low-contrast-light") == []
    dark = by_code(findings, "low-contrast-dark")
    path = Path(settings.root) / THEME / "style.css"
    assert dark and (dark[0].where, dark[0].line) == ("templates/default/style.css", line_of(path, "rebeccapurple"))
    assert "#663399 on #1c2128" in dark[0].message
