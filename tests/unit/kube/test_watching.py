"""Our copy of kopf's namespace patterns keeps kopf's semantics (issue 14 item 6).

``kube.watching`` may not import kopf's private ``_cogs``; the test may, to notice when a
kopf upgrade changes what a pattern watches and our own initial list would then differ.
"""

from __future__ import annotations

import asyncio
from typing import Any

import kopf
import pytest
from kopf._cogs.structs import references

from heartbeat_operator.kube import watching
from heartbeat_operator.kube.watching import is_pattern, match_namespace

PATTERNS = [
    "default",
    "team-*",
    "team-?",
    "!kube-*",
    "myapp-*, !*-pr-*, *pr-123",
    "!*-pr-*, *pr-123",
    "a,b",
    " a , !b ",
    "*",
]
NAMES = [
    "default",
    "team-a",
    "team-ab",
    "kube-system",
    "myapp-test",
    "myapp-pr-123",
    "myapp-pr-456",
    "otherapp-pr-123",
    "a",
    "b",
    "c",
]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_patterns_match_as_kopf_matches_them(pattern: str) -> None:
    for name in NAMES:
        expected = references.match_namespace(references.NamespaceName(name), pattern)
        assert match_namespace(name, pattern) == expected, (name, pattern)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_a_plain_name_is_what_kopf_watches_directly(pattern: str) -> None:
    direct = references.select_specific_namespaces([pattern])
    assert (not is_pattern(pattern)) == bool(direct)


# --- one handler per monitor event (issue 14) ------------------------------------------------


async def test_one_monitor_handler_feeds_the_table_then_the_auto_wiring() -> None:
    from heartbeat_operator.engine.autowiring import AutoWiring
    from heartbeat_operator.engine.monitors import MonitorTable
    from heartbeat_operator.kube.watching import build_registry

    table = MonitorTable()
    seen: list[tuple[str | None, bool]] = []

    class Wiring(AutoWiring):
        def monitor_event(self, type: str | None, body: Any) -> None:
            # the table already holds what the auto-wiring is told about
            seen.append((type, table.get(("ops", "m")) is not None))

    wiring = Wiring(client=None, monitors=table, submit=None, is_leader=lambda: False)  # type: ignore[arg-type]
    registry = build_registry(table, lambda **_: None, wiring)
    handlers = [
        h
        for h in registry._watching.get_all_handlers()
        if h.selector is not None and h.selector.any_name == "heartbeatmonitors"
    ]
    assert len(handlers) == 1
    body = {"metadata": {"namespace": "ops", "name": "m", "uid": "u"}, "spec": {}, "status": {}}
    await handlers[0].fn(type="ADDED", body=body)
    assert seen == [("ADDED", True)]
    plurals = {h.selector.any_name for h in registry._watching.get_all_handlers() if h.selector}
    assert plurals == {"heartbeatmonitors", "cronjobs", "jobs"}


class FakeKopf:
    """``kopf.spawn_tasks`` standing in for kopf's root tasks (no API is involved: what is
    tested is what the replica does when they end). The first spawn's task fails with
    ``failure``; later spawns run until their stop flag is set."""

    def __init__(self, failure: Exception) -> None:
        self.failure = failure
        self.flags: list[asyncio.Event] = []
        self.spawned = asyncio.Event()

    async def spawn_tasks(self, *, stop_flag: asyncio.Event, **_: Any) -> list[asyncio.Task[None]]:
        self.flags.append(stop_flag)
        first = len(self.flags) == 1

        async def root() -> None:
            if first:
                raise self.failure
            await stop_flag.wait()

        self.spawned.set()
        return [asyncio.create_task(root()), asyncio.create_task(asyncio.Event().wait())]


async def test_watches_that_fail_are_started_again_and_the_replica_keeps_running(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeKopf(RuntimeError("410 Gone: the continue token expired"))
    monkeypatch.setattr(watching.kopf, "spawn_tasks", fake.spawn_tasks)
    monkeypatch.setattr(watching, "RESTART_DELAY", 0.01)
    stop = asyncio.Event()
    started: list[int] = []
    restarts: list[int] = []
    runner = asyncio.create_task(
        watching.run_watches(
            kopf.OperatorRegistry(),
            ["ns"],
            stop,
            started=lambda: started.append(1),
            restarted=lambda: restarts.append(1),
        )
    )

    async def second_spawn() -> None:
        while len(fake.flags) < 2:
            fake.spawned.clear()
            await fake.spawned.wait()

    await asyncio.wait_for(second_spawn(), timeout=5)
    assert not runner.done()  # the replica did not stop with the watches
    assert (len(started), len(restarts)) == (2, 1)
    # The failed spawn's own stop flag was set before its tasks were cancelled: kopf's
    # "ultimate termination" SIGKILLs the process when cancelled without it.
    assert fake.flags[0].is_set() and not fake.flags[1].is_set()

    stop.set()
    await asyncio.wait_for(runner, timeout=5)
    assert fake.flags[1].is_set() and len(restarts) == 1  # a stop is not a restart
