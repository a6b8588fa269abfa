"""Per-recipient substitution into an issue rendered once.

The rendered HTML and text are split at their merge tokens once per issue;
filling in a recipient is then a join of precomputed pieces with that
recipient's values, escaped for where each token stands. Nothing is
re-rendered or re-inlined per recipient, and subscriber values are data:
a name like ``{{ 7*7 }}`` or ``<script>`` arrives as those characters.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence

from .merge import TOKEN_PATTERN, TOKEN_PREFIX, MergeField

UNSUBSCRIBE_FIELD = "unsubscribe_url"


class Personalizer:
    """A rendered part (HTML or text), pre-split at its tokens for fast filling."""

    __slots__ = ("_fields", "_pieces", "fields")

    def __init__(self, rendered: str, fields: Iterable[MergeField]):
        by_token = {f.token: f for f in fields}
        parts = TOKEN_PATTERN.split(rendered)
        # parts: [text, number, flavour, text, number, flavour, ..., text]
        self._pieces: list[str] = parts[0::3]
        self._fields: list[MergeField] = []
        for number, flavour in zip(parts[1::3], parts[2::3], strict=True):
            token = f"{TOKEN_PREFIX}{number}{flavour}"
            if token not in by_token:
                raise ValueError(f"unknown merge token {token} in rendered output")
            self._fields.append(by_token[token])
        self.fields = tuple(dict.fromkeys(self._fields))

    @property
    def pieces(self) -> tuple[list[str], list[MergeField]]:
        """(the text between tokens, the field at each token): for encoders that fill pre-encoded pieces."""
        return self._pieces, self._fields

    def fill(self, values: Mapping[str, str]) -> str:
        """The part with every token replaced by the recipient's escaped value (or the fallback)."""
        pieces = self._pieces
        out = [pieces[0]]
        for field, piece in zip(self._fields, pieces[1:], strict=True):
            out.append(field.render(values.get(field.name)))
            out.append(piece)
        return "".join(out)


def merge_values(columns: Mapping[str, str], unsubscribe_url: str) -> dict[str, str]:
    """A recipient's values keyed as templates name them: ``subscriber.<column>``, ``unsubscribe_url``."""
    values = {f"subscriber.{key}": (value or "") for key, value in columns.items()}
    values[UNSUBSCRIBE_FIELD] = unsubscribe_url
    return values


def subscriber_values(email: str, name: str, fields: Mapping[str, str] | None, unsubscribe_url: str) -> dict[str, str]:
    """``merge_values`` for a journal row: address and name, the other columns the issue uses, the link."""
    values = {"subscriber.email": email, "subscriber.name": name, UNSUBSCRIBE_FIELD: unsubscribe_url}
    if fields:
        for key, value in fields.items():
            values[f"subscriber.{key}"] = value or ""
    return values


def subscriber_values_of(emails: Sequence[str], names: Sequence[str], fields: Sequence[str | None],
                         unsubscribe_urls: Sequence[str]) -> list[dict[str, str]]:
    """``subscriber_values`` for a batch of journal rows, whose other columns are JSON text as the
    journal holds them ("" or None for none): the same values, the texts parsed at once."""
    return list(map(subscriber_values, emails, names, _parsed(fields), unsubscribe_urls))


def _parsed(texts: Sequence[str | None]) -> list[Mapping[str, str] | None]:
    """Each JSON text parsed (None for "" or None): ``json.loads`` once for the batch, its texts read
    as one array, rather than once per row (whose call costs more than the parse).

    Each text is one JSON value, so the array has exactly one item per text; anything else (a text
    that is not one value) parses row by row, to fail exactly as it would alone.
    """
    present = [text for text in texts if text]
    parsed: list[Mapping[str, str] | None] | None  # each row's other columns: a JSON object of texts
    try:
        parsed = json.loads("[" + ",".join(present) + "]")
    except ValueError:
        parsed = None
    if parsed is None or len(parsed) != len(present):
        return [json.loads(text) if text else None for text in texts]
    if len(present) == len(texts):
        return parsed
    items = iter(parsed)
    return [next(items) if text else None for text in texts]
