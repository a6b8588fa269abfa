"""The dry run: a provider that does everything but deliver.

It sits on the same path as a live send (same batching, journal logic and
checks, on a scratch copy of the journal), fills in every recipient's
message so problems surface, writes the first few as complete ``.eml``
files, and, when standing in for SendGrid, builds each batch's real request
body so its limits are exercised too. Nothing touches the network.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import NewsletterError
from .base import FAILED, SENT, Delivery, Message, Recipient


class DryRunProvider:
    """Counts and samples what a live send would deliver."""

    supports_send_at = True
    max_concurrency = 1

    def __init__(self, out_dir: Path, *, samples: int = 3, stands_in_for: str = "sendgrid",
                 max_batch: int = 1000, payload_builder: Callable[[Message, Sequence[Recipient]], bytes] | None = None):
        self.name = f"dry run ({stands_in_for})"
        self.out_dir = out_dir
        self.samples = samples
        self.max_batch = max_batch
        self.payload_builder = payload_builder
        self.sample_paths: list[Path] = []
        self.largest_message = 0
        self.total_bytes = 0
        self.batches = 0

    def open(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for old in self.out_dir.glob("sample-*.eml"):
            old.unlink()

    def send_batch(self, message: Message, recipients: Sequence[Recipient]) -> list[Delivery]:
        self.batches += 1
        if self.payload_builder is not None:
            self.payload_builder(message, recipients)  # the request a live send would make, limits enforced
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
        return deliveries

    def _write_sample(self, message: Message, recipient: Recipient) -> None:
        path = self.out_dir / f"sample-{len(self.sample_paths) + 1}.eml"
        path.write_bytes(message.email_for(recipient).as_bytes())
        self.sample_paths.append(path)

    def close(self) -> None:
        pass
