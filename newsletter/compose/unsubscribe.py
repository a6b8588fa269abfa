"""Unsubscribe links that cannot be forged or guessed, and that name nobody to whoever reads them.

A token is the subscriber's address encrypted with AES-SIV (RFC 5297, authenticated and
deterministic) under a key derived by HKDF-SHA256 from a secret read from the environment,
with the list name as associated data, encoded URL-safe. Whoever holds the link can
unsubscribe that address from that list and nothing else; changing a character, or presenting
it for another list, fails authentication; and the URL shows no address (only its length).
Deterministic encryption gives an address the same link in every issue, as the signed tokens
did, and needs no random nonce per recipient.

The list is bound in by the key (version 3, made since 2026-12): each list has its own key, derived
with the list's name in HKDF's ``info``, and the address is encrypted with no associated data. That
costs one AES-SIV pass over the address, where binding the list as associated data (version 2,
made until 2026-12) cost two more CMAC passes: 1.1 µs a token against 2.0, a million times a large
send. Version 2 tokens are in links already mailed, and verify as before, for good.

Tokens of the first format, ``base64url(address) "." base64url(HMAC-SHA256(list "\n" address))``,
were sent until 2026-11 and carry the address in the clear; ``verify_token`` keeps accepting them
for the year a reader may still click an old issue's link. Drop ``_verify_signed`` (and this
paragraph) no earlier than 2027-12-01.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Sequence
from typing import Literal, overload

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..config import Settings
from ..errors import NewsletterError
from ..secret_names import unset_variable
from .outgoing import ProviderTraits

SAMPLE_SECRET = b"sample secret: build previews only, never used to send"

_VERSION = b"\x03"  # the first byte of the tokens made now; signed (first-format) tokens contain a "."
_KEY_INFO = b"newsletter unsubscribe token v3: AES-SIV key of the list "  # followed by the list's name
_VERSION_2 = b"\x02"  # the first byte of the tokens made until 2026-12 (in links already mailed)
_KEY_INFO_2 = b"newsletter unsubscribe token v2: AES-SIV key"
_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64(data: bytes) -> str:
    """Unpadded base64url (what ``base64.urlsafe_b64encode`` gives, in fewer steps: made per recipient)."""
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _cipher(secret: bytes, list_name: str) -> AESSIV:
    """AES-SIV keyed from ``secret`` for ``list_name`` alone: HKDF stretches any secret to the 512-bit key
    SIV wants, and its ``info`` (the list's name after a fixed prefix) keeps each list's key apart from
    every other list's and from anything else the same secret might key."""
    info = _KEY_INFO + list_name.encode("utf-8")
    return AESSIV(HKDF(algorithm=hashes.SHA256(), length=64, salt=None, info=info).derive(secret))


def _cipher_2(secret: bytes) -> AESSIV:
    """The key of version 2 tokens: one for every list, the list bound in as associated data."""
    return AESSIV(HKDF(algorithm=hashes.SHA256(), length=64, salt=None, info=_KEY_INFO_2).derive(secret))


def _associated_2(list_name: str) -> list[bytes]:
    return [_VERSION_2, list_name.encode("utf-8")]


def make_token(secret: bytes, list_name: str, email: str) -> str:
    """A URL-safe token for ``email`` on ``list_name``, encrypted and authenticated with ``secret``."""
    return TokenSigner(secret, list_name)(email)


class TokenSigner:
    """Makes the tokens of one list: its key is derived once, so each of a million recipients costs
    one AES-SIV encryption."""

    __slots__ = ("_cipher",)

    def __init__(self, secret: bytes, list_name: str):
        self._cipher = _cipher(secret, list_name)

    def __call__(self, email: str) -> str:
        return _b64(_VERSION + self._cipher.encrypt(email.encode("utf-8"), None))

    def many(self, emails: Sequence[str]) -> list[str]:
        """``[self(email) for email in emails]``, the same tokens, for a batch at a time.

        The encryptions are one call each, but their base64 is made URL-safe, unpadded and
        decoded in one pass over the whole batch: ``b2a_base64`` ends each token with a line
        break (never a base64 character), and the padding "=" is deleted while translating.
        """
        encrypt, b64 = self._cipher.encrypt, binascii.b2a_base64
        encoded = b"".join([b64(_VERSION + encrypt(email.encode("utf-8"), None)) for email in emails])
        return encoded.translate(_URLSAFE, b"=").decode("ascii").split("\n")[:-1]


def _malformed() -> NewsletterError:
    return NewsletterError("unsubscribe token is malformed", hint="pass the token exactly as it appears in the link")


def _not_valid(list_name: str) -> NewsletterError:
    return NewsletterError(f"unsubscribe token is not valid for list '{list_name}'",
                           hint="check the list name; the link may have been altered")


def _verify_signed(secret: bytes, list_name: str, token: str) -> str:
    """A first-format token (address "." HMAC signature), sent until 2026-11: see the module's note."""
    try:
        encoded_email, encoded_signature = token.split(".", 1)
        email = _unb64(encoded_email).decode("utf-8")
        signature = _unb64(encoded_signature)
    except (ValueError, UnicodeDecodeError):
        raise _malformed() from None
    expected = hmac.digest(secret, f"{list_name}\n{email}".encode(), hashlib.sha256)
    if not hmac.compare_digest(signature, expected):
        raise _not_valid(list_name)
    return email


def verify_token(secret: bytes, list_name: str, token: str) -> str:
    """The address a genuine token names; a NewsletterError for anything else."""
    token = token.strip()
    if "." in token:
        return _verify_signed(secret, list_name, token)
    try:
        data = _unb64(token)
    except ValueError:
        raise _malformed() from None
    if len(data) < 1 + 16 + 1 or data[:1] not in (_VERSION, _VERSION_2):
        raise _malformed()
    try:
        if data[:1] == _VERSION_2:
            return _cipher_2(secret).decrypt(data[1:], _associated_2(list_name)).decode("utf-8")
        return _cipher(secret, list_name).decrypt(data[1:], None).decode("utf-8")
    except (InvalidTag, UnicodeDecodeError):
        raise _not_valid(list_name) from None


@overload
def read_secret(settings: Settings, *, required: Literal[True] = ...) -> bytes: ...
@overload
def read_secret(settings: Settings, *, required: bool) -> bytes | None: ...


def read_secret(settings: Settings, *, required: bool = True) -> bytes | None:
    """The secret unsubscribe tokens are keyed from, from the environment variable ``newsletter.toml`` names."""
    value = os.environ.get(settings.unsubscribe_secret_env, "")
    if value:
        return value.encode("utf-8")
    if required:
        raise unset_variable("newsletter.unsubscribe_secret_env", settings.unsubscribe_secret_env,
                             "the secret that signs unsubscribe links", example="NEWSLETTER_UNSUBSCRIBE_SECRET",
                             placeholder="a long random string",
                             more=" (python3 -c 'import secrets; print(secrets.token_urlsafe(32))') and keep it stable")
    return None


def provider_group(settings: Settings, provider: ProviderTraits | None) -> int | None:
    """The unsubscribe group of ``provider`` the settings name, when it keeps such groups: it then hosts
    each recipient's unsubscribe link itself. None for none, or for no provider (None: a sample)."""
    return provider.unsubscribe_group(settings) if provider is not None else None


class UnsubscribeLinks:
    """``unsubscribe_url`` for each recipient of one send to ``list_name``, set up once per send."""

    __slots__ = ("_fixed", "_parts", "_sign")

    def __init__(self, settings: Settings, list_name: str, secret: bytes | None,
                 provider: ProviderTraits | None = None):
        self._fixed: str | None = None
        if provider is not None and provider_group(settings, provider) is not None:  # the provider's own link
            self._fixed = provider.group_unsubscribe_link
        elif not settings.unsubscribe_url:
            self._fixed = ""
        self._parts = settings.unsubscribe_url.split("{token}")
        self._sign = TokenSigner(secret or SAMPLE_SECRET, list_name)

    def __call__(self, email: str) -> str:
        if self._fixed is not None:
            return self._fixed
        return self._sign(email).join(self._parts)  # base64url: safe in a URL as is

    def many(self, emails: Sequence[str]) -> list[str]:
        """``[self(email) for email in emails]``, the same links: a batch's tokens made at once."""
        if self._fixed is not None:
            return [self._fixed] * len(emails)
        parts = self._parts
        if len(parts) == 2:  # the usual one "{token}"
            before, after = parts
            return [before + token + after for token in self._sign.many(emails)]
        return [token.join(parts) for token in self._sign.many(emails)]


def unsubscribe_url(settings: Settings, list_name: str, email: str, secret: bytes | None,
                    provider: ProviderTraits | None = None) -> str:
    """The link a recipient clicks to leave ``list_name``; "" when none is configured."""
    return UnsubscribeLinks(settings, list_name, secret, provider)(email)


def address_of_token(settings: Settings, list_name: str, token: str) -> str:
    """The address a link's token names, after checking its signature with the configured secret."""
    return verify_token(read_secret(settings), list_name, token)
