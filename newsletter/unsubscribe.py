"""Unsubscribe links that cannot be forged or guessed.

A token carries the subscriber's address and an HMAC-SHA256 signature of the
list name and address under a secret read from the environment, encoded
URL-safe. Whoever holds the link can unsubscribe that address from that list
and nothing else; changing a character breaks the signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

from .config import Settings
from .errors import NewsletterError

SENDGRID_GROUP_UNSUBSCRIBE = "<%asm_group_unsubscribe_raw_url%>"
SAMPLE_SECRET = b"sample secret: build previews only, never used to send"


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64(data: bytes) -> str:
    """Unpadded base64url (what ``base64.urlsafe_b64encode`` gives, in fewer steps: made per recipient)."""
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: bytes, list_name: str, email: str) -> bytes:
    return hmac.digest(secret, f"{list_name}\n{email}".encode("utf-8"), hashlib.sha256)


def make_token(secret: bytes, list_name: str, email: str) -> str:
    """A URL-safe token naming ``email`` on ``list_name``, signed with ``secret``."""
    return TokenSigner(secret, list_name)(email)


class TokenSigner:
    """Makes the tokens of one list: the HMAC is keyed and fed the list name once, copied per address.

    The same signature as ``_signature`` (which ``verify_token`` checks), without
    re-keying SHA-256 for each of a million recipients.
    """

    __slots__ = ("_keyed",)

    def __init__(self, secret: bytes, list_name: str):
        self._keyed = hmac.new(secret, f"{list_name}\n".encode("utf-8"), hashlib.sha256)

    def __call__(self, email: str) -> str:
        mac = self._keyed.copy()
        address = email.encode("utf-8")
        mac.update(address)
        return f"{_b64(address)}.{_b64(mac.digest())}"


def verify_token(secret: bytes, list_name: str, token: str) -> str:
    """The address a genuine token names; a NewsletterError for anything else."""
    try:
        encoded_email, encoded_signature = token.strip().split(".", 1)
        email = _unb64(encoded_email).decode("utf-8")
        signature = _unb64(encoded_signature)
    except (ValueError, UnicodeDecodeError):
        raise NewsletterError("unsubscribe token is malformed",
                              hint="pass the token exactly as it appears in the link") from None
    if not hmac.compare_digest(signature, _signature(secret, list_name, email)):
        raise NewsletterError(f"unsubscribe token is not valid for list '{list_name}'",
                              hint="check the list name; the link may have been altered")
    return email


def read_secret(settings: Settings, *, required: bool = True) -> bytes | None:
    """The signing secret from the environment variable ``newsletter.toml`` names."""
    value = os.environ.get(settings.unsubscribe_secret_env, "")
    if value:
        return value.encode("utf-8")
    if required:
        raise NewsletterError(
            f"environment variable {settings.unsubscribe_secret_env} is not set; it holds the secret "
            "that signs unsubscribe links",
            hint=f"export {settings.unsubscribe_secret_env}=<a long random string> "
                 "(python3 -c 'import secrets; print(secrets.token_urlsafe(32))') and keep it stable",
        )
    return None


def uses_sendgrid_group(settings: Settings, provider: str) -> bool:
    return provider == "sendgrid" and settings.sendgrid.unsubscribe_group is not None


class UnsubscribeLinks:
    """``unsubscribe_url`` for each recipient of one send to ``list_name``, set up once per send."""

    __slots__ = ("_fixed", "_parts", "_sign")

    def __init__(self, settings: Settings, list_name: str, secret: bytes | None, provider: str = ""):
        self._fixed: str | None = None
        if uses_sendgrid_group(settings, provider):
            self._fixed = SENDGRID_GROUP_UNSUBSCRIBE
        elif not settings.unsubscribe_url:
            self._fixed = ""
        self._parts = settings.unsubscribe_url.split("{token}")
        self._sign = TokenSigner(secret or SAMPLE_SECRET, list_name)

    def __call__(self, email: str) -> str:
        if self._fixed is not None:
            return self._fixed
        return self._sign(email).join(self._parts)  # base64url and '.': safe in a URL as is


def unsubscribe_url(settings: Settings, list_name: str, email: str, secret: bytes | None,
                    provider: str = "") -> str:
    """The link a recipient clicks to leave ``list_name``; "" when none is configured."""
    return UnsubscribeLinks(settings, list_name, secret, provider)(email)


def address_of_token(settings: Settings, list_name: str, token: str) -> str:
    """The address a link's token names, after checking its signature with the configured secret."""
    return verify_token(read_secret(settings), list_name, token)
