"""Issue 18, scenario 4: a follower killed right after its writes loses no Event.

The replica that stores a ping also writes the transition it causes (here ``FirstPing`` on
a fresh monitor) and posts its Event. Each round pings a batch of fresh monitors through
the follower (the replica that does not lead), and SIGKILLs it 0-0.4 s after its last
``200``; a new follower replaces it. Contract (DESIGN 9.6, each transition's Event exactly
once): every stored ``FirstPing`` has its Event within 10 s of the kill — posted by the
follower before it died or by the leader after — and none twice.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading

import pytest

from tests.faults.harness import (
    SUMMARIES,
    Load,
    Replicas,
    first_ping_events,
    journal_on,
    list_statuses,
    make_monitors,
    monitors_needed,
)
from tests.integration.operator_process import Monitors, http, isolated
from tests.support.waiting import WaitTimeout, wait_for

#: When the follower dies, in s after the last 200 of a round, round by round. Issue 18
#: saw Events lost at 0.4 s under load; the shorter delays are the same fault closer to
#: the write (on an idle machine the Event is usually out within 0.4 s).
KILL_AFTER = (0.0, 0.4, 0.1, 0.2)
EVENT_DEADLINE = 10.0  # s after the kill
#: With the journal on (issue 15), a 200 means stored in the follower's journal: its
#: statuses show the pings once the leader has absorbed the dead replica's journal (its
#: Lease expires after 8 s, checked every 2 s), so "stored" is counted after that.
JOURNAL_ABSORB_DEADLINE = 30.0
RATE = 12.0  # background pings/s


def run_rounds(operator_factory, api_client, namespace, *, rounds: int, batch: int, name: str):
    monitors = Monitors(api_client, namespace)
    replicas = Replicas(operator_factory, isolated(namespace))
    leader = replicas.leader()
    follower = next(n for n in replicas.ops if n != leader)
    # Steady load on other monitors through both replicas, as in production (issue 18
    # saw the lost Events under 12 pings/s): a busy replica posts its Events later.
    background = Load(
        make_monitors(monitors, monitors_needed(RATE, rounds * 6 + 10), prefix="load-"),
        replicas.route,
        rate=RATE,
    )
    background.start()
    try:
        return _rounds(
            api_client, namespace, monitors, replicas, leader, follower, rounds, batch, name
        )
    finally:
        background.stop()


def _rounds(api_client, namespace, monitors, replicas, leader, follower, rounds, batch, name):
    expected = posted = twice = 0
    missing: list[str] = []
    for round_no in range(rounds):
        targets = make_monitors(monitors, batch, prefix=f"r{round_no}-")
        op = replicas.ops[follower]
        with concurrent.futures.ThreadPoolExecutor(max_workers=batch) as pool:
            replies = list(pool.map(lambda t, base=op.url: http(base + t.path).status, targets))
        assert replies == [200] * batch, f"round {round_no}: follower answered {replies}"
        # The kill is timed from the last 200: a scheduled action, not a wait.
        killer = threading.Timer(
            KILL_AFTER[round_no % len(KILL_AFTER)], replicas.kill, args=(follower,)
        )
        killer.start()
        killer.join()
        names = {t.name for t in targets}
        if journal_on():

            def absorbed(names=names) -> bool:
                statuses = list_statuses(api_client, namespace)
                return all(statuses.get(n, {}).get("pingCount") for n in names)

            with contextlib.suppress(WaitTimeout):  # counted below
                wait_for(absorbed, timeout=JOURNAL_ABSORB_DEADLINE, interval=0.25, what="absorbed")
        statuses = list_statuses(api_client, namespace)
        stored = {n for n in names if statuses.get(n, {}).get("pingCount")}
        expected += len(stored)

        def all_posted(stored=stored) -> bool:
            return all(first_ping_events(api_client, namespace)[n] >= 1 for n in stored)

        with contextlib.suppress(WaitTimeout):  # counted below: missing ones are the finding
            wait_for(all_posted, timeout=EVENT_DEADLINE, interval=0.25, what="FirstPing Events")
        seen = first_ping_events(api_client, namespace)
        got = {n for n in stored if seen[n] >= 1}
        posted += len(got)
        twice += sum(seen[n] - 1 for n in got if seen[n] > 1)
        missing += sorted(stored - got)
        replicas.restart(follower)
        assert replicas.leader() == leader, "leadership moved: the scenario needs the same leader"
    line = (
        f"FAULT {name}{' [journal]' if journal_on() else ''}: rounds={rounds} "
        f"monitors={rounds * batch} "
        f"events expected={expected} posted={posted} missing={len(missing)} "
        f"duplicates={twice} (FirstPing, within {EVENT_DEADLINE:.0f} s of the follower's kill"
        f"{' or of the absorption of its journal' if journal_on() else ''})"
    )
    print("\n" + line)
    SUMMARIES.append(line)
    assert expected == rounds * batch, f"{line}\nnot every 200 was stored"
    assert not missing and twice == 0, f"{line}\nno FirstPing Event for: {missing[:20]}"


@pytest.mark.quick_fault
def test_a_follower_killed_after_its_writes_loses_no_event(operator_factory, api_client, namespace):
    run_rounds(
        operator_factory, api_client, namespace, rounds=2, batch=20, name="follower-kill(quick)"
    )


@pytest.mark.fault_long
def test_followers_killed_after_their_writes_lose_no_event(operator_factory, api_client, namespace):
    run_rounds(operator_factory, api_client, namespace, rounds=8, batch=25, name="follower-kill")
