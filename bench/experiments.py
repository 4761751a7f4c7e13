"""Experiments beside the targets (issue 8): what would change the numbers above.

- *without kopf's index handler*: the detection and burst benchmarks again, and the
  10,000-monitor scale run, with the operator started through
  ``bench/launching.py --no-kopf-index``.
  Profiling (py-spy) the detection run shows the operator at 100% of a core, half of it
  in kopf's watcher: with an index handler registered, kopf makes a readiness toggle for
  every new per-object worker and wakes every waiting worker each time
  (``ToggleSet.make_toggle`` -> ``Condition.notify_all``), O(N²) at start-up and again
  whenever idle workers have exited. The operator uses that index only for its side
  effect (it fills its own table, which its event handler and its own LIST fill too).
- *orjson* (and uvloop, which the receiver refuses: see SPEEDUPS): the 64-connection GET
  ping run, plain and with orjson, back to back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import detection
import pings
import scale
from harness import QUICK, ControlPlane, Row

NO_INDEX = ("no-kopf-index",)
# uvloop cannot be tried as the receiver stands: its connection guard asserts
# ``isinstance(transport, asyncio.Transport)`` (receiver/connections.py), which uvloop's
# TCPTransport is not, so every connection fails. orjson alone is tried.
SPEEDUPS = ("orjson",)


async def bench(plane: ControlPlane, log_dir: Path) -> tuple[list[Row], dict[str, Any]]:
    facts: dict[str, Any] = {}
    rows, facts["detection"] = await detection.detection(
        plane, log_dir, label="experiment: detection, no kopf index", speedups=NO_INDEX
    )
    more, facts["burst"] = await detection.burst(
        plane,
        log_dir,
        label="experiment: burst, no kopf index",
        speedups=NO_INDEX,
        metrics_row=False,
    )
    rows += more
    count = 1000 if QUICK else 10_000
    got = facts["scale"] = await scale.one_size(plane, log_dir, count, speedups=NO_INDEX)
    rows.append(
        Row(
            "experiment: scale, no kopf index",
            f"{count:,} monitors (seeded), one replica; --no-kopf-index",
            "RSS ≤ 256 MiB",
            f"RSS {got['rss_mib']:.0f} MiB (peak {got['peak_mib']:.0f} MiB); leading "
            f"{got['leader_s']:.1f} s, all known {got['loaded_s']:.1f} s, settled after "
            f"{scale.settled(got['quiet_s'])}, "
            f"{got['cpu_s']:.0f} CPU-s",
            got["rss_mib"] <= 256 and got["peak_mib"] <= 256,
        )
    )
    seconds = 8 if QUICK else 20
    results = {}
    for speedups in ((), SPEEDUPS):
        measured = await pings.measure(
            plane, log_dir, [("GET", 64, 0)], seconds=seconds, idle_seconds=None, speedups=speedups
        )
        results["+".join(speedups) or "plain"] = measured["runs"][0]
    facts["speedups"] = results

    def describe(run: dict[str, Any]) -> str:
        per = (run.get("cpu_ms_per_ping") or {}).get("operator", float("nan"))
        return (
            f"{run['rate']:,.0f}/s, p99 {run['latency_us']['p99'] / 1000:.0f} ms, "
            f"operator {per:.2f} CPU-ms/ping"
        )

    rows.append(
        Row(
            "experiment: orjson (uvloop: refused)",
            f"GET, 64 conn, {seconds} s, plain then with orjson (bench/launching.py); uvloop "
            "fails the receiver's `isinstance(transport, asyncio.Transport)` check",
            "keep only if it helps",
            f"plain {describe(results['plain'])}; orjson {describe(results['orjson'])}",
            None,
        )
    )
    return rows, facts
