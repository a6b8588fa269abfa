"""Click links that count a click without naming the reader, and can lead nowhere but where the writer linked.

With ``[stats] clicks = true`` every link of an issue points at ``newsletter serve``'s
``/c/<token>`` (on the service that answers ``unsubscribe_url``), and the service
redirects to the original address after recording the click. The token sits in the
path, not the query (Apple's Link Tracking Protection strips query parameters), and
has two parts joined by a ".":

- the **link part**, made once per issue per link (render once): the issue id, the
  link's index and the target URL itself, with an HMAC-SHA256 tag (128 bits). Since the
  URL travels inside the authenticated token, the service needs no copy of the issue,
  and a forged or edited token is refused: the service is never an open redirect.
- the **reader part**, one merge value per recipient shared by all their links: a reader
  key (a keyed hash of the issue id and the address, 64 bits: the same reader counts
  once, and nobody can tell the address from it), the receiving domain's group (Gmail,
  Microsoft, Yahoo, Apple, other), the A/B variant, and the time the copy was sent (for
  the rule that a click within seconds of delivery is a scanner's), with an 80-bit tag
  bound to the issue id.

Keys are derived with HKDF from the unsubscribe secret, apart from the unsubscribe
tokens' key. Per recipient, making the reader part is two keyed hashes: keyed BLAKE2s
(RFC 7693; a MAC by design, and a third of HMAC-SHA256's cost per call here, which a
million-recipient send feels), for the reader key and the reader part's tag.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from hashlib import blake2s

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..lists.domain_groups import stats_group

CLICK_ROUTE = "c/"  # the service's route: <service>/c/<link part>.<reader part>
HONEYPOT = 0  # the link index of the hidden link every copy carries: only a program follows it
CLICK_FIELD = "click_reader"  # the merge value that holds a recipient's reader part
MAX_VARIANTS = 4

_VERSION = 1
_KEY_INFO = b"newsletter click links v1: link tag, reader key, reader tag"
_LINK_TAG = 16
_READER_KEY = 8
_READER_TAG = 10
_READER_BYTES = _READER_KEY + 1 + 1 + 4  # reader key, group, variant, sent at (Unix seconds)
_URLSAFE = bytes.maketrans(b"+/", b"-_")
_GROUP_BYTES = [bytes((number,)) for number in range(256)]


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE, b"=").decode("ascii")


def _unb64(text: str) -> bytes | None:
    if not text or len(text) % 4 == 1 or not text.isascii():
        return None
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, binascii.Error):
        return None


@dataclass(frozen=True)
class Click:
    """What a genuine token says: which issue and link, where it leads, and about whom (pseudonymously)."""

    issue: str
    link: int  # 0: the honeypot
    url: str
    reader: str  # the reader key, hex: the same for every link of one recipient of one issue
    group: int  # lists.domain_groups.STATS_GROUPS
    variant: int  # 0: no A/B test (or the rest after one); 1..4: the subject variant
    sent_at: int  # Unix seconds when the copy was handed to the provider


class ClickKeys:
    """The three keys of click links, derived once from the unsubscribe secret."""

    __slots__ = ("link", "reader", "tag")

    def __init__(self, secret: bytes):
        derived = HKDF(algorithm=hashes.SHA256(), length=96, salt=None, info=_KEY_INFO).derive(secret)
        self.link, self.reader, self.tag = derived[:32], derived[32:64], derived[64:]

    def link_part(self, issue_id: str, index: int, url: str) -> str:
        """The token's first part for link ``index`` (0 < index < 65536; 0 is the honeypot) to ``url``."""
        issue = issue_id.encode("ascii")
        body = bytes((_VERSION,)) + index.to_bytes(2, "big") + bytes((len(issue),)) + issue + url.encode("utf-8")
        return _b64(body + hmac.digest(self.link, body, hashlib.sha256)[:_LINK_TAG])

    def reader_key(self, issue_id: str, address_key: str) -> bytes:
        """The reader key of the address whose normalized key (lists' ``key``) is ``address_key``, in one issue."""
        return blake2s(f"{issue_id}\n{address_key}".encode(), key=self.reader, digest_size=_READER_KEY).digest()

    def read(self, token: str) -> Click | None:
        """The click a genuine token stands for; None for anything forged, edited, cut short or malformed."""
        link_text, dot, reader_text = token.partition(".")
        link, reader = _unb64(link_text), _unb64(reader_text)
        if not dot or link is None or reader is None or len(reader) != _READER_BYTES + _READER_TAG:
            return None
        if len(link) < 4 + _LINK_TAG or link[0] != _VERSION:
            return None
        body, tag = link[:-_LINK_TAG], link[-_LINK_TAG:]
        if not hmac.compare_digest(tag, hmac.digest(self.link, body, hashlib.sha256)[:_LINK_TAG]):
            return None
        length = body[3]
        issue_bytes = body[4:4 + length]
        fields, reader_tag = reader[:_READER_BYTES], reader[_READER_BYTES:]
        expected = blake2s(issue_bytes + b"\n" + fields, key=self.tag, digest_size=_READER_TAG).digest()
        if len(issue_bytes) != length or not hmac.compare_digest(reader_tag, expected):
            return None
        try:
            issue, url = issue_bytes.decode("ascii"), body[4 + length:].decode("utf-8")
        except UnicodeDecodeError:
            return None
        if not url.startswith(("https://", "http://")) and int.from_bytes(body[1:3], "big") != HONEYPOT:
            return None
        return Click(issue=issue, link=int.from_bytes(body[1:3], "big"), url=url,
                     reader=fields[:_READER_KEY].hex(), group=fields[_READER_KEY],
                     variant=fields[_READER_KEY + 1], sent_at=int.from_bytes(fields[_READER_KEY + 2:], "big"))


class ReaderParts:
    """The reader parts of one send (or one A/B variant of it): each recipient's merge value.

    ``clock`` is read once per batch (the copies of a batch go out together), and never before
    ``not_before`` (a send scheduled for later: its copies are delivered then).
    """

    __slots__ = ("_issue", "_keys", "_prefix", "clock", "not_before", "variant")

    def __init__(self, keys: ClickKeys, issue_id: str, *, variant: int = 0, not_before: float = 0.0,
                 clock: Callable[[], float] = time.time):
        if not 0 <= variant <= MAX_VARIANTS:
            raise ValueError(f"an A/B variant is 1 to {MAX_VARIANTS} (0: none), not {variant}")
        self._keys = keys
        self._issue = issue_id.encode("ascii") + b"\n"
        self._prefix = f"{issue_id}\n"
        self.variant = variant
        self.not_before = not_before
        self.clock = clock

    def for_variant(self, variant: int) -> ReaderParts:
        return ReaderParts(self._keys, self._issue[:-1].decode("ascii"), variant=variant,
                           not_before=self.not_before, clock=self.clock)

    def many(self, keys: Sequence[str], emails: Sequence[str]) -> list[str]:
        """Each recipient's reader part (``keys``: their normalized addresses, ``emails``: as written)."""
        sent = int(max(self.clock(), self.not_before))
        tail = bytes((self.variant,)) + min(sent, 2**32 - 1).to_bytes(4, "big")
        reader, tag, prefix, issue = self._keys.reader, self._keys.tag, self._prefix, self._issue
        b64 = binascii.b2a_base64
        encoded = []
        for key, email in zip(keys, emails, strict=True):
            fields = (blake2s((prefix + key).encode(), key=reader, digest_size=_READER_KEY).digest()
                      + _GROUP_BYTES[stats_group(email)] + tail)
            encoded.append(b64(fields + blake2s(issue + fields, key=tag, digest_size=_READER_TAG).digest()))
        return b"".join(encoded).translate(_URLSAFE, b"=").decode("ascii").split("\n")[:-1]
