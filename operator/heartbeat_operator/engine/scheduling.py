"""The leader's work: one heap of deadlines, and reconciling what the watch shows.

Only the Lease holder runs this (DESIGN 6, 9.1). It keeps ONE heap of
``(wake time, monitor)`` — no per-monitor task, no polling — and one loop that sleeps
until the earliest wake time or until the monitor table changes. For each monitor it:

- sets up the token (``engine.tokens``) on creation, a ``tokenSecretName`` change or a
  rotation request;
- writes what time, spec edits and pause/resume change, through the same per-monitor
  writer lane the pings use (``engine.writing``);
- computes the next instant the monitor can change (``domain.machine.view``) and wakes
  ``deadline_delay`` (0.5 s) after it, so a ping in flight at the deadline lands first
  (DESIGN 9.3).

On start (takeover) everything is re-derived from status: every monitor is reconciled.
Each reconcile also has the ``EventKeeper`` check that the monitor's transitions have
their Events, a few seconds after they appear, whoever wrote them: on takeover that is
the catch-up of DESIGN 9.6, afterwards the backstop for a writer that died between its
write and its Events (issue 18 item 3).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable

from heartbeat_operator.domain.inputs import Input
from heartbeat_operator.domain.machine import view
from heartbeat_operator.domain.records import Record
from heartbeat_operator.domain.specs import MonitorSpec
from heartbeat_operator.engine import folding, journaled, tokens
from heartbeat_operator.engine.events import EventKeeper
from heartbeat_operator.engine.monitors import Key, MonitorEntry, MonitorTable
from heartbeat_operator.engine.workqueue import WorkQueue
from heartbeat_operator.engine.writing import Writer
from heartbeat_operator.recording import UnknownToken
from heartbeat_operator.settings import WriterSettings

logger = logging.getLogger(__name__)

WAKE_MARGIN = 0.01  # s: wake strictly after deadline + delay (Tick settles strictly before)
RETRY_DELAY = 2.0  # s: after a failed reconcile (API unreachable, ...), not a hot loop
#: Concurrent reconciles (each mostly waits on its writer lane). Also the bound on tasks: a
#: takeover marks every monitor at once, which was one waiting task per monitor.
MAX_RECONCILES = 32
MONITORS = "monitor"  # the scheduler's kind of key in the shared work queue


@dataclasses.dataclass(frozen=True)
class Judging:
    """What the cluster says right before a deadline is judged (``Judge``'s answer):
    inputs to fold first, or an instant to hold the judgement until."""

    inputs: tuple[Input, ...] = ()
    hold_until: datetime.datetime | None = None
    #: Journaled pings of the monitor, absorbed in the same write as the transition
    #: (DESIGN 10.8.11: a ping acknowledged before ``alertTime`` is never judged missed).
    absorb: tuple[journaled.JournalPings, ...] = ()


Judge = Callable[[MonitorEntry, MonitorSpec, Record, datetime.datetime], Awaitable[Judging]]
"""``autowiring.AutoWiring.before_judging``: called with the monitor, its spec and record and the
instant deadlines are settled up to, when one is due by then (DESIGN 10.8.3)."""


class Scheduler:
    def __init__(
        self,
        table: MonitorTable,
        writer: Writer,
        token_keeper: tokens.TokenKeeper,
        *,
        deadline_delay: float = WriterSettings.deadline_delay,
        now: Callable[[], datetime.datetime] | None = None,
        judge: Judge | None = None,
        prepare: Callable[[], Awaitable[None]] | None = None,
        events: EventKeeper | None = None,
        clock: Callable[[], float] = time.time,
        work: WorkQueue | None = None,
    ) -> None:
        self.table = table
        self.events = events
        self.writer = writer
        self.tokens = token_keeper
        self.judge = judge
        #: Awaited by a new leader before it judges anything: the outages of the operator
        #: must be known first (DESIGN 10.8.9; ``kube.replicas.Replicas.prepare``).
        self.prepare = prepare
        self.delay = deadline_delay
        self._now = now or (lambda: datetime.datetime.now(datetime.UTC))
        self._clock = clock  # wall seconds, what the heap's wake times are in
        self._heap: list[tuple[float, int, Key]] = []
        self._scheduled: dict[Key, float] = {}
        self._seq = itertools.count()
        # Monitors to reconcile: the work queue shared with the CronJob loop (issue 14
        # item 3), held until this replica leads and knows the operator's outages.
        self.work = work or WorkQueue()
        self.work.add_kind(MONITORS, self._reconcile, limit=MAX_RECONCILES)
        self._wake = asyncio.Event()  # the heap's earliest wake time moved
        self._task: asyncio.Task[None] | None = None
        table.subscribe(self._on_table_change)

    # --- leadership ------------------------------------------------------------------

    @property
    def leading(self) -> bool:
        return self._task is not None and not self._task.done()

    def set_leading(self, leading: bool) -> None:
        if leading and not self.leading:
            self._task = asyncio.create_task(self._run(), name="leader scheduler")
        elif not leading and self._task is not None:
            # The loop also checks this: Python 3.11's wait_for can swallow a cancellation
            # that races with the awaited event being set.
            self._task.cancel()
            self._task = None
            self.work.hold(MONITORS)
            self.work.clear(MONITORS)
            self._heap.clear()
            if self.events is not None:
                self.events.forget()
            self._scheduled.clear()

    async def stop(self) -> None:
        task = self._task
        self.set_leading(False)
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _on_table_change(self, key: Key, entry: MonitorEntry | None) -> None:
        if self.leading:
            self._mark(key)

    def poke(self, key: Key) -> None:
        """Reconcile this monitor soon (the token sweep found its Secret deleted)."""
        self._on_table_change(key, None)

    def _mark(self, key: Key) -> None:
        self.work.mark(MONITORS, key)

    # --- the loop ----------------------------------------------------------------------

    async def _run(self) -> None:
        await self.table.wait_synced()  # a takeover starts from the whole initial list
        if self.prepare is not None:
            await self.prepare()
        logger.info("leading: reconciling %d monitors", len(self.table))
        for entry in self.table:
            self._mark(entry.key)
        self.work.release(MONITORS)
        while self._task is asyncio.current_task():
            self._wake.clear()
            self._mark_due()
            timeout = None
            if self._heap:
                timeout = max(0.0, self._heap[0][0] - self._clock())
            waking = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({waking}, timeout=timeout)
            finally:
                waking.cancel()

    def _mark_due(self) -> None:
        """Queue every monitor whose wake time has come (a stale heap entry, superseded by
        a later ``schedule``, is dropped)."""
        wall = self._clock()
        while self._heap and self._heap[0][0] <= wall:
            when, _, key = heapq.heappop(self._heap)
            if self._scheduled.get(key) == when:
                del self._scheduled[key]
                self._mark(key)

    def schedule(self, key: Key, at: datetime.datetime | None) -> None:
        if at is None:
            self._scheduled.pop(key, None)
            return
        when = at.timestamp() + self.delay + WAKE_MARGIN
        if self._scheduled.get(key) == when:
            return
        self._scheduled[key] = when
        heapq.heappush(self._heap, (when, next(self._seq), key))
        if self._heap[0][0] == when:
            self._wake.set()

    def _retry(self, key: Key) -> None:
        when = self._clock() + RETRY_DELAY
        self._scheduled[key] = when
        heapq.heappush(self._heap, (when, next(self._seq), key))
        if self._heap[0][0] == when:
            self._wake.set()  # the loop may be sleeping until a later wake time

    async def _reconcile(self, key: Key) -> None:
        try:
            await self.reconcile(key)
        except asyncio.CancelledError:
            raise
        except UnknownToken:  # deleted while judged (its write got 404): nothing to do
            self._scheduled.pop(key, None)
        except Exception:
            logger.exception("reconciling %s/%s failed; retrying in %s s", *key, RETRY_DELAY)
            self._retry(key)

    async def reconcile(self, key: Key) -> None:
        entry = self.table.get(key)
        if entry is None or entry.deleting:
            self._scheduled.pop(key, None)
            if self.events is not None:
                self.events.discard(key)
            return
        wake = await self._judge(key, entry)
        latest = self.table.get(key)
        if latest is not None and self.events is not None:
            check = await self.events.keep(latest, self._now())
            wake = check if wake is None or (check is not None and check < wake) else wake
        self.schedule(key, wake)

    async def _judge(self, key: Key, entry: MonitorEntry) -> datetime.datetime | None:
        """Set up the token, write what is due; return when the monitor next changes."""
        if self.tokens.needs_work(entry):
            await self.tokens.reconcile(entry)
            reread = self.table.get(key)
            if reread is None:
                return None
            entry = reread
        now = self._now()
        delay = datetime.timedelta(seconds=self.delay)
        if not entry.has_status:
            return None  # no token yet: nothing to write a status for
        judging = await self._before_judging(entry, now - delay)
        if judging.hold_until is not None:
            return judging.hold_until
        if judging.inputs or judging.absorb:
            change = folding.Change(inputs=judging.inputs, absorb=judging.absorb)
            return (await self.writer.write(key, change, timeout=None)).next_change_at()
        # One fold tells whether anything is due; only then is it written, and the write's
        # own fold says when to wake (issue 14 item 2: no second parse, read-back or view).
        dry = folding.fold(
            entry,
            [],
            now,
            settle_delay=delay,
            observed_spec=self.table.observed_spec(entry),
            outages=self.writer.outages(),
        )
        if not dry.changed:
            return dry.next_change_at()
        return (await self.writer.write(key, folding.Change(), timeout=None)).next_change_at()

    async def _before_judging(self, entry: MonitorEntry, until: datetime.datetime) -> Judging:
        """Ask the judge (auto-wiring) when a deadline of ``entry`` is due by ``until``."""
        if self.judge is None or entry.observed_generation != entry.generation:
            return Judging()
        spec = folding.parse(entry)
        if not isinstance(spec, MonitorSpec) or folding.token_ready(entry.status).status != "True":
            return Judging()
        now = self._now()
        record = Record.from_status(entry.status, active_since=folding.created_at(entry, now))
        due = view(spec, record, until, outages=self.writer.outages()).next_change_at
        if due is None or due > until:
            return Judging()
        return await self.judge(entry, spec, record, until)
