"""The plain-text part of an email, written for people rather than stripped from HTML.

Readers who see the text part (old clients, screen readers, people who
prefer it) should get something that reads like a letter typed by hand, so
the Markdown source is rendered from markdown-it's token stream, never from
the HTML, and never by regular expressions over Markdown:

- paragraphs wrapped at ``width`` (72) columns, one blank line between blocks;
  words, URLs and merge tokens (``NLMRG0001T``) are never broken, a link's
  ``[n]`` marker stays on the line of the word before it, and inline code up
  to half the width is kept on one line so it can be copied;
- headings underlined, the setext style every text reader knows: level 1
  with ``=``, level 2 with ``-``, level 3 and deeper with ``~`` (no ``###``:
  Markdown's marks mean nothing to a reader); see :func:`heading`;
- ``**strong**`` as ``*strong*``, ``*emphasis*`` as ``_emphasis_``,
  ``~~struck~~`` as is: the conventions of plain-text mail;
- inline code as its text, code blocks indented 4 spaces and never wrapped;
- ``- `` bullets and ``1. `` numbers (right-aligned when they differ in
  width), continuation lines hanging under the item's text, nested lists
  3 spaces further in, blank lines between items only when the source had
  them (a loose list);
- links as ``text [n]`` with the URL listed by :meth:`PlainText.references`;
  one number per URL for the whole email; a link whose text is its URL
  prints once with no number; ``mailto:`` links print the address; links to
  ``#anchors`` print their text only (there is nothing to follow in text);
- images as ``[Image: alt]``, or nothing when the alt text is empty
  (an empty alt means "decorative");
- ``> `` before quoted lines, a rule as a line of ``-`` the width of the
  text, tables as aligned columns (or ``Header: value`` records when they
  would not fit), hard breaks kept;
- HTML written into the Markdown contributes its text only, never tags, and
  nothing from ``<script>`` or ``<style>``;
- entities decoded, typographic characters kept as typed (the result is
  Unicode, sent as UTF-8).

Every rendering ends with exactly one newline, has no trailing spaces and
never more than one blank line in a row.
"""

from __future__ import annotations

from collections.abc import Sequence
from html.parser import HTMLParser
from urllib.parse import unquote

from markdown_it import MarkdownIt
from markdown_it.token import Token
from markdown_it.tree import SyntaxTreeNode

from .markdown import absolute_url
from .markdown import parser as markdown_parser

DEFAULT_WIDTH = 72
MIN_WIDTH = 20
CODE_INDENT = "    "
NESTED_LIST_INDENT = "   "
QUOTE_PREFIX = "> "
TABLE_GAP = "  "
_UNDERLINES = "=-~"  # heading levels 1, 2, and 3 and deeper

# Stands for a space that wrapping must not break at; turned back into a
# space once the lines are wrapped. A private-use character cannot occur in
# the writer's text by accident.
_GLUE = "\ue000"
# Where an HTML block starts a new paragraph, and where <br> breaks a line.
_HTML_PARAGRAPH = "\ue001"
_HTML_BREAK = "\ue002"

_HTML_SKIPPED = frozenset({"script", "style", "template"})
_HTML_BLOCKS = frozenset({
    "address", "article", "aside", "blockquote", "dd", "details", "div", "dl", "dt", "figcaption",
    "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav",
    "ol", "p", "pre", "section", "summary", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
})


def _parser() -> MarkdownIt:
    """The same Markdown parser the HTML part is rendered with (tables, strikethrough, no linkify)."""
    return markdown_parser()


def heading(text: str, level: int = 1) -> str:
    """A heading in the style render() uses, for templates to title articles and sections.

    Level 1 is underlined with ``=``, level 2 with ``-``, level 3 and deeper
    with ``~``. Long titles wrap at 72 columns and the underline spans the
    longest line. No trailing newline: in a
    template the heading sits on its own lines, like any other expression.
    """
    return "\n".join(_heading_lines(text, level, DEFAULT_WIDTH))


def _heading_lines(text: str, level: int, width: int) -> list[str]:
    if level < 1:
        raise ValueError(f"heading level must be 1 or more, not {level}")
    text = " ".join(text.split())
    if not text:
        return []
    lines = _wrap(text, width)
    underline = _UNDERLINES[min(level, len(_UNDERLINES)) - 1] * max(len(line) for line in lines)
    return [*lines, underline]


def _wrap(text: str, width: int, initial_indent: str = "", subsequent_indent: str = "") -> list[str]:
    """Wrap at spaces only: a URL, a hyphenated word or a merge token is never split.

    A greedy fill like textwrap's with break_long_words and break_on_hyphens off,
    cutting each line with str.rfind: textwrap's per-word chunking dominated build time.
    """
    flat = " ".join(text.split())
    lines: list[str] = []
    indent = initial_indent
    start = 0
    while start < len(flat):
        room = max(width - len(indent), 1)
        if len(flat) - start <= room:
            lines.append(indent + flat[start:])
            break
        cut = flat.rfind(" ", start, start + room + 1)
        if cut <= start:  # a word longer than the line: it stands alone, unbroken
            cut = flat.find(" ", start + room)
            if cut == -1:
                lines.append(indent + flat[start:])
                break
        lines.append(indent + flat[start:cut])
        start = cut + 1
        indent = subsequent_indent
    return lines or [""]


class PlainText:
    """Renders Markdown fragments of one email to plain text, numbering links across the whole email.

    Use one instance per email (per text part): the intro and every article
    share one list of link references, printed once at the end with
    :meth:`references`.
    """

    def __init__(self, width: int = DEFAULT_WIDTH, base_url: str = "") -> None:
        """``base_url``: where relative links resolve (the issue's web address), as in the HTML part."""
        if width < MIN_WIDTH:
            raise ValueError(f"plain-text width must be at least {MIN_WIDTH} columns, not {width}")
        self.width = width
        self._md = _parser()
        self.base_url = base_url
        self._links: list[str] = []
        self._numbers: dict[str, int] = {}

    @property
    def links(self) -> list[str]:
        """Every URL given a reference number so far, in number order (a copy)."""
        return list(self._links)

    def references(self) -> str:
        """``[1] https://...`` lines for every numbered link so far, ending with a newline; "" if none."""
        return "".join(f"[{number}] {url}\n" for number, url in enumerate(self._links, start=1))

    def render(self, markdown: str, tokens: list[Token] | None = None) -> str:
        """One fragment (the intro, an article body) as plain text ending with one newline; "" if empty.

        Links are numbered continuing from earlier fragments of the same email. ``tokens``:
        the fragment already parsed by markdown.parse, so an article is parsed once for both parts.
        """
        tree = SyntaxTreeNode(tokens if tokens is not None else self._md.parse(markdown))
        lines = self._blocks(tree.children, self.width)
        return _tidy(lines)

    # Blocks: each returns its lines for a given width; blank lines separate blocks.

    def _blocks(self, nodes: Sequence[SyntaxTreeNode], width: int) -> list[str]:
        lines: list[str] = []
        for node in nodes:
            block = self._block(node, width)
            if not block:
                continue
            if lines:
                lines.append("")
            lines.extend(block)
        return lines

    def _block(self, node: SyntaxTreeNode, width: int) -> list[str]:
        kind = node.type
        if kind == "paragraph":
            return self._paragraph(node, width)
        if kind == "heading":
            text = self._inline(node.children[0], width).replace("\n", " ")
            return _heading_lines(text, int(node.tag[1:]), width)
        if kind in ("bullet_list", "ordered_list"):
            return self._list(node, width)
        if kind == "blockquote":
            inner = self._blocks(node.children, width - len(QUOTE_PREFIX))
            return [(QUOTE_PREFIX + line) if line else QUOTE_PREFIX.rstrip() for line in inner]
        if kind in ("fence", "code_block"):
            code = node.content.rstrip("\n")
            return [(CODE_INDENT + line) if line.strip() else "" for line in code.split("\n")]
        if kind == "hr":
            return ["-" * width]
        if kind == "table":
            return self._table(node, width)
        if kind == "html_block":
            return _html_lines(node.content, width)
        # Anything a future markdown-it rule adds: keep its text rather than lose it.
        return self._blocks(node.children, width)

    def _paragraph(self, node: SyntaxTreeNode, width: int) -> list[str]:
        text = self._inline(node.children[0], width)
        lines: list[str] = []
        for segment in text.split("\n"):  # hard breaks
            lines.extend(_wrap(segment, width))
        return _trim(lines)

    def _list(self, node: SyntaxTreeNode, width: int) -> list[str]:
        items = node.children
        if node.type == "ordered_list":
            start = int(node.attrGet("start") or 1)
            numbers = [f"{start + i}." for i in range(len(items))]
            size = max(len(n) for n in numbers)
            markers = [n.rjust(size) + " " for n in numbers]
        else:
            markers = ["- "] * len(items)
        loose = any(
            not child.hidden for item in items for child in item.children if child.type == "paragraph"
        )
        lines: list[str] = []
        for item, marker in zip(items, markers, strict=True):
            if lines and loose:
                lines.append("")
            lines.extend(self._item(item, marker, width, loose))
        return lines

    def _item(self, item: SyntaxTreeNode, marker: str, width: int, loose: bool) -> list[str]:
        hang = " " * len(marker)
        lines: list[str] = []
        for child in item.children:
            nested = child.type in ("bullet_list", "ordered_list")
            indent = NESTED_LIST_INDENT if nested else hang
            block = self._block(child, _narrower(width, len(indent)))
            if not block:
                continue
            if lines and loose:
                lines.append("")
            if not lines and not nested:
                lines.append(marker + block[0])
                block = block[1:]
            elif not lines:
                lines.append(marker.rstrip())
            lines.extend((indent + line) if line else "" for line in block)
        return lines or [marker.rstrip()]

    def _table(self, node: SyntaxTreeNode, width: int) -> list[str]:
        rows: list[list[str]] = []
        right: list[bool] = []
        for section in node.children:  # thead, tbody
            for tr in section.children:
                cells = [self._inline(cell.children[0], width).replace("\n", " ") if cell.children else ""
                         for cell in tr.children]
                rows.append([_unglue(" ".join(cell.split())) for cell in cells])
                if not right:
                    right = ["right" in str(cell.attrGet("style") or "") for cell in tr.children]
        if not rows:
            return []
        columns = max(len(row) for row in rows)
        rows = [row + [""] * (columns - len(row)) for row in rows]
        sizes = [max(len(row[c]) for row in rows) for c in range(columns)]
        if sum(sizes) + len(TABLE_GAP) * (columns - 1) > width:
            return _table_records(rows, width)

        def line(row: list[str]) -> str:
            cells = [cell.rjust(size) if c < len(right) and right[c] else cell.ljust(size)
                     for c, (cell, size) in enumerate(zip(row, sizes, strict=True))]
            return TABLE_GAP.join(cells)

        header, *body = rows
        return [line(header), TABLE_GAP.join("-" * size for size in sizes), *(line(row) for row in body)]

    # Inline content: one string, "\n" where a hard break is, _GLUE where wrapping must not break.

    def _inline(self, node: SyntaxTreeNode, width: int) -> str:
        out: list[str] = []
        links: list[tuple[Token, int]] = []  # open link and where its text starts in `out`
        skipping = 0  # inside inline <script>/<style>
        inline = node.token
        for token in (inline.children if inline is not None else None) or ():
            kind = token.type
            if kind == "html_inline":
                tag, closing = _html_tag(token.content)
                if tag in _HTML_SKIPPED:
                    skipping = max(0, skipping - 1) if closing else skipping + 1
                elif tag == "br" and not skipping:
                    out.append("\n")
                continue
            if skipping:
                continue
            if kind in ("text", "text_special"):
                out.append(token.content)
            elif kind == "softbreak":
                out.append(" ")
            elif kind == "hardbreak":
                out.append("\n")
            elif kind == "code_inline":
                code = token.content
                out.append(code.replace(" ", _GLUE) if len(code) <= width // 2 else code)
            elif kind in ("strong_open", "strong_close"):
                out.append("*")
            elif kind in ("em_open", "em_close"):
                out.append("_")
            elif kind in ("s_open", "s_close"):
                out.append("~~")
            elif kind == "image":
                alt = "".join(child.content for child in token.children or ()
                              if child.type in ("text", "text_special", "code_inline"))
                alt = " ".join(alt.split())
                if alt:
                    out.append(f"[Image: {alt}]")
            elif kind == "link_open":
                links.append((token, len(out)))
            elif kind == "link_close" and links:
                opened, start = links.pop()
                label = "".join(out[start:])
                del out[start:]
                out.append(self._link(label, opened))
        return "".join(out)

    def _link(self, label: str, token: Token) -> str:
        """A link as readers of text mail expect it: ``text [n]``, the bare URL, or the address."""
        href = str(token.attrGet("href") or "")
        text = label.strip()
        if href.lower().startswith("mailto:"):
            address = unquote(href[len("mailto:"):].split("?", 1)[0])
            same = text in ("", address, href) or self._md.normalizeLink(text) == href
            return address if same else f"{label} ({address})"
        if not href or href.startswith("#"):
            return label
        if token.markup == "autolink" or text == href or self._md.normalizeLink(text) == href:
            return text or href  # the text is the URL; as typed, which reads better than its encoding
        number = self._number(absolute_url(href, self.base_url))
        if not text:
            return f"[{number}]"
        return f"{label.rstrip()}{_GLUE}[{number}]"

    def _number(self, url: str) -> int:
        if url not in self._numbers:
            self._links.append(url)
            self._numbers[url] = len(self._links)
        return self._numbers[url]


def _narrower(width: int, indent: int) -> int:
    """The width left after an indent, never so narrow that every word gets its own line."""
    return max(width - indent, MIN_WIDTH // 2)


def _trim(lines: list[str]) -> list[str]:
    """Lines without the blank ones a leading or trailing <br> leaves."""
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return lines[start:end]


def _unglue(text: str) -> str:
    return text.replace(_GLUE, " ")


def _tidy(lines: list[str]) -> str:
    """Join lines into text that ends with one newline, has no trailing spaces and no double blank lines."""
    kept: list[str] = []
    for line in lines:
        line = _unglue(line).rstrip()
        if not line and (not kept or not kept[-1]):
            continue
        kept.append(line)
    while kept and not kept[-1]:
        kept.pop()
    return "\n".join(kept) + "\n" if kept else ""


def _table_records(rows: list[list[str]], width: int) -> list[str]:
    """A table too wide for the text: one ``Header: value`` line per filled cell, a blank line per row."""
    header, *body = rows
    lines: list[str] = []
    for row in body:
        if lines:
            lines.append("")
        for name, value in zip(header, row, strict=True):
            if not value:
                continue
            text = f"{name}: {value}" if name else value
            lines.extend(_wrap(text, width, subsequent_indent="  "))
    return lines


class _TagReader(HTMLParser):
    """Reads the name of one inline HTML tag, and whether it closes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tag = ""
        self.closing = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tag = self.tag or tag

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tag = self.tag or tag

    def handle_endtag(self, tag: str) -> None:
        if not self.tag:
            self.tag, self.closing = tag, True


def _html_tag(html: str) -> tuple[str, bool]:
    reader = _TagReader()
    reader.feed(html)
    reader.close()
    return reader.tag, reader.closing


class _HTMLText(HTMLParser):
    """The readable text of an HTML block: no tags, no script or style, entities decoded."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HTML_SKIPPED:
            self._skipping += 1
        elif tag == "br":
            self.parts.append(_HTML_BREAK)
        elif tag == "img":
            alt = " ".join((dict(attrs).get("alt") or "").split())
            if alt and not self._skipping:
                self.parts.append(f"[Image: {alt}]")
        elif tag in _HTML_BLOCKS:
            self.parts.append(_HTML_PARAGRAPH)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _HTML_SKIPPED:  # <script/> opens nothing
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in _HTML_SKIPPED:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _HTML_BLOCKS:
            self.parts.append(_HTML_PARAGRAPH)

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def _html_lines(html: str, width: int) -> list[str]:
    """Wrapped text of an HTML block, a blank line between the paragraphs its block tags make."""
    reader = _HTMLText()
    reader.feed(html)
    reader.close()
    lines: list[str] = []
    for paragraph in "".join(reader.parts).split(_HTML_PARAGRAPH):
        wrapped = _trim([line for segment in paragraph.split(_HTML_BREAK)
                         for line in _wrap(" ".join(segment.split()), width)])
        if not wrapped:
            continue
        if lines:
            lines.append("")
        lines.extend(wrapped)
    return lines
