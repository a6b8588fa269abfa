"""SendGrid's API through the official client: the only module that imports ``sendgrid``.

``SendGridProvider`` posts the bodies ``body.py`` writes; responses and network faults are
translated into the outcome vocabulary of ``base.py``; deciding what to do about them (retry,
split, stop) is the send loop's job.

Secrets: the API key lives only in the client's Authorization header. It is scrubbed from every
message and body this module raises, and from the debug log of ``python_http_client`` (which logs
request headers).
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Generator, Sequence
from email.utils import parsedate_to_datetime
from typing import Any

import sendgrid
from python_http_client.client import Response as ClientResponse
from python_http_client.exceptions import HTTPError as ClientHTTPError

from ...config import SendGridSettings, Settings
from ...errors import NewsletterError
from ...redaction import hold, redact
from ...secret_names import unset_variable, variable_name
from ..base import (
    Accepted,
    AuthError,
    Capabilities,
    OutcomeUnknownError,
    Payload,
    ProviderError,
    RejectedError,
    TransientError,
)
from .body import MAX_RECIPIENTS, Bodies, check_categories, encode, labelled

# Independent HTTPS requests (SendGrid answers each in ~100-300 ms); scheduling by send_at; ASM groups;
# addresses in any script.
CAPABILITIES = Capabilities(max_batch=MAX_RECIPIENTS, max_concurrency=4, scheduling=True, unsubscribe_groups=True,
                            unicode_addresses=True)
# SendGrid's own permission names (API key scopes) for what this module does.
MAIL_SEND_SCOPE = "mail.send"

# --- keeping the key out of logs -------------------------------------------

_BEARER = re.compile(r"(Bearer\s+)[^\s'\",}\]]+", re.IGNORECASE)


def scrub(text: str) -> str:
    """``text`` with any API key this process holds (in any case, or encoded: redaction.py), and any bearer
    token, replaced."""
    text = redact(text)
    return _BEARER.sub(r"\1[redacted]", text) if "bearer" in text.lower() else text


class _RedactSecrets(logging.Filter):
    """python_http_client logs request headers (the Authorization header) at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = scrub(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, ()
        return True


_CLIENT_LOGGER = logging.getLogger("python_http_client.client")
if not any(isinstance(f, _RedactSecrets) for f in _CLIENT_LOGGER.filters):
    _CLIENT_LOGGER.addFilter(_RedactSecrets())

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


def _posting(body: bytes, timeout: float) -> Callable[[Any], ClientResponse]:
    """The request ``call`` makes to send ``body``."""
    return lambda client: _post_json(client.mail.send, body, timeout)


def _post_json(endpoint: Any, body: bytes, timeout: float) -> ClientResponse:
    """POST JSON already encoded, through the official client's own request path.

    The client's ``post(request_body=dict)`` json-encodes the dict itself and, on
    every call, formats the whole encoded body into a debug-log message even with
    logging off: twice the work ``body.encode_bodies`` has already done, for each
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
    """Sends batches through SendGrid's v3 Mail Send API; see ``body.py`` for the body."""

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
            response = self.call("checking the API key", lambda c: c.scopes.get(timeout=self.settings.timeout),
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

    def deliver(self, payload: Payload[Bodies]) -> Generator[Accepted, None, None]:
        """One request per body of the payload (most often one); its recipients SENT on 2xx, else a
        ProviderError for the recipients not yet reported (a refusal names them by their position
        among those, as the engine reads it)."""
        waiting = list(payload.keys)  # not yet reported, in the payload's order
        for part, (keys, body) in enumerate(payload.data, 1):
            body = labelled(body, payload.labels, part, len(payload.data))  # its run and batch, in custom_args
            try:
                response = self.call(f"sending to {len(keys)} recipients", _posting(body, self.timeout))
            except RejectedError as err:
                raise _renumbered(err, keys, waiting) from None
            message_id = scrub(response.headers.get("X-Message-Id", "") or "")
            done = set(keys)
            waiting = [key for key in waiting if key not in done]
            yield Accepted(keys, message_id)

    def probe(self, timeout: float) -> None:
        """A read that delivers nothing (the key's scopes): returns once SendGrid answers in time."""
        self.call("checking SendGrid is answering", lambda c: c.scopes.get(timeout=timeout), idempotent=True)

    def close(self) -> None:
        """Nothing to release: the client opens one connection per request."""

    # -- one HTTP exchange, translated --

    def call(self, what: str, request: Callable[[Any], Any], *, idempotent: bool = False) -> Any:
        """Run ``request(client)`` and turn every failure into the right ProviderError."""
        host = self.host
        try:
            return request(self._client.client)
        except ClientHTTPError as err:
            raise self._http_error(what, err.status_code, err.body, err.headers) from None
        except urllib.error.URLError as err:
            # urllib wraps failures while connecting or writing the request: nothing reached SendGrid.
            reason = err.reason if isinstance(err.reason, str) else (str(err.reason) or type(err.reason).__name__)
            raise TransientError(scrub(f"could not reach SendGrid at {host} while {what}: {reason}"),
                                 hint="check the network, and 'sendgrid.api_host' in newsletter.toml") from None
        except (OSError, http.client.HTTPException) as err:
            # The request was written; the answer never came (timeout, dropped connection).
            detail = (f"no answer within {self.timeout:g} s" if isinstance(err, TimeoutError)
                      else f"the connection broke ({type(err).__name__}: {err})".replace(": )", ")"))
            text = scrub(f"SendGrid at {host}: {detail} after the request was sent, while {what}")
            if idempotent:
                raise TransientError(text) from None
            raise OutcomeUnknownError(
                text + "; it may or may not have been delivered",
                hint="SendGrid has no idempotency key, so this batch is not resent automatically",
            ) from None

    def _http_error(self, what: str, status: int, body: Any, headers: Any) -> ProviderError:
        body_text = scrub(body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or ""))
        errors = [(scrub(m), scrub(f)) for m, f in _provider_errors(body_text)]
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



def json_list(response: ClientResponse, path: str) -> list[Any]:
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


