"""Merge fields: per-recipient values that survive rendering as tokens.

An issue is rendered and CSS-inlined once. Wherever a template or the intro
asks for a subscriber value (``{{ subscriber.name | default('there') }}``) or
``{{ unsubscribe_url }}``, rendering writes a token instead: ``NLMRG`` + four
digits + a flavour letter. Tokens are plain ASCII letters and digits, so they
pass unchanged through Markdown, HTML serialisation, premailer and URL
attributes. ``personalize.py`` later replaces each token with the recipient's
value, escaped for where it stands:

- ``H``: HTML part, value HTML-escaped;
- ``T``: text part and headers, value as is;
- ``U``: a URL component (``| urlencode``), value percent-encoded.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast
from urllib.parse import quote

TOKEN_PREFIX = "NLMRG"
TOKEN_PATTERN = re.compile(TOKEN_PREFIX + r"(\d{4})([HTU])")
FLAVOURS = {"H": "html", "T": "text", "U": "url"}


@dataclass(frozen=True)
class MergeField:
    """One token of a rendered issue: which value it stands for and how to escape it."""

    token: str
    name: str  # "subscriber.<column>" or "unsubscribe_url"
    fallback: str
    flavour: str  # "H", "T" or "U"

    def render(self, value: str | None) -> str:
        """The text that replaces the token for a recipient whose value is ``value``."""
        text = value if value else self.fallback
        if self.flavour == "H":
            return html.escape(text, quote=True)
        if self.flavour == "U":
            return quote(text, safe="")
        return text

    def render_all(self, values: Sequence[str | None]) -> Sequence[str]:
        """``[self.render(value) for value in values]``, the same texts, for a batch at a time.

        HTML-escaping a batch's values is one pass over them joined by NUL, which escaping leaves
        as it is, rather than a call per value; a value holding NUL itself is escaped on its own.
        """
        fallback = self.fallback
        # all(values): no value is None or empty, so each is a str
        texts = cast("Sequence[str]", values) if all(values) else [value if value else fallback for value in values]
        if self.flavour == "H":
            joined = "\0".join(texts)
            if joined.count("\0") == len(texts) - 1:
                return html.escape(joined, quote=True).split("\0")
            return [html.escape(text, quote=True) for text in texts]
        if self.flavour == "U":
            return [quote(text, safe="") for text in texts]
        return texts


class MergeRegistry:
    """Hands out tokens while an issue renders; one registry serves all parts of one issue."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, str, str], MergeField] = {}

    def token(self, name: str, fallback: str, flavour: str) -> MergeField:
        key = (name, fallback, flavour)
        field = self._by_key.get(key)
        if field is None:
            number = len(self._by_key) + 1
            if number > 9999:
                raise ValueError("more than 9999 distinct merge fields in one issue")
            field = MergeField(f"{TOKEN_PREFIX}{number:04d}{flavour}", name, fallback, flavour)
            self._by_key[key] = field
        return field

    @property
    def fields(self) -> tuple[MergeField, ...]:
        return tuple(self._by_key.values())


class MergeToken:
    """What a template sees for ``subscriber.name``: prints as its token, takes a ``default``."""

    __slots__ = ("_registry", "fallback", "flavour", "name")

    def __init__(self, registry: MergeRegistry, name: str, flavour: str, fallback: str = ""):
        self._registry = registry
        self.name = name
        self.flavour = flavour
        self.fallback = fallback

    @property
    def field(self) -> MergeField:
        return self._registry.token(self.name, self.fallback, self.flavour)

    def with_fallback(self, fallback: object) -> MergeToken:
        return MergeToken(self._registry, self.name, self.flavour, str(fallback))

    def as_url_component(self) -> MergeToken:
        return MergeToken(self._registry, self.name, "U", self.fallback)

    def __str__(self) -> str:
        return self.field.token

    def __html__(self) -> str:
        # A token is letters and digits: nothing to escape, and the value is escaped at substitution.
        return self.field.token

    def __bool__(self) -> bool:
        # A recipient may have a value or not; templates must use `default`, not `if`, on merge fields.
        raise TypeError(
            f"'{self.name}' is a merge field: its value differs per recipient, so it cannot be tested "
            f"with 'if'; use {{{{ {self.name} | default('...') }}}} instead"
        )


def contains_token_prefix(text: str) -> bool:
    """True when user text already holds something that looks like a merge token."""
    return TOKEN_PATTERN.search(text) is not None
