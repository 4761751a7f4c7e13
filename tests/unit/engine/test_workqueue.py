"""The keyed work queue the scheduler and the CronJob loop share (issue 14 item 3).

Handlers are fakes that wait on events the test controls; progress is polled with a
deadline (tests/support/waiting.py), never slept for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from tests.support.waiting import async_wait_for

from heartbeat_operator.engine.workqueue import WorkQueue


class Gate:
    """A handler that records each call and blocks until the key is let go."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.running: set[str] = set()
        self.most_at_once = 0
        self.release: dict[str, asyncio.Event] = {}

    async def __call__(self, key: str) -> None:
        self.calls.append(key)
        self.running.add(key)
        self.most_at_once = max(self.most_at_once, len(self.running))
        try:
            await self.release.setdefault(key, asyncio.Event()).wait()
        finally:
            self.running.discard(key)
            self.release.pop(key, None)

    def let_go(self, key: str) -> None:
        self.release.setdefault(key, asyncio.Event()).set()


async def until(condition: Callable[[], bool]) -> None:
    async def probe() -> bool | None:
        return True if condition() else None

    await async_wait_for(probe, timeout=2.0, interval=0.005, what="the work queue")


async def test_a_key_marked_again_before_it_starts_runs_once() -> None:
    gate, work = Gate(), WorkQueue()
    work.add_kind("m", gate, held=True)
    for _ in range(3):
        work.mark("m", "a")
    assert work.pending("m") == {"a"}
    work.release("m")
    await until(lambda: gate.calls == ["a"])
    gate.let_go("a")
    await until(lambda: not work.busy("m"))
    assert gate.calls == ["a"]


async def test_a_key_marked_while_busy_runs_once_more_after_never_alongside() -> None:
    gate, work = Gate(), WorkQueue()
    work.add_kind("m", gate, held=False)
    work.mark("m", "a")
    await until(lambda: gate.running == {"a"})
    work.mark("m", "a")
    work.mark("m", "a")
    assert gate.calls == ["a"] and work.pending("m") == {"a"}
    gate.let_go("a")
    await until(lambda: gate.calls == ["a", "a"])
    assert gate.most_at_once == 1
    gate.let_go("a")
    await until(lambda: not work.busy("m") and not work.pending("m"))


async def test_at_most_limit_at_once_in_the_order_marked() -> None:
    gate, work = Gate(), WorkQueue()
    work.add_kind("m", gate, limit=2, held=False)
    for key in "abcde":
        work.mark("m", key)
    await until(lambda: gate.running == {"a", "b"})
    gate.let_go("a")
    await until(lambda: gate.running == {"b", "c"})
    for key in "bcde":
        gate.let_go(key)
        await until(lambda k=key: k not in gate.running)  # type: ignore[misc]
    await until(lambda: not work.busy("m"))
    assert gate.calls == list("abcde") and gate.most_at_once == 2


async def test_a_held_kind_keeps_its_marks_and_does_not_block_another() -> None:
    cronjobs, monitors, work = Gate(), Gate(), WorkQueue()
    work.add_kind("cronjob", cronjobs, held=True)
    work.add_kind("monitor", monitors, limit=1, held=False)
    work.mark("cronjob", "x")
    work.mark("monitor", "x")  # the same name in another kind is another key
    await until(lambda: monitors.running == {"x"})
    assert cronjobs.calls == [] and work.pending("cronjob") == {"x"}
    work.release("cronjob")
    await until(lambda: cronjobs.running == {"x"})
    cronjobs.let_go("x")
    monitors.let_go("x")
    await until(lambda: not work.busy("cronjob") and not work.busy("monitor"))


async def test_clear_forgets_marks_and_cancels_work_even_not_started() -> None:
    gate, work = Gate(), WorkQueue()
    work.add_kind("m", gate, limit=1, held=False)
    work.mark("m", "a")  # started at once: a task that has not run yet
    work.clear("m")
    await until(lambda: not work.busy("m"))
    work.mark("m", "b")
    await until(lambda: gate.running == {"b"})  # the cancelled one freed its slot
    work.mark("m", "c")
    work.clear("m")
    await until(lambda: not work.busy("m") and not gate.running)
    assert work.pending("m") == set() and "c" not in gate.calls


async def test_a_failing_handler_is_logged_and_the_key_can_run_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []

    async def failing(key: str) -> None:
        calls.append(key)
        raise RuntimeError("boom")

    work = WorkQueue()
    work.add_kind("m", failing, held=False)
    work.mark("m", "a")
    await until(lambda: calls == ["a"] and not work.busy("m"))
    work.mark("m", "a")
    await until(lambda: calls == ["a", "a"] and not work.busy("m"))
    assert "reconcile failed" in caplog.text


def test_a_kind_is_registered_once() -> None:
    work = WorkQueue()
    work.add_kind("m", Gate())
    with pytest.raises(ValueError):
        work.add_kind("m", Gate())


async def test_a_key_marked_again_while_busy_rejoins_behind_the_keys_waiting() -> None:
    gate, work = Gate(), WorkQueue()
    work.add_kind("m", gate, limit=1, held=False)
    for key in "abc":
        work.mark("m", key)
    await until(lambda: gate.running == {"a"})
    work.mark("m", "a")  # while busy: once more, after b and c
    assert work.pending("m") == {"a", "b", "c"}
    for key in "abca":
        await until(lambda k=key: gate.running == {k})  # type: ignore[misc]
        gate.let_go(key)
    await until(lambda: not work.busy("m"))
    assert gate.calls == list("abca")
