"""Leadership by Lease (DESIGN 9.1): acquire, expiry judged by the follower's own clock,
stepping down after 6 s without renewal, release on SIGTERM."""

from __future__ import annotations

import asyncio
import time

from tests.support.waiting import async_wait_for
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


async def test_a_leader_whose_renewal_hangs_stops_leading_at_the_renew_deadline():
    """A black-holed API server: the renewal neither succeeds nor fails (the client's own
    timeout is 10 s). The leader still stops at 6 s (scaled here by 1/20), not after the
    request gives up, while a follower may take over at the 8 s duration."""

    class Hanging(FakeKube):
        hang = False

        async def get(self, path, **kwargs):  # type: ignore[no-untyped-def]
            if self.hang:
                await asyncio.Event().wait()  # black-holed: no answer, ever
            return await super().get(path, **kwargs)

    fake, changes = Hanging(), []
    config = LeaseConfig(
        namespace="ops",
        name="heartbeat-operator",
        identity="a",
        duration=0.4,
        renew_interval=0.1,
        renew_deadline=0.3,
    )
    leader = Leadership(fake, config, on_change=lambda on: changes.append((on, time.monotonic())))  # type: ignore[arg-type]
    stop = asyncio.Event()
    task = asyncio.create_task(leader.run(stop))
    await async_wait_for(lambda: _true(bool(changes)), timeout=2, what="leading")
    fake.hang = True
    last_renewal = time.monotonic()
    await async_wait_for(lambda: _true(len(changes) == 2), timeout=2, what="stepping down")
    stop.set()
    await task
    (lost, at) = changes[1]
    assert lost is False
    # The deadline (0.3), not whenever the request gives up: some room for a busy machine.
    assert at - last_renewal < 0.45


async def _true(value: bool) -> bool:
    return value
