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

import datetime as dt
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ..compose.unsubscribe import read_secret
from ..config import Settings
from ..errors import NewsletterError
from ..lists import check_list_name
from ..providers import registry
from ..providers.base import Provider
from ..providers.contract import EventWebhook, ProviderKind
from .access_log import AccessLog
from .click_routes import ClickRoutes
from .departure_routes import DepartureRoutes
from .events import Refusal, read_batch
from .headers import SecurityHeaders
from .http_limits import SlowClientLimits
from .mailer import send_confirmation
from .service_base import (
    DEFAULT_SLOW_CLIENTS,
    MAX_WEBHOOK_BYTES,
    RETRY_AFTER_SECONDS,
    Clock,
    Verifier,
    body_up_to,
    log,
    public_url,
)
from .signup_routes import SignUpRoutes
from .store import EventStore, now_utc, stamp

__all__ = ["DEFAULT_SLOW_CLIENTS", "Service", "create_app", "public_url"]


class Service(SignUpRoutes, DepartureRoutes, ClickRoutes):
    """Every route of the service on one shared state (service_base.py); each provider's events in
    ``ProviderEvents``."""


class ProviderEvents:
    """The event webhook of one provider (``/events/<name>``): signed batches of what happened to the mail
    it sent, recorded as list events and message events."""

    def __init__(self, service: Service, kind: ProviderKind, webhook: EventWebhook, verifier: Verifier | None):
        self.service = service
        self.kind = kind
        self.webhook = webhook
        self.verifier = verifier

    async def receive(self, request: Request) -> Response:
        service, webhook, verifier = self.service, self.webhook, self.verifier
        if verifier is None:
            return PlainTextResponse(f"the {self.kind.title} event webhook is not configured\n", status_code=503)
        body = await body_up_to(request, MAX_WEBHOOK_BYTES, service.body_seconds)
        if isinstance(body, int):
            return PlainTextResponse("too large\n" if body == 413 else "request timeout\n", status_code=body,
                                     headers={"Connection": "close"})
        max_age = service.settings.serve.webhook_max_age_seconds
        received = now_utc()
        # the signature, the JSON and every address of a large batch take CPU time: not on the event loop
        batch = await run_in_threadpool(
            read_batch, webhook, self.kind.name, verifier, body, request.headers.get(webhook.signature_header, ""),
            request.headers.get(webhook.timestamp_header, ""), served=service.lists, max_age=max_age,
            now=time.time(), at=stamp(received), reader_of=service.reader_of)
        if isinstance(batch, Refusal):
            return PlainTextResponse(f"{batch.reason}\n", status_code=batch.status)
        # a batch is refused as stale once its timestamp is max_age away, so its digest can go after that
        forget_before = stamp(received - dt.timedelta(seconds=3 * max_age))
        try:
            added = await run_in_threadpool(service.store.append_batch, batch.digest, batch.events, stamp(received),
                                            forget_before, batch.message_events, batch.reports)
        except NewsletterError as err:
            log.error("event store: %s", err)
            return PlainTextResponse("event store unavailable\n", status_code=503,
                                     headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
        if added is None:
            return PlainTextResponse("replayed batch\n", status_code=403)
        return PlainTextResponse(f"recorded {added} event(s)\n")


def _event_routes(service: Service, settings: Settings, public_key: str | None,
                  verifier: Verifier | None) -> list[Route]:
    """A route for each provider with an event webhook. Its check is ``verifier``, else one with
    ``public_key``, else one with the key in the variable the provider's setting names (none: 503)."""
    import os

    routes = []
    for kind in registry.kinds():
        webhook = kind.event_webhook
        if webhook is None:
            continue
        check = verifier
        if check is None:
            key = public_key if public_key is not None else os.environ.get(webhook.key_env(settings), "")
            check = webhook.verifier(key) if key.strip() else None
        routes.append(Route(f"/events/{kind.name}", ProviderEvents(service, kind, webhook, check).receive,
                            methods=["POST"]))
    return routes


def create_app(settings: Settings, store: EventStore, *, secret: bytes | None = None,
               mailer: Callable[..., None] | None = None, webhook_public_key: str | None = None,
               webhook_verifier: Verifier | None = None, provider: Provider[Any] | None = None,
               slow_clients: SlowClientLimits = DEFAULT_SLOW_CLIENTS, clock: Clock = now_utc) -> AccessLog:
    """The ASGI app for ``settings`` on ``store`` (wrapped in the redacting access log and security headers).

    ``secret`` defaults to the unsubscribe secret from the environment, each
    provider's webhook check to one with the key in the variable its setting
    names (no key: its events route answers 503), the mailer to the configured provider; ``slow_clients`` gives the
    body deadline (the rest of it is uvicorn's, see server.uvicorn_config); ``clock`` the time clicks are
    judged and recorded by.
    """
    if not settings.serve.lists:
        raise NewsletterError("no lists to serve", where=settings.path,
                              hint='add lists = ["your-list"] under [serve]')
    for list_name in settings.serve.lists:
        try:
            check_list_name(list_name)
        except NewsletterError as err:  # readers could never reach it, and sync would refuse it
            raise NewsletterError(f"serve.lists: {err.reason}", where=settings.path, hint=err.hint) from None
    send = mailer or (partial(_send_with, provider) if provider is not None else send_confirmation)
    secret = secret or read_secret(settings)
    assert secret is not None  # read_secret raises when the variable is not set
    service = Service(settings, store, secret=secret, mailer=send,
                      slow_clients=slow_clients, clock=clock)
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
        *_event_routes(service, settings, webhook_public_key, webhook_verifier),
        Route("/c/{token}", service.click, methods=["GET", "HEAD"]),
    ]
    app = Starlette(routes=routes)
    # Starlette's own slash redirect builds its URL from the request's Host header: ours uses public_url
    app.router.redirect_slashes = False
    app.router.default = service.not_found
    service.routes = routes
    return AccessLog(SecurityHeaders(app))


def _send_with(provider: Provider[Any], settings: Settings, list_name: str, email: str, key: str, name: str,
               url: str) -> None:
    send_confirmation(settings, list_name, email, key, name, url, provider=provider)
