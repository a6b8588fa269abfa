"""Confirmation links: signed, expiring tokens that carry a sign-up until the reader confirms it.

The token holds the list, address, name and when the subscription was asked
for, signed (itsdangerous, HMAC) with the unsubscribe secret under a salt of
its own, so a confirmation token can never serve as an unsubscribe token or
the other way round. Nothing is stored until the reader confirms.
"""

from __future__ import annotations

from dataclasses import dataclass

from itsdangerous import BadData, SignatureExpired, URLSafeTimedSerializer

from ..errors import NewsletterError

_SALT = "newsletter.serve.confirm"
RESUBSCRIBE_SALT = "newsletter.serve.resubscribe"  # the "Subscribe again" button right after leaving


@dataclass(frozen=True)
class SignUp:
    """A pending subscription, as its confirmation token carries it."""

    list_name: str
    email: str
    name: str
    asked_at: str  # store.stamp() of the request


class ConfirmTokens:
    """Make and check confirmation tokens with one secret, lifetime and purpose (the salt)."""

    def __init__(self, secret: bytes, max_age_seconds: float, salt: str = _SALT):
        self._serializer = URLSafeTimedSerializer(secret, salt=salt)
        self._max_age = max_age_seconds

    def make(self, sign_up: SignUp) -> str:
        return self._serializer.dumps([sign_up.list_name, sign_up.email, sign_up.name, sign_up.asked_at])

    def read(self, token: str) -> SignUp:
        """The sign-up a genuine, unexpired token carries; a NewsletterError for anything else."""
        try:
            values = self._serializer.loads(token, max_age=self._max_age)
        except SignatureExpired:
            raise NewsletterError("this confirmation link has expired",
                                  hint="subscribe again to get a fresh link") from None
        except BadData:
            raise NewsletterError("this confirmation link is not valid",
                                  hint="open the link exactly as it came in the mail") from None
        if not (isinstance(values, list) and len(values) == 4 and all(isinstance(v, str) for v in values)):
            raise NewsletterError("this confirmation link is not valid")
        return SignUp(*values)
