"""The status writer: one path per monitor for every status write (DESIGN 6, 9.3, 9.8).

Pings (from the receiver: this module implements ``PingRecorder``) and the leader's
inputs (time, pause/resume, spec edits, tokens) are queued on the monitor's *lane*. A
lane writes one batch at a time — group commit: whatever arrives while a write is in
flight rides in the next one, and each waiter is answered when the write carrying it
succeeds. Every write replaces the whole status with the object's ``resourceVersion``
(``PUT .../status``); a 409 re-reads the object and re-applies the batch. A write that
carries pings also records its ``WriteMark`` in ``status.replicaWrites``: when its answer
is lost, the fresh read says whether it landed, so no ping is applied twice and none is
answered 503 that was stored (issue 18; ``_write``).

Budgets: 5 writes/s per monitor (burst 10), more than 50 pings waiting on one monitor is
``Overloaded`` (429), a ping not written within 5 s is ``WriteTimeout`` (503, and it is
taken out of the batch so nothing is counted), at most 64 writes in flight per replica,
and an unknown token waits up to 2 s for the index (at most 64 such waits) before
``UnknownToken``. A lane has a task only while it has work: no per-monitor task at rest.
Its token bucket outlives it until the bucket is full again (issue 13 item 8: a client
that waits for each reply empties the lane between pings, and a fresh bucket per lane let
30 sequential pings make 30 writes in 12 ms); so at rest no per-monitor state either.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from heartbeat_operator.domain.inputs import Ping
from heartbeat_operator.domain.outages import Outage
from heartbeat_operator.domain.tokens import token_hash
from heartbeat_operator.engine import events, folding
from heartbeat_operator.engine.api import ApiError, KubeApi, monitor_path
from heartbeat_operator.engine.monitors import Key, MonitorEntry, MonitorTable
from heartbeat_operator.logthrottle import Throttle
from heartbeat_operator.recording import IndexLoading, Overloaded, UnknownToken, WriteTimeout
from heartbeat_operator.settings import ReceiverSettings, Settings, WriterSettings

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class WriterConfig:
    """The writer's budgets (DESIGN 9.8, 9.9, 9.13). Each default is the setting's own
    (``settings.WriterSettings``, ``ReceiverSettings``: written once, issue 14 item 5);
    the operator builds it with ``from_settings``."""

    writes_per_second: float = WriterSettings.writes_per_second
    write_burst: int = WriterSettings.write_burst
    max_waiting_pings: int = WriterSettings.max_waiting_pings
    max_writes_in_flight: int = WriterSettings.max_writes_in_flight
    write_timeout: float = ReceiverSettings.write_timeout
    index_miss_wait: float = ReceiverSettings.index_miss_wait
    max_index_waits: int = ReceiverSettings.max_index_waits
    deadline_delay: float = WriterSettings.deadline_delay
    instance: str = ""
    """This replica's identity: the ``reportingInstance`` of the Events it posts."""

    @classmethod
    def from_settings(cls, settings: Settings) -> WriterConfig:
        given = {**vars(settings.receiver), **vars(settings.writer)}
        names = [f.name for f in dataclasses.fields(cls) if f.name in given]
        return cls(**{n: given[n] for n in names}, instance=settings.watching.identity)


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self._clock = clock
        self._stamp = clock()

    def delay(self) -> float:
        """Seconds until a token is available (0: now)."""
        now = self._clock()
        self.tokens = min(self.burst, self.tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self) -> None:
        self.tokens -= 1

    def full(self) -> bool:
        """Whether the bucket holds its whole burst again (a fresh one would be the same)."""
        self.delay()
        return self.tokens >= self.burst


MAX_WRITE_ATTEMPTS = 5  # writes (or reads) refused before a batch is answered 503
MIN_WRITE_TIMEOUT = 0.2  # seconds: a write sent just before its pings' deadline


@dataclasses.dataclass(eq=False)
class Item:
    """One waiter's contribution to the next write."""

    change: folding.Change
    future: asyncio.Future[Written]
    deadline: float | None  # loop time; None: no deadline (the leader's inputs)
    is_ping: bool = False


@dataclasses.dataclass(eq=False)
class Sent:
    """A status write as sent: what it carried, and what answers it needs once it lands."""

    mark: folding.WriteMark | None
    precondition: str  # the resourceVersion it was conditional on
    items: list[Item]
    result: folding.Folded


@dataclasses.dataclass(frozen=True)
class Written:
    """A waiter's answer: the monitor as written, and the fold that wrote it (the leader
    sleeps until ``next_change_at()``; issue 14 item 2)."""

    entry: MonitorEntry
    folded: folding.Folded

    def next_change_at(self) -> datetime.datetime | None:
        return self.folded.next_change_at()


class Lane:
    def __init__(self, key: Key, bucket: TokenBucket) -> None:
        self.key = key
        self.bucket = bucket
        self.pending: list[Item] = []
        self.task: asyncio.Task[None] | None = None

    @property
    def waiting_pings(self) -> int:
        return sum(1 for item in self.pending if item.is_ping)


class Writer:
    """Implements ``recording.PingRecorder`` and the leader's writes, per monitor."""

    def __init__(
        self,
        client: KubeApi,
        table: MonitorTable,
        config: WriterConfig,
        *,
        now: Callable[[], datetime.datetime] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.table = table
        self.config = config
        self._now = now or (lambda: datetime.datetime.now(datetime.UTC))
        self._clock = clock
        self._lanes: dict[Key, Lane] = {}
        self._idle_buckets: dict[Key, TokenBucket] = {}
        """Buckets of monitors without a lane that are not full yet, oldest idle first."""
        self._in_flight = asyncio.Semaphore(config.max_writes_in_flight)
        self._index_waits = 0
        self._sequence = itertools.count(1)  # WriteMark sequences: unique per identity
        self._replica = folding.replica_name(config.instance)
        self._background: set[asyncio.Task[Any]] = set()
        #: An outage fails every write: one line per 10 s, not one each (issue 18 item 6).
        self._log = Throttle(logger)
        #: Called with each write's announcements, failures while already Down marked
        #: ``events.Repeat`` (the CronJob mirror posts them the same way).
        self.on_transitions: list[
            Callable[[MonitorEntry, Sequence[events.Transitioned]], None]
        ] = []
        #: Called with a written monitor once every Event of its write was posted (the
        #: leader's ``events.EventKeeper`` then has nothing to check for it).
        self.on_events_posted: list[Callable[[MonitorEntry], None]] = []
        #: The operator's own outages every write judges deadlines with (DESIGN 10.5;
        #: ``kube.replicas.Replicas.outages``).
        self.outages: Callable[[], Sequence[Outage]] = tuple

    # --- PingRecorder ----------------------------------------------------------------

    async def record(self, token: str, ping: Ping) -> None:
        entry = await self.find(token)
        await self.submit(entry.key, folding.Change(inputs=(ping,)), ping=True)

    async def find(self, token: str) -> MonitorEntry:
        """The monitor owning ``token``, waiting for the index on a miss (DESIGN 9.9)."""
        digest = token_hash(token)
        entry = self.table.owner_of(digest)
        if entry is not None:
            return entry
        if self._index_waits >= self.config.max_index_waits:
            raise self._miss()
        self._index_waits += 1
        try:
            entry = await self.table.wait_for_owner(digest, self.config.index_miss_wait)
        finally:
            self._index_waits -= 1
        if entry is None:
            raise self._miss()
        return entry

    def _miss(self) -> Exception:
        # Before the initial list is in, a miss proves nothing: 503, never 404 (issue 18
        # item 4; /readyz says 503 for the same reason, DESIGN 9.2).
        if not self.table.synced:
            return IndexLoading("the token index is still loading")
        return UnknownToken("unknown token")

    # --- every status write ------------------------------------------------------------

    async def submit(
        self,
        key: Key,
        change: folding.Change,
        *,
        ping: bool = False,
        timeout: float | None = None,
    ) -> MonitorEntry:
        """``write``, answering the entry as written."""
        return (await self.write(key, change, ping=ping, timeout=timeout)).entry

    async def write(
        self,
        key: Key,
        change: folding.Change,
        *,
        ping: bool = False,
        timeout: float | None = None,
    ) -> Written:
        """Queue ``change`` on the monitor's lane; return the entry as written and its fold.

        Pings get the write timeout and the overload check; the leader's inputs wait as
        long as ``timeout`` says (None: until written or the monitor is gone).
        """
        loop = asyncio.get_running_loop()
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = Lane(key, self._bucket(key))
        if ping and lane.waiting_pings >= self.config.max_waiting_pings:
            raise Overloaded("too many pings waiting for this monitor")
        if ping:
            timeout = self.config.write_timeout
        deadline = None if timeout is None else loop.time() + timeout
        item = Item(change, loop.create_future(), deadline, is_ping=ping)
        lane.pending.append(item)
        if lane.task is None or lane.task.done():
            lane.task = asyncio.create_task(self._drain(lane), name=f"lane {key[0]}/{key[1]}")
        if timeout is None:
            return await item.future
        try:
            return await asyncio.wait_for(asyncio.shield(item.future), timeout)
        except TimeoutError:
            if item in lane.pending:
                lane.pending.remove(item)  # never sent: nothing is counted
                item.future.cancel()
                raise WriteTimeout("status write did not succeed in time") from None
        # Taken into a write: the writer answers once it knows whether that write landed
        # (a 503 only when it did not; issue 18 item 1).
        return await item.future

    async def _drain(self, lane: Lane) -> None:
        try:
            while lane.pending:
                delay = lane.bucket.delay()
                if delay > 0:
                    await asyncio.sleep(delay)  # rate limit: the batch grows meanwhile
                async with self._in_flight:
                    batch = [i for i in lane.pending if not i.future.done()]
                    lane.pending.clear()
                    if not batch:
                        continue
                    lane.bucket.take()
                    try:
                        await self._write(lane.key, batch)
                    except ApiError as exc:  # an outage, not a bug
                        self._log_failure(lane.key, exc)
                        _fail(batch, WriteTimeout("status write failed"))
                    except Exception:
                        # A bug must not leave waiters hanging (the leader waits unbounded).
                        logger.exception("writing %s/%s failed", *lane.key)
                        _fail(batch, WriteTimeout("status write failed"))
        except Exception:
            logger.exception("writer lane %s/%s failed", *lane.key)
        finally:
            if self._lanes.get(lane.key) is lane and not lane.pending:
                del self._lanes[lane.key]
                self._idle_buckets[lane.key] = lane.bucket
                self._forget_full_buckets()

    def _bucket(self, key: Key) -> TokenBucket:
        """The monitor's token bucket: the one its last lane left if not full yet (9.8)."""
        bucket = self._idle_buckets.pop(key, None)
        self._forget_full_buckets()
        if bucket is None:
            bucket = TokenBucket(
                self.config.writes_per_second, self.config.write_burst, clock=self._clock
            )
        return bucket

    def _forget_full_buckets(self) -> None:
        """Drop idle buckets that are full again, oldest first (bounded memory).

        A bucket refills within burst / rate (2 s by default) of going idle, and idle
        buckets are kept in that order, so this holds at most those idled in the last
        couple of seconds.
        """
        while self._idle_buckets:
            key, bucket = next(iter(self._idle_buckets.items()))
            if not bucket.full():
                return
            del self._idle_buckets[key]

    async def _write(self, key: Key, batch: list[Item]) -> None:
        """Write ``batch`` onto the monitor; answer each item once its fate is known.

        Exactly once (issue 18 items 1 and 2): every write is conditional on the version
        it was folded from, and a write carrying pings records a ``WriteMark`` of its own
        in ``status.replicaWrites``. When a write's answer is lost (``outcome_unknown``),
        its pings stay unanswered until a fresh read shows which of our writes landed, or
        that none can any more (the object moved on without our mark). A ping past its
        deadline is answered ``WriteTimeout`` (503) only once it is known not to be
        stored, so a 503 never counts; while a lost write might still apply, the next
        write leaves those pings out and carries a mark, so whichever of the two lands,
        the read after it says which.
        """
        loop = asyncio.get_running_loop()
        entry = self.table.get(key)
        lost: list[Sent] = []  # writes whose answer was lost: one of them may still apply
        failures = 0
        while batch:
            if entry is None:
                try:
                    entry = await self._fetch(key)
                except ApiError as exc:
                    failures += 1
                    self._log_failure(key, exc)
                    if not lost and failures >= MAX_WRITE_ATTEMPTS:
                        _fail(batch, WriteTimeout("status write failed"))
                        return
                    await asyncio.sleep(_backoff(failures))
                    continue
                if entry is None:
                    _fail(batch, UnknownToken("monitor is gone"))
                    return
            if lost:
                landed = _landed(entry, lost, self._replica)
                if landed is not None:
                    self._written(entry, landed)
                    batch = [i for i in batch if i not in landed.items]
                    lost.clear()
                elif all(sent.precondition != entry.resource_version for sent in lost):
                    lost.clear()  # each was conditional on a version that is gone
            if not lost:
                batch = _expire(batch, loop.time())  # known absent: the 503 counts nothing
                if not batch:
                    return
            # While a lost write may still apply, pings past their deadline are left out:
            # if this write lands, they are known absent and get their 503.
            sending = [i for i in batch if not _overdue(i, loop.time())] if lost else batch
            mark = None
            if lost or any(i.is_ping for i in sending):
                mark = folding.WriteMark(self._replica, next(self._sequence))
            result = folding.fold(
                entry,
                [i.change for i in sending],
                self._now(),
                settle_delay=datetime.timedelta(seconds=self.config.deadline_delay),
                observed_spec=self.table.observed_spec(entry),
                outages=self.outages(),
                mark=mark,
            )
            if not result.changed:
                _succeed(batch, Written(entry, result))
                return
            sent = Sent(mark, entry.resource_version, sending, result)
            deadlines = [i.deadline for i in sending if i.deadline is not None]
            timeout = None
            if deadlines:
                timeout = max(MIN_WRITE_TIMEOUT, min(deadlines) - loop.time())
            try:
                written = await self.client.put(
                    monitor_path(entry.namespace, entry.name, subresource="status"),
                    _body(entry, result.status),
                    kind="heartbeatmonitors/status",
                    timeout=timeout,
                )
            except ApiError as exc:
                if exc.not_found:
                    self.table.remove(*key, entry.uid)
                    _fail(batch, UnknownToken("monitor is gone"))
                    return
                if mark is not None and (exc.outcome_unknown or exc.conflict):
                    # A fresh read's mark says whether it landed. Even a 409 may follow a
                    # landed write: aiohttp sends an idempotent request again, unasked,
                    # when a kept-alive connection drops before the answer (RFC 9112
                    # 9.3.1), and that second copy meets the version the first one made.
                    lost.append(sent)
                elif exc.conflict:
                    pass  # someone else wrote first: re-read and re-fold (DESIGN 9.3)
                else:
                    # Not applied (or, without a mark, safe to repeat: the leader's inputs).
                    failures += 1
                    self._log_failure(key, exc)
                    given_up = failures >= MAX_WRITE_ATTEMPTS or (
                        exc.status == 422 and failures > 1
                    )
                    if given_up and not lost:
                        _fail(batch, WriteTimeout("status write failed"))
                        return
                    if exc.status != 422:  # a 422 is retried at once on a fresh read
                        await asyncio.sleep(_backoff(failures))
                entry = None  # re-read, re-fold what is still waiting (DESIGN 9.3)
                continue
            fresh = self.table.upsert(written) or MonitorEntry.from_body(written)
            self._written(fresh, sent)
            # Every other write of ours was conditional on an older version: none can
            # apply any more, so what this one left out is known absent.
            batch = [i for i in batch if i not in sent.items]
            lost.clear()
            entry = fresh
        return

    def _written(self, entry: MonitorEntry, sent: Sent) -> None:
        """``sent`` landed (``entry`` holds it): answer its waiters, post its Events."""
        _succeed(sent.items, Written(entry, sent.result))
        if sent.result.transitions:
            self._announce(entry, sent.result)

    def _log_failure(self, key: Key, exc: ApiError) -> None:
        # An outage fails every write: one line per 10 s, not one each (issue 18 item 6).
        self._log.log(
            "status write", logging.WARNING, "status write for %s/%s failed: %s", *key, exc
        )

    async def _fetch(self, key: Key) -> MonitorEntry | None:
        try:
            body = await self.client.get(monitor_path(*key), kind="heartbeatmonitors")
        except ApiError as exc:
            if exc.not_found:
                return None
            raise
        return self.table.upsert(body) or MonitorEntry.from_body(body)

    # --- Events ------------------------------------------------------------------------

    def _announce(self, entry: MonitorEntry, result: folding.Folded) -> None:
        for listener in self.on_transitions:
            try:
                listener(entry, result.announced)
            except Exception:
                logger.exception("transition listener failed")
        posts = result.event_posts(self.config.instance)
        if posts:
            self.spawn(self._post(entry, posts))

    async def _post(
        self, entry: MonitorEntry, posts: Sequence[dict[str, Any] | events.Aggregate]
    ) -> None:
        posted = True
        for post in posts:
            posted = await events.apply_event(self.client, post) and posted
        if posted:
            for listener in self.on_events_posted:
                listener(entry)

    def spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self, timeout: float) -> None:
        """Wait (up to ``timeout``) for every queued write and Event post to finish."""
        tasks = [lane.task for lane in self._lanes.values() if lane.task] + list(self._background)
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)


def _succeed(batch: Sequence[Item], written: Written) -> None:
    for item in batch:
        if not item.future.done():
            item.future.set_result(written)


def _fail(batch: Sequence[Item], exc: Exception) -> None:
    for item in batch:
        if not item.future.done():
            item.future.set_exception(exc)
            item.future.exception()  # mark retrieved: a timed-out waiter may be gone


def _body(entry: MonitorEntry, status: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "heartbeat.dev/v1alpha1",
        "kind": "HeartbeatMonitor",
        "metadata": {
            "name": entry.name,
            "namespace": entry.namespace,
            "uid": entry.uid,
            "resourceVersion": entry.resource_version,
        },
        "spec": dict(entry.spec),
        "status": status,
    }


def _backoff(failures: int) -> float:
    """Seconds before trying again: 0.2, 0.4, 0.8, then 1 s."""
    return min(0.1 * 2.0**failures, 1.0)


def _landed(entry: MonitorEntry, lost: Sequence[Sent], replica: str) -> Sent | None:
    """The lost write that ``entry`` shows landed, by its mark (None: none of them)."""
    sequence = folding.landed_write(entry.status, replica)
    for sent in lost:
        if sent.mark is not None and sent.mark.sequence == sequence:
            return sent
    return None


def _overdue(item: Item, now: float) -> bool:
    return item.deadline is not None and item.deadline <= now


def _expire(batch: list[Item], now: float) -> list[Item]:
    alive = []
    for item in batch:
        if item.future.done():
            continue
        if item.deadline is not None and item.deadline <= now:
            _fail([item], WriteTimeout("status write did not succeed in time"))
        else:
            alive.append(item)
    return alive
