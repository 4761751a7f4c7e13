"""Views: HTTP request in, domain ``Ping`` to the recorder, HTTP response out.

Domain and recorder outcomes become HTTP statuses here and only here (DESIGN 3, 9.8,
9.13): ``UnknownToken`` 404, ``IndexLoading`` 503 ``Retry-After: 5`` (issue 18 item 4),
``Overloaded`` 429 ``Retry-After: 1``, ``WriteTimeout`` 503
``Retry-After: 5``, ``JournalFull`` 503 ``Retry-After: 1`` (DESIGN 10.8.12). Every check
on the request comes before the token lookup.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import cast

from aiohttp import HttpVersion11, hdrs, web
from aiohttp.http_exceptions import ContentEncodingError, PayloadEncodingError

from heartbeat_operator.domain.inputs import Ping
from heartbeat_operator.domain.tokens import redact_tokens
from heartbeat_operator.domain.vocabulary import RouteClass
from heartbeat_operator.receiver import keys
from heartbeat_operator.receiver.bodies import (
    REDACTION_MARGIN,
    BodyTooLarge,
    ping_body,
    read_capped,
)
from heartbeat_operator.receiver.paths import (
    PathError,
    is_possible_token,
    parse_ping_path,
    parse_run_id,
)
from heartbeat_operator.recording import (
    IndexLoading,
    JournalFull,
    Overloaded,
    UnknownToken,
    WriteTimeout,
)

PING_METHODS = ("GET", "HEAD", "POST", "PUT")
V1_METHODS = ("POST",)
PROBE_METHODS = ("GET", "HEAD")
_BODY_METHODS = ("POST", "PUT")


def text(status: int, body: str, headers: dict[str, str] | None = None) -> web.Response:
    """A short ``text/plain`` reply; every reply of the receiver has this shape."""
    return web.Response(status=status, text=body, headers=headers)


def not_found() -> web.Response:
    return text(404, "not found")


def method_not_allowed(method: str, allowed: tuple[str, ...]) -> web.Response:
    return text(405, f"method {method} not allowed", {"Allow": ", ".join(allowed)})


def _closing(response: web.Response) -> web.Response:
    # The rest of the request was not read: the connection cannot be reused.
    response.force_close()
    return response


async def ping(request: web.Request) -> web.StreamResponse:
    """``/ping/<t>…`` and ``/hb/<t>…``: every method in ``PING_METHODS``."""
    route = RouteClass.HB if request.path.startswith("/hb") else RouteClass.PING
    return await _ping(request, route, PING_METHODS)


async def ping_v1(request: web.Request) -> web.StreamResponse:
    """``POST /v1/heartbeats/<t>/ping``: the other seed's form."""
    return await _ping(request, RouteClass.V1, V1_METHODS)


async def _ping(
    request: web.Request, route: RouteClass, methods: tuple[str, ...]
) -> web.StreamResponse:
    settings = request.app[keys.RECEIVER_SETTINGS]
    if request.method not in methods:
        return method_not_allowed(request.method, methods)
    try:
        where = parse_ping_path(route, request.match_info.get("tail", ""))
        run_id = parse_run_id(request.query.getall("rid", []))
    except PathError as exc:
        return text(400, f"bad request: {exc}")
    if not is_possible_token(where.token):
        return not_found()  # no monitor can have this token: no lookup needed
    if run_id is not None:
        # A script that passes its token as the rid too would have it shown in status and
        # Events, where it never may be (DESIGN 3): redacted like a body's (start and
        # finish still pair, both redacted alike).
        run_id = redact_tokens(run_id, token=where.token)

    body: str | None = None
    length = request.content_length
    if length is not None and length > settings.max_body:
        # DESIGN 9.13, whatever the method: a GET's body is not kept, but one this large
        # is refused rather than drained.
        return _closing(text(413, f"request body over {settings.max_body} bytes"))
    if request.method in _BODY_METHODS and request.body_exists:
        try:
            async with asyncio.timeout(settings.read_timeout):
                raw = await read_capped(
                    request.content,
                    keep=settings.body_limit + REDACTION_MARGIN,
                    max_body=settings.max_body,
                )
        except BodyTooLarge:
            return _closing(text(413, f"request body over {settings.max_body} bytes"))
        except (web.RequestPayloadError, PayloadEncodingError) as exc:
            # A body that does not decode as its Content-Encoding (or a broken chunked
            # framing) is the client's error, not ours: 400, not 500 (issue 18 item 7).
            # Nothing more can be read: said so, or aiohttp's drain of the rest would meet
            # the same error and log it as an unhandled exception with a traceback.
            request.content.feed_eof()
            return _closing(text(400, f"bad request: {_payload_reason(exc)}"))
        except TimeoutError:
            return _closing(text(408, "request timeout: the body took too long"))
        # Before anything stores or quotes it: no token in status, Events (issue 18 item 5).
        body = ping_body(raw, settings.body_limit, where.token)

    event = Ping(
        time=request.app[keys.CLOCK](),  # accepted now (DESIGN 9.3): the request is complete
        kind=where.kind,
        exit_code=where.exit_code,
        run_id=run_id,
        body=body,
    )
    try:
        await request.app[keys.RECORDER].record(where.token, event)
    except UnknownToken:
        return not_found()
    except IndexLoading:
        reason = "the operator is still loading its monitors; retry in 5 s"
        return text(503, reason, {"Retry-After": "5"})
    except Overloaded:
        reason = "too many pings waiting for this monitor; retry in 1 s"
        return text(429, reason, {"Retry-After": "1"})
    except WriteTimeout:
        reason = "the ping was not recorded in time; retry in 5 s"
        return text(503, reason, {"Retry-After": "5"})
    except JournalFull:
        reason = "the ping journal is full; retry in 1 s"
        return text(503, reason, {"Retry-After": "1"})
    return text(200, "OK")


def _payload_reason(exc: Exception) -> str:
    # aiohttp hands the parser's error to the view wrapped (its cause is the real one).
    if isinstance(exc, ContentEncodingError) or isinstance(exc.__cause__, ContentEncodingError):
        return "the body is not valid for its Content-Encoding"
    return "the body's transfer encoding is malformed"


async def expect_continue(request: web.Request) -> web.StreamResponse | None:
    """``Expect: 100-continue`` on the ping routes: a declared body over the hard cap is
    refused with 413 *instead of* ``100 Continue``, so the client never sends it (issue 18
    item 7; aiohttp's default handler says "continue" before any view can look).

    Runs before the middlewares (aiohttp calls it ahead of the handler chain), so the
    413 here is not in the request metrics; otherwise this is aiohttp's default.
    """
    expect = request.headers.get(hdrs.EXPECT, "")
    if request.version != HttpVersion11:
        return None
    if expect.lower() != "100-continue":
        return text(417, f"unknown Expect: {expect[:40]}")
    settings = request.app[keys.RECEIVER_SETTINGS]
    length = request.content_length
    if length is not None and length > settings.max_body:
        # The client waits for our word before sending: no body will come. Marking the
        # body ended skips aiohttp's lingering read of it (up to 10 s of a connection
        # slot held for nothing); the connection closes after the reply.
        request.content.feed_eof()
        return _closing(text(413, f"request body over {settings.max_body} bytes"))
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    request.writer.output_size = 0  # the interim reply is not the response's start
    return None


async def healthz(request: web.Request) -> web.StreamResponse:
    """200 while the process serves (DESIGN 9.2)."""
    if request.method not in PROBE_METHODS:
        return method_not_allowed(request.method, PROBE_METHODS)
    return text(200, "OK")


async def readyz(request: web.Request) -> web.StreamResponse:
    """200 when ready, 503 before that and from shutdown on (DESIGN 9.2, 9.20)."""
    if request.method not in PROBE_METHODS:
        return method_not_allowed(request.method, PROBE_METHODS)
    health = request.app[keys.HEALTH]
    if health.ready():
        return text(200, "OK")
    if health.stopping:
        return text(503, "shutting down")
    return text(503, "draining" if health.draining else "not ready")


DRAIN_METHODS = ("GET", "POST")


async def drain(request: web.Request) -> web.StreamResponse:
    """The ``preStop`` hook (DESIGN 10.6, fine print 10.8.15), metrics port only:
    ``/readyz`` 503 at once, the reply after the drain delay; pings are still served."""
    if request.method not in DRAIN_METHODS:
        return method_not_allowed(request.method, DRAIN_METHODS)
    health = request.app[keys.HEALTH]
    await health.drain()
    return text(200, "drained")


MetricsSource = Callable[[], tuple[bytes, str]]
MetricsHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def metrics_view(source: MetricsSource | MetricsHandler) -> MetricsHandler:
    """The ``/metrics`` view from either an aiohttp handler or a ``() -> (body, type)``."""
    if _is_handler(source):
        handler = cast(MetricsHandler, source)
    else:
        render = cast(MetricsSource, source)

        async def handler(request: web.Request) -> web.StreamResponse:
            body, content_type = render()
            response = web.Response(body=body)
            response.headers["Content-Type"] = content_type
            return response

    async def handle_metrics(request: web.Request) -> web.StreamResponse:
        if request.method not in PROBE_METHODS:
            return method_not_allowed(request.method, PROBE_METHODS)
        return await handler(request)

    return handle_metrics


def _is_handler(source: object) -> bool:
    call = getattr(source, "__call__", None)  # noqa: B004 - also an instance's async __call__
    return inspect.iscoroutinefunction(source) or inspect.iscoroutinefunction(call)
