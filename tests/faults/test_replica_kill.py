"""Issue 18, scenario 1: SIGKILL of a replica under load.

Two operator replicas share a steady ping load (every reply recorded, each ping with its
own ``rid``); one is SIGKILLed mid-load (the leader, then the other), and a new process
replaces it. Contract: every ``200`` is stored (no unstored 200), nothing is stored twice,
and nothing is stored that was answered 503. A ping cut off by the kill (no answer) may or
may not be stored: a client retries it, so it is only counted.
"""

from __future__ import annotations

import pytest

from tests.faults.harness import (
    Ledger,
    Load,
    Replicas,
    expect,
    first_ping_events,
    make_monitors,
    monitors_needed,
    settle,
)
from tests.integration.operator_process import Monitors, isolated

RATE = 12.0  # pings/s: modest, two cores are shared


def run_kills(operator_factory, api_client, namespace, *, kills: int, scenario: str) -> None:
    monitors = Monitors(api_client, namespace)
    replicas = Replicas(operator_factory, isolated(namespace))
    replicas.leader()
    # ~8 s of load before, between and after the kills, plus restarts.
    seconds = 8 * (kills + 1) + 6 * kills
    targets = make_monitors(monitors, monitors_needed(RATE, seconds))
    load = Load(targets, replicas.route, rate=RATE)
    load.start()
    try:
        load.wait_answers(int(RATE * 6), timeout=30)
        for _ in range(kills):
            victim = replicas.leader()  # the harder case: it also holds the Lease
            replicas.kill(victim)
            load.wait_answers(int(RATE * 4), timeout=30)
            replicas.restart(victim)
            load.wait_answers(int(RATE * 4), timeout=30)
    finally:
        load.stop()
    statuses = settle(api_client, namespace)
    events = first_ping_events(api_client, namespace)
    ledger = Ledger(
        scenario,
        load.shots,
        statuses,
        events_expected=sum(1 for s in statuses.values() if s.get("pingCount")),
        events_posted=sum(events.values()),
        extra={"kills": kills},
    )
    ledger.report()
    expect(
        ledger,
        [
            ("a 200 was not stored (acks <= stored)", not ledger.unstored_acks),
            ("a ping was stored twice", ledger.duplicates == 0),
            ("a 503 was stored", not ledger.stored_503s),
            ("a 404 for a valid token", ledger.n404 == 0),
            ("a run id stored that was never sent", not ledger.stored_unknown),
            ("pingCount disagrees with the run ids stored", not ledger.uncountable),
            ("the load got no 200 at all", ledger.acks > 0),
        ],
    )


@pytest.mark.quick_fault
def test_sigkill_of_the_leader_under_load_loses_and_doubles_no_ping(
    operator_factory, api_client, namespace
):
    run_kills(operator_factory, api_client, namespace, kills=1, scenario="replica-sigkill(quick)")


@pytest.mark.fault_long
def test_repeated_sigkills_under_load_lose_and_double_no_ping(
    operator_factory, api_client, namespace
):
    # Five: issue 15's "SIGKILLed mid-load five times" (the killed replica's journal is
    # replayed by the leader or by itself restarted).
    run_kills(operator_factory, api_client, namespace, kills=5, scenario="replica-sigkill x5")
