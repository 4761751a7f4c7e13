"""App factories: the ping receiver (port 8080) and the metrics listener (port 8081).

Everything an app needs is passed in and kept as typed state (``keys``); nothing is a
module-level singleton, so tests build as many apps as they like. Serve them with
``serving.serve``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from aiohttp import web

from heartbeat_operator.pausing import PauseControl
from heartbeat_operator.receiver import keys, middlewares, routes, views
from heartbeat_operator.receiver.badges import BADGE_ROUTE, StateLookup, badge_view
from heartbeat_operator.receiver.connections import ConnectionGuards
from heartbeat_operator.receiver.health import Health
from heartbeat_operator.receiver.logs import install_log_redaction
from heartbeat_operator.recording import PingRecorder
from heartbeat_operator.settings import Settings

#: The header every receiver reply carries (DESIGN 3): how many body bytes are kept.
BODY_LIMIT_HEADER = "Ping-Body-Limit"

#: Header read timeout of the metrics listener (no setting: scrapers are trusted).
METRICS_HEADER_TIMEOUT = 10.0


def utc_now() -> datetime:
    return datetime.now(UTC)


def _health(readiness: Health | Callable[[], bool] | None) -> Health:
    return readiness if isinstance(readiness, Health) else Health(readiness)


def make_ping_app(
    settings: Settings,
    recorder: PingRecorder,
    readiness: Health | Callable[[], bool] | None = None,
    *,
    observer: keys.RequestObserver | None = None,
    clock: keys.Clock = utc_now,
    pauses: PauseControl | None = None,
) -> web.Application:
    """The ping receiver.

    - ``recorder``: the Kubernetes side (``recording.PingRecorder``).
    - ``readiness``: a ``Health`` shared with the metrics app (so one ``begin_shutdown``
      turns both ``/readyz`` to 503), or a plain callable, or None (always ready).
    - ``observer``: ``(route_class, code, seconds)`` per request, e.g. ``Metrics.observe``.
    - ``clock``: the time a ping is accepted at (aware UTC); tests pass their own.
    - ``pauses``: the pause API's Kubernetes side (``kube.pauses``); None: no pause API
      (its paths are 404), e.g. with ``--no-pause-api``.
    """
    receiver = settings.receiver
    install_log_redaction()  # whoever serves the app (tests too), no log line holds a token
    app = web.Application(middlewares=[middlewares.observe, middlewares.errors])
    app[keys.RECEIVER_SETTINGS] = receiver
    app[keys.RECORDER] = recorder
    app[keys.CLOCK] = clock
    app[keys.HEALTH] = _health(readiness)
    if observer is not None:
        app[keys.OBSERVER] = observer
    limit_header = ((BODY_LIMIT_HEADER, str(receiver.body_limit)),)
    app[keys.GUARDS] = ConnectionGuards(
        max_connections=receiver.max_connections,
        header_timeout=receiver.read_timeout,
        extra_headers=limit_header,
        observer=observer,
    )
    if pauses is not None:
        app[keys.PAUSES] = pauses
    app.add_routes(routes.ping_routes(pause_api=pauses is not None))

    health = app[keys.HEALTH]

    async def add_body_limit(request: web.BaseRequest, response: web.StreamResponse) -> None:
        response.headers[BODY_LIMIT_HEADER] = str(receiver.body_limit)
        if health.draining or health.stopping:
            # DESIGN 10.6: a kept-alive client would go on pinging a draining replica
            # until its listener closes; closing after each reply sends its next ping
            # through the Service, to a replica that stays. (aiohttp has written its
            # Connection header by now: the hook sets it as well as closing.)
            response.force_close()
            response.headers["Connection"] = "close"

    app.on_response_prepare.append(add_body_limit)
    return app


def make_metrics_app(
    metrics: views.MetricsSource | views.MetricsHandler,
    readiness: Health | Callable[[], bool] | None = None,
    *,
    observer: keys.RequestObserver | None = None,
    badges: StateLookup | None = None,
) -> web.Application:
    """The metrics listener: ``/metrics`` plus the same ``/healthz`` and ``/readyz``; with
    ``badges`` (a state lookup; ``--badges``) also ``/badge/<namespace>/<name>.svg``.

    ``metrics`` is an aiohttp handler (``metrics.make_metrics_handler``) or a callable
    returning ``(body bytes, content type)`` (``Metrics.render``).
    """
    app = web.Application(middlewares=[middlewares.observe, middlewares.errors])
    app[keys.HEALTH] = _health(readiness)
    if observer is not None:
        app[keys.OBSERVER] = observer
    app[keys.GUARDS] = ConnectionGuards(max_connections=None, header_timeout=METRICS_HEADER_TIMEOUT)
    app.add_routes(routes.metrics_routes(views.metrics_view(metrics)))
    if badges is not None:
        app.add_routes([web.route("*", BADGE_ROUTE, badge_view(badges))])
    return app
