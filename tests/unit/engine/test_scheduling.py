"""The leader's reconcile asks the auto-wiring what the cluster says before it judges a
deadline (DESIGN 10.8.3): only when one is due, holding a judgement without writing, and
folding what it says in one status write. Against the fake of our ``KubeClient`` seam
(tests/unit/kube/fakes.py), a real ``Writer`` and a fake judge; ``now`` is passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.unit.kube.fakes import FakeKube

from heartbeat_operator.domain.inputs import JobPending, SlotSkipped
from heartbeat_operator.domain.records import Record
from heartbeat_operator.domain.specs import MonitorSpec
from heartbeat_operator.domain.timefmt import format_time
from heartbeat_operator.engine.api import event_path, monitor_path
from heartbeat_operator.engine.events import (
    EVENT_SETTLE,
    EventKeeper,
    InvolvedObject,
    missing_events,
)
from heartbeat_operator.engine.folding import Change
from heartbeat_operator.engine.monitors import Key, MonitorEntry, MonitorTable
from heartbeat_operator.engine.scheduling import WAKE_MARGIN, Judging, Scheduler
from heartbeat_operator.engine.writing import Writer, WriterConfig

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
    def __init__(self, judge: FakeJudge, now: datetime, **monitor_kw: Any) -> None:
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
        submit = self.writer.submit

        async def recording(key: Key, change: Change, **kw: Any) -> MonitorEntry:
            self.changes.append(change)
            return await submit(key, change, **kw)

        self.writer.submit = recording  # type: ignore[method-assign]
        self.scheduler = Scheduler(
            self.table,
            self.writer,
            NoTokenWork(),  # type: ignore[arg-type]
            deadline_delay=DELAY,
            now=lambda: self.now,
            judge=judge,
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


async def test_the_leader_posts_the_event_of_a_transition_whose_writer_died() -> None:
    # A follower wrote FirstPing and was killed before its Event (DESIGN 9.6).
    first_ping = {
        "time": "2026-11-25T04:10:00Z",
        "state": "Healthy",
        "reason": "PingReceived",
        "message": "first ping",
        "eventReason": "FirstPing",
    }
    now = datetime(2026, 11, 25, 4, 10, 1, tzinfo=UTC)
    leader = Leader(FakeJudge(), now=now, status={"recentTransitions": [first_ping]})
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
    first_ping = {
        "time": "2026-11-25T04:10:00Z",
        "state": "Healthy",
        "reason": "PingReceived",
        "message": "first ping",
        "eventReason": "FirstPing",
    }
    now = datetime(2026, 11, 25, 4, 10, 1, tzinfo=UTC)
    leader = Leader(FakeJudge(), now=now, status={"recentTransitions": [first_ping]})
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


def own_events(entry: MonitorEntry) -> list[InvolvedObject]:
    return [InvolvedObject(entry.namespace, entry.name, entry.uid)]
