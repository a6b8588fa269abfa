"""The confirmation mail: one message, sent the way ``send --test-to`` sends, through the configured provider.

The message is built as an issue's is (``providers.base.Message``, the same
MIME building and header-injection refusal), encoded and delivered through the
provider's declared interface (``providers.base.deliver_all``) to a single
recipient. It has no unsubscribe link: it is not a newsletter, and nobody is on
a list until they confirm.
"""

from __future__ import annotations

from typing import Any

from ..config import Settings
from ..errors import NewsletterError
from ..providers import registry
from ..providers.base import SENT, Message, Provider, Recipient, deliver_all
from .pages import render_mail


def open_provider(settings: Settings) -> Provider[Any]:
    """The configured provider, its secret read from the environment."""
    return registry.open_provider(settings, settings.provider)


def confirmation_message(settings: Settings, list_name: str, confirm_url: str) -> Message:
    html, text = render_mail(settings, list_name, confirm_url)
    return Message(issue_name="confirm", list_name=list_name, subject=f"Confirm your subscription to {settings.name}",
                   html=html, text=text, fields=(), from_address=settings.from_address, reply_to=settings.reply_to,
                   categories=registry.kind(settings.provider).categories(settings))


def send_confirmation(settings: Settings, list_name: str, email: str, key: str, name: str, confirm_url: str,
                      provider: Provider[Any] | None = None) -> None:
    """Mail ``email`` its confirmation link; a NewsletterError if the provider did not accept it."""
    message = confirmation_message(settings, list_name, confirm_url)
    provider = provider or open_provider(settings)
    provider.open()
    try:
        delivery = deliver_all(provider, message, [Recipient(email=email, key=key, name=name)])[0]
    finally:
        provider.close()
    if delivery.status != SENT:
        raise NewsletterError(f"the confirmation mail was not accepted: {delivery.reason or delivery.status}")
