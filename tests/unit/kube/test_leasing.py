"""Leadership by Lease (DESIGN 9.1): acquire, expiry judged by the follower's own clock,
stepping down after 6 s without renewal, release on SIGTERM."""

from __future__ import annotations

from tests.unit.kube.fakes import FakeKube

from heartbeat_operator.kube.leasing import Leadership, LeaseConfig

PATH = "/apis/coordination.k8s.io/v1/namespaces/ops/leases/heartbeat-operator"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def replica(fake: FakeKube, clock: Clock, name: str, changes: list) -> Leadership:
    config = LeaseConfig(namespace="ops", name="heartbeat-operator", identity=name)
    return Leadership(fake, config, clock=clock, on_change=lambda on: changes.append((name, on)))  # type: ignore[arg-type]


async def test_one_leader_then_a_takeover_after_the_lease_expires():
    fake, clock, changes = FakeKube(), Clock(), []
    a, b = replica(fake, clock, "a", changes), replica(fake, clock, "b", changes)
    assert await a.try_acquire_or_renew()
    assert a.is_leader() and fake.objects[PATH]["spec"]["holderIdentity"] == "a"
    assert not await b.try_acquire_or_renew()  # held and fresh

    clock.now += 2
    assert await a.try_acquire_or_renew()  # renewal: b sees the Lease change again
    assert not await b.try_acquire_or_renew()

    clock.now += 6  # a could not renew for 6 s: it stops leading
    assert not a.is_leader()
    assert not await b.try_acquire_or_renew()  # only 6 s since b saw it change
    clock.now += 2
    assert await b.try_acquire_or_renew()  # 8 s by b's own clock: expired
    spec = fake.objects[PATH]["spec"]
    assert (spec["holderIdentity"], spec["leaseTransitions"], spec["leaseDurationSeconds"]) == (
        "b",
        1,
        8,
    )
    assert ("a", True) in changes and ("b", True) in changes


async def test_release_hands_over_at_once_and_keeps_the_leaders_notes():
    fake, clock, changes = FakeKube(), Clock(), []
    a, b = replica(fake, clock, "a", changes), replica(fake, clock, "b", changes)
    assert await a.try_acquire_or_renew()
    a.annotations["note"] = "kept"
    assert await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()
    await a.release()
    assert not a.is_leader()
    assert "holderIdentity" not in fake.objects[PATH]["spec"]
    assert await b.try_acquire_or_renew()  # released: no need to wait out 8 s
    assert b.annotations == {"note": "kept"}
    assert changes[-2:] == [("a", False), ("b", True)]
