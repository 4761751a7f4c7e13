"""The route tables of the two listeners (DESIGN 3 and 9.2).

Ping routes take every method and check it in the view, so that a wrong method is a
405 and a malformed path a 400 from one place, before any token lookup.
"""

from __future__ import annotations

from aiohttp import web

from heartbeat_operator.receiver import api, views


def ping_routes(*, pause_api: bool = False) -> list[web.RouteDef]:
    """Port 8080: pings (three URL families), the probes, and with ``pause_api`` the
    authenticated pause API (issue 16 item 2: deploy scripts in Pods reach this port)."""
    expect = views.expect_continue  # 413 before "100 Continue" (issue 18 item 7)
    pauses = [web.route("*", api.PAUSE_ROUTE, api.pause)] if pause_api else []
    return [
        *pauses,
        web.route("*", "/ping", views.ping, expect_handler=expect),
        web.route("*", "/ping/{tail:.*}", views.ping, expect_handler=expect),
        web.route("*", "/hb", views.ping, expect_handler=expect),
        web.route("*", "/hb/{tail:.*}", views.ping, expect_handler=expect),
        web.route("*", "/v1/heartbeats/{tail:.*}", views.ping_v1, expect_handler=expect),
        web.route("*", "/healthz", views.healthz),
        web.route("*", "/readyz", views.readyz),
    ]


def metrics_routes(metrics: views.MetricsHandler) -> list[web.RouteDef]:
    """Port 8081: ``/metrics``, the probes and ``/drain`` (the ``preStop`` hook; never on
    the ping port, which jobs and Ingresses reach)."""
    return [
        web.route("*", "/metrics", metrics),
        web.route("*", "/drain", views.drain),
        web.route("*", "/healthz", views.healthz),
        web.route("*", "/readyz", views.readyz),
    ]
