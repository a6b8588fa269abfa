"""Limits on slow and greedy clients, at the HTTP level under uvicorn.

uvicorn holds a connection for as long as a client takes to send its request
line and headers (a client that sends a byte now and then holds it forever),
and the app waits as long as a body takes to arrive. A few thousand such
connections exhaust the service. The limits here bound each: a request's head
must arrive within ``head_seconds`` (else ``408`` and the connection is
closed), a body within ``body_seconds`` (the app answers ``408``), at most
``max_connections`` connections are served at once (beyond that uvicorn
answers ``503`` at once instead of queueing), idle keep-alive connections are
closed after ``keep_alive_seconds``, and a head is at most ``max_head_bytes``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

TIMEOUT_ANSWER = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
                  b"content-length: 16\r\nconnection: close\r\n\r\nrequest timeout\n")


@dataclass(frozen=True)
class SlowClientLimits:
    """How long and how many: the defaults suit a service behind a TLS proxy on a small machine."""

    head_seconds: float = 10.0  # from connecting (or the last answer) to the end of a request's headers
    body_seconds: float = 10.0  # from the end of the headers to the end of the body
    keep_alive_seconds: int = 5  # an idle kept-alive connection is closed after this
    max_connections: int = 200  # connections (and requests in progress) at once; more get 503 at once
    max_head_bytes: int = 16_384  # request line and headers; larger gets 400


class HeadDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's head (request line and headers).

    The timer starts when the connection opens and again after each answer;
    a new request's head arriving (uvicorn then starts a request cycle) beats
    it. When it fires first, the client gets a 408 and the connection closes.
    """

    head_seconds = SlowClientLimits.head_seconds

    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # as uvicorn's
        super().connection_made(transport)
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        self._arm_head_deadline()  # for the cycle just answered: a pipelined request started below beats it
        super().on_response_complete()

    def _arm_head_deadline(self) -> None:
        self._disarm_head_deadline()
        if not self.transport.is_closing():
            self._head_timer = self.loop.call_later(self.head_seconds, self._head_too_slow, self.cycle)

    def _disarm_head_deadline(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self, cycle_then: Any) -> None:
        self._head_timer = None
        if self.cycle is not cycle_then or self.transport.is_closing():
            return  # a request arrived in time; its body has a deadline of its own (in the app)
        if self.conn.our_state in (h11.IDLE, h11.DONE):  # nothing of ours is half sent
            self.transport.write(TIMEOUT_ANSWER)
        self.transport.close()


def head_deadline_protocol(seconds: float) -> type[HeadDeadlineProtocol]:
    """The protocol class for uvicorn's ``http=`` with a head deadline of ``seconds``."""
    return type("HeadDeadlineProtocol", (HeadDeadlineProtocol,), {"head_seconds": seconds})


def uvicorn_limits(limits: SlowClientLimits) -> dict[str, Any]:
    """The uvicorn.Config keywords that put ``limits`` in force."""
    return {"http": head_deadline_protocol(limits.head_seconds), "ws": "none",
            "limit_concurrency": limits.max_connections, "timeout_keep_alive": limits.keep_alive_seconds,
            "h11_max_incomplete_event_size": limits.max_head_bytes}
