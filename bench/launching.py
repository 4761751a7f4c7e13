"""Run ``heartbeat-operator`` with asyncio's own loop and/or orjson (to measure whether
they help), or traced.

    .venv/bin/python bench/launching.py [--asyncio-loop] [--orjson] -- run --port ... (the CLI)

Issue 8 asks to try uvloop and orjson and keep them only where they measurably help;
this launcher tries them without touching the operator's code:

- ``--asyncio-loop``: the operator runs on asyncio's own event loop instead of uvloop's
  (its default since issue 15's fourth session: half the ping p99);
- ``--trace-memory=FILE``: tracemalloc on; SIGUSR2 writes the largest live allocations to
  FILE (where the scale benchmark's memory goes);
- ``--orjson``: ``json.loads``/``json.dumps`` replaced by orjson-backed versions *before*
  aiohttp and kopf are imported (aiohttp binds its JSON functions at import), so the
  API client's request and response bodies and kopf's watch stream use orjson. Calls
  with options orjson lacks (``indent``, ``cls``, ...) fall back to the standard library.

Always: the modules of the ``dev`` extra (``kubernetes``, ``cryptography``) are hidden, so
the process measured is the one the image runs (issue 14 item 7: the image installs
neither). The bench venv has them for ``dev up``, and kopf imports the sync client
whenever it is importable (~17 MiB of RSS per replica: bench/README.md "scale").
"""

from __future__ import annotations

import json
import sys
from typing import Any


def use_orjson() -> None:
    import orjson

    std_loads, std_dumps = json.loads, json.dumps

    def loads(text: str | bytes | bytearray, **options: Any) -> Any:
        if options:
            return std_loads(text, **options)
        return orjson.loads(text)

    def dumps(obj: Any, **options: Any) -> str:
        if options:
            return std_dumps(obj, **options)
        try:
            return orjson.dumps(obj).decode()
        except TypeError:  # what orjson refuses (e.g. non-str keys): the standard way
            return std_dumps(obj)

    json.loads = loads  # type: ignore[assignment]
    json.dumps = dumps


def trace_memory(path: str) -> None:
    """Trace allocations; on SIGUSR2 write the biggest live ones to ``path`` (diagnosis).

    Where the RSS of the scale benchmark goes (bench/README.md, "scale"): tracemalloc
    counts what Python allocated and still holds, by the call stack that allocated it,
    so our table, kopf's per-object state and the API client's buffers show apart.
    """
    import signal
    import tracemalloc

    tracemalloc.start(12)

    def dump(*_: Any) -> None:
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )
        lines = [
            f"traced now {tracemalloc.get_traced_memory()[0] / 2**20:.1f} MiB, "
            f"peak {tracemalloc.get_traced_memory()[1] / 2**20:.1f} MiB"
        ]
        for group in ("filename", "traceback"):
            lines.append(f"== by {group}")
            for stat in snapshot.statistics(group)[:25]:
                lines.append(f"{stat.size / 2**20:8.1f} MiB {stat.count:9,d} blocks")
                frames = (
                    stat.traceback.format()
                    if group == "traceback"
                    else [f"  {stat.traceback[0].filename}"]
                )
                lines += frames[-12:]
        with open(path, "w") as out:
            out.write("\n".join(lines) + "\n")

    signal.signal(signal.SIGUSR2, dump)


#: What the image does not install: only ``dev`` and the tests use them.
DEV_ONLY_MODULES = ("kubernetes", "cryptography")


def as_shipped() -> None:
    """Hide the dev extra's modules, as if not installed (an import raises ImportError)."""
    for name in DEV_ONLY_MODULES:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]


def main(argv: list[str]) -> int:
    as_shipped()
    at = argv.index("--") if "--" in argv else len(argv)
    flags, rest = argv[:at], argv[at + 1 :]
    if "--orjson" in flags:
        use_orjson()
    for flag in flags:
        if flag.startswith("--trace-memory="):
            trace_memory(flag.split("=", 1)[1])
    if "--asyncio-loop" in flags:
        import asyncio

        import uvloop

        # running.run_to_exit makes its loop with uvloop.new_event_loop, looked up at call.
        uvloop.new_event_loop = asyncio.new_event_loop
    from heartbeat_operator.__main__ import main as operator_main

    return operator_main(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
