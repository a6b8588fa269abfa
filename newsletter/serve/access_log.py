"""Access logs that never hold an address or a token.

uvicorn's own access log prints every path, and these paths carry tokens
(which stand for an address). This ASGI middleware logs one line per request
instead: method, the path with every token replaced by ``…``, status and
time. No query string, no client address, no form fields.
"""

from __future__ import annotations

import logging
import re
import time

from .headers import ASGIApp, Message, Receive, Scope, Send

ACCESS_LOGGER = "newsletter.serve.access"
# Paths shown as they are: the routes that carry nothing about a reader (a list name is letters, digits, ._-).
_PLAIN_PATHS = re.compile(r"/(?:healthz|theme\.css|pages\.css|events/[a-z0-9_]{1,40}|subscribe/[A-Za-z0-9._-]{0,40})")
_ROUTE_WORD = re.compile(r"[A-Za-z0-9._-]{1,20}")  # short enough to be a route's name, not a token


def redact(path: str) -> str:
    """The path as the log may show it: a plain route as it is, any other only up to its first segment.

    Not only the token routes: a mistyped or mangled link (``//unsubscribe/<token>``,
    ``/Unsubscribe/<token>``, ``/subscribe/reader@example.com``) carries the same
    token or address, and is logged too (as a 404).
    """
    if _PLAIN_PATHS.fullmatch(path):
        return path
    first, _, rest = path.removeprefix("/").partition("/")
    if not _ROUTE_WORD.fullmatch(first):
        return "/…" if path != "/" else path
    return f"/{first}/…" if rest or path.endswith("/") else f"/{first}"


class AccessLog:
    """Wraps the app; logs ``METHOD /path STATUS 12ms`` at INFO once each response has started."""

    def __init__(self, app: ASGIApp, logger: logging.Logger | None = None):
        self.app = app
        self.logger = logger or logging.getLogger(ACCESS_LOGGER)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.logger.info("%s %s %d %.0fms", scope["method"], redact(scope["path"]), status[0],
                             (time.perf_counter() - started) * 1000)
