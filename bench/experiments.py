"""Experiments beside the targets (issue 8): whether uvloop and orjson help.

The 64-connection GET ping run of ``bench/pings.py``, as shipped (on uvloop's event loop
since issue 15's fourth session), with orjson for every JSON encode and decode (the API
client's bodies, kopf's watch streams) and on asyncio's own loop, each through
``bench/launching.py``, back to back on fresh control planes. (uvloop could not run
before 2026-12-03: the receiver's connection guard asserted
``isinstance(transport, asyncio.Transport)``, which uvloop's transports are not.)

(Until 2026-11-25 06:16 this module also ran detection, burst and scale with the
operator's kopf index handler left out; that experiment became the operator's code, see
bench/README.md for before and after.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pings
from harness import QUICK, ControlPlane, Row

TRIED: tuple[tuple[str, ...], ...] = ((), ("orjson",), ("asyncio-loop",))


async def bench(plane: ControlPlane, log_dir: Path) -> tuple[list[Row], dict[str, Any]]:
    seconds = 8 if QUICK else 20
    results = {}
    for speedups in TRIED:
        measured = await pings.measure(
            plane, log_dir, [("GET", 64, 0)], seconds=seconds, idle_seconds=None, speedups=speedups
        )
        results["+".join(speedups) or "uvloop (shipped)"] = measured["runs"][0]

    def describe(run: dict[str, Any]) -> str:
        per = (run.get("cpu_ms_per_ping") or {}).get("operator", float("nan"))
        return (
            f"{run['rate']:,.0f}/s, p99 {run['latency_us']['p99'] / 1000:.0f} ms, "
            f"operator {per:.2f} CPU-ms/ping"
        )

    rows = [
        Row(
            "experiment: orjson, uvloop",
            f"GET, 64 conn, {seconds} s: as shipped (uvloop), then orjson for all JSON, then "
            "asyncio's own event loop (bench/launching.py)",
            "keep only if it helps",
            "; ".join(f"{name} {describe(run)}" for name, run in results.items()),
            None,
        )
    ]
    return rows, {"speedups": results}
