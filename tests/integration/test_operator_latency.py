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
