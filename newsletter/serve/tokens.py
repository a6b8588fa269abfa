"""Confirmation links: encrypted, expiring tokens that carry a sign-up until the reader confirms it.

The token holds the list, address, name and when the subscription was asked
for, encrypted and authenticated with Fernet (``cryptography``: AES-CBC and
HMAC-SHA256, with the time it was made) under a key derived by HKDF from the
unsubscribe secret and the token's purpose. Like the unsubscribe links, the
URL names nobody to whoever reads it (browser histories, link scanners,
proxy logs); a confirmation token can never serve as another purpose's token
(the "Subscribe again" button's) or the other way round. Nothing is stored
until the reader confirms.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import NewsletterError

CONFIRM = "confirm"
RESUBSCRIBE = "resubscribe"  # the "Subscribe again" button right after leaving


@dataclass(frozen=True)
class SignUp:
    """A pending subscription, as its confirmation token carries it."""

    list_name: str
    email: str
    name: str
    asked_at: str  # store.stamp() of the request


def _cipher(secret: bytes, purpose: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
               info=f"newsletter serve token v2: {purpose}".encode()).derive(secret)
    return Fernet(base64.urlsafe_b64encode(key))


class ConfirmTokens:
    """Make and check tokens with one secret, lifetime and purpose."""

    def __init__(self, secret: bytes, max_age_seconds: float, purpose: str = CONFIRM):
        self._cipher = _cipher(secret, purpose)
        self._max_age = max_age_seconds

    def make(self, sign_up: SignUp, *, made_at: float | None = None) -> str:
        """The token (URL-safe, no padding); ``made_at`` (a Unix time) is for tests of expiry."""
        data = json.dumps([sign_up.list_name, sign_up.email, sign_up.name, sign_up.asked_at],
                          separators=(",", ":")).encode("utf-8")
        made_at = int(time.time() if made_at is None else made_at)
        return self._cipher.encrypt_at_time(data, made_at).decode("ascii").rstrip("=")

    def read(self, token: str) -> SignUp:
        """The sign-up a genuine, unexpired token carries; a NewsletterError for anything else."""
        raw = (token + "=" * (-len(token) % 4)).encode("ascii", "replace")
        try:
            data = self._cipher.decrypt(raw)
            made_at = self._cipher.extract_timestamp(raw)
            values = json.loads(data)
        except (InvalidToken, ValueError):
            raise NewsletterError("this confirmation link is not valid",
                                  hint="open the link exactly as it came in the mail") from None
        if time.time() - made_at > self._max_age:
            raise NewsletterError("this confirmation link has expired", hint="subscribe again to get a fresh link")
        if not (isinstance(values, list) and len(values) == 4 and all(isinstance(v, str) for v in values)):
            raise NewsletterError("this confirmation link is not valid")
        return SignUp(*values)
