"""Keeping the secrets this process holds out of everything it prints, even when a server echoes them.

An SMTP server may quote the AUTH it got, in upper case or still base64-encoded as AUTH PLAIN and
LOGIN send it; an HTTP error body may quote a header. Every secret this process holds (a password,
an API key) is ``hold``-ed, and ``redact`` takes it out of a text in any case, raw or base64-encoded
at any alignment (inside a longer base64 string too). Every ``NewsletterError`` message goes through
``redact`` (errors.py), so no error path can show one. (A secret pasted where its variable's *name*
belongs is ``secret_names.py``'s.)
"""

from __future__ import annotations

import base64
import binascii
import re

REDACTED = "[redacted]"
_held: dict[str, re.Pattern[str]] = {}
_BASE64_WORD = re.compile(r"[A-Za-z0-9+/]{8,}={0,2}")


def hold(secret: str, *sent_as: str) -> None:
    """Remember a secret this process holds (a password, an API key), and any text it is sent inside
    (AUTH PLAIN's ``"\\0user\\0password"``), so that no message shows them."""
    for text in (secret, *sent_as):
        if text and text not in _held:
            _held[text] = _pattern(text, secret)


def redact(text: str) -> str:
    """``text`` with every held secret replaced by ``[redacted]``: raw in any case, and base64-encoded (the
    whole base64 word that carries it, so that no part of it is left to decode)."""
    if not _held or not text:
        return text
    text = _BASE64_WORD.sub(_redact_encoded, text)
    for pattern in _held.values():
        text = pattern.sub(REDACTED, text)
    return text


def _pattern(text: str, secret: str) -> re.Pattern[str]:
    """The forms of ``text`` a server may echo: itself (its runs of white space as one, as replies are
    tidied), and any base64 word holding its encoding at one of the three alignments it can have inside
    a longer base64 string (the characters that stand for its bytes alone: still there when a server
    upper-cases the word, which no decoding would then find). Compared ignoring case, unless the secret
    is too short for that to leave the rest of a message readable."""
    raw = {text, " ".join(text.split())}
    data = text.encode("utf-8")
    cores = {base64.b64encode(data).decode().rstrip("=")}
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + data).decode()
        start = -(-offset // 3) * 4  # the first group of four made of its bytes alone
        end = (offset + len(data)) // 3 * 4  # the last complete group
        if end - start >= 4:
            cores.add(encoded[start:end])
    def alternatives(forms: set[str]) -> str:
        return "|".join(re.escape(form) for form in sorted(filter(None, forms), key=len, reverse=True))

    encoded_words = rf"[A-Za-z0-9+/]*(?:{alternatives(cores)})[A-Za-z0-9+/]*=*"
    return re.compile(f"{encoded_words}|{alternatives(raw)}", re.IGNORECASE if len(secret) >= 4 else 0)


def _redact_encoded(match: re.Match[str]) -> str:
    """A base64 word that decodes to something holding a secret (in any case), whatever else it holds; read
    from each of its first four characters, as it may be glued to other text."""
    word = match.group(0).rstrip("=")
    for start in range(4):
        part = word[start:]
        part = part[:len(part) - len(part) % 4]
        try:
            decoded = base64.b64decode(part).lower()
        except (binascii.Error, ValueError):
            continue
        for secret in _held:
            if len(secret) >= 4 and secret.encode("utf-8").lower() in decoded:
                return REDACTED
    return match.group(0)


__all__ = ["REDACTED", "hold", "redact"]
