"""SendGrid's Event Webhook fed from what the SendGrid stand-in accepted: the events SendGrid would post about
each copy of an accepted request, with the request's custom_args, signed and posted to a running ``serve``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence

import httpx
from sendgrid_standin import Accepted
from serve_helpers import sign_batch, webhook_headers


def events_of(accepted: Iterable[Accepted], kinds: Sequence[str] = ("processed", "delivered")) -> list[dict]:
    """The events SendGrid posts about these copies: each kind per copy, its custom_args at the top level
    (as SendGrid flattens them), an event id and a time."""
    now = int(time.time())
    events = []
    for copy in accepted:
        for kind in kinds:
            events.append({**copy.custom_args, "email": copy.email, "event": kind, "timestamp": now,
                           "sg_event_id": f"{copy.message_id}-{copy.email}-{kind}",
                           "sg_message_id": f"{copy.message_id}.filter0001"})
    return events


def post_events(service_url: str, private_key, events: list[dict]) -> httpx.Response:
    """One signed webhook batch, as SendGrid posts it."""
    body = json.dumps(events).encode()
    signature, stamp = sign_batch(private_key, body)
    return httpx.post(f"{service_url}/events/sendgrid", content=body, headers=webhook_headers(signature, stamp),
                      timeout=30)


class WebhookPoster:
    """Feeds ``serve`` the events of every copy the stand-in accepted since the last ``post``."""

    def __init__(self, standin, service_url: str, private_key):
        self.standin, self.service_url, self.private_key = standin, service_url, private_key
        self.posted = 0  # how many of the stand-in's accepted copies were posted

    def post(self) -> int:
        """Post the new copies' events (one signed batch); how many copies."""
        accepted = self.standin.accepted[self.posted:]
        if accepted:
            answer = post_events(self.service_url, self.private_key, events_of(accepted))
            assert answer.status_code == 200, answer.text
            self.posted += len(accepted)
        return len(accepted)
