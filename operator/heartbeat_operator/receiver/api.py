"""The pause API (issue 16 item 2): a deploy script in a Pod pauses its monitor.

    POST /api/v1/namespaces/<namespace>/heartbeatmonitors/<name>/pause[?for=30m]
    POST /api/v1/namespaces/<namespace>/heartbeatmonitors/<name>/resume
    Authorization: Bearer <ServiceAccount token>

The path is the monitor's API path, so what it names reads as it does in kubectl. Every
check on the request (method, path, ``for``, the header's shape) comes before the token
is sent anywhere; then ``pausing.PauseControl`` authenticates and authorizes it against
the API server (``kube.pauses``). Outcomes: 200 ``paused <ns>/<name>[ until <time>]`` or
``resumed <ns>/<name>``; 400 a malformed request; 401 (``WWW-Authenticate: Bearer``) no
or a refused token; 403 not allowed to patch the monitor; 404 no such monitor; 405 not a
POST; 503 the API server could not be asked. Each with a sentence saying why.

The token is never logged, never quoted in a reply, and never kept past the request.
"""

from __future__ import annotations

import re

from aiohttp import hdrs, web

from heartbeat_operator.domain.durations import DurationError, parse_duration
from heartbeat_operator.domain.timefmt import format_time
from heartbeat_operator.pausing import (
    Forbidden,
    MonitorNotFound,
    PauseRequest,
    PauseUnavailable,
    Unauthenticated,
)
from heartbeat_operator.receiver import keys
from heartbeat_operator.receiver.views import method_not_allowed, text

#: The route, as registered by ``routes.ping_routes``.
PAUSE_ROUTE = "/api/v1/namespaces/{namespace}/heartbeatmonitors/{name}/{action}"
API_METHODS = ("POST",)
ACTIONS = ("pause", "resume")

#: Kubernetes names: a namespace is a DNS-1123 label, a monitor a DNS-1123 subdomain.
_NAMESPACE_RE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
#: A bearer token as RFC 6750 allows it (token68); ServiceAccount tokens are JWTs.
_TOKEN_RE = re.compile(r"[A-Za-z0-9._~+/-]+=*")
#: Bytes of a token we send on at most: projected ServiceAccount tokens are about 1 KB.
MAX_TOKEN_CHARS = 16384

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="heartbeat-operator"'}


def unauthorized(reason: str) -> web.Response:
    return text(401, f"unauthorized: {reason}", dict(_CHALLENGE))


async def pause(request: web.Request) -> web.StreamResponse:
    """``POST …/pause`` and ``…/resume``."""
    if request.method not in API_METHODS:
        return method_not_allowed(request.method, API_METHODS)
    namespace = request.match_info["namespace"]
    name = request.match_info["name"]
    action = request.match_info["action"]
    if action not in ACTIONS:
        return text(404, "not found: the actions are pause and resume")
    if not _NAMESPACE_RE.fullmatch(namespace):
        return text(400, "bad request: the namespace is not a valid Kubernetes namespace name")
    if len(name) > 253 or not _NAME_RE.fullmatch(name):
        return text(400, "bad request: the name is not a valid Kubernetes object name")
    durations = request.query.getall("for", [])
    if durations and action == "resume":
        return text(400, "bad request: for= goes with pause, not resume")
    if len(durations) > 1:
        return text(400, "bad request: give for= once")
    now = request.app[keys.CLOCK]()
    until = None
    if durations:
        try:
            until = now + parse_duration(durations[0])
        except DurationError:
            return text(400, "bad request: for= must be a duration like 30s, 5m, 1h30m or 2d")

    header = request.headers.get(hdrs.AUTHORIZATION, "")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if not header:
        return unauthorized("send a ServiceAccount token as 'Authorization: Bearer <token>'")
    if scheme.lower() != "bearer" or not token:
        return unauthorized("the Authorization header must be 'Bearer <token>'")
    if len(token) > MAX_TOKEN_CHARS or not _TOKEN_RE.fullmatch(token):
        return unauthorized("the bearer token is malformed")

    wanted = PauseRequest(namespace, name, paused=action == "pause", until=until)
    try:
        await request.app[keys.PAUSES].set_paused(token, wanted)
    except Unauthenticated as exc:
        return unauthorized(str(exc))
    except Forbidden as exc:
        return text(403, f"forbidden: {exc}")
    except MonitorNotFound as exc:
        return text(404, f"not found: {exc}")
    except PauseUnavailable as exc:
        return text(503, f"unavailable: {exc}", {"Retry-After": "5"})
    if action == "resume":
        return text(200, f"resumed {namespace}/{name}")
    shown = f" until {format_time(until)}" if until is not None else ""
    return text(200, f"paused {namespace}/{name}{shown}")
