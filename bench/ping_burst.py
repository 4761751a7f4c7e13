"""Ping burst (issue 15): 5,000 distinct monitors, one ping each, all sent within 1 s.

A top-of-the-minute burst: every CronJob of a cluster pinging at once, each for its own
monitor, so group commit per monitor cannot help (Healthchecks.io reports 2,000-4,000
pings/s at minute boundaries). The monitors are seeded Healthy (``bench/seeding.py``:
one ping 10 minutes ago, period 1 h), the operator started on them (with the journal,
its default; without when ``HEARTBEAT_JOURNAL=0`` is in the environment, as every
benchmark's operator inherits it), and this process sends the pings *open loop*: the
i-th GET is due at ``T + i/5000 s`` whatever the answers before it, over a pool of 512
kept-alive connections (a ping waits for a free one: its latency counts from when it was
due, so queueing here counts too).

Reported: the answers by code (the target: all 5,000 ``200``, no retry needed), latency
from due time to answer (p50/p99/max; target p99 ≤ 1 s), when the last was answered, how
late the sender itself was, then how long until the statuses hold every acknowledged ping
(Σ ``pingCount``), and kube-apiserver's writes per acknowledged ping over the whole burst
and absorption.
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
    QUICK,
    Api,
    ControlPlane,
    OpenLoopPings,
    OperatorProcess,
    Row,
    metric_sum,
    percentile,
    plane_cpu_seconds,
    say,
    wait_until,
    writes_between,
)
from pings import JOURNAL, MONITORED

NAMESPACE = "bench-ping-burst"
CONNECTIONS = 512


async def send_burst(base: str, tokens: list[str], spread: float) -> dict[str, Any]:
    """One GET per token, the i-th due at start + i * spread / len(tokens)."""
    lateness: list[float] = []
    async with OpenLoopPings(base, CONNECTIONS) as pings:
        start = time.monotonic() + 0.2
        step = spread / len(tokens)

        async def one(i: int, token: str) -> None:
            due = start + i * step
            await asyncio.sleep(max(0.0, due - time.monotonic()))  # its send time
            lateness.append(time.monotonic() - due)
            await pings.shoot(token, due)

        await asyncio.gather(*(one(i, t) for i, t in enumerate(tokens)))
        last = time.monotonic() - start
    return {
        **pings.summary(),
        "last_answered_s": last,
        "sender_late_p99_s": percentile(lateness, 0.99),
    }


async def ping_sum(api: Api) -> int:
    items, _ = await api.monitors(NAMESPACE)
    return sum(int((item.get("status") or {}).get("pingCount") or 0) for item in items)


async def bench(plane: ControlPlane, log_dir: Path) -> tuple[list[Row], dict[str, Any]]:
    count = 500 if QUICK else 5000
    plane.fresh()
    facts: dict[str, Any] = {"monitors": count, "journal": JOURNAL}
    async with Api(plane) as api:
        await api.create_namespace(NAMESPACE)
        now = datetime.now(UTC)
        seeds = [
            seeding.seed(
                f"b-{i:05d}",
                {"period": "1h"},
                created=now - timedelta(hours=2),
                pings=[now - timedelta(minutes=10)],
                now=now,
            )
            for i in range(count + 1)  # one more: the probe that says the index is loaded
        ]
        facts["seed_s"] = await seeding.put_all(
            plane, NAMESPACE, (seeding.render(NAMESPACE, s) for s in seeds)
        )
        await seeding.put_keyed(plane, seeding.token_secrets(NAMESPACE, [s.name for s in seeds]))
        probe, tokens = seeds[-1].token, [s.token for s in seeds[:-1]]
        say(f"ping-burst: seeded {len(seeds)} monitors in {facts['seed_s']:.1f}s")
        op = OperatorProcess(
            plane, namespace=NAMESPACE, lease_namespace=NAMESPACE, log_dir=log_dir, name="operator"
        )
        try:
            await op.wait_ready(timeout=300)

            await op.wait_knows(probe, timeout=120)
            # Settle first: the probe's absorption is not the burst's (one seeded ping per
            # monitor, and the probe's one 200).
            before_sum = len(seeds) + 1

            async def settled() -> bool:
                return await ping_sum(api) == before_sum

            await wait_until(settled, timeout=60, interval=0.5, what="the probe absorbed")
            before_api = await api.apiserver_requests()
            before_cpu = op.cpu_seconds()
            plane_before = plane_cpu_seconds(plane)
            say(f"ping-burst: {count} pings within 1 s")
            facts.update(await send_burst(op.base, tokens, spread=1.0))
            acked = facts["codes"].get("200", 0)
            quiet = time.monotonic()
            expected = before_sum + acked

            async def caught_up() -> bool:
                return await ping_sum(api) >= expected

            with contextlib.suppress(TimeoutError):
                await wait_until(caught_up, timeout=300, interval=1.0, what="statuses")
            facts["caught_up_s"] = time.monotonic() - quiet
            facts["recorded"] = await ping_sum(api) - before_sum
            writes = writes_between(before_api, await api.apiserver_requests())
            facts["writes"] = writes
            monitored = sum(v for k, v in writes.items() if k in MONITORED)
            facts["writes_per_ping"] = monitored / acked if acked else float("nan")
            plane_after = plane_cpu_seconds(plane)
            facts["cpu_s"] = {
                "operator": op.cpu_seconds() - before_cpu,
                **{k: plane_after[k] - plane_before.get(k, 0.0) for k in plane_after},
            }
            facts["metrics_acked"] = metric_sum(
                await op.metrics(), "heartbeat_http_requests_total", route="ping", code="200"
            )
        finally:
            await op.stop()
    say(
        f"ping-burst: {facts['codes']} p99 {facts['latency_s']['p99']:.2f}s "
        f"last {facts['last_answered_s']:.2f}s caught up {facts['caught_up_s']:.0f}s "
        f"writes/ping {facts['writes_per_ping']:.3f}"
    )
    return rows_for(facts), facts


def rows_for(facts: dict[str, Any]) -> list[Row]:
    count = facts["monitors"]
    codes = facts["codes"]
    ok = codes.get("200", 0)
    lat = facts["latency_s"]
    others = ", ".join(f"{n} × {c}" for c, n in sorted(codes.items()) if c != "200") or "none"
    how = f"{count:,} distinct monitors, one GET each, all due within 1 s, 512 connections"
    return [
        Row(
            "ping burst",
            how,
            f"all {count:,} 200, p99 ≤ 1 s",
            f"{ok:,} × 200, others: {others}; p50 {lat['p50']:.2f} s, p99 {lat['p99']:.2f} s, "
            f"max {lat['max']:.2f} s; last answered {facts['last_answered_s']:.2f} s after "
            f"the first was due (sender late by {facts['sender_late_p99_s'] * 1000:.0f} ms "
            f"at p99)",
            ok == count and lat["p99"] <= 1.0,
        ),
        Row(
            "ping burst, absorbed",
            "Σ pingCount vs the 200s; kube-apiserver writes per 200 until caught up",
            # One ping per monitor: nothing to coalesce, one status write each (DESIGN
            # 10.8.12's fine print), plus the journal's flushes.
            "equal; ≤ 1.1 writes per ping",
            f"{facts['recorded']:,} = {ok:,} after {facts['caught_up_s']:.0f} s; "
            f"{facts['writes_per_ping']:.3f} writes per ping "
            f"({', '.join(f'{k} {v:.0f}' for k, v in sorted(facts['writes'].items()))})",
            facts["recorded"] == ok and facts["writes_per_ping"] <= 1.1,
        ),
    ]
