"""A tiny ASGI unsubscribe endpoint under real uvicorn on 127.0.0.1, for the doctor's one-click probe.

``/unsubscribe`` answers an RFC 8058 one-click POST (body
``List-Unsubscribe=One-Click``) with 200 and anything else with 400;
``/gone`` answers 404, ``/broken`` 500 and ``/moved`` a 302 redirect.
Every request is recorded (method, path, query, body).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

import uvicorn
from uvicorn_thread import ReadyServer, serve_in_thread

ONE_CLICK = b"List-Unsubscribe=One-Click"


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: str
    body: bytes
    content_type: str


class OneClickApp:
    def __init__(self) -> None:
        self.requests: list[Seen] = []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        method, path = scope["method"], scope["path"]
        self.requests.append(Seen(method, path, scope["query_string"].decode("ascii"), body,
                                  headers.get("content-type", "")))
        one_click = method == "POST" and body == ONE_CLICK
        status = {"/unsubscribe": 200 if one_click else 400, "/gone": 404, "/broken": 500, "/moved": 302}.get(path, 404)
        extra = [(b"location", b"/unsubscribe")] if status == 302 else []
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/plain"), *extra]})
        await send({"type": "http.response.body", "body": b"unsubscribed" if status == 200 else b"no"})


class OneClickServer:
    """The app under uvicorn in a thread, on an ephemeral port; ``stop`` shuts it down."""

    def __init__(self) -> None:
        self.app = OneClickApp()
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self._server = ReadyServer(uvicorn.Config(self.app, log_level="warning", lifespan="off", access_log=False))
        self._thread = serve_in_thread(self._server, self._socket, name="one-click-standin")

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._socket.close()
