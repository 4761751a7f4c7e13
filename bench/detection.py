"""Detection lag and burst (issue 8): from ``alertTime`` to Down being in the API.

Both seed their monitors (``bench/seeding.py``) in the Grace state (reason Late: the
slot's ``nextDueTime`` passed 15 minutes ago, so the Late transition is old news; it
posts no Event anyway, DESIGN 10.8.13) with a chosen ``alertTime`` each, start the
operator, and watch the monitors through the API from a separate process (this one). The
lag of a monitor is the arrival time of the first watch event showing ``state: Down``
minus its ``alertTime``; it includes the leader's deliberate 0.5 s wait after each
deadline (DESIGN 9.3), the status write, and the API server's watch delivery. Each Down
must also carry the rule's time: the ``Healthy`` condition's ``lastTransitionTime``
equals ``alertTime`` exactly.

- *detection*: 10,000 monitors, alert times spread evenly over 60 s.
- *burst*: 1,000 monitors with one and the same ``alertTime``: all Down in the API within
  5 s; the leader's ``/metrics`` is scraped every 0.25 s meanwhile, and the instant every
  ``heartbeat_monitor_up`` reads 0 is compared with the computed instant.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
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
    condition,
    parse_metrics,
    percentile,
    plane_cpu_seconds,
    say,
    wait_until,
    writes_between,
)

from heartbeat_operator.domain.timefmt import format_time

SPEC = {"period": "1h", "grace": "15m"}


def seeds_for(alerts: list[datetime], now: datetime, prefix: str) -> list[seeding.Seed]:
    """Monitors in Grace (Late) whose slot is missed at each of ``alerts``."""
    out = []
    for i, alert in enumerate(alerts):
        ping = alert - timedelta(hours=1, minutes=15)
        out.append(
            seeding.seed(
                f"{prefix}-{i:06d}", SPEC, created=ping - timedelta(hours=1), pings=[ping], now=now
            )
        )
    return out


async def run_deadlines(
    plane: ControlPlane,
    log_dir: Path,
    *,
    namespace: str,
    alerts_from: float,
    offsets: list[float],
    scrape_metrics: bool = False,
    speedups: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Seed monitors missing their slots at ``T0 + offsets[i]`` (T0 = now + alerts_from s),
    run the operator, watch until every one is Down (bounded); lags and counters."""
    plane.fresh()
    count = len(offsets)
    facts: dict[str, Any] = {"monitors": count}
    async with Api(plane) as api:
        await api.create_namespace(namespace)
        now = datetime.now(UTC)
        t0 = now + timedelta(seconds=alerts_from)
        t0 = t0.replace(microsecond=(t0.microsecond // 1000) * 1000)
        alerts = [t0 + timedelta(milliseconds=round(o * 1000)) for o in offsets]
        began = time.monotonic()
        objects = [seeding.render(namespace, s) for s in seeds_for(alerts, now, "m")]
        facts["render_s"] = time.monotonic() - began
        facts["seed_s"] = await seeding.put_all(plane, namespace, objects)
        by_name = {
            obj["metadata"]["name"]: alert for obj, alert in zip(objects, alerts, strict=True)
        }
        del objects
        items, rv = await api.monitors(namespace)
        assert len(items) == count, f"seeded {count}, listed {len(items)}"
        assert all((i.get("status") or {}).get("state") == "Grace" for i in items)
        del items
        say(f"{namespace}: seeded {count} monitors in {facts['seed_s']:.1f}s")

        seen: dict[str, float] = {}
        wrong_time: list[str] = []
        other_states: dict[str, int] = {}

        async def watch() -> None:
            path = f"{MONITORS}/namespaces/{namespace}/{PLURAL}"
            deadline = t0.timestamp() + max(offsets) + 120 - time.time()
            async for arrived, kind, obj in api.watch(path, rv, timeout=max(deadline, 30)):
                if kind not in ("MODIFIED", "ADDED"):
                    continue
                name = obj["metadata"]["name"]
                status = obj.get("status") or {}
                state = status.get("state")
                if state == "Down" and name not in seen:
                    seen[name] = arrived
                    ltt = condition(status, "Healthy").get("lastTransitionTime")
                    if ltt != format_time(by_name[name]):
                        wrong_time.append(f"{name}: {ltt} != {format_time(by_name[name])}")
                    if len(seen) == count:
                        return
                elif state not in ("Down", "Grace"):
                    other_states[str(state)] = other_states.get(str(state), 0) + 1

        watcher = asyncio.create_task(watch())
        op = OperatorProcess(
            plane,
            namespace=namespace,
            lease_namespace=namespace,
            log_dir=log_dir,
            name="operator-" + ("-".join(speedups) or "plain"),
            speedups=speedups,
        )
        samples: list[tuple[float, int]] = []
        scraper: asyncio.Task[None] | None = None
        try:
            start = time.monotonic()
            await op.wait_ready(timeout=300)
            facts["ready_s"] = time.monotonic() - start
            await wait_until(op.is_leader, timeout=120, what="leadership")
            facts["leader_s"] = time.monotonic() - start
            facts["leading_before_t0_s"] = t0.timestamp() - time.time()
            facts["rss_mib_before"] = op.rss_mib()
            say(
                f"{namespace}: operator ready in {facts['ready_s']:.1f}s, leading in "
                f"{facts['leader_s']:.1f}s, {facts['leading_before_t0_s']:.1f}s before the "
                f"first alertTime; RSS {facts['rss_mib_before']:.0f} MiB"
            )
            if scrape_metrics:
                scraper = asyncio.create_task(scrape(op, samples, t0.timestamp() + 30))
            before = await api.apiserver_requests()
            cpu = op.cpu_seconds()
            plane_before = plane_cpu_seconds(plane)
            wall = time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    watcher, timeout=t0.timestamp() + max(offsets) + 120 - time.time()
                )
            if scraper is not None:  # let the probe see the last flips too
                with contextlib.suppress(TimeoutError):
                    await wait_until(
                        lambda: _flipped(samples, count), timeout=10, interval=0.25, what="flips"
                    )
            facts["operator_cpu_s"] = op.cpu_seconds() - cpu
            facts["wall_s"] = time.monotonic() - wall
            plane_after = plane_cpu_seconds(plane)
            facts["cpu_s"] = {
                "operator": facts["operator_cpu_s"],
                **{k: plane_after[k] - plane_before.get(k, 0.0) for k in plane_after},
            }
            after = await api.apiserver_requests()
            facts["writes"] = writes_between(before, after)
            facts["rss_mib"] = op.rss_mib()
        finally:
            watcher.cancel()
            if scraper is not None:
                scraper.cancel()
            await op.stop()
    lags = [seen[name] - by_name[name].timestamp() for name in seen]
    facts.update(
        down=len(seen),
        wrong_time=len(wrong_time),
        wrong_time_examples=wrong_time[:3],
        other_states=other_states,
        lag_min=min(lags) if lags else None,
        lag_p50=percentile(lags, 50) if lags else None,
        lag_p99=percentile(lags, 99) if lags else None,
        lag_max=max(lags) if lags else None,
        t0=t0.timestamp(),
    )
    if samples:
        facts["metrics"] = metrics_facts(samples, t0.timestamp(), count)
    say(
        f"{namespace}: {len(seen)}/{count} Down, lag p50 {facts['lag_p50']}, p99 "
        f"{facts['lag_p99']}, max {facts['lag_max']}; wrong times {len(wrong_time)}"
    )
    return facts


async def scrape(op: OperatorProcess, samples: list[tuple[float, int]], until: float) -> None:
    """Every 0.25 s: how many ``heartbeat_monitor_up`` series read 0 on the leader."""
    while time.time() < until:
        status, text = await op.get(f"http://127.0.0.1:{op.metrics_port}/metrics")
        if status == 200:
            ups = parse_metrics(text).get("heartbeat_monitor_up", [])
            samples.append((time.time(), sum(1 for _, value in ups if value == 0)))
        await asyncio.sleep(0.25)  # the scrape interval of this probe


async def _flipped(samples: list[tuple[float, int]], count: int) -> bool:
    return bool(samples) and samples[-1][1] >= count


def metrics_facts(samples: list[tuple[float, int]], t0: float, count: int) -> dict[str, Any]:
    first = next((t - t0 for t, n in samples if n > 0), None)
    every = next((t - t0 for t, n in samples if n >= count), None)
    last_zero = max((t - t0 for t, n in samples if n == 0 and t < t0 + 10), default=None)
    return {"first_down_s": first, "all_down_s": every, "last_all_up_s": last_zero}


async def bench_detection(plane: ControlPlane, log_dir: Path) -> tuple[list[Row], dict[str, Any]]:
    return await detection(plane, log_dir)


async def detection(
    plane: ControlPlane,
    log_dir: Path,
    *,
    label: str = "detection lag",
    speedups: tuple[str, ...] = (),
) -> tuple[list[Row], dict[str, Any]]:
    count = 1000 if QUICK else 10_000
    spread = 20.0 if QUICK else 60.0
    offsets = [spread * i / count for i in range(count)]
    # The operator must lead before the first alertTime: seeding, start-up and the initial
    # list of 10,000 monitors take ~15 s here; the margin leaves room for a busy machine.
    lead = 20 + 20 * count / 10_000
    facts = await run_deadlines(
        plane,
        log_dir,
        namespace="bench-detect",
        alerts_from=lead,
        offsets=offsets,
        speedups=speedups,
    )
    p99 = facts["lag_p99"]
    ok = facts["down"] == count and facts["wrong_time"] == 0 and p99 is not None and p99 <= 1.0
    writes = facts.get("writes", {})
    cpu = facts.get("cpu_s") or {}
    rows = [
        Row(
            label,
            f"{count:,} monitors, alert times spread over {spread:.0f} s; watch event with "
            f"Down minus alertTime{'; ' + '+'.join(speedups) if speedups else ''}",
            "p99 ≤ 1 s",
            f"p50 {fmt_s(facts['lag_p50'])}, p99 {fmt_s(p99)}, max {fmt_s(facts['lag_max'])}; "
            f"{facts['down']:,}/{count:,} Down, {facts['wrong_time']} with a wrong transition "
            f"time; {writes.get('heartbeatmonitors/status', 0):,.0f} status writes, "
            f"{writes.get('events', 0):,.0f} Events; CPU-s operator "
            f"{cpu.get('operator', 0):.0f}, kube-apiserver {cpu.get('kube-apiserver', 0):.0f}, "
            f"etcd {cpu.get('etcd', 0):.0f} in {facts.get('wall_s', 0):.0f} s",
            ok,
        )
    ]
    return rows, facts


async def bench_burst(plane: ControlPlane, log_dir: Path) -> tuple[list[Row], dict[str, Any]]:
    return await burst(plane, log_dir)


async def burst(
    plane: ControlPlane,
    log_dir: Path,
    *,
    label: str = "burst",
    speedups: tuple[str, ...] = (),
    metrics_row: bool = True,
) -> tuple[list[Row], dict[str, Any]]:
    count = 1000
    offsets = [0.0] * count
    facts = await run_deadlines(
        plane,
        log_dir,
        namespace="bench-burst",
        alerts_from=40,
        offsets=offsets,
        scrape_metrics=metrics_row,
        speedups=speedups,
    )
    cpu = facts.get("cpu_s") or {}
    metrics = facts.get("metrics", {})
    ok = (
        facts["down"] == count
        and facts["wrong_time"] == 0
        and facts["lag_max"] is not None
        and facts["lag_max"] <= 5.0
    )
    rows = [
        Row(
            label,
            f"{count:,} monitors, one alertTime; last Down in the API"
            + (f"; {'+'.join(speedups)}" if speedups else ""),
            "all Down ≤ 5 s",
            f"{facts['down']:,}/{count:,} Down; first after {fmt_s(facts['lag_min'])}, "
            f"p50 {fmt_s(facts['lag_p50'])}, all after {fmt_s(facts['lag_max'])}; "
            f"{facts['wrong_time']} with a wrong transition time; CPU-s operator "
            f"{cpu.get('operator', 0):.0f}, kube-apiserver {cpu.get('kube-apiserver', 0):.0f}",
            ok,
        ),
        Row(
            "burst, metrics",
            "leader's /metrics every 0.25 s: heartbeat_monitor_up == 0",
            "flip at the computed instant",
            f"all up until {fmt_s(metrics.get('last_all_up_s'))}, first 0 at "
            f"{fmt_s(metrics.get('first_down_s'))}, all 0 at {fmt_s(metrics.get('all_down_s'))} "
            "after alertTime (transition times in status: exact)",
            None,
        ),
    ]
    return (rows if metrics_row else rows[:1]), facts


def fmt_s(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"
