"""Logging without tokens (DESIGN 3 and 9.13).

- ``AccessLogger``: one line per request with the path redacted (``/ping/<redacted>…``)
  and no query string.
- ``RedactingFilter``: installed on aiohttp's own loggers by ``install_log_redaction``,
  it scrubs messages and pre-formats tracebacks with anything token-shaped removed
  (aiohttp logs malformed request lines, which may hold a URL).
- ``ServerLogger``: aiohttp's low-level request handler logs through it. A malformed
  request is the client's garbage, not our failure: one line at INFO (no traceback),
  redacted, at most one per kind every ``LOG_INTERVAL`` s with a count of the rest (issue
  18 item 6: a fuzzer made 15,321 ERROR tracebacks in four minutes).
"""

from __future__ import annotations

import logging
import re
import traceback
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError

from heartbeat_operator.logthrottle import Throttle
from heartbeat_operator.receiver.paths import redact_path, redact_text

logger = logging.getLogger("heartbeat_operator.receiver")

#: aiohttp's loggers that may see request lines or URLs.
_AIOHTTP_LOGGERS = ("aiohttp.access", "aiohttp.server", "aiohttp.web", "aiohttp.internal")


class AccessLogger(AbstractAccessLogger):
    """``<remote> "<METHOD> <redacted path>" <status> <bytes> <seconds>s``."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" %d %d %.3fs',
            request.remote or "-",
            request.method,
            redact_path(request.path),
            response.status,
            response.body_length,
            time,
        )


class RedactingFilter(logging.Filter):
    """Rewrites a record so that its message and traceback hold no token."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep the raw template only
            message = str(record.msg)
        record.msg = redact_text(message)
        record.args = None
        if record.exc_info:
            record.exc_text = redact_text("".join(traceback.format_exception(*record.exc_info)))
            record.exc_text = record.exc_text.rstrip("\n")
            record.exc_info = None
        return True


_FILTER = RedactingFilter()


def install_log_redaction() -> None:
    """Put the redacting filter on aiohttp's loggers and ours. Idempotent."""
    for name in (*_AIOHTTP_LOGGERS, logger.name):
        target = logging.getLogger(name)
        if _FILTER not in target.filters:
            target.addFilter(_FILTER)


#: How much of aiohttp's reason for refusing a request a log line quotes (it may quote the
#: whole request line back).
_REASON_CHARS = 160
_SPACES = re.compile(r"\s+")


def describe_client_error(exc: HttpProcessingError) -> str:
    """``BadStatusLine: <reason>``: one line, redacted before it is cut (a cut token would
    no longer look like one), at most ``_REASON_CHARS`` of the reason."""
    reason = _SPACES.sub(" ", redact_text(str(exc.message or exc))).strip()
    if len(reason) > _REASON_CHARS:
        reason = reason[:_REASON_CHARS] + "…"
    return f"{type(exc).__name__}: {reason}"


class ServerLogger(logging.LoggerAdapter[logging.Logger]):
    """The logger aiohttp's ``RequestHandler`` is given (``AppRunner(logger=...)``).

    aiohttp logs a request it could not parse with ``logger.exception`` (``debug`` for a
    bad method on a first request); those become one throttled INFO (DEBUG) line. Any
    other exception — ours — keeps its level and traceback.
    """

    def __init__(self, logger: logging.Logger, throttle: Throttle | None = None) -> None:
        super().__init__(logger, {})
        self.throttle = throttle or Throttle(logger)

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kw: Any) -> None:
        if not self._client_error(logging.INFO, args, exc_info):
            super().exception(msg, *args, exc_info=exc_info, **kw)

    def debug(self, msg: object, *args: object, **kw: Any) -> None:
        if not self._client_error(logging.DEBUG, args, kw.get("exc_info")):
            super().debug(msg, *args, **kw)

    def _client_error(self, level: int, args: tuple[object, ...], exc_info: Any) -> bool:
        exc = exc_info if isinstance(exc_info, BaseException) else None
        if not isinstance(exc, HttpProcessingError):
            return False
        remote = args[0] if args and isinstance(args[0], str) else "-"
        self.throttle.log(
            f"malformed request {type(exc).__name__}",
            level,
            "malformed request from %s: %s",
            remote,
            describe_client_error(exc),
        )
        return True


def log_unexpected(exc: BaseException, route: str) -> None:
    """Log an unexpected error in a view: the traceback, with no URL and no token."""
    text = redact_text("".join(traceback.format_exception(exc)).rstrip("\n"))
    logger.error("unexpected error answering a %s request:\n%s", route, text)
