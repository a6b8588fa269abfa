"""Read the CSS of a built email: ``<style>`` blocks and ``style=""`` attributes.

The checks need the structure of the CSS a mail client receives (which
properties, at-rules, selectors and media conditions it uses), not a browser's
cascade. tinycss2 does the parsing: it is tolerant (odd CSS becomes parse
errors, which are skipped, never exceptions). Values, selectors and at-rule
preludes are given back as written, read from the source by the positions
tinycss2 records, with comments read as spaces. The ``@media`` conditions a
rule sits in are recorded so dark-mode rules can be told apart from the rest.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import tinycss2
from tinycss2.ast import Node

# at-rules whose block holds further rules (the rest hold declarations or keyframes)
_GROUPING_AT_RULES = {"media", "supports", "document", "container", "layer", "scope"}
_CLOSERS = {"{} block": "}", "[] block": "]", "() block": ")", "function": ")"}


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


class _Source:
    """A CSS text tokenized by tinycss2, able to give back any run of its tokens as written.

    tinycss2 records where each token starts (line and column in the text with ``\\r\\n``, ``\\r`` and
    ``\\f`` read as ``\\n``); a token ends where the next one in its list starts, or where its block closes.
    """

    def __init__(self, text: str):
        self.text = text.replace("\0", "\ufffd").replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n")
        self.line_starts = [0, *(i + 1 for i, char in enumerate(self.text) if char == "\n")]
        self.tokens = tinycss2.parse_component_value_list(self.text, skip_comments=False)
        self.has_comments = False
        self.ends: dict[int, int] = {}
        self._find_ends(self.tokens, len(self.text))

    def start(self, node: Node) -> int:
        line: int = node.source_line
        column: int = node.source_column
        return self.line_starts[line - 1] + column - 1

    def _find_ends(self, tokens: Sequence[Node], end: int) -> None:
        starts = [self.start(token) for token in tokens]
        for i in reversed(range(len(tokens))):
            token = tokens[i]
            self.has_comments = self.has_comments or token.type == "comment"
            if i and token.type == "error" and starts[i] == starts[i - 1]:  # about the token before (an open string)
                self.ends[id(token)] = starts[i]
                continue
            self.ends[id(token)] = end
            if token.type in _CLOSERS:
                closed = self.text[end - 1:end] == _CLOSERS[token.type]  # else left open at the end of the text
                self._find_ends(token.arguments if token.type == "function" else token.content, end - closed)
            end = starts[i]

    def text_of(self, tokens: Iterable[Node]) -> str:
        """``tokens`` as written, comments read as spaces."""
        return "".join(" " if token.type == "comment" else self.text[self.start(token):self.ends[id(token)]]
                       for token in tokens)


def _declarations(nodes: Iterable[Node], source: _Source) -> tuple[Declaration, ...]:
    return tuple(Declaration(node.lower_name, source.text_of(node.value).strip(), node.important)
                 for node in nodes if node.type == "declaration")


def _block_contents(tokens: list[Node]) -> list[Node]:
    contents: list[Node] = tinycss2.parse_blocks_contents(tokens, skip_comments=True, skip_whitespace=True)
    return contents


@functools.lru_cache(maxsize=4096)
def parse_declarations(text: str) -> tuple[Declaration, ...]:
    """The declarations of a ``style=""`` attribute or a rule's block (remembered: an inlined email repeats
    the same few style attributes on hundreds of elements, and several checks read each)."""
    source = _Source(text)
    return _declarations(_block_contents(source.tokens), source)


def _read(nodes: Iterable[Node], source: _Source, sheet: Stylesheet, at_rules: tuple[str, ...],
          selectable: bool) -> None:
    for node in nodes:
        if node.type == "at-rule":
            prelude = " ".join(f"@{node.at_keyword}{source.text_of(node.prelude)}".split())
            sheet.at_rules.append(prelude)
            if node.content is None:  # a statement ended by ';'
                continue
            inside = (*at_rules, prelude)
            if node.lower_at_keyword in _GROUPING_AT_RULES:
                _read(_block_contents(node.content), source, sheet, inside, selectable)
            elif any(token.type == "{} block" for token in node.content):  # @keyframes: steps, not selectors
                _read(_block_contents(node.content), source, sheet, inside, False)
            else:  # @font-face, @page: declarations
                sheet.rules.append(Rule("", _declarations(_block_contents(node.content), source), inside))
        elif node.type == "qualified-rule":
            kept = [token for token in node.prelude if token.type != "error"]  # e.g. a stray '}' before it
            selector = " ".join(source.text_of(kept).split()) if selectable else ""
            sheet.rules.append(Rule(selector, _declarations(_block_contents(node.content), source), at_rules))
        # parse errors (stray braces, a selector with no block, ...) and, inside grouping at-rules,
        # stray declarations are skipped


def parse_stylesheet(text: str) -> Stylesheet:
    """Read the rules, at-rules and comments of a CSS text."""
    source = _Source(text)
    sheet = Stylesheet(has_comments=source.has_comments)
    _read(tinycss2.parse_stylesheet(source.tokens, skip_comments=True, skip_whitespace=True),
          source, sheet, (), True)
    return sheet


def selectors_of(rule: Rule) -> list[str]:
    """The comma-separated selectors of a rule, each stripped."""
    source = _Source(rule.selector)
    groups: list[list[Node]] = [[]]
    for token in source.tokens:
        if token == ",":
            groups.append([])
        else:
            groups[-1].append(token)
    return [selector for selector in (source.text_of(group).strip() for group in groups) if selector]
