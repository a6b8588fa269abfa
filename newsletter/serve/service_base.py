"""What every route of the subscriber service shares (``ServiceBase``): settings, store, secrets and limits set
up once at start, the answer pages, reading a request's body within limits, and the routes that are no
stage of a reader's way (health, styles, 404). The routes themselves are signup_routes.py,
departure_routes.py, click_routes.py and, for the provider's events, app.py, which puts them together."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Match
from starlette.types import Receive, Scope, Send

from ..compose.click_tokens import ClickKeys
from ..config import Settings
from ..errors import NewsletterError
from ..lists import key_or_problem
from . import pages
from .clicks import ScannerMemory
from .http_limits import SlowClientLimits
from .limits import SignUpLimits
from .store import Event, EventStore, now_utc, stamp
from .tokens import RESUBSCRIBE, ConfirmTokens

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


def reader_key(email: str) -> str:
    """An address's key in the store: the list's key for it, or the address lowercased."""
    return key_or_problem(email)[0] or email.strip().lower()


async def body_up_to(request: Request, limit: int, seconds: float) -> bytes | int:
    """The request body; 413 as soon as it is longer than ``limit`` bytes, 408 if it takes over ``seconds``.

    Read chunk by chunk, so an endless or huge body is cut off at the limit
    instead of filling memory (uvicorn itself sets no limit), and a body that
    stalls does not hold a connection for ever. Starlette keeps nothing: the
    form is parsed from the bytes read here (``form_fields``).
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


async def form_fields(request: Request, body: bytes) -> dict[str, str] | None:
    """The text fields of the form in ``body`` (read by body_up_to), or None if it is not a form."""
    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=0, max_fields=20)
    except Exception:  # noqa: BLE001 - any malformed body is the same 400 to the reader
        return None
    return {name: value for name, value in form.items() if isinstance(value, str)}


def without_address(text: str, email: str) -> str:
    return text.replace(email, "<address>")


class ServiceBase:
    """The routes' shared state: settings, store, secrets and limits, set up once at start."""

    def __init__(self, settings: Settings, store: EventStore, *, secret: bytes,
                 mailer: Callable[..., None],
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
        self.body_seconds = slow_clients.body_seconds
        self.routes: Sequence[BaseRoute] = ()  # set by create_app, for not_found's slash check
        self.base = public_url(settings)
        self.css = {"/theme.css": pages.theme_css(settings), "/pages.css": pages.page_css()}
        self.clock = clock
        self.click_keys = ClickKeys(secret)
        self.scanners = ScannerMemory(lambda: self.clock().timestamp())

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
        """The page for a body body_up_to did not take: 413 (too large) or 408 (too slow)."""
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

    def served(self, list_name: str) -> bool:
        return list_name in self.lists

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
