"""Experiments beside the targets (issue 8): whether uvloop and orjson help.

The 64-connection GET ping run of ``bench/pings.py``, plain and with orjson (through
``bench/launching.py``), back to back on fresh control planes. uvloop cannot be tried as
the receiver stands: its connection guard asserts ``isinstance(transport,
asyncio.Transport)`` (``receiver/connections.py``), which uvloop's TCPTransport is not,
so every connection fails.

(Until 2026-11-25 06:16 this module also ran detection, burst and scale with the
operator's kopf index handler left out, ``bench/launching.py --no-kopf-index``; that
experiment became the operator's code, see bench/README.md for before and after.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pings
from harness import QUICK, ControlPlane, Row

SPEEDUPS = ("orjson",)


async def bench(plane: ControlPlane, log_dir: Path) -> tuple[list[Row], dict[str, Any]]:
    seconds = 8 if QUICK else 20
    results = {}
    for speedups in ((), SPEEDUPS):
        measured = await pings.measure(
            plane, log_dir, [("GET", 64, 0)], seconds=seconds, idle_seconds=None, speedups=speedups
        )
        results["+".join(speedups) or "plain"] = measured["runs"][0]

    def describe(run: dict[str, Any]) -> str:
        per = (run.get("cpu_ms_per_ping") or {}).get("operator", float("nan"))
        return (
            f"{run['rate']:,.0f}/s, p99 {run['latency_us']['p99'] / 1000:.0f} ms, "
            f"operator {per:.2f} CPU-ms/ping"
        )

    rows = [
        Row(
            "experiment: orjson (uvloop: refused)",
            f"GET, 64 conn, {seconds} s, plain then with orjson (bench/launching.py); uvloop "
            "fails the receiver's `isinstance(transport, asyncio.Transport)` check",
            "keep only if it helps",
            f"plain {describe(results['plain'])}; orjson {describe(results['orjson'])}",
            None,
        )
    ]
    return rows, {"speedups": results}
