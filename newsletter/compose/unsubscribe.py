"""Unsubscribe links that cannot be forged or guessed, and that name nobody to whoever reads them.

A token is the subscriber's address encrypted with AES-SIV (RFC 5297, authenticated and
deterministic) under a key derived by HKDF-SHA256 from a secret read from the environment,
with the list name as associated data, encoded URL-safe. Whoever holds the link can
unsubscribe that address from that list and nothing else; changing a character, or presenting
it for another list, fails authentication; and the URL shows no address (only its length).
Deterministic encryption gives an address the same link in every issue, as the signed tokens
did, and needs no random nonce per recipient.

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
from ..providers import registry
from ..secret_names import unset_variable

SAMPLE_SECRET = b"sample secret: build previews only, never used to send"

_VERSION = b"\x02"  # the first byte of an encrypted token; signed (first-format) tokens contain a "."
_KEY_INFO = b"newsletter unsubscribe token v2: AES-SIV key"
_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64(data: bytes) -> str:
    """Unpadded base64url (what ``base64.urlsafe_b64encode`` gives, in fewer steps: made per recipient)."""
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _cipher(secret: bytes) -> AESSIV:
    """AES-SIV keyed from ``secret``: HKDF stretches any secret to the 512-bit key SIV wants, and
    its ``info`` keeps this key apart from anything else the same secret might key."""
    key = HKDF(algorithm=hashes.SHA256(), length=64, salt=None, info=_KEY_INFO).derive(secret)
    return AESSIV(key)


def _associated(list_name: str) -> list[bytes]:
    return [_VERSION, list_name.encode("utf-8")]


def make_token(secret: bytes, list_name: str, email: str) -> str:
    """A URL-safe token for ``email`` on ``list_name``, encrypted and authenticated with ``secret``."""
    return TokenSigner(secret, list_name)(email)


class TokenSigner:
    """Makes the tokens of one list: the key is derived and the associated data built once per
    list, so each of a million recipients costs one AES-SIV encryption."""

    __slots__ = ("_associated", "_cipher")

    def __init__(self, secret: bytes, list_name: str):
        self._cipher = _cipher(secret)
        self._associated = _associated(list_name)

    def __call__(self, email: str) -> str:
        return _b64(_VERSION + self._cipher.encrypt(email.encode("utf-8"), self._associated))

    def many(self, emails: Sequence[str]) -> list[str]:
        """``[self(email) for email in emails]``, the same tokens, for a batch at a time.

        The encryptions are one call each, but their base64 is made URL-safe, unpadded and
        decoded in one pass over the whole batch: ``b2a_base64`` ends each token with a line
        break (never a base64 character), and the padding "=" is deleted while translating.
        """
        encrypt, associated, b64 = self._cipher.encrypt, self._associated, binascii.b2a_base64
        encoded = b"".join([b64(_VERSION + encrypt(email.encode("utf-8"), associated))
                            for email in emails])
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
    if len(data) < 1 + 16 + 1 or data[:1] != _VERSION:
        raise _malformed()
    try:
        return _cipher(secret).decrypt(data[1:], _associated(list_name)).decode("utf-8")
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


def provider_group(settings: Settings, provider: str) -> int | None:
    """The unsubscribe group of ``provider`` the settings name, when it keeps such groups: it then hosts
    each recipient's unsubscribe link itself. None for none, or for no provider ("": a sample)."""
    return registry.kind(provider).unsubscribe_group(settings) if provider else None


class UnsubscribeLinks:
    """``unsubscribe_url`` for each recipient of one send to ``list_name``, set up once per send."""

    __slots__ = ("_fixed", "_parts", "_sign")

    def __init__(self, settings: Settings, list_name: str, secret: bytes | None, provider: str = ""):
        self._fixed: str | None = None
        if provider_group(settings, provider) is not None:  # the provider's own link, as its tag
            self._fixed = registry.kind(provider).group_unsubscribe_link
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
                    provider: str = "") -> str:
    """The link a recipient clicks to leave ``list_name``; "" when none is configured."""
    return UnsubscribeLinks(settings, list_name, secret, provider)(email)


def address_of_token(settings: Settings, list_name: str, token: str) -> str:
    """The address a link's token names, after checking its signature with the configured secret."""
    return verify_token(read_secret(settings), list_name, token)
