"""``make bench``: every operator benchmark of issue 8, one results table.

    .venv/bin/python bench/run.py [--no-readme] [--keep-cluster]
        [--only pings,ping-burst,ping-sustained,detection,burst,takeover,experiments,
                scale-pods,scale]
    BENCH_QUICK=1 .venv/bin/python bench/run.py     # a smoke run at a fraction of the size

Each benchmark gets a fresh control plane of its own (``bench/harness.py``: never the
shared development one) and runs the operator as separate process(es). The table is
printed and, unless ``--no-readme``, written into bench/README.md between the
``BENCH:RESULTS`` markers with the date, the machine and the exact commands. Raw numbers
go to ``$HEARTBEAT_BENCH_DIR/results.json``; operator logs to ``.../logs-<benchmark>/``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from harness import QUICK, ControlPlane, Row, say

Bench = Callable[[ControlPlane, Path], Awaitable[tuple[list[Row], dict[str, Any]]]]

#: name -> (module, function), in the order they run (the 100k scale run last: the
#: slowest, and the one most likely to be cut short).
BENCHMARKS: dict[str, tuple[str, str]] = {
    "pings": ("pings", "bench"),
    "ping-burst": ("ping_burst", "bench"),
    "ping-sustained": ("ping_sustained", "bench"),
    "detection": ("detection", "bench_detection"),
    "burst": ("detection", "bench_burst"),
    "takeover": ("takeover", "bench"),
    "experiments": ("experiments", "bench"),
    "scale-pods": ("scale_pods", "bench"),
    "scale": ("scale", "bench"),
}


def load(name: str) -> Bench:
    module, function = BENCHMARKS[name]
    bench: Bench = getattr(importlib.import_module(module), function)
    return bench


README = harness.REPO / "bench" / "README.md"
BEGIN = "<!-- BENCH:RESULTS:BEGIN (written by bench/run.py) -->"
END = "<!-- BENCH:RESULTS:END -->"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated subset")
    parser.add_argument("--no-readme", action="store_true", help="print only; leave README")
    parser.add_argument(
        "--keep-cluster", action="store_true", help="leave the bench control plane running"
    )
    args = parser.parse_args()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    return asyncio.run(run(chosen, readme=not args.no_readme, keep=args.keep_cluster))


async def run(chosen: list[str], *, readme: bool, keep: bool) -> int:
    plane = ControlPlane()
    started = datetime.now(UTC)
    began = time.monotonic()
    facts = harness.machine_facts()
    rows: list[Row] = []
    raw: dict[str, Any] = {"machine": facts, "quick": QUICK, "started": started.isoformat()}
    failed: list[str] = []
    try:
        for name in chosen:
            log_dir = plane.state_dir.parent / f"bench-logs-{name}"
            log_dir.mkdir(parents=True, exist_ok=True)
            say(f"=== {name}")
            t0 = time.monotonic()
            try:
                got, details = await load(name)(plane, log_dir)
            except Exception as error:  # one benchmark failing still leaves a table
                say(f"{name} FAILED: {type(error).__name__}: {error}")
                failed.append(name)
                got = [Row(name, "failed", "—", f"failed: {type(error).__name__}", False)]
                details = {"error": f"{type(error).__name__}: {error}"}
            details["seconds"] = time.monotonic() - t0
            raw[name] = details
            rows += got
            say(f"=== {name} done in {time.monotonic() - t0:.0f}s")
    finally:
        plane.close(keep=keep)
    total = time.monotonic() - began
    raw["total_seconds"] = total
    text = report(rows, facts, started, total, chosen)
    print(text)
    (plane.state_dir.parent / "bench-results.json").write_text(json.dumps(raw, indent=2))
    if readme:
        write_readme(text)
        say(f"results written to {README}")
    return 1 if failed else 0


def report(
    rows: list[Row], facts: dict[str, str], started: datetime, total: float, chosen: list[str]
) -> str:
    quick = " (BENCH_QUICK=1: smoke-run sizes, not the targets' sizes)" if QUICK else ""
    command = "BENCH_QUICK=1 make bench" if QUICK else "make bench"
    if chosen != list(BENCHMARKS):
        command = f".venv/bin/python bench/run.py --only {','.join(chosen)}"
    lines = [
        f"Recorded {started:%Y-%m-%d %H:%M} UTC{quick} by `{command}` in {total / 60:.1f} min; "
        f"{facts['cpus']} vCPUs ({facts['cpu']}), {facts['memory']} RAM, Linux "
        f"{facts['kernel']}, Python {facts['python']}, wrk {facts['wrk']}; operator, "
        "kube-apiserver, etcd, kube-controller-manager and the load generator share the "
        f"machine (load average at start {facts['load']}).",
        "",
        harness.table(rows),
    ]
    return "\n".join(lines)


def write_readme(text: str) -> None:
    current = README.read_text() if README.exists() else "# Benchmarks\n"
    block = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in current and END in current:
        head, rest = current.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        README.write_text(head + block + tail)
    else:
        README.write_text(
            current.rstrip("\n") + "\n\n## Operator benchmarks (issue 8)\n\n" + block + "\n"
        )


if __name__ == "__main__":
    sys.exit(main())
