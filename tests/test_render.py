"""Rendering once with merge fields, and the errors a writer sees for bad input."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from newsletter_helpers import write_issue

from newsletter.cli import main
from newsletter.compose.build import build_issue
from newsletter.compose.personalize import Personalizer, merge_values
from newsletter.errors import NewsletterError

# These tests edit the theme or name its files: they work on an own copy of the default theme.
pytestmark = pytest.mark.usefixtures("own_theme")


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def fill(built, **columns):
    values = merge_values({"email": "x@example.com", **columns}, "https://example.com/u?t=1&x=2")
    html, text = built.personalizers()
    return html.fill(values), text.fill(values)


# -- merge fields ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, escaped", [
    ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
    ('Ann & "Bob"', "Ann &amp; &quot;Bob&quot;"),
])
def test_names_arrive_escaped_in_html_and_intact_in_text(settings, newsletter_root, name, escaped):
    built = build_issue(settings, write_issue(newsletter_root, "Hi {{ subscriber.name | default('there') }}!"))
    html, text = fill(built, name=name)
    assert f"Hi {escaped}!" in html
    assert name not in html
    assert f"Hi {name}!" in text


def test_template_code_in_a_subscriber_value_is_printed_not_run(settings, newsletter_root):
    built = build_issue(settings, write_issue(newsletter_root, "Hi {{ subscriber.name }}!"))
    _, text = fill(built, name="{{ 7*7 }}")
    assert "Hi {{ 7*7 }}!" in text and "49" not in text


def test_empty_value_uses_the_fallback(settings, newsletter_root):
    built = build_issue(settings, write_issue(newsletter_root, "Hi {{ subscriber.name | default('there') }}!"))
    html, text = fill(built, name="")
    assert "Hi there!" in html and "Hi there!" in text


def test_any_list_column_is_a_merge_field(settings, newsletter_root):
    built = build_issue(settings, write_issue(newsletter_root, "Greetings to {{ subscriber.city }}."))
    html, _ = fill(built, city="Hampton")
    assert "Greetings to Hampton." in html


def test_rendering_happens_once_and_filling_is_cheap(settings, newsletter_root):
    built = build_issue(settings, write_issue(newsletter_root, "Hi {{ subscriber.name }}!"))
    personalizer = Personalizer(built.html, built.fields)
    copies = {personalizer.fill(merge_values({"email": f"r{i}@example.com", "name": f"R{i}"}, "")) for i in range(50)}
    assert len(copies) == 50  # every recipient got their own copy from one render


def test_unknown_merge_field_is_a_build_error_with_a_suggestion(settings, newsletter_root):
    with pytest.raises(NewsletterError) as err:
        build_issue(settings, write_issue(newsletter_root, "Hi {{ subscriber.nmae }}!"))
    message = str(err.value)
    assert "issue.md" in message and "subscriber.nmae" in message and "subscriber.name" in message


def test_filters_that_would_mangle_a_merge_field_are_refused(settings, newsletter_root):
    with pytest.raises(NewsletterError, match="filter 'upper' cannot be applied to merge field"):
        build_issue(settings, write_issue(newsletter_root, "Hi {{ subscriber.name | upper }}!"))


# -- safety --------------------------------------------------------------------------------------------


def test_article_markup_cannot_inject_into_the_email(settings, newsletter_root):
    article = ("---\ntitle: \"<b>Bold</b> title\"\n---\n\nText <script>alert(1)</script> and "
               "<a href=\"javascript:alert(2)\" onclick=\"x()\">a link</a> and {{ 7*7 }}.\n")
    built = build_issue(settings, write_issue(newsletter_root, articles={"a.md": article}))
    html, _ = fill(built, name="N")
    assert "&lt;b&gt;Bold&lt;/b&gt; title" in html
    assert "<script>alert" not in html and "javascript:" not in html and "onclick" not in html
    assert "{{ 7*7 }}" in html  # article text is data, never template code


# -- bad input: one clear line with the file and the fix, exit code 2 -----------------------------------


def test_missing_issue_folder(newsletter_root):
    result = run("build", "issues/nope")
    assert result.exit_code == 2
    assert result.output.startswith("Error: issues/nope: issue folder not found")
    assert "Traceback" not in result.output


def test_missing_article(newsletter_root):
    folder = write_issue(newsletter_root)
    (folder / "a.md").unlink()
    result = run("build", str(folder))
    assert result.exit_code == 2
    assert "issue.md: article 'a.md' is listed but the file does not exist" in result.output


def test_front_matter_that_does_not_parse_names_the_line(newsletter_root):
    folder = write_issue(newsletter_root, front="subject: Test\npreheader: [unclosed")
    result = run("build", str(folder))
    assert result.exit_code == 2
    assert "issue.md:" in result.output and "front matter is not valid YAML" in result.output


def test_template_syntax_error_names_template_and_line(newsletter_root):
    template = newsletter_root / "templates" / "default" / "email.html.j2"
    lines = template.read_text().splitlines()
    lines[5] = "{% if broken %}"
    template.write_text("\n".join(lines) + "\n")
    result = run("build", str(write_issue(newsletter_root)))
    assert result.exit_code == 2
    assert "templates/default/email.html.j2:" in result.output and "template syntax error" in result.output


def test_misspelled_template_variable_names_template_and_line(newsletter_root):
    template = newsletter_root / "templates" / "default" / "email.html.j2"
    template.write_text(template.read_text().replace("{{ newsletter.name }}", "{{ newsleter.name }}", 1))
    result = run("build", str(write_issue(newsletter_root)))
    assert result.exit_code == 2
    assert "email.html.j2:8" in result.output and "newsleter" in result.output


def test_unknown_theme_lists_the_available_ones(newsletter_root):
    folder = write_issue(newsletter_root, front="subject: T\ntheme: fancy")
    result = run("build", str(folder))
    assert result.exit_code == 2
    assert "unknown theme 'fancy'" in result.output and "available themes: default" in result.output


def test_article_that_is_not_utf8(newsletter_root):
    folder = write_issue(newsletter_root)
    (folder / "a.md").write_bytes("---\ntitle: T\n---\n\nCaf\xe9\n".encode("latin-1"))
    result = run("build", str(folder))
    assert result.exit_code == 2 and "a.md:5: is not UTF-8 text" in result.output


def test_empty_article(newsletter_root):
    folder = write_issue(newsletter_root, articles={"a.md": "---\ntitle: Empty\n---\n\n"})
    result = run("build", str(folder))
    assert result.exit_code == 2 and "a.md: article is empty" in result.output


@pytest.mark.parametrize("change, expected", [
    (("name = ", "nmae = "), "unknown setting 'newsletter.nmae' (did you mean 'name'?)"),
    (('postal_address = "Plain Files Press, 100 Example Street, Springfield, EX 12345, USA"\n', ""),
     "missing setting 'newsletter.postal_address'"),
    (("port = 587", 'port = "587"'), "'smtp.port' must be a whole number"),
    (('from = "The Plain Files Dispatch <dispatch@example.com>"', 'from = "nobody"'),
     "'newsletter.from' is not an email address"),
])
def test_bad_settings_name_the_key(newsletter_root, change, expected):
    config = newsletter_root / "newsletter.toml"
    config.write_text(config.read_text().replace(*change, 1))
    result = run("build", str(write_issue(newsletter_root)))
    assert result.exit_code == 2
    assert f"newsletter.toml: {expected}" in result.output


def test_a_theme_can_override_one_block_of_the_default(settings, newsletter_root):
    theme = newsletter_root / "templates" / "plain"
    theme.mkdir()
    (theme / "email.html.j2").write_text(
        '{% extends "default/email.html.j2" %}\n'
        '{% block toc %}<tr><td>Custom contents block</td></tr>{% endblock %}\n')
    (theme / "email.txt.j2").write_text('{% extends "default/email.txt.j2" %}\n')
    (theme / "style.css").write_text(".masthead { color: #123456; }\n")
    folder = write_issue(newsletter_root, front="subject: T\ntheme: plain")
    built = build_issue(settings, folder)
    html, text = fill(built, name="N")
    assert "Custom contents block" in html
    assert "color:#123456" in html.replace(" ", "")  # the theme's own style.css, inlined
    assert "Plain Files Press" in html and "Plain Files Press" in text  # the default footer still there
