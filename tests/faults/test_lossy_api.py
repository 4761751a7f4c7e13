"""Issue 18, scenario 3: answers of the API server lost on the wire.

The operator's kubeconfig points at a TCP proxy in front of the kube-apiserver
(``LossyProxy``; TLS passes through). While the load runs, the proxy closes 3 % of the
connections after the client's request was forwarded and before the answer is relayed:
the write may have happened, and the operator cannot tell. Two replicas, steady pings,
each with its own ``rid``. Contract: nothing is stored twice (no run id twice in
``recentPings``, pingCount == the run ids stored), every ``200`` is stored, no ``503`` is.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from tests.faults.harness import (
    Ledger,
    Load,
    LossyProxy,
    Replicas,
    expect,
    first_ping_events,
    make_monitors,
    monitors_needed,
    settle,
)
from tests.integration.operator_process import Monitors, isolated

RATE = 12.0
DROP = 0.03  # of the API server's answers


def proxied_kubeconfig(kubeconfig: Path, proxy_port: int, path: Path) -> Path:
    config = yaml.safe_load(kubeconfig.read_text())
    for cluster in config["clusters"]:
        server = urlparse(cluster["cluster"]["server"])
        cluster["cluster"]["server"] = f"{server.scheme}://127.0.0.1:{proxy_port}"
    path.write_text(yaml.safe_dump(config))
    return path


def run_lossy(operator_factory, api_client, namespace, kubeconfig, tmp_path, *, seconds, scenario):
    server = urlparse(yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"])
    proxy = LossyProxy(server.hostname, server.port).start()
    try:
        operator_factory.kubeconfig = proxied_kubeconfig(
            kubeconfig, proxy.port, tmp_path / "proxied.kubeconfig"
        )
        monitors = Monitors(api_client, namespace)  # the test itself talks to the API directly
        replicas = Replicas(operator_factory, isolated(namespace))
        replicas.leader()
        targets = make_monitors(monitors, monitors_needed(RATE, seconds + 10))
        load = Load(targets, replicas.route, rate=RATE)
        load.start()
        try:
            load.wait_answers(int(RATE * 3), timeout=30)
            proxy.drop = DROP
            load.wait_answers(int(RATE * seconds * 0.8), timeout=seconds * 3)
            proxy.drop = 0.0
            load.wait_answers(int(RATE * 3), timeout=30)
        finally:
            load.stop()
            proxy.drop = 0.0
        statuses = settle(api_client, namespace)
        events = first_ping_events(api_client, namespace)
    finally:
        operator_factory.stop_all()
        proxy.close()
    ledger = Ledger(
        scenario,
        load.shots,
        statuses,
        events_expected=sum(1 for s in statuses.values() if s.get("pingCount")),
        events_posted=sum(events.values()),
        extra={"answers-dropped": proxy.dropped, "api-connections": proxy.connections},
    )
    ledger.report()
    expect(
        ledger,
        [
            ("a ping was stored twice", ledger.duplicates == 0),
            ("pingCount disagrees with the run ids stored", not ledger.uncountable),
            ("a 200 was not stored", not ledger.unstored_acks),
            ("a 503 was stored", not ledger.stored_503s),
            ("the proxy dropped no answer: nothing was tested", proxy.dropped > 0),
            ("the load got no 200 at all", ledger.acks > 0),
        ],
    )


@pytest.mark.quick_fault
def test_lost_api_answers_double_no_ping_quick(
    operator_factory, api_client, namespace, kubeconfig, tmp_path
):
    run_lossy(
        operator_factory,
        api_client,
        namespace,
        kubeconfig,
        tmp_path,
        seconds=20,
        scenario="lossy-api-3%-20s(quick)",
    )


@pytest.mark.fault_long
def test_lost_api_answers_double_no_ping(
    operator_factory, api_client, namespace, kubeconfig, tmp_path
):
    run_lossy(
        operator_factory,
        api_client,
        namespace,
        kubeconfig,
        tmp_path,
        seconds=60,
        scenario="lossy-api-3%-60s",
    )
