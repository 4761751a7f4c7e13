"""Replica Leases and outages of the operator (DESIGN 10.5, 10.8.9): what the leader
records in its Lease's annotation, from Leases in the fake API; ``now`` passed in."""

from __future__ import annotations

import datetime

import pytest
from tests.unit.kube.fakes import FakeKube

from heartbeat_operator.domain.outages import Outage
from heartbeat_operator.domain.timefmt import parse_time
from heartbeat_operator.engine.api import ApiError
from heartbeat_operator.kube.leasing import Leadership, LeaseConfig, micro_time
from heartbeat_operator.kube.replicas import OUTAGES_ANNOTATION, Replicas

NS = "ops"
LEASES = f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases"
T0 = parse_time("2026-03-01T00:00:00Z")
S = datetime.timedelta(seconds=1)


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class Wall:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime.datetime:
        return self.now


def replica(fake: FakeKube, wall: Wall, identity: str, **kw) -> Replicas:
    leadership = Leadership(fake, LeaseConfig(NS, "heartbeat-operator", identity))  # type: ignore[arg-type]
    return Replicas(fake, leadership, namespace=NS, identity=identity, now=wall, **kw)  # type: ignore[arg-type]


def left_behind(fake: FakeKube, name: str, first: datetime.datetime, last: datetime.datetime):
    """A replica Lease a crashed replica left behind."""
    fake.add(
        f"{LEASES}/heartbeat-replica-{name}",
        {
            "metadata": {
                "name": f"heartbeat-replica-{name}",
                "labels": {"heartbeat.dev/replica": "true"},
            },
            "spec": {
                "holderIdentity": name,
                "acquireTime": micro_time(first),
                "renewTime": micro_time(last),
            },
        },
    )


async def test_every_replica_stopped_cleanly_the_outage_runs_from_the_release_to_the_restart():
    fake, wall = FakeKube(), Wall()
    wall.now = now()  # the leadership Lease is written with the real clock
    old = replica(fake, wall, "old-1")
    await old.renew()
    assert await old.leadership.try_acquire_or_renew()
    wall.now += 2 * S
    await old.renew()
    await old.release()  # clean shutdown: the replica Lease is released, not deleted ...
    await old.leadership.release()  # ... and the leadership Lease keeps its release time
    released = parse_time(fake.objects[f"{LEASES}/heartbeat-operator"]["spec"]["renewTime"])
    assert fake.objects[f"{LEASES}/heartbeat-replica-old-1"]["spec"]["holderIdentity"] == ""
    last = max(released, wall.now)

    wall.now = last.replace(microsecond=0) + datetime.timedelta(seconds=75)
    new = replica(fake, wall, "new-1")
    assert await new.leadership.try_acquire_or_renew()  # free: taken at once
    await new.prepare()
    # Times as the annotation keeps them (DESIGN 9.18: milliseconds).
    start = last.replace(microsecond=last.microsecond // 1000 * 1000)
    assert new.outages() == [Outage(start, wall.now)]
    await new.leadership.try_acquire_or_renew()  # the next renewal writes the annotation
    annotations = fake.objects[f"{LEASES}/heartbeat-operator"]["metadata"]["annotations"]
    assert OUTAGES_ANNOTATION in annotations


async def test_a_restart_of_every_replica_after_a_crash_finds_no_outage_while_one_served(
    caplog: pytest.LogCaptureFixture,
):
    # b crashed at T0 (its Lease left behind); a served on alone for 60 s, then every
    # replica was stopped cleanly and started again 3 s later. Nothing was uncovered for
    # 10 s: a slot in that minute must be judged, not OperatorUnavailable (a released
    # Lease that was deleted took a's minute with it, and the crash to the release
    # became an "outage").
    fake, wall = FakeKube(), Wall()
    base = now().replace(microsecond=0) - 60 * S  # the leadership Lease: the real clock
    left_behind(fake, "b-1", base - 300 * S, base)
    a = replica(fake, wall, "a-1")
    wall.now = base - 200 * S
    await a.renew()
    assert await a.leadership.try_acquire_or_renew()
    for step in range(-198, 61, 2):
        wall.now = base + step * S
        await a.renew()
    await a.release()
    await a.leadership.release()

    wall.now = base + 63 * S
    new = replica(fake, wall, "a-2")
    assert await new.leadership.try_acquire_or_renew()
    await new.prepare()
    assert new.outages() == []
    assert await new.record() == []
    assert "recorded an outage" not in caplog.text


async def test_an_outage_is_announced_once_not_at_every_recording(
    caplog: pytest.LogCaptureFixture,
):
    fake, wall = FakeKube(), Wall()
    left_behind(fake, "crashed", T0 - 300 * S, T0 + datetime.timedelta(microseconds=123456))
    wall.now = T0 + 40 * S + datetime.timedelta(microseconds=654321)
    new = replica(fake, wall, "new-1")
    assert await new.leadership.try_acquire_or_renew()
    await new.prepare()
    for step in (42, 44, 46):
        wall.now = T0 + step * S
        await new.renew()
        await new.record()
        await new.leadership.try_acquire_or_renew()
    assert caplog.text.count("recorded an outage") == 1


async def test_a_crashed_replicas_lease_marks_the_start_and_is_deleted_once_stale():
    fake, wall = FakeKube(), Wall()
    left_behind(fake, "crashed", T0 - 300 * S, T0)
    wall.now = T0 + 40 * S
    new = replica(fake, wall, "new-1")
    await new.prepare()
    assert new.leadership.annotations[OUTAGES_ANNOTATION] == (
        '[{"start":"2026-03-01T00:00:00Z","end":"2026-03-01T00:00:40Z"}]'
    )
    wall.now = T0 + 11 * 60 * S
    await new.renew()
    await new.record()
    assert f"{LEASES}/heartbeat-replica-crashed" not in fake.objects
    assert f"{LEASES}/heartbeat-replica-new-1" in fake.objects


async def test_the_api_server_unreachable_from_every_replica_is_an_outage():
    fake, wall = FakeKube(), Wall()
    only = replica(fake, wall, "only-1")
    await only.prepare()
    assert only.outages() == []
    fake.fail_with = ApiError(503, "ServiceUnavailable", "unreachable")
    for step in (2, 4, 6, 8, 10, 12):
        wall.now = T0 + step * S
        with pytest.raises(ApiError):
            await only.renew()
    # Before the API answers again, a fold already counts the open interval.
    assert only.outages() == [Outage(T0, T0 + 12 * S)]
    fake.fail_with = None
    wall.now = T0 + 15 * S
    await only.renew()
    await only.record()
    assert only.outages() == [Outage(T0, T0 + 15 * S)]
    assert only.leadership.annotations[OUTAGES_ANNOTATION].count("start") == 1


async def test_no_outage_while_another_replica_renewed():
    fake, wall = FakeKube(), Wall()
    a, b = replica(fake, wall, "a-1"), replica(fake, wall, "b-1")
    await a.renew()
    await b.renew()
    # a cannot reach the API for 20 s (its gap is in its own Lease) while b renews on.
    for step in range(2, 21, 2):
        wall.now = T0 + step * S
        await b.renew()
    wall.now = T0 + 20 * S
    await a.renew()
    assert (
        fake.objects[f"{LEASES}/heartbeat-replica-a-1"]["metadata"]["annotations"][
            "heartbeat.dev/gaps"
        ]
        == '[{"start":"2026-03-01T00:00:00Z","end":"2026-03-01T00:00:20Z"}]'
    )
    assert await b.record() == []


async def test_an_outage_is_kept_while_a_window_overlapping_it_may_be_open():
    fake, wall = FakeKube(), Wall()
    earliest: list[datetime.datetime | None] = [None]
    left_behind(fake, "crashed", T0 - 60 * S, T0)
    wall.now = T0 + 60 * S
    new = replica(fake, wall, "new-1", earliest_open=lambda: earliest[0])
    await new.prepare()
    assert len(new.outages()) == 1
    for step in range(62, 401, 2):  # renewing on, past the 5 min an outage is kept anyway
        wall.now = T0 + step * S
        await new.renew()
    earliest[0] = T0 + 30 * S  # a monitor's current slot is due inside it: kept
    await new.record()
    assert len(new.outages()) == 1
    earliest[0] = T0 + 61 * S  # every monitor has moved past it: pruned
    await new.record()
    assert new.outages() == []


async def test_a_replica_starting_after_every_replica_stopped_knows_the_outage_at_once():
    """Before the leader records anything, a ping this replica writes is already judged
    with the outage: its start looks at the Leases first (readiness waits for it)."""
    fake, wall = FakeKube(), Wall()
    left_behind(fake, "crashed", T0 - 60 * S, T0)
    wall.now = T0 + 30 * S
    follower = replica(fake, wall, "f-1")
    assert not follower.started
    await follower.renew()
    await follower.start()
    assert follower.started
    assert follower.outages() == [Outage(T0, T0 + 30 * S)]
    assert OUTAGES_ANNOTATION not in follower.leadership.annotations  # not the leader's


async def test_a_restart_with_the_same_identity_still_finds_the_outage():
    """``--identity`` fixed: the new process's first write meets its previous life's Lease;
    what that covered is kept before it is written over."""
    fake, wall = FakeKube(), Wall()
    left_behind(fake, "fixed", T0 - 60 * S, T0)
    wall.now = T0 + 45 * S
    again = replica(fake, wall, "fixed")
    with pytest.raises(ApiError):
        await again.renew()  # 409: it exists
    await again.renew()
    await again.start()
    assert again.outages() == [Outage(T0, T0 + 45 * S)]
