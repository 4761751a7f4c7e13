"""Run ``heartbeat-operator`` with uvloop and/or orjson, to measure whether they help.

    .venv/bin/python bench/launching.py [--uvloop] [--orjson] -- run --port ... (the CLI)

Issue 8 asks to try both and keep them only where they measurably help; this launcher
tries them without touching the operator's code:

- ``--uvloop``: uvloop's event loop policy set before the operator's ``asyncio.run``, so the whole
  operator (kopf, the receiver, the API client) runs on uvloop's event loop;
- ``--no-kopf-index``: the monitor watch without kopf's index handler (experiment);
- ``--orjson``: ``json.loads``/``json.dumps`` replaced by orjson-backed versions *before*
  aiohttp and kopf are imported (aiohttp binds its JSON functions at import), so the
  API client's request and response bodies and kopf's watch stream use orjson. Calls
  with options orjson lacks (``indent``, ``cls``, ...) fall back to the standard library.
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


def no_kopf_index() -> None:
    """Register no kopf index handler (an experiment for the lead, see bench/README.md).

    With an index handler, kopf blocks every object's event handlers until all objects
    are indexed and, for each new per-object worker, wakes every waiting worker: start-up
    with N monitors costs O(N²) event-loop callbacks.
    """
    import kopf

    def index(*_args: Any, **_kwargs: Any) -> Any:
        return lambda fn: fn

    kopf.index = index


def main(argv: list[str]) -> int:
    at = argv.index("--") if "--" in argv else len(argv)
    flags, rest = argv[:at], argv[at + 1 :]
    if "--orjson" in flags:
        use_orjson()
    if "--no-kopf-index" in flags:
        no_kopf_index()
    if "--uvloop" in flags:
        import asyncio

        import uvloop

        # asyncio.run in the operator then makes a uvloop loop (uvloop.install() is deprecated).
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    from heartbeat_operator.__main__ import main as operator_main

    return operator_main(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
