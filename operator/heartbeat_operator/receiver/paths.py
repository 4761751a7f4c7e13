"""Ping URLs: parsing them (DESIGN section 3) and redacting them for logs (DESIGN 9.13).

Pure functions over strings. Parsing happens before any token lookup, so a malformed
request gets its 400 without the index ever being asked (DESIGN 9.13).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from heartbeat_operator.domain.inputs import exit_code_kind
from heartbeat_operator.domain.vocabulary import PingKind, RouteClass

#: Probe paths, served on both ports.
PROBE_PATHS = frozenset({"/healthz", "/readyz"})

#: Every token a monitor can have matches this (DESIGN 9.9: generated tokens are 43
#: URL-safe characters, users' tokens must match it or get ``WeakToken``). Anything else
#: cannot be a token, so it is "not found" without asking the index.
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{32,128}")

#: ``?rid=``: 1-64 URL-safe characters (RFC 3986 unreserved; a Job UID or a UUID fits).
RUN_ID_RE = re.compile(r"[A-Za-z0-9._~-]{1,64}")

_EXIT_CODE_RE = re.compile(r"[0-9]{1,3}")
_ACTIONS: dict[str, PingKind] = {kind: PingKind(kind) for kind in ("start", "fail", "log")}


class PathError(ValueError):
    """A malformed ping path: the reply is 400 with this short reason (never the token)."""


@dataclass(frozen=True, slots=True)
class PingPath:
    """What a ping URL's path says: whose monitor (``token``), and what happened."""

    token: str
    kind: PingKind
    exit_code: int | None = None


def route_class(path: str) -> RouteClass:
    """The route label of DESIGN 9.14 for a request path."""
    if path == "/ping" or path.startswith("/ping/"):
        return RouteClass.PING
    if path == "/hb" or path.startswith("/hb/"):
        return RouteClass.HB
    if path.startswith("/v1/heartbeats/"):
        return RouteClass.V1
    if path.startswith("/api/"):
        return RouteClass.API  # the pause API (issue 16 item 2)
    if path in PROBE_PATHS:
        return RouteClass.PROBE
    return RouteClass.OTHER


def parse_ping_path(route: RouteClass, tail: str) -> PingPath:
    """Parse what follows ``/ping/`` or ``/hb/`` (``route`` ping/hb) or ``/v1/heartbeats/``.

    ``tail`` is the decoded remainder of the path. One trailing slash is tolerated.
    Raises ``PathError`` with a short reason for anything that is not a ping route.
    """
    if tail.endswith("/"):
        tail = tail[:-1]
    parts = tail.split("/") if tail else []
    if not parts or not parts[0]:
        raise PathError("missing token")
    token = parts[0]
    if route == RouteClass.V1:
        if parts[1:] != ["ping"]:
            raise PathError("expected /v1/heartbeats/<token>/ping")
        return PingPath(token, PingKind.SUCCESS)
    if len(parts) == 1:
        return PingPath(token, PingKind.SUCCESS)
    if len(parts) > 2:
        raise PathError("unexpected path after the ping action")
    action = parts[1]
    if action in _ACTIONS:
        return PingPath(token, _ACTIONS[action])
    if _EXIT_CODE_RE.fullmatch(action) and int(action) <= 255:
        return PingPath(token, exit_code_kind(int(action)), int(action))
    if action.lstrip("-+").isdigit():
        raise PathError("exit code must be 0-255")
    raise PathError("unknown ping action; expected start, fail, log or an exit code 0-255")


def parse_run_id(values: list[str]) -> str | None:
    """The ``rid`` query values of a request: none, or exactly one valid id."""
    if not values:
        return None
    if len(values) > 1:
        raise PathError("rid given more than once")
    if not RUN_ID_RE.fullmatch(values[0]):
        raise PathError("rid must be 1-64 URL-safe characters (A-Z a-z 0-9 - . _ ~)")
    return values[0]


def is_possible_token(token: str) -> bool:
    return TOKEN_RE.fullmatch(token) is not None


_KNOWN_ACTION_RE = re.compile(r"(start|fail|log|[0-9]{1,3})/?")


def redact_path(path: str) -> str:
    """The path as access logs and error messages may show it: never a token.

    ``/ping/<token>/start`` -> ``/ping/<redacted>/start`` (the same for ``/hb/`` and
    ``/v1/heartbeats/``); a suffix that is not a known action is shown as ``/…``. Probe
    and metrics paths are shown as they are; any other path keeps only its first segment,
    since a client may have put a token anywhere.
    """
    path = path.split("?", 1)[0]
    for prefix in ("/ping/", "/hb/", "/v1/heartbeats/"):
        if path.startswith(prefix):
            rest = path[len(prefix) :]
            if "/" not in rest:
                return f"{prefix}<redacted>"
            suffix = rest.split("/", 1)[1]
            if prefix == "/v1/heartbeats/":
                shown = "/ping" if suffix in ("ping", "ping/") else "/…"
            else:
                shown = "/" + suffix if _KNOWN_ACTION_RE.fullmatch(suffix) else "/…"
            return f"{prefix}<redacted>{shown}"
    if path in PROBE_PATHS or path in ("/", "/metrics", "/ping", "/hb"):
        return path
    if _SHOWN_PATH_RE.fullmatch(path):
        # A pause API call or a badge names a monitor; a name as long as a token is
        # redacted all the same (a client may put a token anywhere).
        return redact_text(path)
    first, sep, _rest = path[1:].partition("/")
    return f"/{first}/<redacted>" if sep else f"/{first}"


#: Paths that hold no token and are shown whole in logs: the pause API's (issue 16 item 2)
#: and the badges' (issue 16 item 4), whose segments are Kubernetes names.
_SHOWN_PATH_RE = re.compile(
    r"/api/v1/namespaces/[a-z0-9-]{1,63}/heartbeatmonitors/[a-z0-9.-]{1,253}/(?:pause|resume)"
    r"|/badge/[a-z0-9-]{1,63}/[a-z0-9.-]{1,253}\.svg"
)
_PING_PATH_IN_TEXT = re.compile(r"(/(?:ping|hb|v1/heartbeats)/)[^/\s?#'\"<>]+")
#: Any run of 32 or more URL-safe characters: a token inside a longer run (a fuzzer's
#: request line, ``xx<token>yy``) is redacted with the run (issue 18 item 6).
_TOKEN_LIKE_IN_TEXT = re.compile(r"[A-Za-z0-9_-]{32,}")


def redact_text(text: str) -> str:
    """Scrub free text (an exception message, a traceback) of anything token-shaped.

    Ping paths lose their token segment, and any run of 32 or more URL-safe characters
    (every token has that shape, and may sit inside a longer run) becomes ``<redacted>``:
    over-redacting a hash in a traceback is a small price for never leaking a token.
    """
    text = _PING_PATH_IN_TEXT.sub(r"\1<redacted>", text)
    return _TOKEN_LIKE_IN_TEXT.sub("<redacted>", text)
