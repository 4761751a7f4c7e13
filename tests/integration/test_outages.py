"""Our own downtime is not the job's failure (DESIGN 10.5, 10.8.9; issue 13 item 5).

A monitor pinged on time, then the operator cannot store pings across the whole window of
its next slot (``nextDueTime`` to ``alertTime``): every replica stopped, or the API server
stopped (SIGSTOP). When it is back: no ``Missed``, the state never Down,
``heartbeat_monitor_up`` 1, exactly one Normal ``OperatorUnavailable`` Event naming the
outage, and the outage recorded on the leadership Lease. Then the job pings again and all
is as before. Short periods keep each test under a minute.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from heartbeat_operator import devcluster
from tests.integration.conftest import OperatorFactory, OperatorProcess
from tests.integration.operator_process import Monitors, at, condition, http, isolated
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

# period 10s, grace 15s: the slot after a ping at t0 is due t0+10 s and alerts at t0+25 s;
# an outage from t0+~1 s to past t0+25 s covers its whole window (and more than 10 s).
SPEC = {"period": "10s", "grace": "15s"}


def up_value(op: OperatorProcess, namespace: str, name: str) -> str | None:
    with urllib.request.urlopen(op.metrics_url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    pattern = rf'^heartbeat_monitor_up\{{namespace="{namespace}",name="{name}"\}} (\S+)$'
    match = re.search(pattern, text, re.M)
    return match.group(1) if match else None


def wait_past(instant: float, margin: float, timeout: float = 60.0) -> None:
    """Wait (polling the clock) until ``margin`` s after ``instant`` (a Unix time)."""
    wait_for(lambda: time.time() > instant + margin, timeout=timeout, what="the window to pass")


def pinged_then_stopped_across_the_window(monitors: Monitors, op: OperatorProcess, name: str):
    """Create the monitor, ping it, and return its status and its next slot's alertTime."""
    url = monitors.url(name)
    assert http(url).status == 200
    status, _ = monitors.wait_state(name, "Healthy", timeout=10)
    return url, status, at(status["alertTime"]).timestamp()


def assert_not_counted(
    monitors: Monitors, op: OperatorProcess, namespace: str, name: str, url: str
) -> None:
    """What the user sees after the outage: one OperatorUnavailable Event, nothing counted."""
    event = wait_for(
        lambda: next((e for e in monitors.events(name) if e.reason == "OperatorUnavailable"), None),
        timeout=20,
        what="the OperatorUnavailable Event",
    )
    status = monitors.status(name)
    print("status after the outage:", status["state"], condition(status, "Healthy"))
    print("Event:", event.type, event.reason, event.message)
    assert event.type == "Normal"
    assert "the operator was unavailable from" in event.message
    assert status["state"] != "Down"
    assert (status["missedRuns"], status["consecutiveFailures"]) == (0, 0)
    assert up_value(op, namespace, name) == "1"
    # The job runs again: counted as usual.
    assert http(url).status == 200
    status, _ = monitors.wait_state(name, "Healthy", timeout=10, reason="PingReceived")
    assert status["successStreak"] == 2
    reasons = monitors.event_reasons(name)
    print("Events:", reasons)
    assert reasons.count("OperatorUnavailable") == 1
    assert not {"Missed", "NeverPinged", "Late"} & set(reasons)
    assert up_value(op, namespace, name) == "1"


def recorded_outages(api_client: k8s.ApiClient, namespace: str) -> list[dict[str, str]]:
    lease = k8s.CoordinationV1Api(api_client).read_namespaced_lease("heartbeat-operator", namespace)
    return json.loads((lease.metadata.annotations or {}).get("heartbeat.dev/outages") or "[]")


def test_every_replica_stopped_across_a_slot_is_not_the_jobs_failure(
    operator_factory, api_client, namespace
):
    monitors = Monitors(api_client, namespace)
    flags = isolated(namespace)
    first = operator_factory.start(*flags)
    monitors.create("backup", SPEC)
    url, status, alert = pinged_then_stopped_across_the_window(monitors, first, "backup")
    assert up_value(first, namespace, "backup") == "1"
    assert first.stop() == 0  # every replica: there is only this one
    stopped = time.time()
    print(f"stopped {stopped - alert:+.1f} s from the slot's alertTime {status['alertTime']}")
    wait_past(alert, 1.0)
    second = operator_factory.start(*flags)
    print(f"started again {time.time() - alert:+.1f} s from alertTime")
    url = url.replace(first.url, second.url)
    wait_for(lambda: second.metrics_url and _leads(second), timeout=20, what="leading")
    assert_not_counted(monitors, second, namespace, "backup", url)
    outages = wait_for(lambda: recorded_outages(api_client, namespace), timeout=10, what="record")
    print("recorded on the leadership Lease:", outages)
    assert len(outages) == 1
    assert at(outages[0]["start"]).timestamp() <= stopped + 1
    assert at(outages[0]["end"]).timestamp() >= alert


def _leads(op: OperatorProcess) -> bool:
    with urllib.request.urlopen(op.metrics_url + "/metrics", timeout=5) as response:
        return bool(re.search(r"^heartbeat_leader 1", response.read().decode(), re.M))


# --- the API server stopped ------------------------------------------------------------


@pytest.fixture
def private_cluster(tmp_path: Path) -> Iterator[devcluster.Cluster]:
    """A control plane of this test's own: its kube-apiserver gets SIGSTOP, which must
    not stall other sessions sharing the default one."""
    state_dir = tmp_path / "dev"  # its lock file sits beside it: pytest's to remove
    try:
        yield devcluster.up(state_dir=state_dir)
    finally:
        devcluster.down(state_dir=state_dir)


def test_the_api_server_stopped_across_a_slot_is_not_the_jobs_failure(
    private_cluster: devcluster.Cluster, tmp_path: Path
):
    cluster = private_cluster
    api_client = k8s_config.new_client_from_config(config_file=str(cluster.kubeconfig))
    factory = OperatorFactory(kubeconfig=cluster.kubeconfig, log_dir=tmp_path)
    apiserver = next(p for p in cluster.processes if p.name == "kube-apiserver")
    namespace = "outage-apiserver"
    k8s.CoreV1Api(api_client).create_namespace(
        k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=namespace))
    )
    try:
        monitors = Monitors(api_client, namespace)
        op = factory.start(*isolated(namespace))
        monitors.create("backup", SPEC)
        url, _, alert = pinged_then_stopped_across_the_window(monitors, op, "backup")
        wait_for(lambda: _leads(op), timeout=20, what="leading")
        os.kill(apiserver.pid, signal.SIGSTOP)
        try:
            stopped = time.time()
            print(f"kube-apiserver stopped {stopped - alert:+.1f} s from alertTime")
            wait_past(alert, 2.0)
        finally:
            os.kill(apiserver.pid, signal.SIGCONT)
        print(f"kube-apiserver continued {time.time() - alert:+.1f} s from alertTime")
        assert op.is_running()
        op.wait_ready(timeout=30)
        assert_not_counted(monitors, op, namespace, "backup", url)
        outages = wait_for(
            lambda: recorded_outages(api_client, namespace), timeout=10, what="record"
        )
        print("recorded on the leadership Lease:", outages)
        assert len(outages) == 1
        assert at(outages[0]["end"]).timestamp() >= alert
    finally:
        factory.stop_all()
        api_client.close()
