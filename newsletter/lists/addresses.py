"""Addresses as keys: which rows are the same person, for de-duplication and the send journal.

Addresses are stored as written (trimmed) and compared by key: the address
as email-validator normalizes it, then lowercased entirely. Lowercasing the
part before the @ goes beyond email-validator: mailbox providers and SendGrid
treat it case-insensitively, and mailing one person twice is worse than the
rare false match.
"""

from __future__ import annotations

import functools
import re

from ..errors import NewsletterError

# The common case, proven equal to email-validator's verdict and normalization:
# an unquoted ASCII dot-atom local part, and ASCII host labels of letters and
# digits joined by single hyphens (so no Punycode "xn--" and no reserved
# "ab--" labels), the last one ending in a letter, none over 63 characters,
# 254 characters in all, not a special-use domain. email-validator accepts
# every such address and normalizes it only by lowercasing the domain, which
# lowercasing the whole address covers. Anything else goes to email-validator
# itself. tests/test_subscribers_keys.py checks both paths agree on tricky
# and random addresses.
_ATEXT = r"A-Za-z0-9_!#$%&'*+/=?^`{|}~-"
_LABEL = r"[A-Za-z0-9]++(?:-[A-Za-z0-9]++)*+"  # possessive (++, *+): no backtracking, half the time


_Simple = tuple[re.Pattern[str], tuple[str, ...]]
_simple: _Simple | None = None  # made once, by _simple_address(); read once a row, so a plain global


def _simple_address() -> _Simple:
    """The pattern of the common case, and the special-use suffixes it leaves to email-validator. Made at
    the first address, not at import: importing email-validator compiles its own large patterns, which
    commands that never read an address (build, preview) should not pay for."""
    import email_validator

    special = tuple(email_validator.SPECIAL_USE_DOMAIN_NAMES)
    tlds = "|".join(re.escape(d) for d in special if "." not in d) or "(?!)"
    pattern = re.compile(
        rf"[{_ATEXT}]++(?:\.[{_ATEXT}]++)*+"  # the local part, a dot-atom
        rf"@{_LABEL}(?:\.(?!(?i:{tlds})\Z){_LABEL})++"  # labels; the last one not a special-use name
        r"(?<=[A-Za-z])"  # and ending in a letter
    )
    global _simple
    _simple = pattern, tuple("." + d for d in special if "." in d)
    return _simple


def fast_key(email: str) -> str | None:
    """The key of a plain ASCII address without calling email-validator, or None to ask it.

    Reading a million-row list calls this once a row, so it is kept apart from
    ``key_or_problem`` (which also trims and explains) for the readers' fast path.
    """
    pattern, special_suffixes = _simple or _simple_address()
    if not pattern.fullmatch(email):
        return None
    # Only past 64 characters can the address be too long or a label exceed 63 characters.
    if len(email) > 64 and (len(email) > 254 or max(map(len, email[email.index("@") + 1:].split("."))) > 63):
        return None
    lowered = email.lower()
    if special_suffixes and lowered.endswith(special_suffixes):
        return None
    return lowered


@functools.lru_cache(maxsize=65536)
def validator_key(email: str) -> tuple[str, str]:
    """(key, "") or ("", why) from email-validator itself, syntax only (no DNS)."""
    from email_validator import validate_email

    try:
        valid = validate_email(
            email, check_deliverability=False, allow_smtputf8=True, allow_empty_local=False,
            allow_quoted_local=False, allow_domain_literal=False, allow_display_name=False,
            strict=False, test_environment=False, globally_deliverable=True,
        )
    except ValueError as err:  # EmailNotValidError, and anything odd idna raises
        return "", str(err)
    return valid.normalized.lower(), ""


def key_or_problem(email: str) -> tuple[str, str]:
    """(key, "") for a valid address, ("", what is wrong) for an invalid one; ``email`` is trimmed first."""
    email = email.strip()
    if not email:
        return "", "The email address is empty."
    fast = fast_key(email)
    if fast is not None:
        return fast, ""
    return validator_key(email)


def normalize_key(email: str) -> str:
    """The de-duplication and journal key of one address; raises NewsletterError if it is not valid."""
    key, problem = key_or_problem(email)
    if not key:
        raise NewsletterError(f"'{email.strip()}' is not a valid email address: {problem}",
                              hint="check the spelling of the address")
    return key
