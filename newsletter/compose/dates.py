"""Dates as people write them in bylines ("March 3, 2026", "3 Mar 2026", "2026-03-03"), read by
dateparser, a well-kept parser that trafilatura's date finder (htmldate) already depends on.

Only whole dates count (day, month and year all written): "March 2026", "yesterday" or
"5 min read" are not a publication date, and a guess is worse than none. Month names are
read in English; numeric dates are read month first, as in English bylines ("03/04/2026"
is March 4).
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dateparser.date import DateDataParser

LANGUAGES = ["en"]
_LONGEST = 60  # characters: a byline's date, not a sentence that happens to hold one


@lru_cache(maxsize=1)
def _parser() -> DateDataParser:
    from dateparser.date import DateDataParser  # loads its language data: only when a byline has a date

    return DateDataParser(languages=LANGUAGES, settings={
        "PARSERS": ["absolute-time"], "REQUIRE_PARTS": ["day", "month", "year"], "STRICT_PARSING": True,
    })


def written_date(text: str) -> dt.date | None:
    """The date ``text`` consists of, or None when it is not (only) a whole date."""
    text = text.strip(" \t|·•,;:–—-()[]")
    if not text or len(text) > _LONGEST or not any(ch.isdigit() for ch in text):
        return None
    found = _parser().get_date_data(text).date_obj
    return found.date() if found is not None else None
