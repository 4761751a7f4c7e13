"""Domain evaluation: the cost of ``view`` over 100,000 monitors (issue 3).

Target: a median of at most 20 µs per evaluation, so a full re-evaluation of 100,000
monitors takes under 2 s. Pure CPU, no control plane: ``python bench/bench_domain.py``
(``--monitors N``; ``BENCH_QUICK=1`` runs 10,000).

The monitors are half period (1m … 1w) and half cron (15 expressions × 5 time zones,
DST zones included); each gets a short history folded through ``apply`` ending at
``NOW``: 80% Healthy (a success or an open run in the current slot), 8% late, 7% Down
(a failure), 5% paused. Rows:

- *view, settled*: ``view(spec, record, NOW)`` — what the leader computes for each monitor
  after a write or when building its deadline heap.
- *view, 30 s later*: ``view`` 30 s on: a deadline that passed meanwhile is settled on a
  copy first (the answer never depends on when the last Tick ran).
- *from_status + view*: a new leader re-deriving a monitor from its status dict.
- *apply Tick at the next deadline + view*: the leader's wake-up for one monitor, 0.5 s
  after its ``next_change_at`` (settle, then the view that re-arms its heap entry).
- *apply ping*: a success ping folded in (the receiver's domain part of a ping).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from heartbeat_operator.domain.inputs import Pause, Ping, Tick
from heartbeat_operator.domain.machine import apply, view
from heartbeat_operator.domain.records import Record
from heartbeat_operator.domain.specs import MonitorSpec, parse_spec

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
PERIODS = ["1m", "5m", "15m", "30m", "1h", "6h", "12h", "1d", "1w"]
SCHEDULES = [
    "* * * * *",
    "*/5 * * * *",
    "*/15 * * * *",
    "0 * * * *",
    "30 */2 * * *",
    "15 */6 * * *",
    "0 2 * * *",
    "30 2 * * *",
    "0 3 * * 1-5",
    "45 23 * * *",
    "0 0 * * 0",
    "@daily",
    "@weekly",
    "0 0 1 * *",
    "0 9,17 * * 1-5",
]
ZONES = [None, "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney"]
QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")


def make_monitor(rng: random.Random) -> tuple[MonitorSpec, Record]:
    """A spec and a record settled at ``NOW``: mostly Healthy, some Late, Down, Paused."""
    raw: dict[str, Any] = {"grace": rng.choice(["1m", "5m", "30m", "1h"])}
    if rng.random() < 0.5:
        raw["period"] = rng.choice(PERIODS)
    else:
        raw["schedule"] = rng.choice(SCHEDULES)
        zone = rng.choice(ZONES)
        if zone:
            raw["timeZone"] = zone
    if rng.random() < 0.3:
        raw["maxRuntime"] = "2h"
    if rng.random() < 0.2:
        raw["failureThreshold"] = 3
    spec = parse_spec(raw)
    first = spec.slots.next_slot(NOW)
    assert first is not None
    second = spec.slots.next_slot(first.due)
    assert second is not None
    slot = second.due - first.due
    scenario = rng.random()
    if scenario < 0.80:  # healthy: the last run finished within the current slot
        t = NOW - slot * rng.random() * 0.9
        for _ in range(5):
            nxt = spec.slots.next_slot(t)
            if nxt is not None and nxt.due > NOW:
                break
            t = NOW - slot * rng.random() * 0.9
        kinds = ["success"] if rng.random() < 0.8 else ["start"]
    elif scenario < 0.88:  # late: the current slot is past due
        t = NOW - slot - spec.grace / 2
        kinds = ["success"]
    elif scenario < 0.95:  # down: a failure
        t = NOW - slot * rng.random() * 0.5
        kinds = ["success", "fail"]
    else:  # paused
        t = NOW - slot * rng.random()
        kinds = ["success", "pause"]
    rec = Record.new(t - timedelta(seconds=1))
    for kind in kinds:
        inp = Pause(t) if kind == "pause" else Ping(t, kind, run_id=rng.choice([None, "a"]))  # type: ignore[arg-type]
        rec, _ = apply(spec, rec, inp, t)
    rec, _ = apply(spec, rec, Tick(NOW), NOW)
    return spec, rec


def timed(items: list[Any], fn: Callable[[Any], object]) -> tuple[list[float], float]:
    """Per-item cost in µs (perf_counter_ns around each call) and the wall total in s."""
    costs = []
    clock = time.perf_counter_ns
    start = time.perf_counter()
    for item in items:
        t0 = clock()
        fn(item)
        costs.append((clock() - t0) / 1000)
    return costs, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--monitors", type=int, default=10_000 if QUICK else 100_000)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    t0 = time.perf_counter()
    monitors = [make_monitor(rng) for _ in range(args.monitors)]
    print(f"built {len(monitors):,} monitors in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    states: dict[str, int] = {}
    for _, rec in monitors:
        states[rec.state] = states.get(rec.state, 0) + 1
    statuses = [(spec, rec.to_status()) for spec, rec in monitors]
    later = NOW + timedelta(seconds=30)

    def wake(m: tuple[MonitorSpec, Record]) -> object:
        # The leader's wake-up for one monitor: settle its deadline, re-arm from the view.
        spec, rec = m
        due = view(spec, rec, NOW).next_change_at or NOW
        at = due + timedelta(milliseconds=500)
        return view(spec, apply(spec, rec, Tick(at), at)[0], at)

    rows = [
        ("view, settled", timed(monitors, lambda m: view(m[0], m[1], NOW))),
        ("view, 30 s later", timed(monitors, lambda m: view(m[0], m[1], later))),
        (
            "from_status + view",
            timed(statuses, lambda s: view(s[0], Record.from_status(s[1]), NOW)),
        ),
        ("apply Tick at the next deadline + view", timed(monitors, wake)),
        ("apply ping", timed(monitors, lambda m: apply(m[0], m[1], Ping(later, "success"), later))),
    ]
    print(
        f"{len(monitors):,} monitors (states: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(states.items()))
        + f"); Python {platform.python_version()}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, {datetime.now(UTC):%Y-%m-%d}"
    )
    print()
    print("| evaluation | median µs | p95 µs | total for all s |")
    print("| --- | ---: | ---: | ---: |")
    for name, (costs, total) in rows:
        p95 = statistics.quantiles(costs, n=20)[-1]
        print(f"| {name} | {statistics.median(costs):.1f} | {p95:.1f} | {total:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
