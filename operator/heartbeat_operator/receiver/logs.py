"""Logging without tokens (DESIGN 3 and 9.13).

- ``AccessLogger``: one line per request with the path redacted (``/ping/<redacted>…``)
  and no query string.
- ``RedactingFilter``: installed on aiohttp's own loggers by ``install_log_redaction``,
  it scrubs messages and pre-formats tracebacks with anything token-shaped removed
  (aiohttp logs malformed request lines, which may hold a URL).
"""

from __future__ import annotations

import logging
import traceback

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

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


def log_unexpected(exc: BaseException, route: str) -> None:
    """Log an unexpected error in a view: the traceback, with no URL and no token."""
    text = redact_text("".join(traceback.format_exception(exc)).rstrip("\n"))
    logger.error("unexpected error answering a %s request:\n%s", route, text)
