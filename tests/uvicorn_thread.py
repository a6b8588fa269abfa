"""A real uvicorn in a background thread of the test process, and the moment it is ready (an event, not a poll)."""

from __future__ import annotations

import socket
import threading

import uvicorn


class ReadyServer(uvicorn.Server):
    """uvicorn's server, setting ``ready`` once its start-up is over (serving, or failed to start)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            self.ready.set()


def serve_in_thread(server: ReadyServer, sock: socket.socket, *, name: str = "uvicorn") -> threading.Thread:
    """Run ``server`` on the bound ``sock`` in a daemon thread; return once it serves (or raise if it did not)."""
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=name, daemon=True)
    thread.start()
    if not server.ready.wait(10) or not server.started:
        raise RuntimeError("uvicorn did not start")
    return thread
