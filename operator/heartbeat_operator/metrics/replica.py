"""One replica's own metrics and the /metrics endpoint (DESIGN 5, 9.14).

``Metrics`` is everything one replica exports: the monitors' collector
(``metrics.monitors``), the receiver's request counter and latency histogram
(``observe``), the Kubernetes API write counters (``api_write``), process metrics; and
``chunks()`` / ``render()`` / ``make_metrics_handler()`` serve them. Labels are route
classes, verbs, resources and status codes: never a token or free text.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest, gzip_accepted

from heartbeat_operator.domain.vocabulary import RouteClass
from heartbeat_operator.metrics.monitors import (
    WORD_LABEL_RE,
    MonitorCollector,
    MonitorMetricsMode,
    MonitorSource,
)

if TYPE_CHECKING:
    from aiohttp import web

#: The exposition format served at /metrics (Prometheus text format 0.0.4).
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

#: Receiver route classes (DESIGN 9.14); anything else is counted as ``other``.
ROUTE_CLASSES: tuple[str, ...] = tuple(RouteClass)

# Latency buckets for the receiver: a ping is answered after its status write (DESIGN 9.3),
# so the interesting range is one API round trip (ms) up to the 5 s write timeout (9.13)
# and the 10 s body-read timeout.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


# Status lag of journaled pings: within ~1 s at rest, minutes when absorption coalesces
# under load (docs/operating.md, "The ping journal").
STATUS_LAG_BUCKETS: tuple[float, ...] = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


class Metrics:
    """Everything one replica exports at /metrics.

    Build one per process and pass its methods down: the receiver's middleware calls
    ``observe(route_class, code, seconds)`` once per request; the Kubernetes client calls
    ``api_write(verb, resource, code)`` once per write attempt (``code`` is the HTTP status,
    or a short error class such as ``"timeout"`` or ``"connection"`` when no response came).
    The metrics port serves ``make_metrics_handler(metrics)`` or ``metrics.render()``.
    """

    def __init__(
        self,
        monitors: MonitorSource,
        is_leader: Callable[[], bool],
        *,
        label_keys: Sequence[str] = (),
        monitor_metrics: MonitorMetricsMode = "full",
    ) -> None:
        self.monitors = MonitorCollector(
            monitors, is_leader, label_keys=label_keys, mode=monitor_metrics
        )
        # No `*_created` series (issue 17 item 5): one more series per counter and
        # histogram child that nobody queries. prometheus_client's switch is process-wide;
        # this process exports nothing else.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        # The replica's own counters live in a registry of their own, so a process can
        # build several Metrics (tests, benchmarks) without duplicate-name errors.
        self.registry = CollectorRegistry(auto_describe=True)
        # process_* (CPU, resident memory, open fds: what the chart's limits are sized by)
        # and python_info, as every prometheus_client process exports them.
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self._requests = Counter(
            "heartbeat_http_requests",
            "Requests answered by this replica's receiver, by route class and status code.",
            ["route", "code"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "heartbeat_http_request_duration_seconds",
            "Time from request to response in this replica's receiver (a ping is answered "
            "once its status write succeeded), by route class and status code.",
            ["route", "code"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._writes = Counter(
            "heartbeat_kube_api_writes",
            "Write requests this replica sent to the Kubernetes API, by verb, resource and "
            "response code.",
            ["verb", "resource", "code"],
            registry=self.registry,
        )
        self._write_errors = Counter(
            "heartbeat_kube_api_write_errors",
            "Kubernetes API writes that failed (a 4xx/5xx response or no response), by verb, "
            "resource and code; 409 conflicts are retried from a fresh read.",
            ["verb", "resource", "code"],
            registry=self.registry,
        )
        self._watch_restarts = Counter(
            "heartbeat_watch_restarts",
            "Times kopf's watches ended on an error and were started again with a fresh "
            "list; while they are down, new and changed monitors are not seen.",
            registry=self.registry,
        )

    def track_journal(self, backlog: Callable[[], int], secrets: Callable[[], int]) -> None:
        """Export the ping journal's state (DESIGN 10.7, issue 15), read at scrape time:
        ``backlog()`` pings acknowledged and not absorbed yet, ``secrets()`` journal
        Secrets held; ``journal_flushed`` and ``status_lag`` feed the histograms."""
        Gauge(
            "heartbeat_journal_backlog_pings",
            "Pings this replica acknowledged (stored in its journal) that no monitor's "
            "status has absorbed yet.",
            registry=self.registry,
        ).set_function(backlog)
        Gauge(
            "heartbeat_journal_secrets",
            "Journal Secrets this replica holds (the newest is rewritten by each flush).",
            registry=self.registry,
        ).set_function(secrets)
        self._flush = Histogram(
            "heartbeat_journal_flush_duration_seconds",
            "Time of one journal write that landed: what a journaled ping waits for its 200 "
            "beyond the flush already in flight.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._lag = Histogram(
            "heartbeat_journal_status_lag_seconds",
            "Time from a ping's acceptance to the status write that absorbed it (what "
            "`kubectl get hbm` lags behind; metrics and alerts use the leader's view).",
            buckets=STATUS_LAG_BUCKETS,
            registry=self.registry,
        )

    def journal_flushed(self, seconds: float) -> None:
        self._flush.observe(max(seconds, 0.0))

    def status_lag(self, seconds: float) -> None:
        self._lag.observe(max(seconds, 0.0))

    def watch_restarted(self) -> None:
        self._watch_restarts.inc()

    def observe(self, route_class: str, code: int | str, seconds: float) -> None:
        """Count one receiver request. Unknown route classes count as ``other``."""
        route = route_class if route_class in ROUTE_CLASSES else "other"
        label = _code_label(code)
        self._requests.labels(route, label).inc()
        self._latency.labels(route, label).observe(max(seconds, 0.0))

    def api_write(self, verb: str, resource: str, code: int | str) -> None:
        """Count one write to the Kubernetes API and, unless it succeeded, one error.

        ``verb`` is e.g. ``create``, ``update``, ``patch``, ``delete``; ``resource`` the plural
        (``heartbeatmonitors/status``, ``events``, ``secrets``, ``leases``).
        """
        label = _code_label(code)
        verb = verb if WORD_LABEL_RE.match(verb) else "other"
        resource = resource if _RESOURCE_RE.match(resource) else "other"
        self._writes.labels(verb, resource, label).inc()
        if not (label.isdigit() and 200 <= int(label) < 300):
            self._write_errors.labels(verb, resource, label).inc()

    def chunks(self) -> Iterator[bytes]:
        """The /metrics body in pieces: the monitors' series, then this replica's own.
        Every series is computed when called; the pieces are only cut while iterating."""
        own = generate_latest(self.registry)
        return itertools.chain(self.monitors.chunks(), (own,))

    def render(self) -> tuple[bytes, str]:
        """The /metrics body and its content type."""
        return b"".join(self.chunks()), CONTENT_TYPE


_RESOURCE_RE = re.compile(r"^[a-z][a-z0-9.]{0,62}(/[a-z]{1,32})?$")
_ERROR_CLASS_RE = re.compile(r"^[a-z][a-z_]{0,31}$")


def _code_label(code: int | str) -> str:
    """An HTTP status code as a label value; anything else becomes a short error class."""
    if isinstance(code, int) and not isinstance(code, bool) and 100 <= code <= 599:
        return str(code)
    if isinstance(code, str) and (
        (code.isdigit() and 100 <= int(code) <= 599) or _ERROR_CLASS_RE.match(code)
    ):
        return code
    return "other"


def make_metrics_handler(
    metrics: Metrics,
) -> Callable[[web.Request], Any]:
    """An aiohttp handler streaming ``metrics.chunks()`` (GET/HEAD /metrics on port 8081).

    Streamed, not built whole: at 100,000 monitors the body is ~160 MB, and a copy of it
    per scrape (three, with the joins) would be most of a replica's memory. Each write
    waits for the socket to drain, so other requests run in between.
    """
    from aiohttp import web

    async def handle_metrics(request: web.Request) -> web.StreamResponse:
        chunks = metrics.chunks() if request.method != "HEAD" else iter(())
        response = web.StreamResponse(headers={"Content-Type": CONTENT_TYPE})
        # gzip when the scraper asks (Prometheus does), negotiated as prometheus_client's
        # own servers negotiate it; aiohttp compresses the stream piece by piece, large
        # pieces off the event loop: 16 MB at 10,000 monitors is ~0.8 MB on the wire
        # (issue 17 item 5). Never for HEAD: the gzip trailer would be a body.
        if request.method != "HEAD" and gzip_accepted(request.headers.get("Accept-Encoding", "")):
            response.enable_compression(web.ContentCoding.gzip)
        await response.prepare(request)
        for chunk in chunks:
            await response.write(chunk)
        await response.write_eof()
        return response

    return handle_metrics
