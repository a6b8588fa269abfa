"""A real HTTP server on 127.0.0.1 standing in for SendGrid's v3 API, for tests and benchmarks.

``POST /v3/mail/send`` checks the bearer key, validates the body against
SendGrid's published schema (tests/data/sendgrid/mail_send.schema.json; its
README says where it comes from) and the limits that README
lists, answers 202 with an ``X-Message-Id`` (200 in sandbox mode, as
SendGrid does), and records every recipient it accepted so a test can count
deliveries. It can be told to misbehave for the coming requests: answer
429, 500, 401 or any status, answer slowly, drop the connection after
reading the request, or refuse a particular address with a 400; and for good:
answer every request late (``answer_delay``), answer ``GET /v3/scopes`` with
another status (``scopes_status``), or stop listening and come back
(``down``/``up``, as a crash and a restart).

The suppression endpoints (global unsubscribes, bounces, blocks, spam
reports, a group's suppressions) serve canned data with limit/offset paging
and SendGrid's ``start_time``/``end_time`` filter on each entry's
``created`` time (which a test may set, to stand for bounces that came back
after a stage of a send), and ``GET /v3/scopes`` lists the key's permissions.

As a script, for benchmarks and for tests that kill a real ``newsletter
send`` process::

    python tests/sendgrid_standin.py --port 8765 [--no-validate] [--latency 0.05]

It prints ``listening on http://127.0.0.1:PORT`` once ready. Other processes
read and steer it through ``/_standin/`` endpoints (no key needed):
``GET /_standin/stats``, ``GET /_standin/accepted``, ``POST /_standin/script``
(a JSON list of replies, see ``Reply``), ``POST /_standin/suppressions``
(``{"kind": "bounces", "emails": [...], "created": 1760000000}``, as
``add_suppressions``) and ``POST /_standin/reset``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import signal
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

DEFAULT_KEY = "SG.standin-test-key.not-a-real-secret"
MAIL_SEND = "/v3/mail/send"
MAX_RECIPIENTS = 1000
MAX_CUSTOM_ARGS_BYTES = 10_000
MAX_SUBSTITUTIONS_BYTES = 10_000
MAX_SEND_AHEAD_SECONDS = 72 * 3600
RESERVED_HEADERS = frozenset(h.lower() for h in (
    "x-sg-id", "x-sg-eid", "received", "dkim-signature", "Content-Type", "Content-Transfer-Encoding",
    "To", "From", "Subject", "Reply-To", "CC", "BCC"))
HELP = "https://docs.sendgrid.com/api-reference/mail-send/errors#"
ALL_SCOPES = ("mail.send", "suppression.read", "asm.groups.suppressions.read")
SUPPRESSION_PATHS = {
    "/v3/suppression/unsubscribes": "unsubscribes",
    "/v3/suppression/bounces": "bounces",
    "/v3/suppression/spam_reports": "spam_reports",
    "/v3/suppression/blocks": "blocks",
}
CANNED_CREATED = 1_760_000_000  # the created time of canned entries given none (plus their index)
CANNED_DETAILS = {  # kind -> (status, reason) SendGrid gives its entries unless a test says otherwise
    "bounces": ("5.1.1", "550 5.1.1 The email account that you tried to reach does not exist."),
    "blocks": ("5.7.1", "554 5.7.1 Message rejected: the sending IP is listed by a blocklist."),
}


SCHEMA_FILE = Path(__file__).resolve().parent / "data" / "sendgrid" / "mail_send.schema.json"


def schema_path() -> Path:
    """Where the Mail Send schema lives: beside the tests, so a clone needs nothing else."""
    return SCHEMA_FILE


def load_validator(path: Path | None = None):
    """A Draft 7 validator with format checking, as the schema's README prescribes."""
    import jsonschema

    path = path or schema_path()
    if not path.is_file():
        raise FileNotFoundError(f"SendGrid schema not found at {path}; restore it from git")
    schema = json.loads(path.read_text(encoding="utf-8"))
    return jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())


@dataclass(frozen=True)
class Accepted:
    """One recipient of an accepted request, as SendGrid would deliver to them."""

    email: str
    name: str = ""
    subject: str = ""  # the personalization's subject, else the request's
    substitutions: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)  # top level merged with the personalization's
    custom_args: Mapping[str, str] = field(default_factory=dict)  # top level merged with the personalization's
    message_id: str = ""
    request: int = 0  # sequence number of the request that carried it
    send_at: int | None = None
    sandbox: bool = False
    asm_group: int | None = None
    categories: tuple[str, ...] = ()
    html: str = ""  # the request's text/html content, merge tokens as sent (SendGrid fills them per recipient)
    attachments: tuple[Mapping[str, str], ...] = ()  # the request's attachments, as sent (content in base64)


@dataclass
class Reply:
    """A scripted answer for one coming request whose path starts with ``path``.

    ``status`` None means "what the stand-in would have answered anyway".
    ``delay`` sleeps before answering (longer than the client's timeout: a
    slow response); ``drop`` closes the connection after reading the request
    without answering. ``deliver`` records the recipients as accepted even so,
    as when SendGrid took the mail but its answer was lost.
    """

    status: int | None = None
    errors: list[dict[str, Any]] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False
    deliver: bool = False
    path: str = MAIL_SEND


@dataclass(frozen=True)
class _Batch:
    emails: list[str]
    details: list[Accepted]  # empty unless the stand-in records details
    sandbox: bool


@dataclass(frozen=True)
class RequestRecord:
    """What the stand-in saw of one request and what it answered."""

    method: str
    path: str
    query: Mapping[str, str]
    status: int | None  # None: the connection was dropped
    recipients: int = 0
    authorization_ok: bool = True
    at: float = field(default_factory=time.time)  # when it was answered (or dropped)
    arrived: float = 0.0  # when a mail send's request arrived (0: not recorded)


def _error(message: str, field_name: str | None = None, help_anchor: str = "message") -> dict[str, Any]:
    return {"message": message, "field": field_name, "help": HELP + help_anchor}


def _json_bytes(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def limit_problems(body: Mapping[str, Any], now: float | None = None) -> list[dict[str, Any]]:
    """Breaches of the limits SendGrid documents but the schema cannot express."""
    now = time.time() if now is None else now
    problems: list[dict[str, Any]] = []
    personalizations = body.get("personalizations")
    if not isinstance(personalizations, list):
        return problems
    total = 0
    first_seen: dict[str, str] = {}
    top_args = body.get("custom_args") if isinstance(body.get("custom_args"), dict) else {}
    for i, p in enumerate(personalizations):
        if not isinstance(p, dict):
            continue
        for kind in ("to", "cc", "bcc"):
            for j, addressee in enumerate(p.get(kind) or []):
                if not isinstance(addressee, dict):
                    continue
                total += 1
                email = str(addressee.get("email", "")).strip().lower()
                where = f"personalizations.{i}.{kind}"
                if email in first_seen:
                    problems.append(_error(
                        "Each email address in the personalization block should be unique between to, cc, and bcc. "
                        f"We found the first duplicate instance of [{email}] in the {where} field.",
                        where, "message.recipient-errors"))
                else:
                    first_seen[email] = where
                name = addressee.get("name")
                if isinstance(name, str) and ("," in name or ";" in name) and not (
                        len(name) > 1 and name[0] == name[-1] == '"'):
                    problems.append(_error(f"The {kind}.name field cannot contain ';' or ',' unless quoted.",
                                           f"{where}.{j}.name", "message.personalizations"))
        args = dict(top_args)
        if isinstance(p.get("custom_args"), dict):
            args.update(p["custom_args"])
        if _json_bytes(args) > MAX_CUSTOM_ARGS_BYTES:
            problems.append(_error("The custom_args of a personalization may not exceed 10,000 bytes.",
                                   f"personalizations.{i}.custom_args", "message.custom_args"))
        if isinstance(p.get("substitutions"), dict) and _json_bytes(p["substitutions"]) > MAX_SUBSTITUTIONS_BYTES:
            problems.append(_error("The total size of substitutions may not exceed 10,000 bytes per personalization.",
                                   f"personalizations.{i}.substitutions", "message.substitutions"))
        for name in (p.get("headers") or {}) if isinstance(p.get("headers"), dict) else ():
            if name.lower() in RESERVED_HEADERS:
                problems.append(_error(f"The header {name} is reserved and cannot be set.",
                                       f"personalizations.{i}.headers", "message.headers"))
        if isinstance(p.get("send_at"), int) and p["send_at"] - now > MAX_SEND_AHEAD_SECONDS:
            problems.append(_error("You cannot schedule a send more than 72 hours in advance.",
                                   f"personalizations.{i}.send_at", "message.send_at"))
    if len(personalizations) > MAX_RECIPIENTS or total > MAX_RECIPIENTS:
        problems.append(_error("The personalizations field may hold at most 1000 personalizations and "
                               "1000 recipients (to, cc and bcc together).", "personalizations",
                               "message.personalizations"))
    if isinstance(body.get("send_at"), int) and body["send_at"] - now > MAX_SEND_AHEAD_SECONDS:
        problems.append(_error("You cannot schedule a send more than 72 hours in advance.", "send_at",
                               "message.send_at"))
    types = [c.get("type") for c in body.get("content") or [] if isinstance(c, dict)]
    for earlier, later in (("text/plain", "text/html"),):
        if earlier in types and later in types and types.index(earlier) > types.index(later):
            problems.append(_error("If present, text/plain and text/html may only be provided in this order.",
                                   "content", "message.content"))
    if types and types[0] not in ("text/plain", "text/html"):
        problems.append(_error("text/plain and text/html content must come first.", "content", "message.content"))
    for i, attachment in enumerate(body.get("attachments") or []):
        if isinstance(attachment, dict):
            problems.extend(_attachment_problems(i, attachment))
    return problems


def _attachment_problems(i: int, attachment: Mapping[str, Any]) -> list[dict[str, Any]]:
    """SendGrid's documented refusals of one attachment (its Mail Send errors page, "Attachment Errors")."""
    problems = []
    where = f"attachments.{i}"
    try:
        base64.b64decode(str(attachment.get("content", "")), validate=True)
    except ValueError:
        problems.append(_error("The attachment content must be base64 encoded.", f"{where}.content",
                               "message.attachments.content"))
    forbidden = (";", ",", "\r", "\n")
    if any(c in str(attachment.get("filename", "")) for c in forbidden):
        problems.append(_error("The filename of your attachment cannot contain CRLF characters.", f"{where}.filename",
                               "message.attachments.filename"))
    if any(c in str(attachment.get("type", "")) for c in forbidden):
        problems.append(_error("The type cannot contain ';', or CRLF characters.", f"{where}.type",
                               "message.attachments.type"))
    content_id = attachment.get("content_id")
    if attachment.get("disposition") == "inline" and not content_id:
        problems.append(_error("The content_id parameter is required if disposition = 'inline'.",
                               f"{where}.content_id", "message.attachments.content_id"))
    if isinstance(content_id, str) and any(c in content_id for c in forbidden):
        problems.append(_error("The content ID of your attachment cannot contain CRLF characters.",
                               f"{where}.content_id", "message.attachments.content_id"))
    return problems


class SendGridStandIn:
    """The server, its recordings and its script; ``with SendGridStandIn() as sg: ... sg.url``."""

    def __init__(self, *, api_key: str = DEFAULT_KEY, validate: bool = True, host: str = "127.0.0.1",
                 port: int = 0, record_details: bool = True, latency: float = 0.0, max_page: int = 500):
        self.api_key = api_key
        self.validate = validate
        self.record_details = record_details  # False: keep addresses only (a million-recipient benchmark)
        self.latency = latency  # seconds added to every mail send
        self.answer_delay = 0.0  # seconds every API request (mail or read) waits before its answer: a slow SendGrid
        self.scopes_status: int | None = None  # GET /v3/scopes answers this status instead (404: an API host
        # that proxies only the Mail Send endpoint)
        self.max_page = max_page  # most items a suppression endpoint returns per page
        self.echo_headers = False  # error bodies quote the request's headers (to test that keys stay hidden)
        self.scopes: list[str] = list(ALL_SCOPES)
        self.suppressions: dict[str, list[str]] = {"unsubscribes": [], "bounces": [], "spam_reports": [],
                                                   "blocks": []}
        self._entry_details: dict[tuple[str, str], dict[str, Any]] = {}  # (kind, email) -> created/status/reason
        self.groups: dict[int, list[str]] = {}
        self._validator = load_validator() if validate else None
        self._lock = threading.Lock()
        self._delivered = threading.Condition(self._lock)  # notified whenever deliveries are counted
        self._open = 0  # connections accepted and not yet closed (``quiet``)
        self._accepted: list[Accepted] = []
        self._counts: Counter[str] = Counter()
        self._arrivals = 0
        self._requests: list[RequestRecord] = []
        self._script: list[Reply] = []
        self._refused: dict[str, tuple[str, str]] = {}
        self._stopping = threading.Event()
        self._gate = threading.Event()  # mail sends wait here while it is closed (``hold``)
        self._gate.set()
        self._held = 0
        self._times: list[tuple[float, str]] = []  # (when accepted, address) of each delivery
        self._server = _Server((host, port), _Handler)
        self._server.standin = self
        self._thread: threading.Thread | None = None

    # -- life cycle --

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> SendGridStandIn:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="sendgrid-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def down(self) -> None:
        """Stop listening, as a SendGrid that crashed: new connections are refused until ``up``. What was
        recorded so far is kept (the stand-in's own process lives on)."""
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def up(self) -> None:
        """Listen again on the same port, as a SendGrid restarted after ``down``."""
        host, port = self._server.server_address[:2]
        self._server = _Server((str(host), int(port)), _Handler)
        self._server.standin = self
        self.start()

    def __enter__(self) -> SendGridStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- scripting --

    def script(self, *replies: Reply) -> None:
        """Queue answers for the coming requests (each to the first request matching its path)."""
        with self._lock:
            self._script.extend(replies)

    def answer(self, status: int, *, times: int = 1, errors: list[dict[str, Any]] | None = None,
               headers: Mapping[str, str] | None = None, path: str = MAIL_SEND) -> None:
        """The next ``times`` requests to ``path`` get ``status`` (with SendGrid-shaped errors)."""
        if errors is None and status >= 400:
            errors = [_error({401: "The provided authorization grant is invalid, expired, or revoked",
                              403: "access forbidden", 429: "too many requests",
                              413: "Payload Too Large"}.get(status, "internal server error"
                                                             if status >= 500 else "bad request"))]
        self.script(*(Reply(status=status, errors=errors, headers=dict(headers or {}), path=path)
                      for _ in range(times)))

    def rate_limit(self, *, times: int = 1, reset_in: float = 1.0, retry_after: float | None = None) -> None:
        """429 with SendGrid's X-RateLimit-* headers; the limit resets ``reset_in`` seconds from the answer."""
        for _ in range(times):
            headers = {"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "0",
                       "X-RateLimit-Reset": f"@+{reset_in}"}  # resolved to Unix seconds when answering
            if retry_after is not None:
                headers["Retry-After"] = f"{retry_after:g}"
            self.script(Reply(status=429, headers=headers, errors=[_error("too many requests")]))

    def slow(self, seconds: float, *, times: int = 1, deliver: bool = True, path: str = MAIL_SEND) -> None:
        """Answer only after ``seconds``; by default the mail was accepted (recorded) meanwhile.
        ``path="/v3/"`` slows every API request (mail sends and reads alike): a struggling SendGrid."""
        self.script(*(Reply(delay=seconds, deliver=deliver, path=path) for _ in range(times)))

    def drop(self, *, times: int = 1, deliver: bool = False) -> None:
        """Read the request, then close the connection without answering."""
        self.script(*(Reply(drop=True, deliver=deliver) for _ in range(times)))

    def refuse_address(self, email: str, message: str = "Does not contain a valid address.",
                       help_anchor: str = "message.personalizations") -> None:
        """Every request carrying ``email`` gets a 400 naming it, until ``reset``."""
        with self._lock:
            self._refused[email.strip().lower()] = (message, help_anchor)

    def add_suppressions(self, kind: str, emails: Iterable[str], *, group: int | None = None,
                         created: int | None = None, status: str | None = None, reason: str | None = None) -> None:
        """Canned data: kind is unsubscribes | bounces | blocks | spam_reports | group (with ``group``).

        ``created`` (Unix seconds) is when SendGrid recorded them, for the ``start_time`` filter; ``status``
        and ``reason`` override what a bounce or block says (a "4.2.2" bounce is a soft one)."""
        emails = list(emails)
        with self._lock:
            if kind == "group":
                self.groups.setdefault(int(group), []).extend(emails)  # type: ignore[arg-type]
                return
            self.suppressions[kind].extend(emails)
            for email in emails:
                details = {k: v for k, v in (("created", created), ("status", status), ("reason", reason))
                           if v is not None}
                if details:
                    self._entry_details[(kind, email.lower())] = details

    def scripted(self) -> int:
        """How many scripted replies no request has taken yet."""
        with self._lock:
            return len(self._script)

    def unscript(self) -> int:
        """Forget the scripted replies no request has taken; how many there were."""
        with self._lock:
            left, self._script = len(self._script), []
            return left

    def hold(self) -> None:
        """Mail sends arriving from now on wait, unanswered and not delivered, until ``release``: a test can
        have several senders' requests under way at once, then let them go."""
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    def held(self) -> int:
        """How many mail sends are waiting for ``release``."""
        with self._lock:
            return self._held

    def delivery_times(self) -> list[tuple[float, str]]:
        """(when, address lowercased) of every delivery, sandboxed requests excluded, in arrival order."""
        with self._lock:
            return list(self._times)

    def reset(self) -> None:
        """Forget recordings, script and refused addresses."""
        with self._lock:
            self._accepted.clear()
            self._counts.clear()
            self._times.clear()
            self._requests.clear()
            self._script.clear()
            self._refused.clear()
            for kind in self.suppressions:
                self.suppressions[kind] = []
            self.groups.clear()
            self._entry_details.clear()

    # -- recordings --

    @property
    def accepted(self) -> list[Accepted]:
        """Every recipient of every accepted request, in arrival order, sandboxed ones included
        (empty when the stand-in records addresses only: use ``counts``)."""
        with self._lock:
            return list(self._accepted)

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._requests)

    def counts(self) -> Counter[str]:
        """Deliveries per address (lowercased), sandboxed requests excluded: a count above 1 is a duplicate."""
        with self._lock:
            return Counter(self._counts)

    def wait_until(self, done: Callable[[Counter[str]], bool], timeout: float, *,
                   give_up: Callable[[], bool] | None = None) -> bool:
        """Wait until ``done(counts)`` holds for the deliveries so far (checked each time some are counted), or
        until ``give_up()`` does (a sender that exited, say: checked at least twice a second), or ``timeout``
        seconds pass; whether ``done`` held. ``done`` runs under the stand-in's lock: it reads only its argument."""
        deadline = time.monotonic() + timeout
        with self._delivered:
            while not done(self._counts):
                left = deadline - time.monotonic()
                if left <= 0 or (give_up is not None and give_up()):
                    return False
                self._delivered.wait(min(left, 0.5))
        return True

    def quiet(self, timeout: float = 30.0) -> bool:
        """Wait until every request that reached the stand-in so far is over (answered, or its client gone),
        so what it accepted is final: after a sender is killed, a request it had written may still be
        waiting to be accepted, then read and delivered. A request of its own first makes the server
        accept every connection queued before it; then the open connections are waited for."""
        import urllib.request

        host, port = self._server.server_address[:2]
        with urllib.request.urlopen(f"http://{host}:{port}/_standin/stats", timeout=timeout):
            pass
        deadline = time.monotonic() + timeout
        with self._delivered:
            while self._open:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._delivered.wait(min(left, 0.5))
        return True

    def mail_requests(self) -> list[RequestRecord]:
        return [r for r in self.requests if r.path == MAIL_SEND]

    def stats(self) -> dict[str, int]:
        counts = self.counts()
        return {"requests": len(self.mail_requests()), "accepted": sum(counts.values()), "unique": len(counts),
                "duplicates": sum(n - 1 for n in counts.values() if n > 1)}

    # -- behaviour (called from handler threads) --

    def _next_reply(self, path: str) -> Reply | None:
        with self._lock:
            for i, reply in enumerate(self._script):
                if path.startswith(reply.path):
                    return self._script.pop(i)
        return None

    def _log(self, record: RequestRecord) -> None:
        with self._lock:
            self._requests.append(record)
            self._delivered.notify_all()

    def wait_answered(self, timeout: float) -> bool:
        """Wait until every mail send that arrived has been answered (or dropped): a late answer is recorded
        only when it leaves. Whether that happened within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._delivered:
            while sum(1 for r in self._requests if r.path == MAIL_SEND) < self._arrivals:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._delivered.wait(left)
        return True

    def _authorized(self, headers: Mapping[str, str]) -> bool:
        return headers.get("Authorization", "") == f"Bearer {self.api_key}"

    def _auth_failure(self, headers: Any) -> tuple[int, dict[str, Any]]:
        message = "The provided authorization grant is invalid, expired, or revoked"
        if self.echo_headers:
            message += f" (request headers: {dict(headers.items())})"
        return 401, {"errors": [_error(message, None, "message.auth")]}

    def evaluate_mail(self, raw: bytes, headers: Any) -> tuple[int, dict[str, Any] | None, _Batch | None]:
        """(status, error body or None, recipients it would accept) for one Mail Send request."""
        if not self._authorized(headers):
            return (*self._auth_failure(headers), None)
        if "mail.send" not in self.scopes:
            return 403, {"errors": [_error("access forbidden", None, "message.auth")]}, None
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as err:
            return 400, {"errors": [_error(f"Bad Request: the body is not JSON ({err})", None)]}, None
        errors: list[dict[str, Any]] = []
        if self._validator is not None:
            for error in sorted(self._validator.iter_errors(body), key=lambda e: list(e.absolute_path))[:20]:
                path = ".".join(str(p) for p in error.absolute_path) or None
                errors.append(_error(error.message[:300], path, "message." + (str(error.absolute_path[0])
                                                                             if error.absolute_path else "body")))
            errors.extend(limit_problems(body))
        if not isinstance(body, dict) or not isinstance(body.get("personalizations"), list):
            return 400, {"errors": errors or [_error("The personalizations field is required.",
                                                     "personalizations")]}, None
        with self._lock:
            refused = dict(self._refused)
        if refused:
            for i, p in enumerate(body["personalizations"]):
                for kind in ("to", "cc", "bcc"):
                    for j, addressee in enumerate((p.get(kind) or []) if isinstance(p, dict) else []):
                        email = str(addressee.get("email", "")).strip().lower() if isinstance(addressee, dict) else ""
                        if email in refused:
                            message, anchor = refused[email]
                            errors.append(_error(message, f"personalizations.{i}.{kind}.{j}.email", anchor))
        if errors:
            return 400, {"errors": errors}, None
        return 202, None, self._recipients(body)

    def _recipients(self, body: Mapping[str, Any]) -> _Batch:
        sandbox = bool(((body.get("mail_settings") or {}).get("sandbox_mode") or {}).get("enable"))
        emails = [str(a.get("email", "")) for p in body["personalizations"]
                  for kind in ("to", "cc", "bcc") for a in p.get(kind) or ()]
        if not self.record_details:
            return _Batch(emails, [], sandbox)
        top_args = body.get("custom_args") or {}
        group = (body.get("asm") or {}).get("group_id")
        categories = tuple(body.get("categories") or ())
        html = next((str(c.get("value", "")) for c in body.get("content") or () if c.get("type") == "text/html"), "")
        attachments = tuple(dict(a) for a in body.get("attachments") or ())
        details = []
        for p in body["personalizations"]:
            args = {**top_args, **(p.get("custom_args") or {})}
            send_at = p.get("send_at", body.get("send_at"))
            for kind in ("to", "cc", "bcc"):
                for addressee in p.get(kind) or ():
                    details.append(Accepted(
                        email=str(addressee.get("email", "")), name=str(addressee.get("name", "")),
                        subject=str(p.get("subject") or body.get("subject") or ""),
                        substitutions=dict(p.get("substitutions") or {}),
                        headers={**(body.get("headers") or {}), **(p.get("headers") or {})},
                        custom_args=args, send_at=send_at, sandbox=sandbox, asm_group=group,
                        categories=categories, html=html, attachments=attachments))
        return _Batch(emails, details, sandbox)

    def _arrive(self) -> int:
        with self._lock:
            self._arrivals += 1
            return self._arrivals

    def _commit(self, batch: _Batch, message_id: str, number: int) -> None:
        with self._lock:
            if not batch.sandbox:
                self._counts.update(email.lower() for email in batch.emails)
                now = time.time()
                self._times.extend((now, email.lower()) for email in batch.emails)
            self._accepted.extend(replace(a, message_id=message_id, request=number) for a in batch.details)

    def suppression_page(self, path: str, query: Mapping[str, str]) -> list[Any] | None:
        """Canned suppressions for ``path``, paged by limit/offset; None for an unknown path."""
        with self._lock:
            if path in SUPPRESSION_PATHS:
                kind = SUPPRESSION_PATHS[path]
                emails = list(self.suppressions.get(kind, ()))
            elif path.startswith("/v3/asm/groups/") and path.endswith("/suppressions"):
                group = path.split("/")[4]
                if not group.isdigit():
                    return None
                kind, emails = "group", list(self.groups.get(int(group), ()))
            else:
                return None
        try:
            offset = max(0, int(query.get("offset", 0)))
            limit = min(self.max_page, max(1, int(query.get("limit", self.max_page))))
        except ValueError:
            offset, limit = 0, self.max_page
        if kind == "group":
            return emails[offset:offset + limit]
        items = []
        with self._lock:
            details = dict(self._entry_details)
        for n, email in enumerate(emails):
            given = details.get((kind, email.lower()), {})
            item: dict[str, Any] = {"created": given.get("created", CANNED_CREATED + n), "email": email}
            if kind in CANNED_DETAILS:
                status, reason = CANNED_DETAILS[kind]
                item.update(reason=given.get("reason", reason), status=given.get("status", status))
            elif kind == "spam_reports":
                item["ip"] = "192.0.2.10"
            items.append(item)
        try:  # SendGrid's filter on when an entry was recorded, both ends inclusive
            start = int(query["start_time"]) if "start_time" in query else None
            end = int(query["end_time"]) if "end_time" in query else None
        except ValueError:
            start = end = None
        items = [i for i in items if (start is None or i["created"] >= start) and (end is None or i["created"] <= end)]
        return items[offset:offset + limit]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    standin: SendGridStandIn

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.standin._delivered:
            self.standin._open += 1
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.standin._delivered:
                self.standin._open -= 1
                self.standin._delivered.notify_all()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read recordings instead
        pass

    @property
    def standin(self) -> SendGridStandIn:
        return self.server.standin

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: Any = None, headers: Mapping[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode("utf-8")
        try:
            self.send_response(status)
            for name, value in (headers or {}).items():
                if value.startswith("@+"):  # a reset time relative to now, resolved as the answer leaves
                    value = str(int(time.time() + float(value[2:]) + 0.999))
                self.send_header(name, value)
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up (a slow answer after its timeout)
            self.close_connection = True

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _query(self) -> tuple[str, dict[str, str]]:
        parts = urlsplit(self.path)
        return parts.path, {k: v[-1] for k, v in parse_qs(parts.query).items()}

    def do_POST(self) -> None:
        path, query = self._query()
        arrived = time.time()
        raw = self._read_body()
        standin = self.standin
        if path.startswith("/_standin/"):
            return self._control(path, raw)
        if path != MAIL_SEND:
            self._send(404, {"errors": [_error(f"{path} is not a stand-in endpoint")]})
            return
        number = standin._arrive()
        if not standin._gate.is_set():
            with standin._lock:
                standin._held += 1
            while not standin._gate.wait(0.05) and not standin._stopping.is_set():
                pass
            with standin._lock:
                standin._held -= 1
        status, error_body, batch = standin.evaluate_mail(raw, self.headers)
        reply = standin._next_reply(path)
        message_id = secrets.token_urlsafe(16)
        count = len(batch.emails) if batch else 0
        if batch is not None and batch.sandbox:
            status = 200  # SendGrid answers a sandboxed request 200, without delivering
        if batch is not None and (reply is None or reply.deliver):
            standin._commit(batch, message_id, number)
            with standin._delivered:
                standin._delivered.notify_all()
        if standin.latency:
            standin._stopping.wait(standin.latency)
        if standin.answer_delay:
            standin._stopping.wait(standin.answer_delay)
        accepted = batch is not None
        if reply is not None:
            if reply.delay:
                standin._stopping.wait(reply.delay)
            if reply.drop:
                standin._log(RequestRecord("POST", path, query, None, count, arrived=arrived))
                self._drop()
                return
            if reply.status is not None:
                status, error_body = reply.status, ({"errors": reply.errors} if reply.errors else None)
                accepted = 200 <= status < 300
        standin._log(RequestRecord("POST", path, query, status, count, standin._authorized(self.headers),
                                   arrived=arrived))
        headers = dict(reply.headers) if reply is not None else {}
        if accepted:
            headers["X-Message-Id"] = message_id
        self._send(status, error_body, headers)

    def do_GET(self) -> None:
        path, query = self._query()
        standin = self.standin
        if path.startswith("/_standin/"):
            return self._control(path, b"")
        if standin.answer_delay:
            standin._stopping.wait(standin.answer_delay)
        reply = standin._next_reply(path)
        if reply is not None and (reply.drop or reply.delay):
            if reply.delay:
                standin._stopping.wait(reply.delay)
            if reply.drop:
                standin._log(RequestRecord("GET", path, query, None))
                return self._drop()
        if reply is not None and reply.status is not None:
            standin._log(RequestRecord("GET", path, query, reply.status))
            return self._send(reply.status, {"errors": reply.errors} if reply.errors else None, reply.headers)
        if not standin._authorized(self.headers):
            status, body = standin._auth_failure(self.headers)
            standin._log(RequestRecord("GET", path, query, status, authorization_ok=False))
            return self._send(status, body)
        if path == "/v3/scopes" and standin.scopes_status is not None:
            standin._log(RequestRecord("GET", path, query, standin.scopes_status))
            return self._send(standin.scopes_status, {"errors": [_error(f"{path} is not served here")]})
        if path == "/v3/scopes":
            standin._log(RequestRecord("GET", path, query, 200))
            return self._send(200, {"scopes": list(standin.scopes)})
        page = standin.suppression_page(path, query)
        if page is None:
            standin._log(RequestRecord("GET", path, query, 404))
            return self._send(404, {"errors": [_error(f"{path} is not a stand-in endpoint")]})
        standin._log(RequestRecord("GET", path, query, 200))
        self._send(200, page)

    def _control(self, path: str, raw: bytes) -> None:
        standin = self.standin
        if path == "/_standin/stats":
            return self._send(200, standin.stats())
        if path == "/_standin/accepted":
            return self._send(200, {"emails": list(standin.counts().elements())})
        if path == "/_standin/reset":
            standin.reset()
            return self._send(200, {"ok": True})
        if path == "/_standin/suppressions":
            try:
                spec = json.loads(raw or b"{}")
                standin.add_suppressions(spec["kind"], spec["emails"], group=spec.get("group"),
                                         created=spec.get("created"), status=spec.get("status"),
                                         reason=spec.get("reason"))
            except (TypeError, ValueError, KeyError) as err:
                return self._send(400, {"errors": [_error(f"bad suppressions: {err!r}")]})
            return self._send(200, {"ok": True})
        if path == "/_standin/script":
            try:
                standin.script(*(Reply(**spec) for spec in json.loads(raw or b"[]")))
            except (TypeError, ValueError) as err:
                return self._send(400, {"errors": [_error(f"bad script: {err}")]})
            return self._send(200, {"ok": True})
        self._send(404, {"errors": [_error(f"unknown control endpoint {path}")]})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A local stand-in for SendGrid's v3 API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port (printed)")
    parser.add_argument("--key", default=os.environ.get("SENDGRID_API_KEY") or DEFAULT_KEY,
                        help="the API key to accept (default: $SENDGRID_API_KEY, else the test key)")
    parser.add_argument("--no-validate", action="store_true", help="skip schema validation (benchmarks)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every mail send")
    parser.add_argument("--details", action="store_true",
                        help="record substitutions and headers, not only addresses (uses more memory)")
    parser.add_argument("--delay", type=float, default=0.0,
                        help="answer the first --delay-count API requests (mail or reads) after this many seconds")
    parser.add_argument("--delay-count", type=int, default=0)
    parser.add_argument("--rate-limit-count", type=int, default=0,
                        help="answer the first N mail sends 429 (Retry-After: --retry-after)")
    parser.add_argument("--retry-after", type=float, default=0.01)
    parser.add_argument("--answer-delay", type=float, default=0.0,
                        help="answer every API request (mail or read) this many seconds late, for good")
    parser.add_argument("--scopes-status", type=int, default=None,
                        help="answer GET /v3/scopes with this HTTP status (404: a host serving only Mail Send)")
    parser.add_argument("--fail-count", type=int, default=0, help="answer the first N mail sends --fail-status")
    parser.add_argument("--fail-status", type=int, default=500)
    args = parser.parse_args(argv)
    standin = SendGridStandIn(api_key=args.key, validate=not args.no_validate, host=args.host, port=args.port,
                              record_details=args.details, latency=args.latency)
    if args.delay and args.delay_count:
        standin.slow(args.delay, times=args.delay_count, path="/v3/")
    standin.answer_delay = args.answer_delay
    standin.scopes_status = args.scopes_status
    if args.fail_count:
        standin.answer(args.fail_status, times=args.fail_count)
    if args.rate_limit_count:
        standin.rate_limit(times=args.rate_limit_count, reset_in=args.retry_after, retry_after=args.retry_after)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"listening on {standin.url}", flush=True)
    try:
        standin._server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        stats = standin.stats()
        print(f"stand-in: {stats['requests']} requests, {stats['accepted']} recipients accepted, "
              f"{stats['duplicates']} duplicates", flush=True)
        standin._server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
