"""The plain-text part reads like a letter: wrapped paragraphs, headings, lists, numbered links."""

from __future__ import annotations

import re

import pytest

from newsletter.compose.plaintext import PlainText, heading

ARTICLE = """\
# The spring issue

Welcome back! This month we shipped **three things** you asked for. The
full story is in the [release notes](https://example.com/releases/2024-05),
and the numbers are on the [benchmark page](https://example.com/bench).

## What changed

1. **Faster builds**: a full issue now renders in under five seconds on the
   [benchmark suite](https://example.com/bench), down from forty.
2. **A real plain-text part**, written for people rather than stripped HTML.
3. Fixed the `--dry-run` summary.

![Build times, before and after](https://example.com/chart.png)

Questions? Write to [the editor](mailto:editor@example.com) or read the
FAQ at <https://example.com/faq>.
"""

ARTICLE_TEXT = """\
The spring issue
================

Welcome back! This month we shipped *three things* you asked for. The
full story is in the release notes [1], and the numbers are on the
benchmark page [2].

What changed
------------

1. *Faster builds*: a full issue now renders in under five seconds on
   the benchmark suite [2], down from forty.
2. *A real plain-text part*, written for people rather than stripped
   HTML.
3. Fixed the --dry-run summary.

[Image: Build times, before and after]

Questions? Write to the editor (editor@example.com) or read the FAQ at
https://example.com/faq.
"""

LONG_PARAGRAPH = (
    "Newsletters are read on phones, in terminals and by screen readers, so the text part has to "
    "stand on its own. Every paragraph is wrapped at a comfortable width and separated from the "
    "next by exactly one blank line, the way people have written email for forty years."
)


def render(markdown: str, width: int = 72) -> str:
    return PlainText(width).render(markdown)


def test_realistic_article_end_to_end() -> None:
    text = PlainText()
    assert text.render(ARTICLE) == ARTICLE_TEXT
    assert text.references() == "[1] https://example.com/releases/2024-05\n[2] https://example.com/bench\n"


# Paragraphs and wrapping


def test_paragraphs_wrap_at_width_and_are_separated_by_one_blank_line() -> None:
    out = render(f"{LONG_PARAGRAPH}\n\nSecond paragraph.", width=40)
    first, second = out.split("\n\n")
    assert second == "Second paragraph.\n"
    lines = first.split("\n")
    assert len(lines) > 3
    assert all(len(line) <= 40 for line in lines)
    assert " ".join(lines) == LONG_PARAGRAPH  # nothing lost, nothing broken mid-word


def test_soft_line_breaks_in_the_source_are_rewrapped() -> None:
    assert render("one\ntwo\nthree") == "one two three\n"


def test_a_url_longer_than_the_width_stays_whole_on_its_own_line() -> None:
    url = "https://example.com/a-very-long-path/with-many-hyphenated-segments/and-more-of-them/index.html"
    out = render(f"See {url} for details.", width=30)
    assert url in out.split("\n")
    assert out == f"See\n{url}\nfor details.\n"


def test_hyphenated_words_are_not_split() -> None:
    out = render("aaaa bbbb cccc dddd state-of-the-art well-known", width=20)
    assert "state-of-the-art" in out.split()
    assert "well-known" in out.split()


@pytest.mark.parametrize("width", range(20, 60))
def test_merge_tokens_are_never_broken(width: int) -> None:
    tokens = [f"NLMRG{n:04d}{flavour}" for n, flavour in zip(range(1, 13), "TUTUTUTUTUTU", strict=True)]
    source = " ".join(f"word{i} {token}," for i, token in enumerate(tokens)) + " and *NLMRG0099T* too."
    out = render(source, width=width)
    found = re.findall(r"NLMRG\d{4}[A-Z]", out)
    assert found == [*tokens, "NLMRG0099T"]
    assert all(len(line) <= width for line in out.split("\n"))


def test_a_merge_token_in_a_link_url_is_kept_whole_in_the_references() -> None:
    text = PlainText()
    assert text.render("[Unsubscribe](https://example.com/u?id=NLMRG0002U)") == "Unsubscribe [1]\n"
    assert text.references() == "[1] https://example.com/u?id=NLMRG0002U\n"


# Headings


def test_heading_levels() -> None:
    out = render("# Big news\n\n## Smaller news\n\n### Detail\n\n#### Finer detail\n\nBody.")
    assert out == (
        "Big news\n========\n\n"
        "Smaller news\n------------\n\n"
        "Detail\n~~~~~~\n\n"
        "Finer detail\n~~~~~~~~~~~~\n\n"
        "Body.\n"
    )


def test_no_heading_shows_markdown_marks() -> None:
    """A reader of the text part sees headings, never Markdown's ``#`` marks (issue 20, finding 25)."""
    out = render("Intro.\n\n### What we read\n\nText.\n\n###### Footnote-sized heading\n\nMore.")
    assert "#" not in out
    assert "What we read\n~~~~~~~~~~~~\n" in out and "Footnote-sized heading\n~~~~" in out


def test_setext_headings_render_like_atx_headings() -> None:
    assert render("Big news\n===\n\nSmall\n---") == "Big news\n========\n\nSmall\n-----\n"


def test_heading_function_matches_what_render_produces() -> None:
    for level in (1, 2, 3, 5):
        assert render("#" * level + " Our spring issue") == heading("Our spring issue", level) + "\n"


def test_heading_function_style() -> None:
    assert heading("Title") == "Title\n====="
    assert heading("Title", 2) == "Title\n-----"
    assert heading("Title", 3) == "Title\n~~~~~"
    assert heading("Title", 6) == "Title\n~~~~~"
    assert heading("  spaced \n  out  ") == "spaced out\n=========="
    assert heading("") == ""
    with pytest.raises(ValueError):
        heading("Title", 0)


def test_long_heading_wraps_and_the_underline_spans_the_longest_line() -> None:
    title = "An unusually long article title that certainly will not fit on one line of text"
    lines = heading(title).split("\n")
    assert len(lines) == 3
    assert " ".join(lines[:2]) == title
    assert lines[2] == "=" * max(len(lines[0]), len(lines[1]))
    assert all(len(line) <= 72 for line in lines)


# Emphasis and code


def test_emphasis_uses_text_mail_conventions() -> None:
    out = render("**bold**, __bold__, *em*, _em_ and ~~gone~~")
    assert out == "*bold*, *bold*, _em_, _em_ and ~~gone~~\n"


def test_inline_code_is_its_text() -> None:
    assert render("Run `newsletter send --dry-run` first.") == "Run newsletter send --dry-run first.\n"


def test_short_inline_code_is_kept_on_one_line_when_wrapping() -> None:
    # Plain wrapping would break before "--dry-run" (column 47); the command moves down whole.
    out = render("Before you send the issue, run `newsletter send --dry-run` first.", width=50)
    assert out == "Before you send the issue, run\nnewsletter send --dry-run first.\n"


def test_code_blocks_are_indented_four_spaces_and_not_wrapped() -> None:
    long_line = "result = compute(" + ", ".join(f"argument_{i}" for i in range(12)) + ")"
    source = f"Example:\n\n```python\ndef f():\n    {long_line}\n\n    return 1\n```\n\nAfter."
    out = render(source, width=40)
    assert out == f"Example:\n\n    def f():\n        {long_line}\n\n        return 1\n\nAfter.\n"


def test_indented_code_blocks_too() -> None:
    assert render("Text.\n\n    $ newsletter preview\n\nMore.") == "Text.\n\n    $ newsletter preview\n\nMore.\n"


# Lists


def test_bullet_list() -> None:
    assert render("* one\n* two\n+ three") == "- one\n- two\n\n- three\n"


def test_numbered_list_keeps_its_start_number() -> None:
    assert render("3. three\n4. four") == "3. three\n4. four\n"


def test_numbers_of_different_widths_are_right_aligned() -> None:
    assert render("9. nine\n10. ten") == " 9. nine\n10. ten\n"


def test_nested_lists_are_indented_three_spaces() -> None:
    out = render("1. first\n   - inner\n     1. innermost\n2. second")
    assert out == "1. first\n   - inner\n      1. innermost\n2. second\n"


def test_wrapped_list_items_hang_under_their_text() -> None:
    out = render(f"- {LONG_PARAGRAPH}\n\n10. x\n11. {LONG_PARAGRAPH}", width=40)
    bullet, numbered = out.split("\n\n")
    bullet_lines = bullet.split("\n")
    assert bullet_lines[0].startswith("- Newsletters")
    assert all(line.startswith("  ") and line[2] != " " for line in bullet_lines[1:])
    assert all(len(line) <= 40 for line in bullet_lines)
    numbered_lines = numbered.split("\n")[1:-1]
    assert numbered_lines[0].startswith("11. Newsletters")
    assert all(line.startswith("    ") and line[4] != " " for line in numbered_lines[1:])


def test_loose_lists_keep_their_blank_lines_and_tight_lists_have_none() -> None:
    assert render("- a\n- b") == "- a\n- b\n"
    assert render("- a\n\n- b\n\n  More about b.") == "- a\n\n- b\n\n  More about b.\n"


# Links and images


def test_links_become_numbered_references() -> None:
    text = PlainText()
    out = text.render("Read [the notes](https://example.com/notes) and [the FAQ](https://example.com/faq).")
    assert out == "Read the notes [1] and the FAQ [2].\n"
    assert text.links == ["https://example.com/notes", "https://example.com/faq"]
    assert text.references() == "[1] https://example.com/notes\n[2] https://example.com/faq\n"


def test_the_same_url_reuses_its_number() -> None:
    text = PlainText()
    out = text.render("[a](https://example.com/x), [b](https://example.com/y), [c](https://example.com/x)")
    assert out == "a [1], b [2], c [1]\n"
    assert text.links == ["https://example.com/x", "https://example.com/y"]


def test_numbers_continue_across_fragments_of_one_email() -> None:
    text = PlainText()
    assert text.render("Intro with [a link](https://example.com/a).") == "Intro with a link [1].\n"
    second = text.render("[Again](https://example.com/a) and [new](https://example.com/b).")
    assert second == "Again [1] and new [2].\n"
    assert text.references() == "[1] https://example.com/a\n[2] https://example.com/b\n"


def test_reference_style_links_are_numbered_too() -> None:
    text = PlainText()
    assert text.render("See [the site][site].\n\n[site]: https://example.com/") == "See the site [1].\n"
    assert text.links == ["https://example.com/"]


def test_no_links_no_references() -> None:
    text = PlainText()
    text.render("Nothing to follow here.")
    assert text.references() == ""
    assert text.links == []


def test_links_property_is_a_copy() -> None:
    text = PlainText()
    text.render("[a](https://example.com/a)")
    text.links.append("https://evil.example/")
    assert text.links == ["https://example.com/a"]


def test_a_link_whose_text_is_its_url_prints_once_without_a_number() -> None:
    text = PlainText()
    out = text.render("<https://example.com/faq> and [https://example.com/x](https://example.com/x)")
    assert out == "https://example.com/faq and https://example.com/x\n"
    assert text.links == []


def test_an_autolink_prints_as_typed_not_percent_encoded() -> None:
    text = PlainText()
    assert text.render("<https://bücher.example/café>") == "https://bücher.example/café\n"
    assert text.links == []


def test_a_bare_url_is_left_as_written() -> None:
    text = PlainText()
    assert text.render("Visit https://example.com/ today.") == "Visit https://example.com/ today.\n"
    assert text.links == []


def test_mailto_links_print_the_address() -> None:
    text = PlainText()
    out = text.render(
        "<editor@example.com>, [editor@example.com](mailto:editor@example.com), "
        "[write to us](mailto:editor@example.com?subject=Hello)"
    )
    assert out == "editor@example.com, editor@example.com, write to us (editor@example.com)\n"
    assert text.links == []


def test_anchor_links_print_their_text_only() -> None:
    text = PlainText()
    assert text.render("Jump to [the end](#end).") == "Jump to the end.\n"
    assert text.links == []


def test_the_reference_marker_stays_with_the_link_text() -> None:
    # "aaaa bbbb ccc notes" fills 19 of 20 columns; the marker takes "notes" down with it.
    out = render("aaaa bbbb ccc [notes](https://example.com/r) here.", width=20)
    assert out == "aaaa bbbb ccc\nnotes [1] here.\n"


def test_entities_in_urls_are_decoded() -> None:
    text = PlainText()
    text.render("[search](https://example.com/?q=a&amp;page=2)")
    assert text.links == ["https://example.com/?q=a&page=2"]


def test_images_show_their_alt_text_or_nothing() -> None:
    text = PlainText()
    assert text.render("![A chart of opens](chart.png)") == "[Image: A chart of opens]\n"
    decorated = text.render("Before ![](spacer.gif) after")
    assert decorated.split() == ["Before", "after"]
    assert text.render("![](spacer.gif)") == ""
    assert text.links == []


def test_a_linked_image_keeps_alt_text_and_number() -> None:
    text = PlainText()
    assert text.render("[![Our logo](logo.png)](https://example.com/)") == "[Image: Our logo] [1]\n"
    assert text.links == ["https://example.com/"]


# Quotes, rules, tables, breaks


def test_blockquotes_are_prefixed_and_wrapped_inside_the_width() -> None:
    out = render(f"> {LONG_PARAGRAPH}\n>\n> > Nested.", width=40)
    lines = out.rstrip("\n").split("\n")
    assert all(line.startswith(">") for line in lines)
    assert all(len(line) <= 40 for line in lines)
    assert lines[-2:] == [">", "> > Nested."]
    assert " ".join(line[2:] for line in lines[:-2]) == LONG_PARAGRAPH


def test_horizontal_rule_is_a_line_of_dashes_the_width_of_the_text() -> None:
    assert render("Above\n\n***\n\nBelow", width=30) == "Above\n\n" + "-" * 30 + "\n\nBelow\n"


def test_tables_become_aligned_columns() -> None:
    source = "| Step | Time |\n|------|-----:|\n| parse | 1.2 s |\n| render everything | 10.4 s |"
    assert render(source) == (
        "Step                 Time\n"
        "-----------------  ------\n"
        "parse               1.2 s\n"
        "render everything  10.4 s\n"
    )


def test_a_table_too_wide_becomes_one_record_per_row() -> None:
    source = (
        "| Name | Role | Notes |\n|---|---|---|\n"
        "| Alice | Editor | Writes the introduction every month, without fail |\n"
        "| Bob | | Proofreads |"
    )
    assert render(source, width=40) == (
        "Name: Alice\n"
        "Role: Editor\n"
        "Notes: Writes the introduction every\n"
        "  month, without fail\n"
        "\n"
        "Name: Bob\n"
        "Notes: Proofreads\n"
    )


def test_hard_breaks_are_kept() -> None:
    assert render("Plain Files Press  \n100 Example Street\\\nSpringfield<br>USA") == (
        "Plain Files Press\n100 Example Street\nSpringfield\nUSA\n"
    )


# HTML, entities, characters


def test_html_blocks_give_their_text_only() -> None:
    source = (
        '<div class="note">\n<p>Thanks &amp; welcome,<br>new readers.</p>'
        "<script>track()</script><style>p { color: red }</style>\n<p>Second.</p>\n</div>\n\n"
        "<!-- not for readers -->\n\nAfter."
    )
    assert render(source) == "Thanks & welcome,\nnew readers.\n\nSecond.\n\nAfter.\n"


def test_inline_html_gives_its_text_only() -> None:
    out = render('Some <b>bold</b> and <span style="x">styled</span> text<script>alert(1)</script>.')
    assert out == "Some bold and styled text.\n"


def test_no_tag_survives() -> None:
    out = render("<table><tr><td>Cell</td></tr></table>\n\nText with <em>em</em> and <img src=x alt='y'>.")
    assert "<" not in out and ">" not in out
    assert "Cell" in out and "Text with em and ." in out


def test_entities_are_decoded() -> None:
    assert render("Fish &amp; chips &copy; 2024 &#8212; &lt;not a tag&gt; &quot;q&quot;") == (
        'Fish & chips © 2024 — <not a tag> "q"\n'
    )


def test_escaped_markdown_prints_its_characters() -> None:
    assert render(r"\*not emphasis\* and 5 \< 6") == "*not emphasis* and 5 < 6\n"


def test_typographic_characters_are_kept() -> None:
    source = "“Curly quotes”, it’s – dashes — and … café, 東京, 🎉 -- \"straight\" ..."
    assert render(source) == source + "\n"


# Shape of every rendering


SAMPLES = [
    ARTICLE,
    LONG_PARAGRAPH,
    "```\na\n\n\n\nb   \n```",
    "<p>a</p>\n\n\n\n<p>b</p>",
    "- a\n\n\n- b",
    "> a\n>\n>\n> b",
    "Trailing spaces   \nand tabs\t\t\n\n# Heading   ",
    "a<br><br><br><br>b<br>",
    "| a |\n|---|\n| |",
    "---\n\n---",
]


@pytest.mark.parametrize("source", SAMPLES)
def test_output_ends_with_one_newline_and_has_no_trailing_spaces_or_double_blank_lines(source: str) -> None:
    out = render(source)
    assert out.endswith("\n") and not out.endswith("\n\n")
    assert not out.startswith("\n")
    assert "\n\n\n" not in out
    assert all(line == line.rstrip() for line in out.split("\n"))


def test_an_empty_fragment_renders_as_nothing() -> None:
    assert render("") == ""
    assert render("  \n\n  ") == ""
    assert render("<!-- only a comment -->") == ""


def test_width_too_narrow_to_read_is_refused() -> None:
    with pytest.raises(ValueError, match="width"):
        PlainText(width=5)
