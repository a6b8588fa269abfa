"""Email-client support: features major clients lack are found from the caniemail data and traced to a line."""

from __future__ import annotations

import json
from pathlib import Path

import lxml.html
import pytest
from newsletter_helpers import write_issue

from newsletter.checks import INFO, WARNING, CheckContext, Finding, run_checks_on
from newsletter.checks import client_support as clientsupport
from newsletter.checks.client_support import (
    DATA_PATH,
    SupportData,
    check_client_support,
    load_support_data,
)
from newsletter.compose.build import build
from newsletter.compose.content import load_issue

# These tests edit the theme or name its files: they work on an own copy of the default theme.
pytestmark = pytest.mark.usefixtures("own_theme")


def context(settings, folder: Path) -> CheckContext:
    issue = load_issue(folder)
    return CheckContext(settings, issue, build(settings, issue))


def support_findings(settings, folder: Path) -> dict[str, Finding]:
    return {f.code: f for f in run_checks_on(context(settings, folder), [check_client_support])}


def append_css(root: Path, css: str, file: str = "style.css") -> int:
    """Append ``css`` to a theme stylesheet; return the line number it lands on."""
    path = root / "templates" / "default" / file
    text = path.read_text(encoding="utf-8").rstrip("\n") + "\n"
    path.write_text(text + css + "\n", encoding="utf-8")
    return len(text.splitlines()) + 1


def test_shipped_data_set_and_licence():
    data = json.loads(DATA_PATH.read_text(encoding="utf-8"))
    assert len(data["data"]) > 250 and data["nicenames"]["family"]["gmail"] == "Gmail"
    licence = (DATA_PATH.parent / "caniemail.LICENSE").read_text(encoding="utf-8")
    assert "MIT License" in licence


def test_unsupported_css_property_is_a_warning_naming_clients_and_theme_line(settings, newsletter_root):
    line = append_css(newsletter_root, ".card { box-shadow: 0 1px 2px #000000; }")
    findings = support_findings(settings, write_issue(newsletter_root))
    finding = findings["client-support:css-box-shadow"]
    assert finding.severity == WARNING
    assert (finding.where, finding.line) == ("templates/default/style.css", line)
    assert "not supported in" in finding.message and "Outlook (Windows)" in finding.message
    assert "Yahoo! Mail (Desktop Webmail, iOS, Android)" in finding.message
    assert "caniemail.com/features/css-box-shadow" in finding.fix


def test_partial_support_is_a_note_with_caniemails_explanation(settings, newsletter_root):
    findings = support_findings(settings, write_issue(newsletter_root))
    margin = findings["client-support:css-margin"]
    assert margin.severity == INFO
    assert "only partly supported" in margin.message and "Negative values are not supported" in margin.message
    assert margin.where == "templates/default/style.css" and margin.line == 3


@pytest.mark.parametrize("css, code", [
    ("a:hover { color: #0b5cad; }", "client-support:css-pseudo-class-hover"),
    ("@media (prefers-reduced-motion: reduce) { .card { padding: 1px; } }",
     "client-support:css-at-media-prefers-reduced-motion"),
    (".card { width: clamp(200px, 50vw, 600px); }", "client-support:css-function-clamp"),
    (".card { font-size: 1.1rem; }", "client-support:css-unit-rem"),
    (".card { font-family: system-ui, sans-serif; }", "client-support:css-sytem-ui"),
    (".card { display: flex; }", "client-support:css-display-flex"),
    (".card { border-top-left-radius: 4px; }", "client-support:css-border-radius"),
])
def test_selectors_at_rules_functions_units_and_values_are_looked_up(settings, newsletter_root, css, code):
    line = append_css(newsletter_root, css, "clients.css")  # clients.css reaches the email as written
    findings = support_findings(settings, write_issue(newsletter_root))
    assert code in findings, sorted(findings)
    assert (findings[code].where, findings[code].line) == ("templates/default/clients.css", line)
    assert findings[code].severity == WARNING


def test_html_element_from_an_article_names_the_article(settings, newsletter_root):
    article = "---\ntitle: Terms\n---\n\nWe write <abbr title=\"HyperText Markup Language\">HTML</abbr>.\n"
    findings = support_findings(settings, write_issue(newsletter_root, articles={"a.md": article}))
    finding = findings["client-support:html-abbr"]
    assert finding.severity == WARNING
    assert finding.where.endswith("issues/2027-02-02-test/a.md") and finding.line == 5
    assert "Outlook (Windows)" in finding.message


def test_fragment_link_in_a_markdown_article_names_the_article_line(settings, newsletter_root):
    article = "---\ntitle: Notes\n---\n\nIntro.\n\nSee [the notes](#notes) below.\n"
    findings = support_findings(settings, write_issue(newsletter_root, articles={"a.md": article}))
    finding = findings["client-support:html-anchor-links"]
    assert finding.where.endswith("issues/2027-02-02-test/a.md") and finding.line == 7


def test_image_format_is_looked_up(settings, newsletter_root):
    article = "---\ntitle: Pics\n---\n\n![A chart of opens](https://example.com/chart.webp)\n"
    findings = support_findings(settings, write_issue(newsletter_root, articles={"a.md": article}))
    assert findings["client-support:image-webp"].severity == WARNING
    assert findings["client-support:image-webp"].line == 5


def test_each_feature_is_reported_once(settings, newsletter_root):
    append_css(newsletter_root, ".card { opacity: 0.9; }\n.footer { opacity: 0.8; }")
    ctx_findings = run_checks_on(context(settings, write_issue(newsletter_root)), [check_client_support])
    codes = [f.code for f in ctx_findings]
    assert len(codes) == len(set(codes))
    assert codes.count("client-support:css-opacity") == 1


def test_the_index_comes_from_the_data_not_a_hand_kept_list():
    """A feature the data set adds is found with no code change: here an invented property and element."""
    raw = {
        "nicenames": {"family": {"outlook": "Outlook"}, "platform": {"windows": "Windows"}},
        "data": [
            {"slug": "css-zoom", "title": "zoom", "category": "css", "keywords": None, "url": "u",
             "stats": {"outlook": {"windows": {"2019": "n"}}}, "notes_by_num": {}},
            {"slug": "html-blink", "title": "<blink> element", "category": "html", "keywords": None, "url": "u",
             "stats": {"outlook": {"windows": {"2016": "y", "2019": "a #1"}}}, "notes_by_num": {"1": "Blinks once."}},
        ],
    }
    data = SupportData(raw)
    html = '<html><body><blink style="zoom: 2">Hi</blink></body></html>'
    used = clientsupport.features_used(html, lxml.html.document_fromstring(html), data)
    assert set(used) == {"css-zoom", "html-blink"}
    assert data.features["html-blink"].support("outlook", "windows") == ("a", ("Blinks once.",))


def test_shipped_index_resolves_longhands_values_and_media_features():
    data = load_support_data()
    assert data.property_features("border-top-width") == ["css-border"]
    assert data.property_features("padding-left") == ["css-padding"]
    assert data.declarations[("display", "none")] == ["css-display-none"]
    assert data.media_features["prefers-color-scheme"] == ["css-at-media-prefers-color-scheme"]
    assert data.image_formats["jpeg"] == "image-jpg" and data.image_formats["png"] == "image-png"
    assert "left" not in data.value_keywords  # a property, so text-align: left is not css-left-right-top-bottom


def test_default_theme_has_client_warnings_but_no_errors(settings, newsletter_root):
    findings = support_findings(settings, write_issue(newsletter_root))
    assert findings, "the default theme uses dark mode and media queries, which some clients ignore"
    assert {f.severity for f in findings.values()} <= {WARNING, INFO}
    assert "client-support:css-at-media-prefers-color-scheme" in findings
