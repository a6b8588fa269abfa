"""The CSS reader behind the preflight checks: structure, values as written, and no exceptions on odd CSS."""

from __future__ import annotations

import pytest

from newsletter.checks.stylesheet import (
    Declaration,
    Rule,
    parse_declarations,
    parse_stylesheet,
    selectors_of,
)


def test_nested_media_rules_record_every_enclosing_prelude():
    sheet = parse_stylesheet("""
        .card { color: #1f2933; }
        @media only screen and (max-width: 620px) {
          @media (prefers-color-scheme: dark) { .card, .body { color: #e6e8eb; } }
          .wrapper { padding: 0; }
        }
        @supports (display: grid) { .grid { display: grid; } }
    """)
    assert sheet.rules == [
        Rule(".card", (Declaration("color", "#1f2933"),)),
        Rule(".card, .body", (Declaration("color", "#e6e8eb"),),
             ("@media only screen and (max-width: 620px)", "@media (prefers-color-scheme: dark)")),
        Rule(".wrapper", (Declaration("padding", "0"),), ("@media only screen and (max-width: 620px)",)),
        Rule(".grid", (Declaration("display", "grid"),), ("@supports (display: grid)",)),
    ]
    assert sheet.at_rules == ["@media only screen and (max-width: 620px)", "@media (prefers-color-scheme: dark)",
                              "@supports (display: grid)"]
    assert selectors_of(sheet.rules[1]) == [".card", ".body"]


def test_important_is_a_flag_and_names_are_lower_cased():
    assert parse_declarations("COLOR: #FFF !important; Background-Color: Red ! IMPORTANT; margin: 0") == (
        Declaration("color", "#FFF", True),
        Declaration("background-color", "Red", True),
        Declaration("margin", "0", False),
    )


def test_values_are_kept_as_written():
    declarations = parse_declarations("font-family: 'Times New Roman', serif; font-size: 1.50EM;"
                                      "  padding :  1px   2px ;; unicode-range: U+0000-00FF")
    assert [d.value for d in declarations] == ["'Times New Roman', serif", "1.50EM", "1px   2px", "U+0000-00FF"]


def test_semicolons_inside_strings_and_urls_do_not_end_a_declaration():
    assert parse_declarations("""background: url(a;b.png) no-repeat; content: "x;y"; """
                              """font-family: 'A;B'; background-image: url('c;d.png')""") == (
        Declaration("background", "url(a;b.png) no-repeat"),
        Declaration("content", '"x;y"'),
        Declaration("font-family", "'A;B'"),
        Declaration("background-image", "url('c;d.png')"),
    )


def test_commas_inside_brackets_do_not_split_selectors():
    sheet = parse_stylesheet("a[title='x, y'], td:not(.a, .b) > p { color: red }")
    assert selectors_of(sheet.rules[0]) == ["a[title='x, y']", "td:not(.a, .b) > p"]


def test_comments_are_noticed_and_read_as_spaces():
    sheet = parse_stylesheet("/* theme */ .a /* x */ .b { color: red /* why */ !important; /* gone: 1 */ }")
    assert sheet.has_comments
    assert sheet.rules == [Rule(".a .b", (Declaration("color", "red", True),))]
    assert not parse_stylesheet('a { content: "/* not a comment */" }').has_comments


def test_keyframes_and_font_face_hold_no_selectors():
    sheet = parse_stylesheet("@font-face { font-family: X; src: url(x.woff) }"
                             "@keyframes spin { from { opacity: 0 } 50% { opacity: .5 } }"
                             "@import url(other.css);")
    assert sheet.rules == [
        Rule("", (Declaration("font-family", "X"), Declaration("src", "url(x.woff)")), ("@font-face",)),
        Rule("", (Declaration("opacity", "0"),), ("@keyframes spin",)),
        Rule("", (Declaration("opacity", ".5"),), ("@keyframes spin",)),
    ]
    assert sheet.at_rules == ["@font-face", "@keyframes spin", "@import url(other.css)"]


@pytest.mark.parametrize("css", [
    "} a { color: red }",
    "a { color: red; { } b { color: blue }",
    "a { color: red",
    "@media print { a { color: red }",
    'a { content: "never closed',
    "a { color: rgb(0, 0 ; margin: )) 0 }",
    "a { : red; color; *zoom: 1; 5px; color: blue }",
    "@ ; @media { } { } ;;; <!-- --> /* open",
    "\0\r\n\f\\",
    "",
])
def test_malformed_css_never_raises(css):
    sheet = parse_stylesheet(css)
    for rule in sheet.rules:
        selectors_of(rule)
    parse_declarations(css)


def test_malformed_css_keeps_what_can_be_read():
    sheet = parse_stylesheet("} a { color: red } b { color: blue; }} c { margin: 0 }")
    assert [(rule.selector, rule.declarations) for rule in sheet.rules] == [
        ("a", (Declaration("color", "red"),)),
        ("b", (Declaration("color", "blue"),)),
        ("c", (Declaration("margin", "0"),)),
    ]
    assert parse_declarations("color; : x; *zoom: 1; width: 10px") == (Declaration("width", "10px"),)
