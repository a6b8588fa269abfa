"""``newsletter serve``: check the setup, open the store, run the app under uvicorn until stopped."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import uvicorn

from ..config import Settings
from ..errors import NewsletterError
from ..hosts import is_loopback
from .app import create_app, public_url
from .connect import SERVICE_WAIT_SECONDS, open_store
from .http_limits import SlowClientLimits, uvicorn_limits


def check_exposure(settings: Settings, host: str) -> None:
    """Refuse to listen beyond this machine unless readers reach the service over https."""
    url = public_url(settings)
    if not is_loopback(host) and not url.startswith("https://"):
        raise NewsletterError(
            f"refusing to serve on {host}: readers would reach it at {url or '(no base_url)'}, not over https",
            where=settings.path,
            hint="set newsletter.base_url (or serve.public_url) to the https:// address your TLS proxy serves, "
                 "or listen on 127.0.0.1 behind that proxy",
        )


def uvicorn_config(app: Any, settings: Settings, host: str, port: int,
                   slow_clients: SlowClientLimits | None = None, **more: Any) -> uvicorn.Config:
    """uvicorn with its own access log off (ours redacts tokens), X-Forwarded-For from the proxy only, and
    the limits on slow and greedy clients (http_limits) in force; ``more`` overrides any uvicorn option."""
    options: dict[str, Any] = {
        "host": host, "port": port, "access_log": False, "proxy_headers": True,
        "forwarded_allow_ips": settings.serve.forwarded_allow_ips, "log_level": "info", "server_header": False,
        **uvicorn_limits(slow_clients or SlowClientLimits()),
    }
    return uvicorn.Config(app, **{**options, **more})


def serve(settings: Settings, host: str | None = None, port: int | None = None,
          on_ready: Callable[[str], None] = print) -> None:
    """Run the service until interrupted; ``on_ready`` gets the address it listens on (port 0: a free one)."""
    host = host or settings.serve.host
    port = settings.serve.port if port is None else port
    check_exposure(settings, host)
    store = open_store(settings, wait=SERVICE_WAIT_SECONDS)
    try:
        app = create_app(settings, store)
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        server = uvicorn.Server(uvicorn_config(app, settings, host, port))
        asyncio.run(_run(server, on_ready, store.where))
    finally:
        store.close()


async def _run(server: uvicorn.Server, on_ready: Callable[[str], None], where: str) -> None:
    task = asyncio.create_task(server.serve())
    while not server.started and not task.done():
        await asyncio.sleep(0.02)
    if server.started:
        bound = server.servers[0].sockets[0].getsockname()
        on_ready(f"Serving on http://{bound[0]}:{bound[1]}/ (events stored in {where}); Ctrl-C stops.")
    await task
