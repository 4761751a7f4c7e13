"""Middlewares: what every request of an app goes through, outermost first.

- ``observe``: times the request and reports ``(route_class, code, seconds)`` to the
  request observer (metrics), and tells the connection guard when a request began and
  ended (the header read timeout restarts after each response).
- ``errors``: aiohttp's own HTTP errors (404 for an unknown path, 405) become the same
  short text replies the views give; anything unexpected becomes a 500 whose log line
  and traceback carry no URL and no token.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.typedefs import Handler

from heartbeat_operator.receiver import keys
from heartbeat_operator.receiver.logs import log_unexpected
from heartbeat_operator.receiver.paths import route_class
from heartbeat_operator.receiver.views import text

_SHORT_REASONS = {
    400: "bad request",
    404: "not found",
    405: "method not allowed",
    408: "request timeout",
    413: "request body too large",
}


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    guards = request.app.get(keys.GUARDS)
    if guards is not None:
        guards.request_started(request.protocol)
    loop = asyncio.get_running_loop()
    started = loop.time()
    code = 500
    try:
        response = await handler(request)
        code = response.status
        return response
    except web.HTTPException as exc:
        code = exc.status
        raise
    finally:
        if guards is not None:
            guards.request_finished(request.protocol)
        observer = request.app.get(keys.OBSERVER)
        if observer is not None:
            try:
                observer(route_class(request.path), code, loop.time() - started)
            except Exception as exc:  # metrics must never break a ping
                log_unexpected(exc, "metrics observer")


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        kept = ("Allow", "Retry-After")
        headers = {name: exc.headers[name] for name in kept if name in exc.headers}
        return text(exc.status, _SHORT_REASONS.get(exc.status, exc.reason.lower()), headers)
    except (asyncio.CancelledError, ConnectionError):
        raise  # the client went away, or the server is stopping: nothing to answer
    except Exception as exc:
        log_unexpected(exc, route_class(request.path))
        return text(500, "internal error")
