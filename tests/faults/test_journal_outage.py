"""Issue 15 with issue 18's ledger: with the journal on, a ping is acknowledged only once
its journal write landed.

A quick scenario (``make test`` runs it): one replica with ``--journal`` on a control plane
of this session's own, a steady ping load, the kube-apiserver SIGSTOPped for 12 s. The
journal cannot be written: a ping gets ``503`` after the 5 s write timeout (DESIGN 9.13,
10.8.12), and if the write carrying it lands after the SIGCONT, the next conditional write
voids it before anyone absorbs it. Contract, as for the status path: a ``503`` is never
counted, a ``200`` is always counted, nothing twice.
"""

from __future__ import annotations

import pytest

from tests.faults.harness import Load, Replicas, make_monitors, monitors_needed
from tests.faults.test_apiserver_outage import check, finish, hold
from tests.integration.operator_process import Monitors, isolated

RATE = 8.0
STOPPED_FOR = 12.0


@pytest.mark.quick_fault
def test_journal_acknowledges_nothing_while_the_apiserver_is_stopped(
    private_plane, private_operators, private_namespace
):
    monitors = Monitors(private_plane.api_client, private_namespace)
    replicas = Replicas(private_operators, isolated(private_namespace, "--journal"), names=("a",))
    replicas.leader()
    targets = make_monitors(monitors, monitors_needed(RATE, STOPPED_FOR + 25))
    load = Load(targets, replicas.route, rate=RATE)
    load.start()
    try:
        load.wait_answers(int(RATE * 4), timeout=30)
        private_plane.stop_apiserver()
        try:
            hold(STOPPED_FOR, load)
        finally:
            private_plane.continue_apiserver()
        load.wait_answers(int(RATE * 6), timeout=60)
    finally:
        load.stop()
        private_plane.continue_apiserver()
    ledger = finish("journal-apiserver-sigstop-12s(quick)", load, private_plane, private_namespace)
    check(ledger)
    assert ledger.n503 > 0, "no ping was refused while the journal could not be written"
