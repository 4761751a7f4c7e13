"""Sustained pings (issue 15): 100,000 monitors pinged once every 5 minutes on average.

That is 333 pings/s, each for a random one of 100,000 seeded monitors (``bench/
seeding.py``, as the scale benchmark seeds them), sent open loop by this process for 5
minutes over a pool of 256 kept-alive connections; the operator runs with the journal
(its default; ``HEARTBEAT_JOURNAL=0`` in the environment: without). At this load a
monitor is pinged far less often than absorption could coalesce (DESIGN 10.8.12: "at one
ping per monitor per interval, status costs one write per ping"), so this is the load
where the journal helps least: what it shows is whether the replica keeps up, and at
what cost.

Reported: the answers by code and their latency, the operator's RSS (highest sample),
the journal's backlog at the end of the load and how long it took to drain, the status
lag (``heartbeat_journal_status_lag_seconds``, bucket bounds), and kube-apiserver's
writes per acknowledged ping until drained.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import scale
import seeding
from harness import (
    QUICK,
    Api,
    ControlPlane,
    OpenLoopPings,
    OperatorProcess,
    Row,
    metric_sum,
    parse_metrics,
    say,
    wait_until,
    writes_between,
)
from pings import JOURNAL, MONITORED

NAMESPACE = scale.NAMESPACE
CONNECTIONS = 256


async def journal_metrics(op: OperatorProcess) -> dict[str, list[tuple[dict[str, str], float]]]:
    """The operator's /metrics, read plain and patiently: at 100,000 monitors the body is
    ~160 MB (``OperatorProcess.metrics`` asks for gzip and gives up sooner: under this
    load the scrape timed out and failed the benchmark)."""
    timeout = aiohttp.ClientTimeout(total=300)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(
            f"http://127.0.0.1:{op.metrics_port}/metrics",
            headers={"Accept-Encoding": "identity"},
        ) as response,
    ):
        text = await response.text()
    return {
        name: samples
        for name, samples in parse_metrics(text).items()
        if name.startswith("heartbeat_journal_")
    }


def histogram_quantile(
    metrics: dict[str, list[tuple[dict[str, str], float]]], name: str, q: float
) -> float | None:
    """The upper bound of the bucket holding quantile ``q`` (None: no observations)."""
    buckets = sorted(
        (float(labels["le"]), value) for labels, value in metrics.get(f"{name}_bucket", [])
    )
    if not buckets or buckets[-1][1] == 0:
        return None
    total = buckets[-1][1]
    return next(bound for bound, count in buckets if count >= q * total)


async def send(
    base: str, tokens: list[str], rate: float, seconds: float, op: OperatorProcess
) -> dict[str, Any]:
    """Open loop: a ping for a random token every 1/rate s, for ``seconds``."""
    rss: list[float] = []
    pick = random.Random(15)
    async with OpenLoopPings(base, CONNECTIONS) as pings:
        start = time.monotonic()
        tasks: set[asyncio.Task[None]] = set()
        sent = 0
        next_sample = start
        while (now := time.monotonic()) < start + seconds:
            while sent < (now - start) * rate:
                task = asyncio.create_task(pings.shoot(pick.choice(tokens), start + sent / rate))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                sent += 1
            if now >= next_sample:
                rss.append(op.rss_mib())
                next_sample += 5.0
            await asyncio.sleep(0.005)  # the sender's tick: 5 ms between due checks
        await asyncio.gather(*tasks)
    return {**pings.summary(), "sent": sent, "rss_mib_max": max(rss)}


async def bench(plane: ControlPlane, log_dir: Path) -> tuple[list[Row], dict[str, Any]]:
    count, seconds, rate = (10_000, 60, 333.0) if QUICK else (100_000, 300, 333.0)
    plane.fresh()
    facts: dict[str, Any] = {"monitors": count, "seconds": seconds, "rate": rate}
    facts["journal"] = JOURNAL
    async with Api(plane) as api:
        await api.create_namespace(NAMESPACE)
        tokens: list[str] = []
        now = datetime.now(UTC)

        objects = scale.objects(count, now, [], tokens=tokens)
        facts["seed_s"] = await seeding.put_all(plane, NAMESPACE, objects)
        names = (f"m-{i:06d}" for i in range(count))  # scale.objects' names
        facts["seed_s"] += await seeding.put_keyed(plane, seeding.token_secrets(NAMESPACE, names))
        say(f"ping-sustained: seeded {count} monitors in {facts['seed_s']:.0f}s")
        op = OperatorProcess(
            plane, namespace=NAMESPACE, lease_namespace=NAMESPACE, log_dir=log_dir, name="operator"
        )
        try:
            await op.wait_ready(timeout=600)

            await op.wait_knows(tokens[-1], timeout=300, interval=1.0)
            before_api = await api.apiserver_requests()
            before_cpu = op.cpu_seconds()
            say(f"ping-sustained: {rate:.0f} pings/s over {count} monitors for {seconds}s")
            facts.update(await send(op.base, tokens, rate, seconds, op))
            acked = facts["codes"].get("200", 0)
            loaded = await journal_metrics(op)
            facts["backlog_at_end"] = metric_sum(loaded, "heartbeat_journal_backlog_pings")
            facts["secrets_at_end"] = metric_sum(loaded, "heartbeat_journal_secrets")
            quiet = time.monotonic()

            async def drained() -> bool:
                metrics = await journal_metrics(op)
                return metric_sum(metrics, "heartbeat_journal_backlog_pings") == 0

            with contextlib.suppress(TimeoutError):
                await wait_until(drained, timeout=600, interval=1.0, what="the journal drained")
            facts["drained_s"] = time.monotonic() - quiet
            metrics = await journal_metrics(op)
            name = "heartbeat_journal_status_lag_seconds"
            facts["status_lag_s"] = {
                "p50": histogram_quantile(metrics, name, 0.50),
                "p99": histogram_quantile(metrics, name, 0.99),
            }
            writes = writes_between(before_api, await api.apiserver_requests())
            facts["writes"] = writes
            monitored = sum(v for k, v in writes.items() if k in MONITORED)
            facts["writes_per_ping"] = monitored / acked if acked else float("nan")
            facts["operator_cpu_ms_per_ping"] = (
                1000 * (op.cpu_seconds() - before_cpu) / acked if acked else float("nan")
            )
        finally:
            await op.stop()
    say(f"ping-sustained: {facts}")
    return rows_for(facts), facts


def rows_for(facts: dict[str, Any]) -> list[Row]:
    codes = facts["codes"]
    ok = codes.get("200", 0)
    lat = facts["latency_s"]
    others = ", ".join(f"{n} × {c}" for c, n in sorted(codes.items()) if c != "200") or "none"
    lag = facts["status_lag_s"]
    lag_text = (
        f"status lag p50 ≤ {lag['p50']} s, p99 ≤ {lag['p99']} s"
        if lag["p50"] is not None
        else "no status lag observed (journal off: a 200 is the status write)"
    )
    return [
        Row(
            "ping sustained",
            f"{facts['monitors']:,} monitors, {facts['rate']:.0f} pings/s (each monitor every "
            f"{facts['monitors'] / facts['rate'] / 60:.0f} min on average), {facts['seconds']} s",
            "0 errors; RSS, status lag, writes per ping reported",
            f"{ok:,} × 200 of {facts['sent']:,}, others: {others}; p50 {lat['p50'] * 1000:.0f} "
            f"ms, p99 {lat['p99'] * 1000:.0f} ms; RSS ≤ {facts['rss_mib_max']:.0f} MiB; "
            f"backlog at the end {facts['backlog_at_end']:.0f} pings in "
            f"{facts['secrets_at_end']:.0f} Secrets, drained {facts['drained_s']:.0f} s later; "
            f"{lag_text}; {facts['writes_per_ping']:.3f} writes per ping; operator "
            f"{facts['operator_cpu_ms_per_ping']:.2f} CPU-ms per ping",
            ok == facts["sent"],
        )
    ]
