"""Serving an app inside the operator's own event loop, and stopping it gracefully.

``serve(app, host, port)`` is an async context manager: on entry the app has started
and its port is listening; on exit (normal, error or cancellation) shutdown begins
(``/readyz`` 503), the listener stops accepting, idle connections close, requests in
flight get up to ``shutdown_timeout`` seconds to be written and answered, then the app's
cleanup runs (DESIGN 9.20). No signal handlers are installed: the caller owns SIGTERM.

    health = Health(index_ready)
    async with serve(make_ping_app(settings, recorder, health), host, port), \\
               serve(make_metrics_app(metrics.render, health), host, metrics_port):
        await stop_requested.wait()      # e.g. set by the caller's SIGTERM handler
        health.begin_shutdown()          # /readyz 503 at once, on both ports
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from heartbeat_operator.receiver import keys
from heartbeat_operator.receiver.connections import ConnectionGuards, GuardedSite
from heartbeat_operator.receiver.logs import AccessLogger, ServerLogger, install_log_redaction
from heartbeat_operator.settings import ServerSettings

logger = logging.getLogger(__name__)

#: aiohttp's idle keep-alive limit; the header timeout of ``ConnectionGuards`` is
#: shorter, so it closes idle connections first. This is a backstop.
KEEPALIVE_TIMEOUT = 75.0


@dataclass(frozen=True)
class Served:
    """A listening app: where it listens (``port`` is the real one when 0 was asked)."""

    host: str
    port: int
    guards: ConnectionGuards

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"


@contextlib.asynccontextmanager
async def serve(
    app: web.Application,
    host: str,
    port: int,
    *,
    shutdown_timeout: float = ServerSettings.shutdown_timeout,
    access_log: bool = True,
) -> AsyncIterator[Served]:
    """Start ``app`` on ``host:port`` in the running loop; stop it gracefully on exit."""
    install_log_redaction()
    guards = app.get(keys.GUARDS)
    if guards is None:
        guards = ConnectionGuards(max_connections=None, header_timeout=None)
    runner = web.AppRunner(
        app,
        handle_signals=False,
        shutdown_timeout=shutdown_timeout,
        access_log_class=AccessLogger,
        access_log=logging.getLogger("aiohttp.access") if access_log else None,
        keepalive_timeout=KEEPALIVE_TIMEOUT,
        # Malformed requests: one throttled INFO line each, not an ERROR traceback
        # (issue 18 item 6).
        logger=ServerLogger(logging.getLogger("aiohttp.server")),
    )
    await runner.setup()
    try:
        site = GuardedSite(runner, host, port, guards)
        await site.start()
        served = Served(host=host, port=site.port, guards=guards)
        logger.info("serving on %s", site.name)
        yield served
    finally:
        health = app.get(keys.HEALTH)
        if health is not None:
            health.begin_shutdown()
        # Shielded: a cancelled caller must still let in-flight pings be answered.
        await asyncio.shield(runner.cleanup())
