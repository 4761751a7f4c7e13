"""Benchmark: one /metrics scrape of 10,000 monitors (issue 6; target < 200 ms).

Builds a monitor table the way the kube side holds it (``engine.monitors.MonitorEntry``
rows: namespace, name, labels, spec and a full status per monitor — three conditions, ten
recent pings and transitions, a last output, as the operator writes them — kept packed
and unpacked when read; every per-monitor series present), makes this replica the leader, and times

- ``render``: ``Metrics.render()``, the body and content type /metrics serves, with no
  monitor rendered yet, after a new leader's warm pass (``MonitorCollector.warm``, also
  timed, with the longest the event loop waited during it), and with 1% changed;
- ``http``: a GET /metrics through the aiohttp handler on 127.0.0.1, body read whole
  (what Prometheus sees, minus its parsing);

in ``full`` and ``minimal`` per-monitor modes. Prints a Markdown table for bench/README.md.

    .venv/bin/python bench/bench_metrics.py [--monitors 10000] [--runs 15]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import ClientSession, web

from heartbeat_operator.engine.monitors import MonitorEntry
from heartbeat_operator.metrics import MONITOR_STATES, Metrics

LABEL_KEYS = ["team", "app.kubernetes.io/part-of", "severity"]


def fmt(moment: datetime) -> str:
    text = moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    return (text[:-4] if text.endswith(".000") else text) + "Z"


def condition(kind: str, status: str, reason: str, message: str, since: str) -> dict[str, Any]:
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
        "observedGeneration": 1,
    }


def entry(
    namespace: str, name: str, labels: dict[str, str], spec: Any, status: Any
) -> MonitorEntry:
    meta = {"namespace": namespace, "name": name, "uid": name, "labels": labels}
    return MonitorEntry.from_body({"metadata": meta, "spec": spec, "status": status})


def table(count: int) -> list[MonitorEntry]:
    now = datetime(2026, 11, 25, 4, 0, tzinfo=UTC)
    rows = []
    for i in range(count):
        last = now - timedelta(seconds=37 * i % 86400, milliseconds=i % 1000)
        started = last - timedelta(seconds=412)
        message = f"success at {last:%H:%M:%S} UTC in 412.5s; next expected by {last:%H}:00 UTC"
        status: dict[str, Any] = {
            "observedGeneration": 1,
            "state": MONITOR_STATES[i % len(MONITOR_STATES)],
            "stateReason": "PingReceived",
            "stateMessage": message,
            "stateSince": fmt(last),
            "activeSince": fmt(last - timedelta(days=30)),
            "referenceTime": fmt(last),
            "successStreak": i % 5,
            "runningChangedAt": fmt(last),
            "failureReason": "Failed",
            "conditions": [
                condition("Ready", "True", "TokenReady", "the ping token is ready", fmt(now)),
                condition("Healthy", "True", "PingReceived", message, fmt(last)),
                condition("Running", "False", "Idle", "no run is open", fmt(last)),
            ],
            "lastPingTime": fmt(last),
            "lastSuccessTime": fmt(last),
            "lastFailureTime": fmt(last - timedelta(days=1)),
            "lastStartTime": fmt(started),
            "lastExitCode": i % 3,
            "lastDurationSeconds": 412.5 + i % 100,
            "nextDueTime": fmt(last + timedelta(hours=1)),
            "alertTime": fmt(last + timedelta(hours=1, minutes=5)),
            "consecutiveFailures": i % 4,
            "pingCount": 1000 + i,
            "pingCounts": {"success": 600 + i, "start": 300, "fail": 60, "log": 40},
            "missedRuns": i % 7,
            "tokenHash": "sha256:" + hashlib.sha256(b"%d" % i).hexdigest(),
            "tokenSecretName": f"monitor-{i}-heartbeat",
            # What the metrics never read but every status carries.
            "recentPings": [
                ping
                for k in range(5)
                for ping in (
                    {
                        "time": fmt(last - timedelta(hours=k)),
                        "kind": "success",
                        "exitCode": 0,
                        "durationSeconds": 412.5,
                        "runId": f"run-{i}-{k}",
                    },
                    {
                        "time": fmt(started - timedelta(hours=k)),
                        "kind": "start",
                        "runId": f"run-{i}-{k}",
                    },
                )
            ],
            "recentTransitions": [
                {
                    "time": fmt(last - timedelta(days=k)),
                    "state": "Healthy",
                    "reason": "PingReceived",
                    "message": message,
                }
                for k in range(10)
            ],
            "lastOutput": {"time": fmt(last), "kind": "success", "body": f"backup {i} done\n"},
        }
        spec = {"schedule": "0 2 * * *"} if i % 2 else {"period": "1h"}
        labels = {"team": f"team-{i % 20}", "app.kubernetes.io/part-of": "batch", "other": "x"}
        rows.append(entry(f"ns-{i % 100}", f"monitor-{i}", labels, spec, status))
    return rows


def timed(
    fn: Callable[[], object], runs: int, before: Callable[[], object] = lambda: None
) -> list[float]:
    before()
    fn()  # warm up
    out = []
    for _ in range(runs):
        before()
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def replace_some(rows: list[MonitorEntry], share: float) -> Callable[[], None]:
    """Between scrapes a share of the monitors changed: the table holds new row objects."""
    step = max(1, round(1 / share))
    offset = [0]

    def replace() -> None:
        offset[0] = (offset[0] + 1) % step
        for i in range(offset[0], len(rows), step):
            old = rows[i]
            status = {**old.status, "pingCount": old.status["pingCount"] + 1}
            rows[i] = entry(old.namespace, old.name, dict(old.labels), old.spec, status)

    return replace


async def timed_http(metrics: Metrics, runs: int) -> list[float]:
    from heartbeat_operator.metrics import make_metrics_handler

    app = web.Application()
    app.router.add_get("/metrics", make_metrics_handler(metrics))
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    out = []
    try:
        async with ClientSession() as session:
            for n in range(runs + 1):
                start = time.perf_counter()
                async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                    await response.read()
                if n:  # the first is a warm-up
                    out.append((time.perf_counter() - start) * 1000)
    finally:
        await runner.cleanup()
    return out


async def timed_warm_pass(metrics: Metrics) -> tuple[float, float]:
    """A new leader's warm pass from nothing rendered: its duration, and the longest the
    event loop waited meanwhile (what a ping arriving then would wait), both in ms."""
    metrics.monitors.forget()
    done = False
    longest = 0.0

    async def ticker() -> None:
        nonlocal longest
        while not done:
            before = time.perf_counter()
            await asyncio.sleep(0)
            longest = max(longest, (time.perf_counter() - before) * 1000)

    ticking = asyncio.create_task(ticker())
    start = time.perf_counter()
    await metrics.monitors.warm()
    took = (time.perf_counter() - start) * 1000
    done = True
    await ticking
    return took, longest


def row(what: str, mode: str, values: list[float], size: int, samples: int) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
    return (
        f"| {what} | {mode} | {statistics.median(values):.0f} | {p95:.0f} | "
        f"{size / 1e6:.1f} MB | {samples:,} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--monitors", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    rows = table(args.monitors)
    print(
        f"{args.monitors:,} monitors, {args.runs} runs, Python {platform.python_version()}, "
        f"{platform.machine()}\n"
    )
    print("| scrape | mode | median ms | p95 ms | body | samples |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for mode in ("full", "minimal"):
        metrics = Metrics(lambda: rows, lambda: True, label_keys=LABEL_KEYS, monitor_metrics=mode)  # type: ignore[arg-type]
        body, _ = metrics.render()
        samples = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))

        def forget(metrics: Metrics = metrics) -> None:
            metrics.monitors.forget()  # every row new since the last scrape

        cold = timed(metrics.render, args.runs, forget)
        print(row("render, every monitor changed", mode, cold, len(body), samples))
        passes = [asyncio.run(timed_warm_pass(metrics)) for _ in range(args.runs)]
        print(row("warm pass on leading", mode, [t for t, _ in passes], len(body), samples))
        print(row("(loop held, longest)", mode, [h for _, h in passes], len(body), samples))

        def warmed(metrics: Metrics = metrics) -> None:
            asyncio.run(timed_warm_pass(metrics))

        after = timed(metrics.render, args.runs, warmed)
        print(row("render, first after the warm pass", mode, after, len(body), samples))
        warm = timed(metrics.render, args.runs, replace_some(rows, 0.01))
        print(row("render, 1% changed", mode, warm, len(body), samples))
        http = asyncio.run(timed_http(metrics, args.runs))
        print(row("GET /metrics, none changed", mode, http, len(body), samples))


if __name__ == "__main__":
    main()
