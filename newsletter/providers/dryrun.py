"""The dry run: a provider that does everything but deliver.

It sits on the same path as a live send (same batching, journal logic and
checks, on a scratch copy of the journal). Its ``encode`` runs the real
provider's ``encode`` (so that provider's limits are exercised) and keeps the
recipients; ``deliver`` fills in every recipient's copy so problems surface,
and writes the first few as complete ``.eml`` files. Nothing touches the network.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import Any

from ..errors import NewsletterError, os_error
from .base import FAILED, SENT, Capabilities, Delivery, Message, Payload, Recipient

Sampled = tuple[Message, list[Recipient]]  # the issue and the recipients the live request would carry


class DryRunProvider:
    """Counts and samples what a live send through ``stands_in_for`` would deliver."""

    timeout = 30.0

    def __init__(self, out_dir: Path, *, stands_in_for: str, capabilities: Capabilities,
                 encode: Callable[[Message, Sequence[Recipient]], Payload[Any]], samples: int = 3):
        self.name = f"dry run ({stands_in_for})"
        # One request at a time: the samples are written in order.
        self.capabilities = Capabilities(max_batch=capabilities.max_batch, max_concurrency=1,
                                         scheduling=capabilities.scheduling,
                                         unsubscribe_groups=capabilities.unsubscribe_groups)
        self.out_dir = out_dir
        self.samples = samples
        self._encode = encode
        self.sample_paths: list[Path] = []
        self.largest_message = 0
        self.total_bytes = 0

    def encode(self, message: Message, recipients: Sequence[Recipient]) -> Payload[Sampled]:
        inner = self._encode(message, recipients)  # the request a live send would make, limits enforced
        refused = dict(inner.refused)
        return Payload(inner.keys, (message, [r for r in recipients if r.key not in refused]), inner.refused)

    def open(self) -> None:
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            for old in self.out_dir.glob("sample-*.eml"):
                old.unlink()
        except OSError as err:
            error = os_error(err, self.out_dir, action="write the dry run's samples")
            raise NewsletterError(error.reason, where=error.where, hint=f"{error.hint}; or pass --out DIR") from None

    def deliver(self, payload: Payload[Sampled]) -> Generator[list[Delivery], None, None]:
        message, recipients = payload.data
        deliveries = []
        for recipient in recipients:
            html, text = message.personalize(recipient)
            size = len(html) + len(text)
            self.total_bytes += size
            self.largest_message = max(self.largest_message, size)
            if len(self.sample_paths) < self.samples:
                try:
                    self._write_sample(message, recipient)
                except NewsletterError as err:
                    deliveries.append(Delivery(recipient.key, FAILED, reason=str(err)))
                    continue
            deliveries.append(Delivery(recipient.key, SENT, message_id="dry-run"))
        yield deliveries

    def probe(self, timeout: float) -> None:
        pass

    def _write_sample(self, message: Message, recipient: Recipient) -> None:
        path = self.out_dir / f"sample-{len(self.sample_paths) + 1}.eml"
        path.write_bytes(message.email_for(recipient).as_bytes())
        self.sample_paths.append(path)

    def close(self) -> None:
        pass
