"""Calling a provider directly, one batch at a time, as the provider tests do: what the send engine
does around ``encode`` and ``deliver`` (a schedule check, waiting for every outcome), without a journal."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from newsletter.providers import registry
from newsletter.providers.base import Delivery, Message, Provider, Recipient, deliver_all


def send_batch(provider: Provider[Any], message: Message, recipients: Sequence[Recipient]) -> list[Delivery]:
    """``encode`` then ``deliver``, waiting for every outcome, in the recipients' order; a ``send_at`` the
    provider cannot honour is refused before anything, as the send engine refuses it before the first batch."""
    registry.kind(provider.name).check_schedule(message.send_at)
    return deliver_all(provider, message, recipients)


def build_payload(message: Message, recipients: Sequence[Recipient]) -> dict[str, Any]:
    """The SendGrid Mail Send body for this batch, parsed back: the first body the encoder writes, with
    every body's personalizations in the recipients' order (most batches go out as one body; see
    ``encode_bodies`` for the rest)."""
    from newsletter.providers.sendgrid.body import encode_bodies

    bodies = [(keys, json.loads(body)) for keys, body in encode_bodies(message, recipients)]
    by_key = {key: person for keys, body in bodies for key, person in zip(keys, body["personalizations"], strict=True)}
    return {**bodies[0][1], "personalizations": [by_key[r.key] for r in recipients]}
