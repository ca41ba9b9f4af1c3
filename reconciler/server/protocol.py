"""uvicorn's HTTP/1.1 protocol with the bounds it lacks: read deadlines and a connection cap.

uvicorn closes a connection idle between requests (`timeout_keep_alive`) and caps header size
(h11), but a client that opens a connection and sends its request slowly, or not at all, holds
it for ever (slowloris), and nothing caps how many such connections pile up. This subclass adds:

- a header deadline: a request's headers must all arrive within `header_timeout` of the
  connection opening (or of the first byte of the next request on a kept-alive connection);
- a body deadline: its body must all arrive within `body_timeout` of the headers;
- a cap on open connections: the one over `max_connections` gets a 503 and is closed at once.

A connection that misses a deadline gets a 408 (when nothing of a response was sent yet) and is
closed, with one short log line. It plugs into uvicorn as its `http` protocol class
(`Limits.protocol()`), so any ASGI app served by uvicorn (Starlette today, FastAPI later)
gets the same bounds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("reconciler.server")

_DONE_READING = (h11.DONE, h11.MUST_CLOSE, h11.CLOSED, h11.ERROR, h11.SWITCHED_PROTOCOL)


@dataclass(frozen=True)
class Limits:
    header_timeout: float = 10.0
    body_timeout: float = 20.0
    max_connections: int = 64
    keep_alive: float = 5.0

    def protocol(self) -> type[asyncio.Protocol]:
        """A protocol class for `uvicorn.Config(http=...)` enforcing these limits."""
        return type("BoundedH11Protocol", (BoundedH11Protocol,), {"limits": self})


def _response(status: int, reason: str, body: str) -> bytes:
    data = body.encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(data)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + data


class _Throttled:
    """Log a repeated event at most once per `every` seconds, with how often it happened."""

    def __init__(self, every: float = 10.0) -> None:
        self.every = every
        self.last = 0.0
        self.count = 0

    def note(self, message: str) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self.last >= self.every:
            log.warning("%s (%d since the last report)", message, self.count)
            self.last, self.count = now, 0


_REFUSED = _Throttled()


class BoundedH11Protocol(H11Protocol):
    limits: ClassVar[Limits] = Limits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._phase = ""

    # -- the deadline --------------------------------------------------------------------------

    def _arm(self, phase: str, seconds: float) -> None:
        if self._phase == phase and self._deadline is not None:
            return
        self._disarm()
        self._phase = phase
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline, self._phase = None, ""

    def _follow(self) -> None:
        """Keep the deadline in step with how far the current request has been read."""
        if self.transport is None or self.transport.is_closing():
            self._disarm()
            return
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            self._arm("body", self.limits.body_timeout)
        elif state in _DONE_READING:
            self._disarm()
        elif state is h11.IDLE and self.conn.trailing_data[0]:
            self._arm("headers", self.limits.header_timeout)  # part of the next request is here

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        seconds = self.limits.body_timeout if self._phase == "body" else self.limits.header_timeout
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "unknown client"
        log.info("closed a connection from %s: request %s not received within %gs", client, self._phase, seconds)
        # No answer under way (none yet, or the previous request's is complete): say why.
        if self.cycle is None or self.cycle.response_complete or not self.cycle.response_started:
            body = '{"error": "request not received in time", "detail": null}'
            self.transport.write(_response(408, "Request Timeout", body))
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self.transport.close()

    # -- uvicorn's hooks -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            _REFUSED.note(f"refused a connection: {self.limits.max_connections} are open")
            transport.write(_response(503, "Service Unavailable", '{"error": "too many connections", "detail": null}'))
            transport.close()
            return
        self._arm("headers", self.limits.header_timeout)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.IDLE and not self.conn.trailing_data[0]:
            self._disarm()  # idle between requests: uvicorn's keep-alive timeout takes over
        else:
            self._follow()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


__all__ = ["BoundedH11Protocol", "Limits"]
