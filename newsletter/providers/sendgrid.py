"""SendGrid: one request per batch of up to 1000 recipients, through the official client.

The only module that imports ``sendgrid``. A batch becomes one v3 Mail Send
body (``encode_payload``, a pure function that writes the JSON; a test or a
dry run can inspect it, parsed, with ``build_payload``):
the issue rendered and inlined once as shared ``content``, and one
personalization per recipient carrying that recipient's merge values as
``substitutions``, each value once. The engine's ``encode`` (``encode_bodies``)
makes one body per way the batch's values agree: most often one; a recipient
whose value has differing HTML and text forms goes in a body of its own. Responses and network faults are translated into the
outcome vocabulary of ``base.py``; deciding what to do about them (retry,
split, stop) is ``send.py``'s job.

Secrets: the API key lives only in the client's Authorization header. It is
scrubbed from every message and body this module raises, and from the debug
log of ``python_http_client`` (which logs request headers).
"""

from __future__ import annotations

import base64
import datetime as dt
import http.client
import json
import logging
import operator
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from email.utils import parseaddr, parsedate_to_datetime
from itertools import combinations
from json.encoder import (
    encode_basestring_ascii as _json_string,  # json.dumps' own string encoder (C)
)
from typing import Any

import sendgrid
from python_http_client.client import Response as ClientResponse
from python_http_client.exceptions import HTTPError as ClientHTTPError

from ..config import SendGridSettings, Settings
from ..errors import NewsletterError
from ..compose.message import may_break_lines, refuse_line_breaks
from ..compose.personalize import UNSUBSCRIBE_FIELD
from ..compose.unsubscribe import SENDGRID_GROUP_UNSUBSCRIBE
from ..redaction import hold, redact
from ..secret_names import unset_variable, variable_name
from .base import (
    BATCH_LABEL,
    Accepted,
    AuthError,
    Capabilities,
    Delivery,
    Payload,
    Message,
    OutcomeUnknownError,
    ProviderError,
    Recipient,
    RejectedError,
    TransientError,
    quote_addresses,
)

MAX_RECIPIENTS = 1000  # per request: personalizations and to+cc+bcc addresses
MAX_SEND_AHEAD = dt.timedelta(hours=72)
MAX_CATEGORIES = 10
ONE_CLICK = "List-Unsubscribe=One-Click"
# SendGrid's own permission names (API key scopes) for what this module does.
MAIL_SEND_SCOPE = "mail.send"
SUPPRESSION_KINDS = {  # endpoint -> status written to the list
    "suppression/unsubscribes": "unsubscribed",
    "suppression/bounces": "bounced",
    "suppression/spam_reports": "complained",
}
_STATUS_RANK = {"unsubscribed": 0, "bounced": 1, "complained": 2}  # the more specific status wins
# Independent HTTPS requests (SendGrid answers each in ~100-300 ms); scheduling by send_at; ASM groups.
CAPABILITIES = Capabilities(max_batch=MAX_RECIPIENTS, max_concurrency=4, scheduling=True, unsubscribe_groups=True)


# --- keeping the key out of logs -------------------------------------------

_BEARER = re.compile(r"(Bearer\s+)[^\s'\",}\]]+", re.IGNORECASE)


def _scrub(text: str) -> str:
    """``text`` with any API key this process holds (in any case, or encoded: redaction.py), and any bearer
    token, replaced."""
    text = redact(text)
    return _BEARER.sub(r"\1[redacted]", text) if "bearer" in text.lower() else text


class _RedactSecrets(logging.Filter):
    """python_http_client logs request headers (the Authorization header) at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = _scrub(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, ()
        return True


_CLIENT_LOGGER = logging.getLogger("python_http_client.client")
if not any(isinstance(f, _RedactSecrets) for f in _CLIENT_LOGGER.filters):
    _CLIENT_LOGGER.addFilter(_RedactSecrets())


# --- the request body ------------------------------------------------------

def _address(value: str, what: str) -> dict[str, str]:
    name, email = parseaddr(value)
    refuse_line_breaks(what, value)
    return {"email": email, "name": name} if name else {"email": email}


def _recipient_name(name: str) -> str:
    """SendGrid mis-splits a ``to.name`` holding ',' or ';' (and drops the mail); quoted, it is one name."""
    if ("," in name or ";" in name) and not (len(name) > 1 and name[0] == name[-1] == '"'):
        return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return name


def check_categories(categories: Sequence[str]) -> None:
    """SendGrid refuses more than 10 categories, repeats, or one over 255 characters."""
    problem = ""
    if len(categories) > MAX_CATEGORIES:
        problem = f"SendGrid accepts at most {MAX_CATEGORIES} categories, not {len(categories)}"
    elif len(set(categories)) != len(categories):
        problem = "a category is listed twice"
    elif any(len(c) > 255 or not c for c in categories):
        problem = "every category must be 1 to 255 characters"
    if problem:
        raise NewsletterError(f"'sendgrid.categories': {problem}", where="newsletter.toml",
                              hint="shorten the list under [sendgrid]")


def _check_batch(recipients: Sequence[Recipient]) -> None:
    """SendGrid's per-request limits: 1 to 1000 recipients, no address twice (compared case-insensitively)."""
    if not recipients:
        raise ValueError("a SendGrid request needs at least one recipient")
    if len(recipients) > MAX_RECIPIENTS:
        raise ValueError(f"a SendGrid request carries at most {MAX_RECIPIENTS} recipients, not {len(recipients)}")
    emails = [email for email, _, _, _ in recipients]
    if len(set(map(str.lower, map(str.strip, emails)))) == len(emails):
        return  # the usual answer, from one set built in C; otherwise find the repeat to name it
    seen: set[str] = set()
    for email in emails:
        address = email.strip().lower()
        if address in seen:
            raise ValueError(f"{email} appears twice in one batch; SendGrid refuses the request")
        seen.add(address)


def _shared_fields(message: Message, aliases: dict[str, str] | None = None) -> dict[str, Any]:
    """Everything in the body but the personalizations; ``aliases`` (token -> token) merges tokens
    whose values are the same for every recipient of the batch, so each value is sent once."""
    text, html = message.text, message.html
    for alias, canonical in (aliases or {}).items():
        text, html = text.replace(alias, canonical), html.replace(alias, canonical)
    content = []
    if text:
        content.append({"type": "text/plain", "value": text})
    content.append({"type": "text/html", "value": html})
    shared: dict[str, Any] = {
        "from": _address(message.from_address, "From address"),
        "subject": message.subject,
        "content": content,
    }
    if message.reply_to:
        shared["reply_to"] = _address(message.reply_to, "Reply-To address")
    if message.categories:
        shared["categories"] = list(message.categories)
    if message.unsubscribe_group is not None:
        shared["asm"] = {"group_id": int(message.unsubscribe_group)}
    if message.send_at is not None:
        shared["send_at"] = int(message.send_at.timestamp())
    if message.sandbox:
        shared["mail_settings"] = {"sandbox_mode": {"enable": True}}
    if message.headers:
        shared["headers"] = dict(message.headers)
    if message.related:  # pictures the HTML shows as cid:<content_id>; SendGrid puts them in the message
        shared["attachments"] = [{"content": base64.b64encode(image.data).decode("ascii"), "type": image.content_type,
                                  "filename": image.filename, "disposition": "inline", "content_id": image.content_id}
                                 for image in message.related]
    # last, so that ``_labelled`` adds each request's own labels without parsing the body
    shared["custom_args"] = {"issue": message.issue_name, "list": message.list_name, **dict(message.labels)}
    return shared


def _labelled(body: bytes, labels: Sequence[tuple[str, str]], part: int, parts: int) -> bytes:
    """``body`` (which ends with its ``custom_args``) with the request's labels added to them: its run and
    batch, which SendGrid hands back with every event about its mail. Part ``part`` of a batch sent as
    ``parts`` requests is batch ``"<label>#<part>/<parts>"``."""
    if not labels:
        return body
    args = dict(labels)
    if parts > 1 and BATCH_LABEL in args:
        args[BATCH_LABEL] += f"#{part}/{parts}"
    added = ",".join(f"{_json_string(name)}:{_json_string(value)}" for name, value in args.items())
    return body[:-2] + b"," + added.encode("ascii") + b"}}"


_last_shared: tuple[Message, dict[str, str], str] | None = None


def _shared_text(message: Message, aliases: dict[str, str]) -> str:
    """``_shared_fields`` as JSON. The same for every batch of a send but the rare one whose values
    agree differently, and tens of kilobytes (the whole issue, twice), so the last one is kept:
    a worker encodes every batch of one message. Messages are frozen; the same object is the same text."""
    global _last_shared
    last = _last_shared
    if last is not None and last[0] is message and last[1] == aliases:
        return last[2]
    text = json.dumps(_shared_fields(message, aliases), separators=(",", ":"))
    _last_shared = (message, dict(aliases), text)
    return text


def encode_payload(message: Message, recipients: Sequence[Recipient]) -> bytes:
    """The Mail Send body for one batch, as the JSON bytes that go out: shared content, one
    personalization per recipient carrying that recipient's merge values as ``substitutions``.

    The body is written straight to JSON text, a column at a time (every recipient's address,
    then every recipient's first value, ...), each column through the encoder ``json.dumps``
    itself uses, and joined once: built as dicts and serialized afterwards, or written
    recipient by recipient, it was most of a large send's CPU (see ``_json_texts`` and
    ``_Layout``). ``build_payload`` parses the result back for anyone who wants to inspect it.

    A caller that breaks SendGrid's per-request limits (over 1000 recipients,
    or an address twice, compared case-insensitively) gets a ValueError: the
    batching is wrong. A recipient whose name or address holds a line break
    is refused as SendGrid would refuse it (RejectedError naming the
    personalization), so ``send.py`` isolates that one recipient.
    """
    _refuse_unsendable(message, recipients)
    fields = _fields(message)
    columns = _columns(fields, recipients)
    return _body(message, recipients, fields, columns, range(len(recipients)))


def _fields(message: Message) -> tuple[Any, ...]:
    """The merge fields the issue's HTML and text use, each once, in order of first use."""
    return tuple(dict.fromkeys(message.html_personalizer.fields + message.text_personalizer.fields))


def _columns(fields: Sequence[Any], recipients: Sequence[Recipient]) -> list[list[str]]:
    """Each token's value for every recipient, worked out once per batch, a column at a time
    (``MergeField.render_all``). SendGrid's own group-unsubscribe tag must reach it verbatim
    (escaped, it is no longer a tag)."""
    every_values = [values for _, _, _, values in recipients]
    raw_by_name: dict[str, list[Any]] = {}  # a name's HTML and text tokens read the same values
    columns = []
    for field in fields:
        raw = raw_by_name.get(field.name)
        if raw is None:
            raw = raw_by_name[field.name] = [values.get(field.name) for values in every_values]
        column = field.render_all(raw)
        if field.name == UNSUBSCRIBE_FIELD and SENDGRID_GROUP_UNSUBSCRIBE in raw:
            column = [SENDGRID_GROUP_UNSUBSCRIBE if value == SENDGRID_GROUP_UNSUBSCRIBE else text
                      for value, text in zip(raw, column)]
        columns.append(column)
    return columns


_JSON_AS_IS = bytes(c for c in range(0x20, 0x7F) if c not in b'"\\')  # what JSON writes unescaped


def _json_texts(values: Sequence[str]) -> Sequence[str]:
    """Each value as the text of a JSON string, without its quotes: what ``json.dumps`` writes for it.

    Most columns (addresses, links, plain names) have nothing to escape, which one check of the
    whole column finds (deleting every character JSON writes as it is leaves nothing); they are
    their own text. Otherwise it is one call of the C encoder for the whole column, joined by '"':
    the encoder writes every '"' as '\\"' and never writes '"' otherwise, so splitting its output
    at '\\"' gives back each value's text (escaping is per character, so the text of a
    concatenation is the concatenation of the texts). A column where a value holds a '"' itself
    is encoded value by value.
    """
    joined = "".join(values)
    if joined.isascii() and not joined.encode("ascii").translate(None, _JSON_AS_IS):
        return values
    joined = '"'.join(values)
    if joined.count('"') == len(values) - 1:
        return _json_string(joined)[1:-1].split('\\"')
    return [_json_string(value)[1:-1] for value in values]


class _Layout:
    """The personalizations of one body as they are written: constant text and columns of
    per-recipient text (already JSON), alternating.

    ``pieces`` lays them out for every recipient in one list by repeating the constants and filling
    each column in with one slice assignment, so one join writes every personalization without the
    interpreter running once per recipient.
    """

    def __init__(self, count: int):
        self.count = count
        self.constants = [""]
        self.columns: list[Sequence[str]] = []

    def text(self, constant: str) -> None:
        self.constants[-1] += constant

    def column(self, texts: Sequence[str]) -> None:
        self.columns.append(texts)
        self.constants.append("")

    def optional(self, before: str, texts: Sequence[str], after: str) -> None:
        """``before + text + after`` for each recipient whose text is not "", nothing for the others."""
        if all(texts):
            self.text(before)
            self.column(texts)
            self.text(after)
        elif any(texts):
            self.column([before + text + after if text else "" for text in texts])

    def pieces(self) -> list[str]:
        """constants[0], columns[0][i], constants[1], ..., constants[-1], for i = 0, 1, ..."""
        width = len(self.constants) + len(self.columns)
        record = [""] * width
        record[0::2] = self.constants
        pieces = record * self.count
        for position, column in enumerate(self.columns):
            pieces[2 * position + 1::width] = column
        return pieces


def _body(message: Message, recipients: Sequence[Recipient], fields: Sequence[Any], columns: list[list[str]],
          members: Sequence[int]) -> bytes:
    """The body for the recipients at ``members`` (positions in ``recipients``, in order)."""
    if len(members) != len(recipients):
        recipients = [recipients[i] for i in members]
        columns = [[column[i] for i in members] for column in columns]
    # No value twice in one personalization: tokens whose values agree for every member (a name's
    # HTML and text forms, most often) share one substitution, and the body's content uses one token.
    aliases: dict[str, str] = {}
    keep: list[int] = []
    for j, column in enumerate(columns):
        first = next((k for k in keep if columns[k] == column), None)
        if first is None:
            keep.append(j)
        else:
            aliases[fields[j].token] = fields[first].token
    emails, _, names, _ = zip(*recipients)
    # Each: {"to":[{"email":E,"name":N}],"substitutions":{K:V,...},"headers":{"List-Unsubscribe":...}}
    layout = _Layout(len(recipients))
    layout.text('{"to":[{"email":"')
    layout.column(_json_texts(list(map(str.strip, emails))))
    layout.text('"')
    layout.optional(',"name":"', _json_texts(_recipient_names(names)), '"')
    layout.text("}]")
    for n, j in enumerate(keep):
        layout.text((',"substitutions":{' if n == 0 else ",") + _json_string(fields[j].token) + ':"')
        layout.column(_json_texts(columns[j]))
        layout.text('"' if n < len(keep) - 1 else '"}')
    if message.unsubscribe_group is None:  # otherwise SendGrid writes List-Unsubscribe itself
        _list_unsubscribe(layout, message, recipients, emails)
    layout.text("},")
    pieces = layout.pieces()
    # Framed in the first and last pieces, so the ~1 MB body is joined and encoded once, not copied again.
    shared = _shared_text(message, aliases)
    pieces[0] = '{"personalizations":[' + pieces[0]
    pieces[-1] = pieces[-1][:-1] + "]," + shared[1:]
    return "".join(pieces).encode("ascii")


def _recipient_names(names: Sequence[str]) -> Sequence[str]:
    """``_recipient_name`` of each name; a batch with no ',' or ';' in any name is as it is."""
    joined = "".join(names)
    if "," in joined or ";" in joined:
        return [_recipient_name(name) for name in names]
    return names


_LIST_UNSUBSCRIBE = ',"headers":{"List-Unsubscribe":"'
_ONE_CLICK_END = '>",' + _json_string("List-Unsubscribe-Post") + ":" + _json_string(ONE_CLICK) + "}"


def _list_unsubscribe(layout: _Layout, message: Message, recipients: Sequence[Recipient],
                      emails: Sequence[str]) -> None:
    """Each recipient's ``,"headers":{...}``: List-Unsubscribe with their targets, the HTTPS link
    first (``Message.list_unsubscribe``), and the one-click header when there is a link; nothing
    for a recipient without a target. The mailto target is the same text up to the address,
    and a percent-encoded address needs no JSON escaping, so only the links are encoded."""
    links = _json_texts(message.unsubscribe_links(recipients))
    mailto_start = _json_string(message.unsubscribe_mailto_prefix)[1:-1]
    if not mailto_start:
        layout.optional(_LIST_UNSUBSCRIBE + "<", links, _ONE_CLICK_END)
        return
    addresses = quote_addresses(emails)
    if all(links):
        layout.text(_LIST_UNSUBSCRIBE + "<")
        layout.column(links)
        layout.text(">, <" + mailto_start)
        layout.column(addresses)
        layout.text(_ONE_CLICK_END)
    elif not any(links):
        layout.text(_LIST_UNSUBSCRIBE + "<" + mailto_start)
        layout.column(addresses)
        layout.text('>"}')
    else:
        layout.column([_LIST_UNSUBSCRIBE + "<" + link + ">, <" + mailto_start + address + _ONE_CLICK_END if link
                       else _LIST_UNSUBSCRIBE + "<" + mailto_start + address + '>"}'
                       for link, address in zip(links, addresses)])


def _shapes(columns: list[list[str]], count: int) -> list[list[int]]:
    """The recipients (positions) grouped by which of their values agree (for each token, the first
    token with the same value), in order of first appearance: within a group every value goes once.

    Which values agree is the same as which pairs of columns are equal; a pair equal for everybody
    or for nobody is the same for every group, so only the pairs that differ between recipients
    (most often none: one group) are compared recipient by recipient.
    """
    differing = []
    for j, k in combinations(range(len(columns)), 2):
        if columns[j] != columns[k] and any(map(operator.eq, columns[j], columns[k])):
            differing.append(list(map(operator.eq, columns[j], columns[k])))
    if not differing:
        return [list(range(count))]
    groups: dict[tuple, list[int]] = {}
    for i, agreeing in enumerate(zip(*differing)):
        members = groups.get(agreeing)
        if members is None:
            members = groups[agreeing] = []
        members.append(i)
    return list(groups.values())


def _refuse_unsendable(message: Message, recipients: Sequence[Recipient]) -> None:
    """What SendGrid would refuse, checked before a body is built: a batch over its limits, bad
    categories, a line break in the subject, or in one recipient's address or name (a RejectedError
    naming that personalization, so the send fails that recipient alone)."""
    _check_batch(recipients)
    check_categories(message.categories)
    refuse_line_breaks("subject", message.subject)
    emails, _, names, _ = zip(*recipients)
    if not may_break_lines(emails) and not may_break_lines(names):
        return  # the usual answer, from two scans of the whole batch
    for index, recipient in enumerate(recipients):
        try:
            refuse_line_breaks("recipient address", recipient.email)
            refuse_line_breaks("recipient name", recipient.name)
        except NewsletterError as err:
            raise RejectedError(f"{recipient.email!r}: {err.reason}",
                                errors=[(err.reason, f"personalizations.{index}.to.0")]) from None


def encode_bodies(message: Message, recipients: Sequence[Recipient]) -> tuple[tuple[tuple[str, ...], bytes], ...]:
    """The bodies for one batch, each with the keys it carries, in order.

    One body per way the recipients' values agree (most often one for everybody), so that no
    personalization carries a value twice: only recipients whose value has differing HTML and
    text forms (a name with ``&`` or ``'``) get two keys for it, in a body of their own.
    """
    _refuse_unsendable(message, recipients)
    fields = _fields(message)
    columns = _columns(fields, recipients)
    return tuple((tuple([recipients[i].key for i in members]), _body(message, recipients, fields, columns, members))
                 for members in _shapes(columns, len(recipients)))


def encode(message: Message, recipients: Sequence[Recipient]) -> Payload:
    """The provider interface's ``encode``: the bodies ``encode_bodies`` writes, with the keys they carry."""
    return Payload(tuple(r.key for r in recipients), encode_bodies(message, recipients))


def is_hard_refusal(reason: str) -> bool:
    """Never: SendGrid's own refusals (a malformed address, a body it rejects) are not answers from a
    receiving server; its bounces come through ``fetch_signals``."""
    return False


def check_schedule(send_at: dt.datetime | None) -> None:
    check_send_at(send_at)


def build_payload(message: Message, recipients: Sequence[Recipient]) -> dict[str, Any]:
    """The body ``encode_payload`` writes for this batch, parsed back: for tests and anyone inspecting it."""
    return json.loads(encode_payload(message, recipients))


def check_send_at(send_at: dt.datetime | None, now: dt.datetime | None = None) -> None:
    """SendGrid schedules at most 72 hours ahead; refuse before any request rather than per batch."""
    if send_at is None:
        return
    now = now or dt.datetime.now(dt.UTC)
    when = send_at if send_at.tzinfo else send_at.astimezone()
    if when - now > MAX_SEND_AHEAD:
        raise NewsletterError(
            f"--provider-at {when.isoformat(timespec='minutes')} is more than 72 hours ahead; "
            "SendGrid schedules delivery at most 72 hours in advance",
            hint="pick a time within the next 72 hours, or schedule it with --at (newsletter holds it until then)",
        )


# --- responses ---------------------------------------------------------------

def _provider_errors(body: bytes | str) -> list[tuple[str, str]]:
    """SendGrid's ``errors[]`` as (message, field) pairs; a non-JSON body becomes one message."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    try:
        data = json.loads(text)
    except ValueError:
        text = " ".join(text.split())[:300]
        return [(text, "")] if text else []
    errors = data.get("errors") if isinstance(data, dict) else None
    pairs = []
    for error in errors if isinstance(errors, list) else []:
        if isinstance(error, dict):
            pairs.append((str(error.get("message") or "").strip(), str(error.get("field") or "")))
    return pairs


def _describe(errors: Sequence[tuple[str, str]]) -> str:
    parts = [f"{msg} (field: {field})" if field else msg for msg, field in errors[:10] if msg or field]
    if len(errors) > 10:
        parts.append(f"and {len(errors) - 10} more")
    return "; ".join(parts) or "no explanation given"


def _retry_after(headers: Any, now: float | None = None) -> float | None:
    """Seconds to wait before the next request, from X-RateLimit-Reset or Retry-After."""
    if headers is None:
        return None
    now = time.time() if now is None else now
    reset = headers.get("X-RateLimit-Reset")
    if reset:
        try:
            return max(0.0, float(reset) - now)
        except ValueError:
            pass
    retry = headers.get("Retry-After")
    if retry:
        try:
            return max(0.0, float(retry))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(retry).timestamp() - now)
            except (TypeError, ValueError):
                pass
    return None


def _post_json(endpoint: Any, body: bytes, timeout: float) -> ClientResponse:
    """POST JSON already encoded, through the official client's own request path.

    The client's ``post(request_body=dict)`` json-encodes the dict itself and, on
    every call, formats the whole encoded body into a debug-log message even with
    logging off: twice the work ``encode_payload`` has already done, for each
    1000-recipient batch. This takes the same URL, the same headers (the key,
    SendGrid's user agent), the same opener and the same error translation
    (``_make_request`` raises the client's HTTPError subclasses), and sends the
    bytes as they are. ``python-http-client`` is pinned below 4 in pyproject.toml,
    and every test of this provider goes through here.
    """
    headers = {**endpoint.request_headers, "Content-Type": "application/json"}
    request = urllib.request.Request(endpoint._build_url(None), data=body, headers=headers, method="POST")
    return ClientResponse(endpoint._make_request(urllib.request.build_opener(), request, timeout=timeout))


class SendGridProvider:
    """Sends batches through SendGrid's v3 Mail Send API; see ``encode_payload`` for the body."""

    name = "sendgrid"
    capabilities = CAPABILITIES
    encode = staticmethod(encode)  # pure: the send engine may run it in worker processes

    def __init__(self, settings: SendGridSettings, *, api_key: str):
        key = (api_key or "").strip()
        env = variable_name("sendgrid.api_key_env", settings.api_key_env)
        if not key:
            raise NewsletterError(f"the SendGrid API key in {env} is empty", hint=f"export {env}=<your API key>")
        if any(c.isspace() or ord(c) < 32 for c in key):
            raise NewsletterError(f"the SendGrid API key in {env} contains spaces or line breaks",
                                  hint="copy the key again, exactly as SendGrid shows it")
        host = settings.api_host.rstrip("/")
        if not host.startswith(("https://", "http://")):
            raise NewsletterError(f"'sendgrid.api_host' must be an https:// URL, not {settings.api_host!r}",
                                  where="newsletter.toml")
        hold(key)
        self.settings = settings
        self.timeout = settings.timeout
        self.host = host
        self._client = sendgrid.SendGridAPIClient(api_key=key, host=host)

    # -- Provider interface --

    def open(self) -> None:
        """Fail fast, before the first batch, when the key is refused or lacks the Mail Send permission.

        Anything else (network trouble, 5xx) is left for the first batch,
        where ``send.py``'s retries live.
        """
        try:
            response = self._call("checking the API key", lambda c: c.scopes.get(timeout=self.settings.timeout),
                                  idempotent=True)
        except AuthError:
            raise
        except ProviderError:
            return
        try:
            scopes = json.loads(response.body or b"{}").get("scopes")
        except (ValueError, AttributeError):
            return
        if isinstance(scopes, list) and MAIL_SEND_SCOPE not in scopes:
            raise AuthError(
                f"the SendGrid API key in {variable_name('sendgrid.api_key_env', self.settings.api_key_env)} lacks "
                "the 'Mail Send' permission",
                status=200, hint="in SendGrid: Settings > API Keys > edit the key > Mail Send: Full Access",
            )

    def deliver(self, payload: Payload):
        """One request per body of the payload (most often one); its recipients SENT on 2xx, else a
        ProviderError for the recipients not yet reported (a refusal names them by their position
        among those, as the engine reads it)."""
        bodies = ((payload.keys, payload.data),) if isinstance(payload.data, bytes) else payload.data
        waiting = list(payload.keys)  # not yet reported, in the payload's order
        for part, (keys, body) in enumerate(bodies, 1):
            body = _labelled(body, payload.labels, part, len(bodies))
            try:
                response = self._call(f"sending to {len(keys)} recipients",
                                      lambda c, body=body: _post_json(c.mail.send, body, self.timeout))
            except RejectedError as err:
                raise _renumbered(err, keys, waiting) from None
            message_id = _scrub(response.headers.get("X-Message-Id", "") or "")
            done = set(keys)
            waiting = [key for key in waiting if key not in done]
            yield Accepted(keys, message_id)

    def probe(self, timeout: float) -> None:
        """A read that delivers nothing (the key's scopes): returns once SendGrid answers in time."""
        self._call("checking SendGrid is answering", lambda c: c.scopes.get(timeout=timeout), idempotent=True)

    def send_batch(self, message: Message, recipients: Sequence[Recipient]) -> list[Delivery]:
        """``encode`` then ``deliver``, waiting for the outcome: for tests and one-off calls."""
        check_send_at(message.send_at)
        return [d for chunk in self.deliver(encode(message, recipients)) for d in chunk]

    def close(self) -> None:
        """Nothing to release: the client opens one connection per request."""

    # -- suppressions --

    def fetch_suppressions(self, *, page_size: int = 500, attempts: int = 3) -> dict[str, str]:
        """Every address SendGrid will not deliver to: address -> unsubscribed | bounced | complained.

        Reads the global unsubscribes, bounces, spam reports and (when
        configured) the unsubscribe group's suppressions, page by page.
        """
        found: dict[str, str] = {}

        def note(address: Any, status: str) -> None:
            if isinstance(address, str) and "@" in address:
                address = address.strip()
                if _STATUS_RANK[status] >= _STATUS_RANK.get(found.get(address, ""), -1):
                    found[address] = status

        for path, status in SUPPRESSION_KINDS.items():
            for item in self._pages(path, page_size, attempts):
                note(item.get("email") if isinstance(item, dict) else None, status)
        group = self.settings.unsubscribe_group
        if group is not None:
            for item in self._pages(f"asm/groups/{int(group)}/suppressions", page_size, attempts):
                note(item if isinstance(item, str) else item.get("email") if isinstance(item, dict) else None,
                     "unsubscribed")
        return found

    def _pages(self, path: str, page_size: int, attempts: int):
        """Items of a paged GET endpoint; stops on a short page, or one that repeats what came before."""
        offset = 0
        seen: set[str] = set()
        while True:
            response = self._with_retries(attempts, self._page_request(path, page_size, offset))
            items = _json_list(response, path)
            fresh = [i for i in items if json.dumps(i, sort_keys=True) not in seen]
            yield from fresh
            if len(items) < page_size or not fresh:  # the last page, or an endpoint that ignores paging
                return
            seen.update(json.dumps(i, sort_keys=True) for i in fresh)
            offset += len(items)

    def _page_request(self, path: str, limit: int, offset: int) -> Callable[[], Any]:
        query = {"limit": limit, "offset": offset}
        return lambda: self._call(f"reading /v3/{path}", lambda c: c._(path).get(
            query_params=query, timeout=self.settings.timeout), idempotent=True)

    @staticmethod
    def _with_retries(attempts: int, request: Callable[[], Any]) -> Any:
        for attempt in range(1, attempts + 1):
            try:
                return request()
            except TransientError as err:
                if attempt == attempts:
                    raise
                time.sleep(min(err.retry_after if err.retry_after is not None else 2.0 ** attempt, 30.0))
        raise AssertionError("unreachable")

    # -- one HTTP exchange, translated --

    def _call(self, what: str, request: Callable[[Any], Any], *, idempotent: bool = False) -> Any:
        """Run ``request(client)`` and turn every failure into the right ProviderError."""
        host = self.host
        try:
            return request(self._client.client)
        except ClientHTTPError as err:
            raise self._http_error(what, err.status_code, err.body, err.headers) from None
        except urllib.error.URLError as err:
            # urllib wraps failures while connecting or writing the request: nothing reached SendGrid.
            reason = err.reason if isinstance(err.reason, str) else (str(err.reason) or type(err.reason).__name__)
            raise TransientError(_scrub(f"could not reach SendGrid at {host} while {what}: {reason}"),
                                 hint="check the network, and 'sendgrid.api_host' in newsletter.toml") from None
        except (OSError, http.client.HTTPException) as err:
            # The request was written; the answer never came (timeout, dropped connection).
            detail = (f"no answer within {self.settings.timeout:g} s" if isinstance(err, TimeoutError)
                      else f"the connection broke ({type(err).__name__}: {err})".replace(": )", ")"))
            text = _scrub(f"SendGrid at {host}: {detail} after the request was sent, while {what}")
            if idempotent:
                raise TransientError(text) from None
            raise OutcomeUnknownError(
                text + "; it may or may not have been delivered",
                hint="SendGrid has no idempotency key, so this batch is not resent automatically",
            ) from None

    def _http_error(self, what: str, status: int, body: Any, headers: Any) -> ProviderError:
        body_text = _scrub(body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or ""))
        errors = [(_scrub(m), _scrub(f)) for m, f in _provider_errors(body_text)]
        said = _describe(errors)
        env = variable_name("sendgrid.api_key_env", self.settings.api_key_env)
        if status in (401, 403):
            sending = what.startswith(("sending", "checking"))
            need = "'Mail Send'" if sending else "'Suppressions' read"
            hint = f"check that {env} holds a current key with the {need} permission"
            if status == 403 and sending:
                hint += ", and that the From address is a verified sender in SendGrid"
            headline = "refused the API key" if status == 401 else "forbade the request"
            return AuthError(f"SendGrid {headline} (HTTP {status}): {said}", status=status, body=body_text,
                             hint=hint)
        if status in (400, 413):
            return RejectedError(f"SendGrid refused the request (HTTP {status}) while {what}: {said}",
                                 status=status, body=body_text, errors=errors)
        if status == 429:
            wait = _retry_after(headers)
            after = f"; try again in {wait:.0f} s" if wait is not None else ""
            return TransientError(f"SendGrid is rate limiting (HTTP 429) while {what}: {said}{after}",
                                  status=status, body=body_text, retry_after=wait)
        if status >= 500:
            return TransientError(f"SendGrid had a server error (HTTP {status}) while {what}: {said}",
                                  status=status, body=body_text, retry_after=_retry_after(headers))
        return ProviderError(
            f"SendGrid answered HTTP {status} while {what}: {said}", status=status, body=body_text,
            hint=f"check 'sendgrid.api_host' in newsletter.toml (now {self.host})" if status == 404 else None,
        )



def _json_list(response, path: str) -> list:
    """The JSON list a SendGrid read endpoint answers, or a ProviderError saying what came instead."""
    try:
        items = json.loads(response.body or b"[]")
    except ValueError:
        raise ProviderError(f"SendGrid answered /v3/{path} with something that is not JSON",
                            status=response.status_code) from None
    if not isinstance(items, list):
        raise ProviderError(f"SendGrid answered /v3/{path} with {type(items).__name__}, not a list",
                            status=response.status_code)
    return items


def _renumbered(err: RejectedError, keys: Sequence[str], waiting: Sequence[str]) -> RejectedError:
    """``err`` about one body, its ``personalizations.N`` renumbered to positions among ``waiting``."""
    position = {key: i for i, key in enumerate(waiting)}

    def field(name: str) -> str:
        parts = name.split(".")
        if len(parts) > 1 and parts[0] == "personalizations" and parts[1].isdigit() and int(parts[1]) < len(keys):
            parts[1] = str(position[keys[int(parts[1])]])
        return ".".join(parts)

    if len(keys) == len(waiting) and list(keys) == list(waiting):
        return err
    return RejectedError(err.reason, status=err.status, body=err.body, hint=err.hint,
                         errors=[(message, field(name)) for message, name in err.errors])


def from_settings(settings: Settings) -> SendGridProvider:
    """The provider for ``settings``, with the API key read from the variable ``newsletter.toml`` names."""
    env = settings.sendgrid.api_key_env
    key = os.environ.get(env, "")
    if not key.strip():
        raise unset_variable("sendgrid.api_key_env", env, "the SendGrid API key", example="SENDGRID_API_KEY",
                             placeholder="your SendGrid API key", more="; 'newsletter send --dry-run' needs no key")
    check_categories(settings.sendgrid.categories)
    return SendGridProvider(settings.sendgrid, api_key=key)


# --- the signed Event Webhook ------------------------------------------------

EVENT_SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
EVENT_TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"


def event_webhook_verifier(public_key: str) -> Callable[[bytes, str, str], bool]:
    """A check of SendGrid's signed Event Webhook batches against the account's verification key.

    ``public_key`` is the base64 key SendGrid shows under Mail Settings > Signed
    Event Webhook. The returned function takes the raw body and the values of
    the signature and timestamp headers, and says whether SendGrid signed
    exactly those bytes (ECDSA P-256 over timestamp + body, the package's own
    verifier). A key that is not a key is a NewsletterError at start.
    """
    from sendgrid.helpers.eventwebhook import EventWebhook

    try:
        verifier = EventWebhook(public_key.strip())
    except (ValueError, TypeError):
        raise NewsletterError("the SendGrid webhook verification key is not a public key",
                              hint="copy the key from SendGrid's Mail Settings > Signed Event Webhook") from None

    def verify(body: bytes, signature: str, timestamp: str) -> bool:
        if not signature or not timestamp:
            return False
        try:
            return bool(verifier.verify_signature(body.decode("utf-8"), signature, timestamp))
        except (ValueError, TypeError, UnicodeDecodeError):  # undecodable base64 or body
            return False

    return verify


__all__ = ["EVENT_SIGNATURE_HEADER", "EVENT_TIMESTAMP_HEADER", "MAX_RECIPIENTS", "SendGridProvider",
           "build_payload", "check_send_at", "encode_payload", "event_webhook_verifier", "from_settings"]



# --- signals after a stage of a send (staged send's circuit breaker) ---------

SIGNAL_KINDS = {  # what the breaker reads -> SendGrid endpoint
    "bounces": "suppression/bounces",
    "blocks": "suppression/blocks",
    "spam_reports": "suppression/spam_reports",
}


def fetch_signals(settings: Settings, *, since: float, until: float | None = None, page_size: int = 500,
                  attempts: int = 3) -> dict[str, list[dict[str, Any]]]:
    """Bounces, blocks and spam reports SendGrid recorded from ``since`` (to ``until``), Unix seconds.

    Plain data for ``sending/stage_rules.py``: ``{"bounces": [{"email", "created", "status", "reason"}, ...],
    "blocks": [...], "spam_reports": [{"email", "created"}, ...]}``, read page by page with SendGrid's
    ``start_time``/``end_time`` filter, so a stage sees what came back after it was sent.
    """
    provider = from_settings(settings)
    found: dict[str, list[dict[str, Any]]] = {}
    try:
        for kind, path in SIGNAL_KINDS.items():
            found[kind] = list(_signal_pages(provider, path, since, until, page_size, attempts))
    finally:
        provider.close()
    return found


def _signal_pages(provider: SendGridProvider, path: str, since: float, until: float | None, page_size: int,
                  attempts: int):
    offset = 0
    while True:
        query = {"start_time": int(since), "limit": page_size, "offset": offset}
        if until is not None:
            query["end_time"] = int(until)
        response = provider._with_retries(attempts, lambda q=query: provider._call(
            f"reading /v3/{path}", lambda c: c._(path).get(query_params=q, timeout=provider.settings.timeout),
            idempotent=True))
        items = _json_list(response, path)
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("email"), str):
                yield {"email": item["email"].strip(), "created": int(item.get("created") or 0),
                       "status": str(item.get("status") or ""), "reason": _scrub(str(item.get("reason") or ""))}
        if len(items) < page_size:
            return
        offset += len(items)


__all__ += ["SIGNAL_KINDS", "fetch_signals"]
