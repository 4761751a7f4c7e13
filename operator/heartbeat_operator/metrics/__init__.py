"""Prometheus metrics (DESIGN section 5, section 9 item 14, docs/metrics.md).

Two jobs, one module each (issue 14 item 8):

- ``monitors``: the scrape-time per-monitor collector over the monitor table;
- ``replica``: what one replica exports of itself (requests, API writes, process) and
  the streamed ``/metrics`` handler.

The names below are the package's API; import them from here.
"""

from heartbeat_operator.metrics.monitors import (
    MONITOR_STATES,
    PING_KINDS,
    STREAM_ROWS,
    WARM_SLICE,
    MonitorCollector,
    MonitorSnapshot,
    info_label_name,
)
from heartbeat_operator.metrics.replica import (
    CONTENT_TYPE,
    ROUTE_CLASSES,
    Metrics,
    make_metrics_handler,
)

__all__ = [
    "CONTENT_TYPE",
    "MONITOR_STATES",
    "PING_KINDS",
    "ROUTE_CLASSES",
    "STREAM_ROWS",
    "WARM_SLICE",
    "Metrics",
    "MonitorCollector",
    "MonitorSnapshot",
    "info_label_name",
    "make_metrics_handler",
]
