"""Scale (issue 8): the operator's memory with 10,000 and 100,000 monitors.

Monitors are seeded (``bench/seeding.py``: set-up through the API runs at ~100-300
writes/s on this machine, hours for 100,000) with a realistic full status: Healthy,
period 2h, ten pings in ``recentPings``, last ping 11-27 minutes ago (nothing falls due
during the run, and no transition is young enough to owe a catch-up Event). 200 distinct
statuses are rendered by the domain and copied with a token of each monitor's own.

Then one replica starts on them (the restart of an operator with an existing fleet: the
initial list, the token index, the leader's reconcile and deadline heap). Measured:
seconds to ``/readyz``, to leading, until a ping for the monitor listed last is
answered (every monitor in the table), until its CPU goes quiet; then three ``/metrics``
scrapes (as Prometheus would: the leader holds every monitor's rendered lines); RSS then and
the peak (``VmHWM``); API writes during start-up (none are needed).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import seeding
from harness import (
    MONITORS,
    PLURAL,
    QUICK,
    Api,
    ControlPlane,
    OperatorProcess,
    Row,
    say,
    wait_until,
    writes_between,
)

NAMESPACE = "bench-scale"
VARIANTS = 200
TARGETS_MIB = {10_000: 256, 100_000: 1024}
#: Seconds after leading that a replica gets to finish its start-up work (bounded: the
#: whole of `make bench` must stay under 30 minutes); RSS is read then either way.
SETTLE = 60


def objects(
    count: int, now: datetime, last_token: list[str], *, tokens: list[str] | None = None
) -> Iterator[dict[str, Any]]:
    """The seeded monitors; the token of the last one (listed last) goes to ``last_token``,
    every token to ``tokens`` if given."""
    variants = []
    for v in range(VARIANTS):
        # Period 2h, last ping 11-27 min ago: nothing is due for 90 minutes, however long
        # the start-up takes; ten pings fill recentPings.
        last = now - timedelta(minutes=11, seconds=v * 5)
        pings = [last - timedelta(minutes=5 * k) for k in reversed(range(10))]
        item = seeding.seed(
            f"v-{v}", {"period": "2h"}, created=pings[0] - timedelta(hours=1), pings=pings, now=now
        )
        variants.append(seeding.render(NAMESPACE, item))
    for i in range(count):
        obj, token = seeding.retokened(variants[i % VARIANTS], f"m-{i:06d}")
        if i == count - 1:
            last_token.append(token)
        if tokens is not None:
            tokens.append(token)
        yield obj


#: Seeds ``count`` monitors (and whatever else a variant needs) into a fresh control
#: plane; puts the token of the monitor listed last in the list; returns facts to report.
Seeder = Callable[[ControlPlane, Api, int, list[str]], Awaitable[dict[str, Any]]]
#: Looks at the settled replica before it stops (``scale_pods``: the audit log).
Inspector = Callable[[Api, OperatorProcess], Awaitable[dict[str, Any]]]


async def seed_monitors(
    plane: ControlPlane, api: Api, count: int, last_token: list[str]
) -> dict[str, Any]:
    """The plain scale run's seed: ``count`` period monitors, nothing else."""
    seconds = await seeding.put_all(plane, NAMESPACE, objects(count, datetime.now(UTC), last_token))
    return {"seed_s": seconds}


async def one_size(
    plane: ControlPlane,
    log_dir: Path,
    count: int,
    *,
    speedups: tuple[str, ...] = (),
    seed: Seeder = seed_monitors,
    prepare: Callable[[ControlPlane], None] | None = None,
    inspect: Inspector | None = None,
    clusterwide: bool = False,
    label: str = "",
) -> dict[str, Any]:
    """One replica started on ``count`` seeded monitors; ``clusterwide``: without
    ``--namespace`` (it watches monitors, CronJobs and Jobs in every namespace)."""
    plane.fresh()
    if prepare is not None:
        prepare(plane)
    facts: dict[str, Any] = {"monitors": count}
    async with Api(plane) as api:
        await api.create_namespace(NAMESPACE)
        last_token: list[str] = []
        facts.update(await seed(plane, api, count, last_token))
        page = await api.request(
            "GET", f"{MONITORS}/namespaces/{NAMESPACE}/{PLURAL}?limit=1", timeout=300
        )
        listed = 1 + int(page["metadata"].get("remainingItemCount") or 0)
        assert listed == count, f"seeded {count}, the API lists {listed}"
        say(f"scale: seeded {count:,} monitors in {facts['seed_s']:.1f}s")
        before = await api.apiserver_requests()
        op = OperatorProcess(
            plane,
            namespace="" if clusterwide else NAMESPACE,
            lease_namespace=NAMESPACE,
            log_dir=log_dir,
            name=f"scale{label}-{count}-" + ("-".join(speedups) or "plain"),
            speedups=speedups,
        )
        try:
            began = time.monotonic()
            await op.wait_ready(timeout=600)
            facts["ready_s"] = time.monotonic() - began
            await wait_until(op.is_leader, timeout=600, interval=0.5, what="leadership")
            facts["leader_s"] = time.monotonic() - began

            # Every monitor is in the table once a ping for the one listed last is answered
            # (an unknown token waits 2 s, then 404). One status write, subtracted below.
            await op.wait_knows(last_token[0], timeout=600)
            facts["loaded_s"] = time.monotonic() - began
            last: float | None = None

            async def quiet() -> bool:
                nonlocal last
                now = op.cpu_seconds()
                calm = last is not None and now - last < 0.3  # < 10% of a core over 3 s
                last = now
                return calm

            # Settled: the start-up work is done (a replica at rest still renews its Lease
            # and answers probes). Bounded: a replica that never calms down is reported so.
            try:
                await wait_until(
                    quiet, timeout=SETTLE, interval=3.0, what="the operator to go quiet"
                )
                facts["quiet_s"] = time.monotonic() - began
            except TimeoutError:
                facts["quiet_s"] = None
            facts["cpu_s"] = op.cpu_seconds()
            # Prometheus scrapes the leader, so what it holds includes every monitor's
            # rendered lines (metrics.MonitorCollector.warm renders them once it leads).
            scrapes = []
            for _ in range(3):
                start = time.monotonic()
                status, _ = await op.get(f"http://127.0.0.1:{op.metrics_port}/metrics")
                scrapes.append((time.monotonic() - start) * 1000)
                assert status == 200, f"/metrics: {status}"
            facts["scrape_ms"] = scrapes
            facts["rss_mib"] = op.rss_mib()
            facts["peak_mib"] = op.rss_mib("VmHWM")
            after = await api.apiserver_requests()
            facts["writes"] = writes_between(before, after)
            probe = facts["writes"].get("heartbeatmonitors/status", 0) - 1
            facts["writes"]["heartbeatmonitors/status"] = probe  # the probe ping's write
            if inspect is not None:
                facts.update(await inspect(api, op))
        finally:
            await op.stop()
    say(
        f"scale{label}: {count:,} monitors: ready {facts['ready_s']:.1f}s, "
        f"leading {facts['leader_s']:.1f}s, "
        f"settled {facts['quiet_s']}s; RSS {facts['rss_mib']:.0f} MiB (peak "
        f"{facts['peak_mib']:.0f}); writes {facts['writes']}"
    )
    return facts


def settled(seconds: float | None) -> str:
    return f"not within {SETTLE} s of leading" if seconds is None else f"{seconds:.0f} s"


async def bench(plane: ControlPlane, log_dir: Path) -> tuple[list[Row], dict[str, Any]]:
    sizes = [1_000, 10_000] if QUICK else [10_000, 100_000]
    facts: dict[str, Any] = {}
    rows = []
    for count in sizes:
        got = facts[str(count)] = await one_size(plane, log_dir, count)
        target = TARGETS_MIB.get(count)
        writes = {k: v for k, v in got["writes"].items() if k != "leases"}
        rows.append(
            Row(
                "scale",
                f"{count:,} monitors (seeded), one replica started on them",
                f"RSS ≤ {target:,} MiB" if target else "—",
                f"RSS {got['rss_mib']:.0f} MiB once settled (peak {got['peak_mib']:.0f} MiB); "
                f"ready in {got['ready_s']:.1f} s, leading {got['leader_s']:.1f} s, all "
                f"monitors known {got['loaded_s']:.1f} s, settled {settled(got['quiet_s'])}, "
                f"{got['cpu_s']:.0f} CPU-s; "
                f"{sum(writes.values()):.0f} writes at start-up; /metrics scraped in "
                f"{max(got['scrape_ms']):.0f} ms or less",
                None if target is None else got["rss_mib"] <= target and got["peak_mib"] <= target,
            )
        )
    return rows, facts
