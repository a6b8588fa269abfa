"""SendGrid's v3 Mail Send request body, written straight to JSON: pure, so worker processes, the dry
run and tests can call it without a network.

A batch becomes one body: the issue rendered and inlined once as shared ``content``, and one
personalization per recipient carrying that recipient's merge values as ``substitutions``, each
value once. ``encode`` makes one body per way the batch's values agree: most often one; a recipient
whose value has differing HTML and text forms goes in a body of its own.
"""

from __future__ import annotations

import base64
import json
import operator
from collections.abc import Sequence
from email.utils import parseaddr
from itertools import combinations
from json.encoder import (
    encode_basestring_ascii as _json_string,  # json.dumps' own string encoder (C)
)
from typing import Any

from ...compose.message import may_break_lines, refuse_line_breaks
from ...compose.personalize import UNSUBSCRIBE_FIELD
from ...errors import NewsletterError
from ..base import BATCH_LABEL, Message, Payload, Recipient, RejectedError, quote_addresses

MAX_RECIPIENTS = 1000  # per request: personalizations and to+cc+bcc addresses
MAX_CATEGORIES = 10
ONE_CLICK = "List-Unsubscribe=One-Click"
# The tag SendGrid replaces with a recipient's link to leave the unsubscribe group: sent verbatim.
GROUP_UNSUBSCRIBE_TAG = "<%asm_group_unsubscribe_raw_url%>"
Bodies = tuple[tuple[tuple[str, ...], bytes], ...]  # each request body with the keys it carries, in order

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
    # last, so that ``labelled`` adds each request's own labels without parsing the body
    shared["custom_args"] = {"issue": message.issue_name, "list": message.list_name, **dict(message.labels)}
    return shared


def labelled(body: bytes, labels: Sequence[tuple[str, str]], part: int, parts: int) -> bytes:
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
        if field.name == UNSUBSCRIBE_FIELD and GROUP_UNSUBSCRIBE_TAG in raw:
            column = [GROUP_UNSUBSCRIBE_TAG if value == GROUP_UNSUBSCRIBE_TAG else text
                      for value, text in zip(raw, column, strict=True)]
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
    emails, _, names, _ = zip(*recipients, strict=True)
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
                       for link, address in zip(links, addresses, strict=True)])


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
    groups: dict[tuple[bool, ...], list[int]] = {}
    for i, agreeing in enumerate(zip(*differing, strict=True)):
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
    emails, _, names, _ = zip(*recipients, strict=True)
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
    """The bodies for one batch, each with the keys it carries, in order, as the JSON bytes that go out.

    A body is written straight to JSON text, a column at a time (every recipient's address, then
    every recipient's first value, ...), each column through the encoder ``json.dumps`` itself uses,
    and joined once: built as dicts and serialized afterwards, or written recipient by recipient, it
    was most of a large send's CPU (see ``_json_texts`` and ``_Layout``).

    A caller that breaks SendGrid's per-request limits (over 1000 recipients, or an address twice,
    compared case-insensitively) gets a ValueError: the batching is wrong. A recipient whose name or
    address holds a line break is refused as SendGrid would refuse it (RejectedError naming the
    personalization), so the send loop isolates that one recipient.

    One body per way the recipients' values agree (most often one for everybody), so that no
    personalization carries a value twice: only recipients whose value has differing HTML and
    text forms (a name with ``&`` or ``'``) get two keys for it, in a body of their own.
    """
    _refuse_unsendable(message, recipients)
    fields = _fields(message)
    columns = _columns(fields, recipients)
    return tuple((tuple([recipients[i].key for i in members]), _body(message, recipients, fields, columns, members))
                 for members in _shapes(columns, len(recipients)))



def encode(message: Message, recipients: Sequence[Recipient]) -> Payload[Bodies]:
    """The provider interface's ``encode``: the bodies ``encode_bodies`` writes, with the keys they carry."""
    return Payload(tuple(r.key for r in recipients), encode_bodies(message, recipients))

