"""The leader's scheduler on a fake clock (issue 14 item 2): one fold finds what is due,
one write settles it, and that write's fold says when to wake. Its reconcile asks the
auto-wiring what the cluster says before it judges a deadline (DESIGN 10.8.3): only when
one is due, holding a judgement without writing, and folding what it says in one status
write. Against the fake of our ``KubeClient`` seam (tests/unit/kube/fakes.py), a real
``Writer`` and a fake judge; ``now`` and the heap's clock are passed in."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from tests.support.waiting import async_wait_for
from tests.unit.kube.fakes import FakeKube

from heartbeat_operator.domain.inputs import JobPending, SlotSkipped
from heartbeat_operator.domain.records import Record
from heartbeat_operator.domain.specs import MonitorSpec
from heartbeat_operator.domain.timefmt import format_time, parse_time
from heartbeat_operator.engine.api import ApiError, event_path, monitor_path
from heartbeat_operator.engine.events import (
    EVENT_SETTLE,
    EventKeeper,
    InvolvedObject,
    missing_events,
)
from heartbeat_operator.engine.folding import Change
from heartbeat_operator.engine.monitors import Key, MonitorEntry, MonitorTable
from heartbeat_operator.engine.scheduling import (
    MONITORS,
    RETRY_DELAY,
    WAKE_MARGIN,
    Judging,
    Scheduler,
)
from heartbeat_operator.engine.writing import Writer, WriterConfig, Written
from heartbeat_operator.recording import UnknownToken

KEY = ("ops", "backup")
PATH = monitor_path(*KEY)
DUE = datetime(2026, 11, 25, 5, 0, tzinfo=UTC)  # the hourly slot after referenceTime 04:00
ALERT = DUE + timedelta(minutes=5)
DELAY = 0.5


def monitor(*, generation: int = 1, status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "heartbeat.dev/v1alpha1",
        "kind": "HeartbeatMonitor",
        "metadata": {
            "name": "backup",
            "namespace": "ops",
            "uid": "m-uid",
            "generation": generation,
            "creationTimestamp": "2026-11-25T03:00:00Z",
        },
        "spec": {"schedule": "0 * * * *", "grace": "5m"},
        "status": {
            "tokenHash": "sha256:x",
            "observedGeneration": 1,
            "activeSince": "2026-11-25T03:00:00Z",
            "referenceTime": "2026-11-25T04:00:00Z",
            "state": "Healthy",
            "stateSince": "2026-11-25T04:00:00Z",
            **(status or {}),
        },
    }


class NoTokenWork:
    def needs_work(self, entry: MonitorEntry) -> bool:
        return False


class FakeJudge:
    """Answers ``answer`` and records each call's ``until``."""

    def __init__(self, answer: Judging | None = None) -> None:
        self.answer = answer or Judging()
        self.calls: list[datetime] = []

    async def __call__(
        self, entry: MonitorEntry, spec: MonitorSpec, record: Record, until: datetime
    ) -> Judging:
        assert isinstance(spec, MonitorSpec) and isinstance(record, Record)
        self.calls.append(until)
        return self.answer


class Leader:
    def __init__(self, judge: FakeJudge | None, now: datetime, **monitor_kw: Any) -> None:
        self.kube = FakeKube()
        self.table = MonitorTable()
        self.table.upsert(self.kube.add(PATH, monitor(**monitor_kw)))
        self.now = now
        self.writer = Writer(
            self.kube,  # type: ignore[arg-type]
            self.table,
            WriterConfig(deadline_delay=DELAY),
            now=lambda: self.now,
        )
        self.changes: list[Change] = []
        write = self.writer.write

        async def recording(key: Key, change: Change, **kw: Any) -> Written:
            self.changes.append(change)
            return await write(key, change, **kw)

        self.writer.write = recording  # type: ignore[method-assign]
        self.scheduler = Scheduler(
            self.table,
            self.writer,
            NoTokenWork(),  # type: ignore[arg-type]
            deadline_delay=DELAY,
            now=lambda: self.now,
            judge=judge,
            clock=lambda: self.now.timestamp(),
        )

    def status_writes(self) -> int:
        return self.kube.writes.count(("PUT", "heartbeatmonitors/status"))

    def wakes_at(self) -> float | None:
        return self.scheduler._scheduled.get(KEY)

    @property
    def status(self) -> dict[str, Any]:
        return self.kube.objects[PATH]["status"]


def wake(at: datetime) -> float:
    return at.timestamp() + DELAY + WAKE_MARGIN


def woken_for(deadline: datetime) -> datetime:
    """The leader's clock when it wakes for ``deadline``: ``until`` is then just past it."""
    return deadline + timedelta(seconds=DELAY + WAKE_MARGIN)


async def test_the_judge_is_asked_only_when_a_deadline_is_due() -> None:
    judge = FakeJudge()
    leader = Leader(judge, now=datetime(2026, 11, 25, 4, 30, tzinfo=UTC))
    await leader.scheduler.reconcile(KEY)  # the first write completes the status
    leader.now = datetime(2026, 11, 25, 4, 59, 59, tzinfo=UTC)
    await leader.scheduler.reconcile(KEY)
    assert judge.calls == []  # nothing due before 05:00
    assert leader.wakes_at() == wake(DUE)
    # Woken for 05:00 (Late): asked with the instant deadlines are settled up to
    leader.now = woken_for(DUE)
    await leader.scheduler.reconcile(KEY)
    assert judge.calls == [leader.now - timedelta(seconds=DELAY)]
    assert leader.status["state"] == "Grace"  # judged Late
    assert leader.wakes_at() == wake(ALERT)


async def test_no_judge_while_a_spec_edit_is_not_observed_yet() -> None:
    judge = FakeJudge(Judging(hold_until=DUE + timedelta(seconds=10)))
    leader = Leader(judge, now=woken_for(DUE), generation=2)
    await leader.scheduler.reconcile(KEY)
    assert judge.calls == []


async def test_a_hold_reschedules_without_writing() -> None:
    hold = DUE + timedelta(seconds=10)
    judge = FakeJudge(Judging(hold_until=hold))
    leader = Leader(judge, now=woken_for(DUE))
    await leader.scheduler.reconcile(KEY)
    assert len(judge.calls) == 1
    assert leader.status_writes() == 0 and leader.changes == []
    assert leader.status["state"] == "Healthy"  # not judged Late (Grace) yet
    assert leader.wakes_at() == wake(hold)
    # at the hold's end the judge lets it be judged: Late, written once
    judge.answer = Judging()
    leader.now = woken_for(hold)
    await leader.scheduler.reconcile(KEY)
    assert leader.status_writes() == 1
    assert leader.status["state"] == "Grace"


async def test_what_the_judge_says_is_folded_in_one_change_before_the_deadline() -> None:
    created = DUE + timedelta(seconds=1)
    pending = JobPending(
        time=DUE,
        uid="j5",
        name="backup-j5",
        created=created,
        cause="Job backup-j5 created 05:00:01 UTC; Pod backup-j5-x7k Pending for 5m: "
        "ImagePullBackOff: image registry.invalid/backup:1",
        scheduled_time=DUE,
    )
    skipped = SlotSkipped(DUE, DUE - timedelta(hours=1), "not a real cause: order kept")
    judge = FakeJudge(Judging((pending, skipped)))
    leader = Leader(judge, now=woken_for(DUE))
    await leader.scheduler.reconcile(KEY)
    assert leader.changes == [Change(inputs=(pending, skipped))]
    assert leader.status_writes() == 1
    # The pending start was folded before the deadline: the slot is not Late, and it is
    # judged at its alertTime next.
    assert leader.status["state"] == "Healthy"
    assert [p["jobUid"] for p in leader.status["pendingStarts"]] == ["j5"]
    assert leader.status["pendingStarts"][0]["dueTime"] == format_time(DUE)
    assert leader.wakes_at() == wake(ALERT)


# --- each transition's Event exists, whoever wrote it (issue 18 item 3) ---------------------


def events_posted(leader: Leader) -> list[str]:
    return [o["reason"] for p, o in leader.kube.objects.items() if "/events/" in p]


#: A second after a first ping's transition was written (by whichever replica).
FIRST_PING_SEEN = datetime(2026, 11, 25, 4, 10, 1, tzinfo=UTC)


def leader_after_first_ping() -> Leader:
    """A leader holding a monitor whose newest transition is a first ping (FirstPing)."""
    first_ping = {
        "time": "2026-11-25T04:10:00Z",
        "state": "Healthy",
        "reason": "PingReceived",
        "message": "first ping",
        "eventReason": "FirstPing",
    }
    return Leader(FakeJudge(), now=FIRST_PING_SEEN, status={"recentTransitions": [first_ping]})


async def test_the_leader_posts_the_event_of_a_transition_whose_writer_died() -> None:
    # A follower wrote FirstPing and was killed before its Event (DESIGN 9.6).
    now = FIRST_PING_SEEN
    leader = leader_after_first_ping()
    leader.scheduler.events = EventKeeper(leader.kube, own_events)  # type: ignore[arg-type]
    await leader.scheduler.reconcile(KEY)
    assert events_posted(leader) == []  # its writer gets a few seconds to post it
    settled = now + EVENT_SETTLE
    assert leader.wakes_at() == wake(settled)
    leader.now = settled
    await leader.scheduler.reconcile(KEY)
    assert events_posted(leader) == ["FirstPing"]
    leader.now = settled + timedelta(seconds=30)
    await leader.scheduler.reconcile(KEY)  # checked: not posted again, nothing to wake for
    assert leader.kube.writes.count(("POST", "events")) == 1
    assert leader.wakes_at() == wake(DUE)


async def test_an_event_its_writer_posted_is_not_posted_twice() -> None:
    now = FIRST_PING_SEEN
    leader = leader_after_first_ping()
    keeper = EventKeeper(leader.kube, own_events)  # type: ignore[arg-type]
    leader.scheduler.events = keeper
    entry = leader.table.get(KEY)
    assert entry is not None
    for body in missing_events(own_events(entry)[0], entry.status, now):
        leader.kube.add(f"{event_path('ops')}/{body['metadata']['name']}", body)
    leader.now = now + EVENT_SETTLE
    await leader.scheduler.reconcile(KEY)
    await leader.scheduler.reconcile(KEY)
    assert events_posted(leader) == ["FirstPing"]  # the writer's, found there (409)


async def test_a_transition_whose_events_this_replica_posted_costs_no_check() -> None:
    # The leader wrote the transition itself and its writer posted the Event: nothing to
    # check (issue 14's bench: 10,000 Down transitions had cost 8,600 extra POSTs).
    now = FIRST_PING_SEEN
    leader = leader_after_first_ping()
    keeper = EventKeeper(leader.kube, own_events)  # type: ignore[arg-type]
    leader.scheduler.events = keeper
    entry = leader.table.get(KEY)
    assert entry is not None
    await leader.scheduler.reconcile(KEY)  # seen before the writer's report: pending
    keeper.posted(entry)
    leader.now = now + EVENT_SETTLE
    await leader.scheduler.reconcile(KEY)
    assert ("POST", "events") not in leader.kube.writes
    assert leader.wakes_at() == wake(DUE)


async def test_the_leaders_own_later_write_does_not_hide_an_older_missing_event() -> None:
    # A follower wrote FirstPing and died before posting it; within the 5 s the leader
    # wrote a newer transition itself and posted its Events. FirstPing's must still come.
    leader = leader_after_first_ping()
    keeper = EventKeeper(leader.kube, own_events)  # type: ignore[arg-type]
    leader.scheduler.events = keeper
    await leader.scheduler.reconcile(KEY)  # FirstPing seen: its check is pending
    entry = leader.table.get(KEY)
    assert entry is not None
    newest = entry.status["recentTransitions"][0]
    failed = {
        **newest,
        "time": format_time(parse_time(newest["time"]) + timedelta(seconds=2)),
        "state": "Down",
        "reason": "Failed",
        "message": "failed; 1 of failureThreshold 1",
        "eventReason": "Failed",
    }
    status = {**entry.status, "recentTransitions": [failed, *entry.status["recentTransitions"]]}
    keeper.posted(SimpleNamespace(key=KEY, cronjob=None, status=status))
    leader.now = FIRST_PING_SEEN + EVENT_SETTLE
    await leader.scheduler.reconcile(KEY)
    assert "FirstPing" in events_posted(leader)


def own_events(entry: MonitorEntry) -> list[InvolvedObject]:
    return [InvolvedObject(entry.namespace, entry.name, entry.uid)]


# --- one path per deadline, on a fake clock (issue 14 item 2) --------------------------------


def status_reads(monkeypatch: Any) -> list[int]:
    """Counts how often a status is read back into a ``Record`` (each fold reads once)."""
    count = [0]
    real = Record.from_status.__func__  # type: ignore[attr-defined]

    def counting(cls: type[Record], *args: Any, **kwargs: Any) -> Record:
        count[0] += 1
        return real(cls, *args, **kwargs)  # type: ignore[no-any-return]

    monkeypatch.setattr(Record, "from_status", classmethod(counting))
    return count


async def test_nothing_due_is_one_fold_no_write_and_a_wake_at_the_next_deadline(
    monkeypatch: Any,
) -> None:
    leader = Leader(None, now=datetime(2026, 11, 25, 4, 30, tzinfo=UTC))
    await leader.scheduler.reconcile(KEY)  # completes the status (a first write)
    writes = leader.status_writes()
    reads = status_reads(monkeypatch)
    leader.now = datetime(2026, 11, 25, 4, 40, tzinfo=UTC)
    await leader.scheduler.reconcile(KEY)
    assert (reads[0], leader.status_writes()) == (1, writes)  # the one fold
    assert leader.wakes_at() == wake(DUE)


async def test_a_due_deadline_is_written_once_and_the_write_says_when_to_wake(
    monkeypatch: Any,
) -> None:
    leader = Leader(None, now=datetime(2026, 11, 25, 4, 30, tzinfo=UTC))
    await leader.scheduler.reconcile(KEY)
    writes = leader.status_writes()
    reads = status_reads(monkeypatch)
    leader.now = woken_for(DUE)
    await leader.scheduler.reconcile(KEY)
    # the fold that found it due, the write's fold: no third read to learn the wake
    assert (reads[0], leader.status_writes()) == (2, writes + 1)
    assert leader.status["state"] == "Grace"
    assert leader.wakes_at() == wake(ALERT)
    leader.now = woken_for(ALERT)
    await leader.scheduler.reconcile(KEY)
    assert leader.status["state"] == "Down"  # while Down, the next slot's alert time
    assert leader.wakes_at() == wake(ALERT + timedelta(hours=1))


async def test_the_loop_wakes_each_monitor_at_its_time_on_the_fake_clock() -> None:
    leader = Leader(FakeJudge(), now=datetime(2026, 11, 25, 4, 30, tzinfo=UTC))
    scheduler = leader.scheduler
    leader.table.synced = True
    scheduler.set_leading(True)
    try:
        await wait_until(lambda: leader.wakes_at() == wake(DUE))
        writes = leader.status_writes()
        leader.now = woken_for(DUE) - timedelta(seconds=1)  # not yet: nothing is due
        scheduler._mark_due()
        assert KEY not in scheduler.work.pending(MONITORS) and leader.wakes_at() == wake(DUE)
        leader.now = woken_for(DUE)
        scheduler._wake.set()  # the real loop would have slept until then
        await wait_until(lambda: leader.status["state"] == "Grace")
        await wait_until(lambda: leader.wakes_at() == wake(ALERT))
        assert leader.status_writes() == writes + 1
    finally:
        await scheduler.stop()


class FailingJudge(FakeJudge):
    async def __call__(
        self, entry: MonitorEntry, spec: MonitorSpec, record: Record, until: datetime
    ) -> Judging:
        raise ApiError(0, "Unreachable", "ClientConnectorError")


async def test_a_reconcile_that_fails_is_retried_on_the_clock_not_at_once() -> None:
    leader = Leader(FailingJudge(), now=woken_for(DUE))
    await leader.scheduler._reconcile(KEY)
    assert leader.wakes_at() == leader.now.timestamp() + RETRY_DELAY


class JudgeOfADeletedMonitor(FakeJudge):
    async def __call__(
        self, entry: MonitorEntry, spec: MonitorSpec, record: Record, until: datetime
    ) -> Judging:
        raise UnknownToken("monitor is gone")  # its write was answered 404


async def test_a_monitor_deleted_while_judged_is_neither_an_error_nor_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    leader = Leader(JudgeOfADeletedMonitor(), now=woken_for(DUE))
    await leader.scheduler._reconcile(KEY)
    assert leader.wakes_at() is None  # nothing left to wake for
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def wait_until(condition: Any, timeout: float = 5.0) -> None:
    async def probe() -> bool | None:
        return True if condition() else None

    await async_wait_for(probe, timeout=timeout, what="the scheduler")
