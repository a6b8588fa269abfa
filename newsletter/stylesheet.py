"""Read the CSS of a built email: ``<style>`` blocks and ``style=""`` attributes.

The checks need the structure of the CSS a mail client receives (which
properties, at-rules, selectors and media conditions it uses), not a browser's
cascade, so this is a small tolerant reader: it never raises on odd CSS, it
keeps values as written, and it records the ``@media`` conditions a rule sits
in so dark-mode rules can be told apart from the rest.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)
_IMPORTANT = re.compile(r"!\s*important\s*$", re.IGNORECASE)
# at-rules whose block holds further rules (the rest hold declarations or keyframes)
_GROUPING_AT_RULES = {"media", "supports", "document", "container", "layer", "scope"}


@dataclass(frozen=True)
class Declaration:
    """One ``property: value`` pair; ``name`` is lower-cased, ``value`` kept as written."""

    name: str
    value: str
    important: bool = False


@dataclass(frozen=True)
class Rule:
    """A rule with its declarations and the preludes of the at-rules it is nested in.

    ``selector`` is empty for blocks that are not selected by selectors (``@font-face``,
    keyframe steps).
    """

    selector: str
    declarations: tuple[Declaration, ...]
    at_rules: tuple[str, ...] = ()  # e.g. ("@media (prefers-color-scheme: dark)",)


@dataclass
class Stylesheet:
    """Everything read from one or more CSS texts."""

    rules: list[Rule] = field(default_factory=list)
    at_rules: list[str] = field(default_factory=list)  # every at-rule prelude met, e.g. "@media screen"
    has_comments: bool = False

    def extend(self, other: Stylesheet) -> None:
        self.rules.extend(other.rules)
        self.at_rules.extend(other.at_rules)
        self.has_comments = self.has_comments or other.has_comments


def split_top_level(text: str, separator: str) -> list[str]:
    """Split ``text`` at ``separator`` where it is not inside quotes, parentheses or brackets."""
    parts: list[str] = []
    depth = 0
    quote = ""
    start = 0
    i = 0
    while i < len(text):
        char = text[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in "([":
            depth += 1
        elif char in ")]":
            depth = max(0, depth - 1)
        elif char == separator and depth == 0:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


def parse_declarations(text: str) -> tuple[Declaration, ...]:
    """The declarations of a ``style=""`` attribute or a rule's block."""
    declarations = []
    for part in split_top_level(text, ";"):
        name, colon, value = part.partition(":")
        name = name.strip().lower()
        if not colon or not name:
            continue
        value = value.strip()
        important = bool(_IMPORTANT.search(value))
        if important:
            value = _IMPORTANT.sub("", value).strip()
        declarations.append(Declaration(name, value, important))
    return tuple(declarations)


def _blocks(text: str) -> Iterator[tuple[str, str | None]]:
    """Top-level (prelude, block) pairs; block is None for a statement ended by ``;``."""
    depth = 0
    quote = ""
    start = 0
    prelude_end = 0
    i = 0
    while i < len(text):
        char = text[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == "{":
            if depth == 0:
                prelude_end = i
            depth += 1
        elif char == "}":
            if depth == 0:  # a stray brace: skip past it
                start = i + 1
            else:
                depth -= 1
                if depth == 0:
                    yield text[start:prelude_end].strip(), text[prelude_end + 1:i]
                    start = i + 1
        elif char == ";" and depth == 0:
            statement = text[start:i].strip()
            if statement:
                yield statement, None
            start = i + 1
        i += 1


def _read(text: str, sheet: Stylesheet, at_rules: tuple[str, ...], selectable: bool) -> None:
    for prelude, block in _blocks(text):
        prelude = " ".join(prelude.split())
        if prelude.startswith("@"):
            sheet.at_rules.append(prelude)
            name = prelude[1:].split(None, 1)[0].split("(", 1)[0].lower() if len(prelude) > 1 else ""
            if block is None:
                continue
            if name in _GROUPING_AT_RULES:
                _read(block, sheet, (*at_rules, prelude), selectable)
            elif "{" in block:  # @keyframes and the like: steps, not selectors
                _read(block, sheet, (*at_rules, prelude), False)
            else:  # @font-face, @page: declarations
                sheet.rules.append(Rule("", parse_declarations(block), (*at_rules, prelude)))
        elif block is not None:
            sheet.rules.append(Rule(prelude if selectable else "", parse_declarations(block), at_rules))


def parse_stylesheet(text: str) -> Stylesheet:
    """Read the rules, at-rules and comments of a CSS text."""
    sheet = Stylesheet(has_comments=bool(_COMMENT.search(text)))
    _read(_COMMENT.sub(" ", text), sheet, (), True)
    return sheet


def selectors_of(rule: Rule) -> list[str]:
    """The comma-separated selectors of a rule, each stripped."""
    return [s.strip() for s in split_top_level(rule.selector, ",") if s.strip()]
