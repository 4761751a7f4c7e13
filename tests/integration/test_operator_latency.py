"""How long a ping takes, end to end (issue 4's closing figure; recorded in
docs/operating.md). Timings are printed, never asserted (CONTRIBUTING: timing targets are
benchmarks); what is asserted is that every ping got its 200 and reaches status once."""

from __future__ import annotations

import http.client
import statistics
import time
from urllib.parse import urlsplit

import pytest

from tests.integration.operator_process import Monitors, isolated

pytestmark = pytest.mark.integration

MONITORS = 50  # round-robin: each monitor sees ~2 pings/s, under its 5 writes/s budget
PINGS = 1_000


def test_a_thousand_sequential_pings(operator_factory, api_client, namespace):
    op = operator_factory.start(*isolated(namespace))
    monitors = Monitors(api_client, namespace)
    names = [f"lat-{i}" for i in range(MONITORS)]
    for name in names:
        monitors.create(name, {"period": "1h"})
    paths = [urlsplit(monitors.url(name)).path for name in names]

    connection = http.client.HTTPConnection("127.0.0.1", op.port, timeout=10)
    for path in paths:  # first pings (FirstPing transitions) are not part of the figure
        connection.request("GET", path)
        assert connection.getresponse().read() == b"OK"
    seconds = []
    for i in range(PINGS):
        started = time.perf_counter()
        connection.request("GET", paths[i % MONITORS])
        response = connection.getresponse()
        assert (response.status, response.read()) == (200, b"OK")
        seconds.append(time.perf_counter() - started)
    connection.close()

    # Every 200 reaches status (absorbed behind the replies, DESIGN 10.7), once.
    for i, name in enumerate(names):
        monitors.absorbed(name, 1 + PINGS // MONITORS + (i < PINGS % MONITORS))
    total = sum(monitors.status(name)["pingCount"] for name in names)
    assert total == PINGS + MONITORS
    quantiles = statistics.quantiles(seconds, n=100)
    print(
        f"\nping latency over {PINGS} sequential pings ({MONITORS} monitors): "
        f"median {statistics.median(seconds) * 1000:.1f} ms, p99 {quantiles[98] * 1000:.1f} ms, "
        f"max {max(seconds) * 1000:.1f} ms"
    )


def test_a_ping_at_rest_reaches_status(operator_factory, api_client, namespace):
    """DESIGN 10.7: a 200 means stored in the journal; `kubectl get hbm` shows the ping
    within about a second at rest. Each of 20 pings, one at a time, is waited for in
    status; the figure (reply to status) is printed for docs/operating.md, "Measured"."""
    op = operator_factory.start(*isolated(namespace))
    monitors = Monitors(api_client, namespace)
    names = [f"rest-{i}" for i in range(20)]
    for name in names:
        monitors.create(name, {"period": "1h"})
    urls = [monitors.url(name) for name in names]
    lags = []
    for name, url in zip(names, urls, strict=True):
        path = urlsplit(url).path
        connection = http.client.HTTPConnection("127.0.0.1", op.port, timeout=10)
        connection.request("GET", path)
        assert connection.getresponse().read() == b"OK"
        answered = time.perf_counter()
        connection.close()
        assert monitors.absorbed(name, 1)["state"] == "Healthy"
        lags.append(time.perf_counter() - answered)
    print(
        f"\nstatus after the 200, at rest ({len(lags)} pings, one at a time): "
        f"median {statistics.median(lags) * 1000:.0f} ms, max {max(lags) * 1000:.0f} ms"
    )
