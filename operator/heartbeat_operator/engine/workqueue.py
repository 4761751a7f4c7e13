"""One keyed work queue for the leader's loops (issue 14 item 3).

The scheduler (monitors) and the CronJob auto-wiring (CronJobs) each reconcile keys that
their watches mark, and before this each kept its own dirty set, busy set, wake-up event
and task set. Here is the one discipline both use, in one task group:

- ``mark(kind, key)`` queues a key, at most once (marking a queued key again is a no-op);
- a key is worked on by one task at a time; marked again while busy, it runs once more
  when that task ends (nothing marked during a reconcile is lost);
- keys start in the order marked, up to each kind's ``limit`` at once (the scheduler's
  bound: a takeover marks every monitor, which must not be one task each);
- a kind is *held* while its owner does not lead: marks are kept, nothing starts, and
  ``release`` starts them; ``clear`` forgets a kind's marks and cancels its tasks.

The queue has no clock and no loop of its own: work starts when it is marked or when a
slot frees. What is rate-limited per monitor (the writer's token buckets) lives in the
writer and outlives the queue's marks.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import functools
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

logger = logging.getLogger(__name__)

Handler = Callable[[Any], Awaitable[None]]


@dataclasses.dataclass
class _Kind:
    name: str
    handler: Handler
    limit: int | None
    held: bool
    running: int = 0
    #: Marked keys not running, in the order marked (a key marked while busy joins when
    #: its task ends). Per kind, so starting work never rescans another kind's backlog,
    #: nor the keys waiting behind a full limit: a takeover marks 100,000 monitors.
    queue: collections.deque[Hashable] = dataclasses.field(default_factory=collections.deque)


class WorkQueue:
    def __init__(self) -> None:
        self._kinds: dict[str, _Kind] = {}
        self._dirty: set[tuple[str, Hashable]] = set()
        self._busy: dict[tuple[str, Hashable], asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def add_kind(
        self, kind: str, handler: Handler, *, limit: int | None = None, held: bool = True
    ) -> None:
        """Register what reconciles a kind of key. ``handler`` must handle its own
        errors (an exception is logged and the key is not retried by the queue)."""
        if kind in self._kinds:
            raise ValueError(f"work kind {kind!r} is already registered")
        self._kinds[kind] = _Kind(kind, handler, limit, held)

    def mark(self, kind: str, key: Hashable) -> None:
        item = (kind, key)
        if item in self._dirty:
            return  # queued, or busy and queued again when it ends
        self._dirty.add(item)
        if item not in self._busy:
            self._kinds[kind].queue.append(key)
            self._start(self._kinds[kind])

    def pending(self, kind: str) -> set[Hashable]:
        """The keys of ``kind`` marked and not started yet."""
        return {key for k, key in self._dirty if k == kind}

    def busy(self, kind: str) -> set[Hashable]:
        return {key for k, key in self._busy if k == kind}

    def hold(self, kind: str) -> None:
        self._kinds[kind].held = True

    def release(self, kind: str) -> None:
        self._kinds[kind].held = False
        self._start(self._kinds[kind])

    def clear(self, kind: str) -> None:
        """Forget the kind's marks and cancel its running work (leadership lost)."""
        self._dirty = {item for item in self._dirty if item[0] != kind}
        self._kinds[kind].queue.clear()
        for item, task in list(self._busy.items()):
            if item[0] == kind:
                task.cancel()

    async def drain(self, timeout: float) -> None:
        """Wait (up to ``timeout``) for the work running now."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    def _start(self, kind: _Kind) -> None:
        """Start the kind's queued keys while it is not held and under its limit."""
        while kind.queue and not kind.held and (kind.limit is None or kind.running < kind.limit):
            item = (kind.name, kind.queue.popleft())
            self._dirty.discard(item)
            kind.running += 1
            task = asyncio.ensure_future(self._work(item, kind))
            self._busy[item] = task
            self._tasks.add(task)
            task.add_done_callback(functools.partial(self._done, item, kind))

    async def _work(self, item: tuple[str, Hashable], kind: _Kind) -> None:
        try:
            await kind.handler(item[1])
        except Exception:
            logger.exception("%s %s: reconcile failed", item[0], item[1])

    def _done(self, item: tuple[str, Hashable], kind: _Kind, task: asyncio.Task[Any]) -> None:
        # A callback, not a ``finally``: a task cancelled before it ran never runs one.
        self._tasks.discard(task)
        kind.running -= 1
        if self._busy.get(item) is task:
            del self._busy[item]
            if item in self._dirty:  # marked again while busy: once more
                kind.queue.append(item[1])
        self._start(kind)
