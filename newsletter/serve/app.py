"""The web service: routes for sign-up, confirmation, unsubscribe and provider events (Starlette).

Each route that accepts something appends its event to the store *before*
answering; if the store fails, the reader gets a 503 page (with Retry-After)
and nothing is claimed. A sign-up is recorded once its confirmation mail is
accepted, so a mail that failed does not count against the reader's daily
cap. Pages never say whether an address is on a list: subscribing always
answers "check your inbox", and a bad token gets the same 400 page whatever
is wrong with it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from email_validator import EmailNotValidError, validate_email
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Receive, Scope, Send

from ..compose.click_tokens import HONEYPOT, Click, ClickKeys
from ..compose.unsubscribe import read_secret, verify_token
from ..config import Settings
from ..errors import NewsletterError
from ..lists import check_list_name, key_or_problem
from ..providers.base import Provider
from . import pages
from .access_log import AccessLog
from .clicks import HEAD, HONEYPOT_HIT, PREFETCH, ScannerMemory, request_reason
from .events import Refusal, read_batch
from .headers import SecurityHeaders
from .http_limits import SlowClientLimits
from .limits import HONEYPOT_FIELD, SignUpLimits, mailbox_key
from .mailer import send_confirmation
from .store import CONFIRMED, SUBSCRIBED, UNSUBSCRIBED, ClickRecord, Event, EventStore, now_utc, stamp
from .tokens import RESUBSCRIBE, ConfirmTokens, SignUp

log = logging.getLogger("newsletter.serve")
ONE_CLICK_BODY = "List-Unsubscribe=One-Click"
MAX_FORM_BYTES = 16_384
MAX_WEBHOOK_BYTES = 5_000_000
RESUBSCRIBE_SECONDS = 3600  # how long the "Subscribe again" button works after leaving
RETRY_AFTER_SECONDS = 30  # told with every 503 that a store or provider failure caused: it is temporary
Verifier = Callable[[bytes, str, str], bool]
Clock = Callable[[], dt.datetime]
DEFAULT_SLOW_CLIENTS = SlowClientLimits()


def public_url(settings: Settings) -> str:
    """Where readers reach the service (``serve.public_url``, else ``newsletter.base_url``), ending in /."""
    url = settings.serve.public_url or settings.base_url
    return url.rstrip("/") + "/" if url else ""


def names_no_one(email: str) -> bool:
    """An address under the reserved top-level domain .invalid (RFC 6761 §6.4), which no mailbox can have:
    the one-click probe of ``newsletter doctor`` names doctor-probe@invalid, and there is nobody to record."""
    return email.rpartition("@")[2].rstrip(".").lower().rpartition(".")[2] == "invalid"


def _key(email: str) -> str:
    return key_or_problem(email)[0] or email.strip().lower()


class Service:
    """The routes' shared state: settings, store, secrets and limits, set up once at start."""

    def __init__(self, settings: Settings, store: EventStore, *, secret: bytes,
                 mailer: Callable[..., None], webhook_verifier: Verifier | None,
                 slow_clients: SlowClientLimits = DEFAULT_SLOW_CLIENTS, clock: Clock = now_utc):
        self.settings = settings
        self.store = store
        self.secret = secret
        self.lists = tuple(settings.serve.lists)
        self.confirm_tokens = ConfirmTokens(secret, settings.serve.confirm_hours * 3600)
        # not the unsubscribe token: it is in every issue and never expires, so whoever holds an old
        # (forwarded) issue could put someone who left back on the list
        self.resubscribe_tokens = ConfirmTokens(secret, RESUBSCRIBE_SECONDS, purpose=RESUBSCRIBE)
        self.limits = SignUpLimits(settings.serve, store)
        self.mailer = mailer
        self.webhook_verifier = webhook_verifier
        self.body_seconds = slow_clients.body_seconds
        self.routes: Sequence[BaseRoute] = ()  # set by create_app, for not_found's slash check
        self.base = public_url(settings)
        self.css = {"/theme.css": pages.theme_css(settings), "/pages.css": pages.page_css()}
        self.clock = clock
        self.click_keys = ClickKeys(secret)
        self.scanners = ScannerMemory(lambda: self.clock().timestamp())

    # -- answers

    def page(self, title: str, paragraphs: list[str], status: int = 200, headers: dict[str, str] | None = None,
             **form: Any) -> HTMLResponse:
        return HTMLResponse(pages.message_page(self.settings, title, paragraphs, **form), status_code=status,
                            headers={"Cache-Control": "no-store", **(headers or {})})

    def bad_link(self) -> HTMLResponse:
        return self.page("This link does not work", [
            "The link is not valid: it may have been cut short or changed, or it has expired.",
            "Open it again from the email, exactly as it came. If that does not help, reply to the newsletter."],
            status=400)

    def body_refused(self, status: int) -> HTMLResponse:
        """The page for a body _body_up_to did not take: 413 (too large) or 408 (too slow)."""
        if status == 408:
            return self.page("That took too long", ["The form did not arrive in time. Please send it again."],
                             status=408, headers={"Connection": "close"})
        return self.page("Something is wrong with the form", ["What was sent is far larger than this form."],
                         status=413, headers={"Connection": "close"})

    def store_down(self) -> HTMLResponse:
        return self.page("Please try again in a few minutes", [
            "We could not record your request just now, so nothing has changed yet. Please try again shortly."],
            status=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})

    async def record(self, *events: Event) -> None:
        await run_in_threadpool(self.store.append, events)

    # -- sign-up

    def served(self, list_name: str) -> bool:
        return list_name in self.lists

    async def subscribe_form(self, request: Request) -> Response:
        list_name = request.path_params["list_name"]
        if not self.served(list_name):
            return self.page("No such list", ["There is no list here by that name."], status=404)
        return HTMLResponse(pages.subscribe_page(self.settings, list_name, HONEYPOT_FIELD),
                            headers={"Cache-Control": "no-store"})

    async def subscribe(self, request: Request) -> Response:
        list_name = request.path_params["list_name"]
        if not self.served(list_name):
            return self.page("No such list", ["There is no list here by that name."], status=404)
        body = await _body_up_to(request, MAX_FORM_BYTES, self.body_seconds)
        if isinstance(body, int):
            return self.body_refused(body)
        form = await _form(request, body)
        if form is None:
            return self.page("Something is wrong with the form", ["Please fill in the form again."], status=400)
        if form.get(HONEYPOT_FIELD, "").strip():
            return self.page("Something is wrong with the form",
                             ["The form had a field filled in that people leave empty. Please try again."],
                             status=400)
        email, name = form.get("email", "").strip(), " ".join(form.get("name", "").split())[:200]
        try:
            if "\ufffd" in email:  # bytes that were not UTF-8: what the reader typed is lost
                raise EmailNotValidError("not UTF-8")
            email = validate_email(email, check_deliverability=False).normalized
        except EmailNotValidError:
            return self.page("Please check the address", [
                "That does not look like an email address. Go back and check it for typing mistakes."],
                status=400)
        if self.settings.provider == "smtp" and not email.isascii():  # SMTP here sends without SMTPUTF8
            return self.page("Please use another address", [
                "We cannot send to addresses with accented or non-Latin letters yet. "
                "Please subscribe with another address."], status=400)
        key = _key(email)
        mailbox = mailbox_key(key)  # reader+1@ and Reader+2@ are one inbox: its limits are shared
        client = request.client.host if request.client else "?"
        if self.limits.too_many(client, mailbox):
            return self.page("Too many requests", [
                "There have been too many sign-up requests from here or for this address. "
                "Please wait an hour and try again."], status=429)
        try:
            if not await run_in_threadpool(self.limits.mails_left_today, mailbox):
                return self.page("Too many confirmation emails", [
                    "This address has been sent as many confirmation emails as we send in a day. "
                    "Look for them in your inbox (and spam folder), or try again tomorrow."], status=429)
        except NewsletterError as err:  # no mail for a request the store cannot count
            log.error("event store: %s", err)
            return self.store_down()
        asked_at = stamp(now_utc())
        token = self.confirm_tokens.make(SignUp(list_name, email, name, asked_at))
        try:
            # to the bare address: the name is unconfirmed text, and bots use sign-up forms to carry adverts
            await run_in_threadpool(self.mailer, self.settings, list_name, email, key, "",
                                    f"{self.base}confirm/{token}")
        except NewsletterError as err:  # nothing recorded, so nothing counts against the reader's cap
            log.error("confirmation mail not sent: %s", _without_address(str(err), email))
            return self.page("Please try again in a few minutes", [
                "We could not send the confirmation email just now. Please try again shortly."], status=503,
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
        try:  # the mail was accepted: the request and the mail count now
            await run_in_threadpool(self.store.record_confirmation, Event(
                list_name=list_name, kind=SUBSCRIBED, email=email, key=key, name=name, at=asked_at, source="web"),
                mailbox)
        except NewsletterError as err:
            # The mail is on its way and its link works (the confirmation carries when it was asked for);
            # telling the reader "nothing happened" would be false. Only this mail goes uncounted.
            log.error("event store: a confirmation mail went out but was not counted: %s", err)
        return self.page("Check your inbox", [
            f"If that address can receive mail, a message to confirm your subscription to {self.settings.name} "
            "is on its way. Open it and press Confirm.",
            f"The link works for {self.settings.serve.confirm_hours:g} hours. Nothing happens until you confirm."])

    async def confirm_form(self, request: Request) -> Response:
        token = request.path_params["token"]
        try:
            sign_up = self.confirm_tokens.read(token)
        except NewsletterError:
            return self.bad_link()
        return self.page("Confirm your subscription", [
            f"Press Confirm to subscribe to {self.settings.name} ({sign_up.list_name})."],
            action=f"/confirm/{token}", button="Confirm")

    async def confirm(self, request: Request) -> Response:
        try:
            sign_up = self.confirm_tokens.read(request.path_params["token"])
        except NewsletterError:
            return self.bad_link()
        if not self.served(sign_up.list_name):
            return self.bad_link()
        try:
            await self.record(Event(list_name=sign_up.list_name, kind=CONFIRMED, email=sign_up.email,
                                    key=_key(sign_up.email), name=sign_up.name, at=stamp(now_utc()),
                                    asked_at=sign_up.asked_at, source="web"))
        except NewsletterError as err:
            log.error("event store: %s", err)
            return self.store_down()
        return self.page("You are subscribed", [f"Thank you: you will receive {self.settings.name}.",
                                                "Every issue has a link to leave, any time."])

    # -- unsubscribe

    def list_of(self, token: str) -> tuple[str, str] | None:
        """(list, address) a genuine unsubscribe token names, among the served lists."""
        for list_name in self.lists:
            try:
                return list_name, verify_token(self.secret, list_name, token)
            except NewsletterError:
                continue
        return None

    async def unsubscribe_form(self, request: Request) -> Response:
        token = request.path_params["token"]
        found = self.list_of(token)
        if found is None:
            return self.bad_link()
        return self.page("Unsubscribe", [f"Stop receiving {self.settings.name} ({found[0]})?"],
                         action=f"/unsubscribe/{token}", button="Unsubscribe")

    async def unsubscribe(self, request: Request) -> Response:
        token = request.path_params["token"]
        found = self.list_of(token)
        if found is None:
            return self.bad_link()
        list_name, email = found
        body = await _body_up_to(request, MAX_FORM_BYTES, self.body_seconds)
        if isinstance(body, int):
            return self.body_refused(body)
        one_click = body[:200].decode("utf-8", "replace").strip() == ONE_CLICK_BODY
        if names_no_one(email):  # `newsletter doctor`'s probe: answered as any one-click, nothing recorded
            return PlainTextResponse("Unsubscribed.\n", headers={"Cache-Control": "no-store"})
        try:
            await self.record(Event(list_name=list_name, kind=UNSUBSCRIBED, email=email, key=_key(email),
                                    at=stamp(now_utc()), source="one-click" if one_click else "web"))
        except NewsletterError as err:
            log.error("event store: %s", err)
            return self.store_down()
        if one_click:
            return PlainTextResponse("Unsubscribed.\n", headers={"Cache-Control": "no-store"})
        way_back = self.resubscribe_tokens.make(SignUp(list_name, email, "", stamp(now_utc())))
        return self.page("You are unsubscribed", [
            f"You will not receive {self.settings.name} ({list_name}) any more.",
            "Changed your mind, or pressed by mistake?"], action=f"/resubscribe/{way_back}", button="Subscribe again")

    async def resubscribe(self, request: Request) -> Response:
        try:
            sign_up = self.resubscribe_tokens.read(request.path_params["token"])
        except NewsletterError:
            return self.bad_link()
        if not self.served(sign_up.list_name):
            return self.bad_link()
        list_name, email = sign_up.list_name, sign_up.email
        now = stamp(now_utc())
        try:  # the button came from the page their own unsubscribe link led to, minutes ago
            await self.record(Event(list_name=list_name, kind=CONFIRMED, email=email, key=_key(email), at=now,
                                    asked_at=now, source="web"))
        except NewsletterError as err:
            log.error("event store: %s", err)
            return self.store_down()
        return self.page("Welcome back", [f"You are subscribed to {self.settings.name} ({list_name}) again."])

    # -- clicks

    async def click(self, request: Request) -> Response:
        """A click link: the click recorded (a reader's, or a program's and why), then the redirect to where
        the writer linked. A token that is not genuine leads nowhere: the same 400 page as a bad unsubscribe
        link. A store that fails loses the count, never the reader: the redirect is answered all the same."""
        found = self.click_keys.read(request.path_params["token"])
        if found is None:
            return self.bad_link()
        now = self.clock()
        client = self.scanners.client(request.client.host if request.client else "?",
                                      request.headers.get("user-agent", ""))
        reason = request_reason(request.method, request.headers, now.timestamp(), found.sent_at,
                                self.settings.stats.human_after_seconds)
        if found.link == HONEYPOT and reason not in (HEAD, PREFETCH):  # a program followed the hidden link
            earlier = self.scanners.honeypot(client, found.reader)
            await self._record_click(found, now, HONEYPOT_HIT, earlier)
        else:
            if not reason and self.scanners.caught(client, found.reader):
                reason = HONEYPOT_HIT
            click_id = await self._record_click(found, now, reason)
            if click_id and found.link != HONEYPOT:
                self.scanners.clicked(client, found.reader, click_id)
        return RedirectResponse(found.url or self.base or "/", status_code=302,
                                headers={"Cache-Control": "no-store"})

    async def _record_click(self, found: Click, now: dt.datetime, reason: str, earlier: Sequence[int] = ()) -> int:
        record = ClickRecord(issue=found.issue, link=found.link, url=found.url, reader=found.reader,
                             group=found.group, variant=found.variant, sent_at=found.sent_at, at=stamp(now),
                             human=not reason, reason=reason)
        try:
            click_id = await run_in_threadpool(self.store.record_click, record)
            if earlier:
                await run_in_threadpool(self.store.mark_clicks, earlier, HONEYPOT_HIT)
        except NewsletterError as err:
            log.error("event store: a click was not counted: %s", err)
            return 0
        return click_id

    def reader_of(self, issue: str, email: str) -> str:
        """The reader key a click link of ``issue`` carries for ``email`` (for the provider's events)."""
        return self.click_keys.reader_key(issue, _key(email)).hex()

    # -- provider events

    async def sendgrid_events(self, request: Request) -> Response:
        from ..providers.sendgrid import EVENT_SIGNATURE_HEADER, EVENT_TIMESTAMP_HEADER

        if self.webhook_verifier is None:
            return PlainTextResponse("the SendGrid event webhook is not configured\n", status_code=503)
        body = await _body_up_to(request, MAX_WEBHOOK_BYTES, self.body_seconds)
        if isinstance(body, int):
            return PlainTextResponse("too large\n" if body == 413 else "request timeout\n", status_code=body,
                                     headers={"Connection": "close"})
        max_age = self.settings.serve.webhook_max_age_seconds
        received = now_utc()
        # the signature, the JSON and every address of a large batch take CPU time: not on the event loop
        batch = await run_in_threadpool(
            read_batch, self.webhook_verifier, body, request.headers.get(EVENT_SIGNATURE_HEADER, ""),
            request.headers.get(EVENT_TIMESTAMP_HEADER, ""), served=self.lists, max_age=max_age,
            now=time.time(), at=stamp(received), reader_of=self.reader_of)
        if isinstance(batch, Refusal):
            return PlainTextResponse(f"{batch.reason}\n", status_code=batch.status)
        # a batch is refused as stale once its timestamp is max_age away, so its digest can go after that
        forget_before = stamp(received - dt.timedelta(seconds=3 * max_age))
        try:
            added = await run_in_threadpool(self.store.append_batch, batch.digest, batch.events, stamp(received),
                                            forget_before, batch.message_events)
        except NewsletterError as err:
            log.error("event store: %s", err)
            return PlainTextResponse("event store unavailable\n", status_code=503,
                                     headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
        if added is None:
            return PlainTextResponse("replayed batch\n", status_code=403)
        return PlainTextResponse(f"recorded {added} event(s)\n")

    # -- the rest

    async def healthz(self, request: Request) -> Response:
        """200 only when a write reaches the store: a store that answers reads but records nothing
        (read-only, full, locked by another process) must take the instance out of the balancer."""
        try:
            await run_in_threadpool(self.store.heartbeat, stamp(now_utc()))
        except NewsletterError as err:
            log.error("health check: event store: %s", err)
            return PlainTextResponse("event store cannot record\n", status_code=503,
                                     headers={"Retry-After": str(RETRY_AFTER_SECONDS), "Cache-Control": "no-store"})
        return PlainTextResponse("ok\n", headers={"Cache-Control": "no-store"})

    async def not_found(self, scope: Scope, receive: Receive, send: Send) -> None:
        """No route: a path that only lacks its trailing slash is redirected to the public address (never to
        the Host header's, which the client chooses); anything else gets the 404 page."""
        path: str = scope["path"]
        if scope["method"] in ("GET", "HEAD") and len(path) > 1 and path.endswith("/"):
            bare = "/" + path.strip("/")
            if any(route.matches({**scope, "path": bare})[0] is not Match.NONE for route in self.routes):
                await RedirectResponse((self.base or "/") + bare.lstrip("/"), status_code=308)(scope, receive, send)
                return
        await self.page("No such page", ["There is nothing at this address."], status=404)(scope, receive, send)

    async def stylesheet(self, request: Request) -> Response:
        return Response(self.css[request.url.path], media_type="text/css",
                        headers={"Cache-Control": "public, max-age=3600"})


async def _body_up_to(request: Request, limit: int, seconds: float) -> bytes | int:
    """The request body; 413 as soon as it is longer than ``limit`` bytes, 408 if it takes over ``seconds``.

    Read chunk by chunk, so an endless or huge body is cut off at the limit
    instead of filling memory (uvicorn itself sets no limit), and a body that
    stalls does not hold a connection for ever. Starlette keeps nothing: the
    form is parsed from the bytes read here (``_form``).
    """
    try:
        if int(request.headers.get("content-length") or 0) > limit:
            return 413
    except ValueError:
        return 413
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(seconds):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    return 413
                chunks.append(chunk)
    except TimeoutError:
        return 408
    return b"".join(chunks)


async def _form(request: Request, body: bytes) -> dict[str, str] | None:
    """The text fields of the form in ``body`` (read by _body_up_to), or None if it is not a form."""
    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=0, max_fields=20)
    except Exception:  # noqa: BLE001 - any malformed body is the same 400 to the reader
        return None
    return {name: value for name, value in form.items() if isinstance(value, str)}


def _without_address(text: str, email: str) -> str:
    return text.replace(email, "<address>")


def create_app(settings: Settings, store: EventStore, *, secret: bytes | None = None,
               mailer: Callable[..., None] | None = None, webhook_public_key: str | None = None,
               webhook_verifier: Verifier | None = None, provider: Provider | None = None,
               slow_clients: SlowClientLimits = DEFAULT_SLOW_CLIENTS, clock: Clock = now_utc) -> AccessLog:
    """The ASGI app for ``settings`` on ``store`` (wrapped in the redacting access log and security headers).

    ``secret`` defaults to the unsubscribe secret from the environment, the
    webhook check to one with the key in the variable
    ``serve.sendgrid_webhook_key_env`` names (no key: the events route answers
    503), the mailer to the configured provider; ``slow_clients`` gives the
    body deadline (the rest of it is uvicorn's, see server.uvicorn_config); ``clock`` the time clicks are
    judged and recorded by.
    """
    import os

    from ..providers.sendgrid import event_webhook_verifier

    if not settings.serve.lists:
        raise NewsletterError("no lists to serve", where=settings.path,
                              hint='add lists = ["your-list"] under [serve]')
    for list_name in settings.serve.lists:
        try:
            check_list_name(list_name)
        except NewsletterError as err:  # readers could never reach it, and sync would refuse it
            raise NewsletterError(f"serve.lists: {err.reason}", where=settings.path, hint=err.hint) from None
    if webhook_verifier is None:
        key = webhook_public_key if webhook_public_key is not None else os.environ.get(
            settings.serve.sendgrid_webhook_key_env, "")
        webhook_verifier = event_webhook_verifier(key) if key.strip() else None
    send = mailer or (partial(_send_with, provider) if provider is not None else send_confirmation)
    secret = secret or read_secret(settings)
    assert secret is not None  # read_secret raises when the variable is not set
    service = Service(settings, store, secret=secret, mailer=send,
                      webhook_verifier=webhook_verifier, slow_clients=slow_clients, clock=clock)
    routes = [
        Route("/healthz", service.healthz, methods=["GET"]),
        Route("/theme.css", service.stylesheet, methods=["GET"]),
        Route("/pages.css", service.stylesheet, methods=["GET"]),
        Route("/subscribe/{list_name}", service.subscribe_form, methods=["GET"]),
        Route("/subscribe/{list_name}", service.subscribe, methods=["POST"]),
        Route("/confirm/{token}", service.confirm_form, methods=["GET"]),
        Route("/confirm/{token}", service.confirm, methods=["POST"]),
        Route("/unsubscribe/{token}", service.unsubscribe_form, methods=["GET"]),
        Route("/unsubscribe/{token}", service.unsubscribe, methods=["POST"]),
        Route("/resubscribe/{token}", service.resubscribe, methods=["POST"]),
        Route("/events/sendgrid", service.sendgrid_events, methods=["POST"]),
        Route("/c/{token}", service.click, methods=["GET", "HEAD"]),
    ]
    app = Starlette(routes=routes)
    # Starlette's own slash redirect builds its URL from the request's Host header: ours uses public_url
    app.router.redirect_slashes = False
    app.router.default = service.not_found
    service.routes = routes
    return AccessLog(SecurityHeaders(app))


def _send_with(provider: Provider, settings: Settings, list_name: str, email: str, key: str, name: str,
               url: str) -> None:
    send_confirmation(settings, list_name, email, key, name, url, provider=provider)
