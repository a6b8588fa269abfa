"""The web service: routes for sign-up, confirmation, unsubscribe and provider events (Starlette).

Each route that accepts something appends its event to the store *before*
answering; if the store fails, the reader gets a 503 page and nothing is
claimed. Pages never say whether an address is on a list: subscribing always
answers "check your inbox", and a bad token gets the same 400 page whatever
is wrong with it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial

from email_validator import EmailNotValidError, validate_email
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..config import Settings
from ..errors import NewsletterError
from ..providers.base import Provider
from ..lists import check_list_name, key_or_problem
from ..compose.unsubscribe import read_secret, verify_token
from . import pages
from .access_log import AccessLog
from .limits import HONEYPOT_FIELD, SignUpLimits
from .mailer import send_confirmation
from .store import CONFIRMED, SUBSCRIBED, UNSUBSCRIBED, Event, EventStore, now_utc, stamp
from .tokens import RESUBSCRIBE, ConfirmTokens, SignUp

log = logging.getLogger("newsletter.serve")
ONE_CLICK_BODY = "List-Unsubscribe=One-Click"
MAX_FORM_BYTES = 16_384
MAX_WEBHOOK_BYTES = 5_000_000
RESUBSCRIBE_SECONDS = 3600  # how long the "Subscribe again" button works after leaving


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
                 mailer: Callable[..., None], webhook_verifier: Callable[[bytes, str, str], bool] | None):
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
        self.base = public_url(settings)
        self.css = {"/theme.css": pages.theme_css(settings), "/pages.css": pages.page_css()}

    # -- answers

    def page(self, title: str, paragraphs: list[str], status: int = 200, **form) -> HTMLResponse:
        return HTMLResponse(pages.message_page(self.settings, title, paragraphs, **form), status_code=status,
                            headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})

    def bad_link(self) -> HTMLResponse:
        return self.page("This link does not work", [
            "The link is not valid: it may have been cut short or changed, or it has expired.",
            "Open it again from the email, exactly as it came. If that does not help, reply to the newsletter."],
            status=400)

    def too_large(self) -> HTMLResponse:
        return self.page("Something is wrong with the form", ["What was sent is far larger than this form."],
                         status=413)

    def store_down(self) -> HTMLResponse:
        return self.page("Please try again in a few minutes", [
            "We could not record your request just now, so nothing has changed yet. Please try again shortly."],
            status=503)

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
        body = await _body_up_to(request, MAX_FORM_BYTES)
        if body is None:
            return self.too_large()
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
        client = request.client.host if request.client else "?"
        if self.limits.too_many(client, list_name, key):
            return self.page("Too many requests", [
                "There have been too many sign-up requests from here or for this address. "
                "Please wait an hour and try again."], status=429)
        try:
            if not await run_in_threadpool(self.limits.mails_left_today, list_name, key):
                return self.page("Too many confirmation emails", [
                    "This address has been sent as many confirmation emails as we send in a day. "
                    "Look for them in your inbox (and spam folder), or try again tomorrow."], status=429)
            asked_at = stamp(now_utc())
            await self.record(Event(list_name=list_name, kind=SUBSCRIBED, email=email, key=key, name=name,
                                    at=asked_at, source="web"))
        except NewsletterError as err:
            log.error("event store: %s", err)
            return self.store_down()
        token = self.confirm_tokens.make(SignUp(list_name, email, name, asked_at))
        try:
            # to the bare address: the name is unconfirmed text, and bots use sign-up forms to carry adverts
            await run_in_threadpool(self.mailer, self.settings, list_name, email, key, "",
                                    f"{self.base}confirm/{token}")
        except NewsletterError as err:
            log.error("confirmation mail not sent: %s", _without_address(str(err), email))
            return self.page("Please try again in a few minutes", [
                "We could not send the confirmation email just now. Please try again shortly."], status=503)
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
        body = await _body_up_to(request, MAX_FORM_BYTES)
        if body is None:
            return self.too_large()
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

    # -- provider events

    async def sendgrid_events(self, request: Request) -> Response:
        from ..providers.sendgrid import EVENT_SIGNATURE_HEADER, EVENT_TIMESTAMP_HEADER
        from .events import parse_batch

        if self.webhook_verifier is None:
            return PlainTextResponse("the SendGrid event webhook is not configured\n", status_code=503)
        body = await _body_up_to(request, MAX_WEBHOOK_BYTES)
        if body is None:
            return PlainTextResponse("too large\n", status_code=413)
        signature = request.headers.get(EVENT_SIGNATURE_HEADER, "")
        timestamp = request.headers.get(EVENT_TIMESTAMP_HEADER, "")
        if not self.webhook_verifier(body, signature, timestamp):
            return PlainTextResponse("signature missing or not valid\n", status_code=403)
        try:
            age = time.time() - int(timestamp)
        except ValueError:
            return PlainTextResponse("bad timestamp\n", status_code=403)
        if abs(age) > self.settings.serve.webhook_max_age_seconds:
            return PlainTextResponse("stale batch\n", status_code=403)
        try:
            events = parse_batch(body, self.lists, stamp(now_utc()))
        except NewsletterError as err:
            return PlainTextResponse(f"{err}\n", status_code=400)
        try:
            if not await run_in_threadpool(self.store.remember_signature, signature, stamp(now_utc())):
                return PlainTextResponse("replayed batch\n", status_code=403)
            added = await run_in_threadpool(self.store.append, events)
        except NewsletterError as err:
            log.error("event store: %s", err)
            return PlainTextResponse("event store unavailable\n", status_code=503)
        return PlainTextResponse(f"recorded {added} event(s)\n")

    # -- the rest

    async def healthz(self, request: Request) -> Response:
        try:
            await run_in_threadpool(self.store.ping)
        except NewsletterError:
            return PlainTextResponse("event store unreachable\n", status_code=503)
        return PlainTextResponse("ok\n")

    async def stylesheet(self, request: Request) -> Response:
        return Response(self.css[request.url.path], media_type="text/css",
                        headers={"Cache-Control": "public, max-age=3600"})


async def _body_up_to(request: Request, limit: int) -> bytes | None:
    """The request body, or None as soon as it is longer than ``limit`` bytes.

    Read chunk by chunk, so an endless or huge body is cut off at the limit
    instead of filling memory (uvicorn itself sets no limit). Starlette keeps
    nothing: the form is parsed from the bytes read here (``_form``).
    """
    try:
        if int(request.headers.get("content-length") or 0) > limit:
            return None
    except ValueError:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def _form(request: Request, body: bytes) -> dict[str, str] | None:
    """The text fields of the form in ``body`` (read by _body_up_to), or None if it is not a form."""
    async def replay() -> dict:
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
               provider: Provider | None = None) -> AccessLog:
    """The ASGI app for ``settings`` on ``store`` (wrapped in the redacting access log).

    ``secret`` defaults to the unsubscribe secret from the environment, the
    webhook key to the variable ``serve.sendgrid_webhook_key_env`` names (no
    key: the events route answers 503), the mailer to the configured provider.
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
    secret = secret or read_secret(settings)
    key = webhook_public_key if webhook_public_key is not None else os.environ.get(
        settings.serve.sendgrid_webhook_key_env, "")
    verifier = event_webhook_verifier(key) if key.strip() else None
    send = mailer or (partial(_send_with, provider) if provider is not None else send_confirmation)
    service = Service(settings, store, secret=secret, mailer=send, webhook_verifier=verifier)
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
    ]
    return AccessLog(Starlette(routes=routes))


def _send_with(provider: Provider, settings: Settings, list_name: str, email: str, key: str, name: str,
               url: str) -> None:
    send_confirmation(settings, list_name, email, key, name, url, provider=provider)
