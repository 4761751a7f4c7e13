"""Connection-level limits aiohttp does not have (DESIGN 9.13).

- **Header read timeout.** A connection must deliver a request's headers within
  ``header_timeout`` seconds of connecting, or of its previous response. A client that
  sent part of a request gets ``408 Request Timeout``; an idle keep-alive connection is
  closed quietly.
- **Connection cap.** At most ``max_connections`` open connections; a connection beyond
  it is answered ``503`` with ``Retry-After: 1`` and closed, never queued unboundedly.

Both wrap aiohttp's own protocol object (``web.RequestHandler``) in a thin asyncio
protocol that forwards every callback, so aiohttp's parsing, keep-alive and graceful
shutdown stay untouched. The body read timeout is the view's (``views.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import cast

from aiohttp import web

from heartbeat_operator.receiver.paths import redact_text

_HEADER_END = (b"\r\n\r\n", b"\n\n")


def _raw_response(status: str, body: bytes, extra: tuple[tuple[str, str], ...] = ()) -> bytes:
    headers = [
        f"HTTP/1.1 {status}",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in extra),
    ]
    return ("\r\n".join(headers) + "\r\n\r\n").encode("ascii") + body


class _RedactingRequestHandler(web.RequestHandler):
    """aiohttp's handler, except that its own 400 replies to unparseable requests (which
    quote the request line back) carry no token (DESIGN 3: never in an error), and carry
    the headers every reply has (``Ping-Body-Limit``), which the app never gets to add."""

    __slots__ = ()
    extra_headers: tuple[tuple[str, str], ...] = ()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if message is not None:
            message = redact_text(message)
        response = super().handle_error(request, status, exc, message)
        for name, value in self.extra_headers:
            response.headers[name] = value
        return response


class ConnectionGuards:
    """The guarded connections of one listener, and the limits they live under.

    Put on the application (``keys.GUARDS``) so the middleware can tell a connection's
    guard that a request's headers arrived and, later, that its response was sent.
    """

    def __init__(
        self,
        *,
        max_connections: int | None,
        header_timeout: float | None,
        extra_headers: tuple[tuple[str, str], ...] = (),
        observer: Callable[[str, int, float], None] | None = None,
    ) -> None:
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.extra_headers = extra_headers
        # Answers given here never reach the app's middlewares: report them directly, as
        # route class "other" (no path was parsed).
        self.observer = observer
        self._by_handler: dict[web.RequestHandler, GuardedProtocol] = {}
        self.refused = 0  # connections answered 503 because of the cap
        # aiohttp's handler with our error replies; a class per listener for its headers.
        self._handler_class = type(
            "RedactingRequestHandler",
            (_RedactingRequestHandler,),
            {"__slots__": (), "extra_headers": extra_headers},
        )

    def __len__(self) -> int:
        return len(self._by_handler)

    def factory(self, make_handler: Callable[[], web.RequestHandler]) -> asyncio.Protocol:
        """The protocol for a newly accepted connection."""
        if self.max_connections is not None and len(self) >= self.max_connections:
            self.refused += 1
            self.observe(503, 0.0)
            return _RefusedProtocol(self.extra_headers)
        handler = make_handler()
        # Same slots, one method more: aiohttp builds the handler (with all its options),
        # we only change how it words its own error replies.
        handler.__class__ = self._handler_class
        guarded = GuardedProtocol(handler, self)
        self._by_handler[handler] = guarded
        return guarded

    def observe(self, code: int, seconds: float) -> None:
        if self.observer is not None:
            with contextlib.suppress(Exception):  # metrics never break serving
                self.observer("other", code, seconds)

    def forget(self, handler: web.RequestHandler) -> None:
        self._by_handler.pop(handler, None)

    def request_started(self, handler: object) -> None:
        guarded = self._by_handler.get(handler)  # type: ignore[call-overload]
        if guarded is not None:
            guarded.disarm()

    def request_finished(self, handler: object) -> None:
        guarded = self._by_handler.get(handler)  # type: ignore[call-overload]
        if guarded is not None:
            guarded.arm()


class GuardedProtocol(asyncio.Protocol):
    """Forwards everything to aiohttp's handler; times out slow request headers."""

    def __init__(self, inner: web.RequestHandler, guards: ConnectionGuards) -> None:
        self._inner = inner
        self._guards = guards
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._partial = False  # bytes of an unfinished request head arrived since arming
        self._tail = b""

    # -- asyncio callbacks, forwarded ------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (it can write); not isinstance-checked: uvloop's transports
        # implement asyncio.Transport without subclassing it (bench/README.md, uvloop).
        self._transport = cast(asyncio.Transport, transport)
        self._inner.connection_made(transport)
        self.arm()

    def data_received(self, data: bytes) -> None:
        if self._timer is not None:
            self._partial = True
            window = self._tail + data
            if any(end in window for end in _HEADER_END):
                self.disarm()  # the head is complete: the request is aiohttp's now
            else:
                self._tail = window[-3:]
        self._inner.data_received(data)

    def eof_received(self) -> None:
        self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.disarm()
        self._guards.forget(self._inner)
        self._transport = None
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    # -- the header timer -------------------------------------------------------------

    def arm(self) -> None:
        """Start timing the next request's head (at connect, and after each response)."""
        self.disarm()
        timeout = self._guards.header_timeout
        if timeout is None or self._transport is None or self._transport.is_closing():
            return
        self._partial = False
        self._tail = b""
        self._timer = asyncio.get_running_loop().call_later(timeout, self._expired)

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if self._partial:
            body = b"request timeout: the request's headers took too long"
            transport.write(_raw_response("408 Request Timeout", body, self._guards.extra_headers))
            self._guards.observe(408, self._guards.header_timeout or 0.0)
        transport.close()


class _RefusedProtocol(asyncio.Protocol):
    """Answers 503 at once and closes: the replica is at its connection cap."""

    def __init__(self, extra_headers: tuple[tuple[str, str], ...]) -> None:
        self._extra_headers = extra_headers

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        stream = cast(asyncio.Transport, transport)  # see GuardedProtocol.connection_made
        body = b"too many connections; retry in 1 s"
        extra = (("Retry-After", "1"), *self._extra_headers)
        stream.write(_raw_response("503 Service Unavailable", body, extra))
        transport.close()


class GuardedSite(web.BaseSite):
    """A TCP listener whose connections go through ``ConnectionGuards``."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        guards: ConnectionGuards,
        *,
        backlog: int = 128,
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self._host = host
        self._port = port
        self._guards = guards
        self._bound: tuple[str, int] | None = None

    @property
    def name(self) -> str:
        host, port = self._bound or (self._host, self._port)
        return f"http://{host}:{port}"

    @property
    def port(self) -> int:
        """The bound port (the real one when 0 was asked for)."""
        return self._bound[1] if self._bound else self._port

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        listener = await loop.create_server(
            lambda: self._guards.factory(server),
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=True,
        )
        self._server = listener
        if listener.sockets:
            address = listener.sockets[0].getsockname()
            self._bound = (str(address[0]), int(address[1]))
