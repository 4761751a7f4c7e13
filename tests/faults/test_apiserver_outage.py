"""Issue 18, scenario 2: the kube-apiserver stops answering, or dies, under load.

On a control plane of this session's own (``private_plane``; the default one is shared):
two replicas, a steady ping load with every reply recorded. Then

- SIGSTOP of the kube-apiserver for 30 s (SIGCONT in ``finally``): connections hang,
  writes time out, and the receiver answers ``503`` after its wait (DESIGN 9.13);
- SIGKILL of the kube-apiserver, one replica SIGKILLed and started again while it is down
  (its token index cannot load), and the kube-apiserver started again ~20 s later.

Contract: a ``503`` is never stored (a client retries it: it would count twice), a ``200``
is always stored, nothing is stored twice, and a valid token never gets ``404`` (a replica
that cannot know the token yet answers ``503``).
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
from tests.support.waiting import WaitTimeout, wait_for

RATE = 12.0
STOPPED_FOR = 30.0  # s of SIGSTOP
DOWN_FOR = 20.0  # s between the kill and the restart


def hold(seconds: float, load: Load) -> None:
    """Keep the fault in place for ``seconds`` while the load runs (a deadline that is
    expected to pass: the condition is that the load stops on its own, which it must not)."""
    try:
        wait_for(lambda: load.exhausted, timeout=seconds, interval=0.5, what="the fault window")
    except WaitTimeout:
        return
    raise AssertionError("the load ran out of monitors during the fault")


def check(ledger: Ledger) -> None:
    ledger.report()
    expect(
        ledger,
        [
            ("a 503 was stored", not ledger.stored_503s),
            ("a 200 was not stored", not ledger.unstored_acks),
            ("a ping was stored twice", ledger.duplicates == 0),
            ("a 404 for a valid token", ledger.n404 == 0),
            ("pingCount disagrees with the run ids stored", not ledger.uncountable),
            ("the load got no 200 at all", ledger.acks > 0),
        ],
    )


def finish(scenario: str, load: Load, plane, namespace: str, **extra) -> Ledger:
    statuses = settle(plane.api_client, namespace, quiet=8.0, timeout=90.0)
    events = first_ping_events(plane.api_client, namespace)
    return Ledger(
        scenario,
        load.shots,
        statuses,
        events_expected=sum(1 for s in statuses.values() if s.get("pingCount")),
        events_posted=sum(events.values()),
        extra=extra,
    )


@pytest.mark.fault_long
def test_apiserver_sigstop_under_load(private_plane, private_operators, private_namespace):
    monitors = Monitors(private_plane.api_client, private_namespace)
    replicas = Replicas(private_operators, isolated(private_namespace))
    replicas.leader()
    targets = make_monitors(monitors, monitors_needed(RATE, STOPPED_FOR + 30))
    load = Load(targets, replicas.route, rate=RATE)
    load.start()
    try:
        load.wait_answers(int(RATE * 6), timeout=30)
        private_plane.stop_apiserver()
        try:
            hold(STOPPED_FOR, load)
        finally:
            private_plane.continue_apiserver()
        private_plane.start_apiserver()  # returns once it answers again
        load.wait_answers(int(RATE * 8), timeout=60)
    finally:
        load.stop()
        private_plane.continue_apiserver()
    check(finish("apiserver-sigstop-30s", load, private_plane, private_namespace))


@pytest.mark.fault_long
def test_apiserver_kill_and_restart_under_load(private_plane, private_operators, private_namespace):
    monitors = Monitors(private_plane.api_client, private_namespace)
    replicas = Replicas(private_operators, isolated(private_namespace))
    replicas.leader()
    targets = make_monitors(monitors, monitors_needed(RATE, DOWN_FOR + 40))
    load = Load(targets, replicas.route, rate=RATE)
    load.start()
    try:
        load.wait_answers(int(RATE * 6), timeout=30)
        private_plane.kill_apiserver()
        try:
            hold(DOWN_FOR / 4, load)
            # A replica restarted while the API is away: it cannot list the monitors, so
            # it does not know any token yet. Pings reach it as soon as it listens.
            replicas.kill("b")
            replicas.restart("b", wait_ready=False, route_at_once=True)
            hold(DOWN_FOR * 3 / 4, load)
        finally:
            private_plane.start_apiserver()
        replicas.ops["b"].wait_ready(60)
        load.wait_answers(int(RATE * 8), timeout=60)
    finally:
        load.stop()
        private_plane.start_apiserver()
    check(finish("apiserver-kill-restart", load, private_plane, private_namespace))
