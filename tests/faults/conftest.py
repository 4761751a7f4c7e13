"""Fixtures of the fault suite (issue 18; tests/faults/README.md).

The shared control plane's fixtures are those of tests/integration/conftest.py (imported
here, not copied). Scenarios that stop or kill the kube-apiserver must not do it to the
control plane other sessions share: they get ``private_plane``, a control plane of their
own (started once per session in a temporary state directory, stopped at its end).
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from heartbeat_operator import devcluster
from heartbeat_operator.devcluster import processes
from tests.faults.harness import SUMMARIES
from tests.integration.conftest import (  # noqa: F401 (fixtures and the report hook)
    OperatorFactory,
    api_client,
    dev_cluster,
    kubeconfig,
    kubectl,
    namespace,
    operator_factory,
    pytest_runtest_makereport,
)
from tests.integration.operator_process import Monitors
from tests.support.waiting import wait_for


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SUMMARIES:
        terminalreporter.section("fault scenarios (issue 18)")
        for line in SUMMARIES:
            terminalreporter.write_line(line)


@dataclass
class PrivatePlane:
    """A control plane no other session uses: its kube-apiserver may be stopped or killed.

    Every fault is undone in the scenario's ``finally`` (SIGCONT, start again)."""

    cluster: devcluster.Cluster
    api_client: k8s.ApiClient
    apiserver: processes.ProcessRecord
    apiserver_argv: list[str]

    @property
    def state_dir(self) -> Path:
        return self.cluster.state_dir

    def stop_apiserver(self) -> None:
        processes.send_signal(self.apiserver, signal.SIGSTOP)

    def continue_apiserver(self) -> None:
        if processes.is_running(self.apiserver):
            processes.send_signal(self.apiserver, signal.SIGCONT)

    def kill_apiserver(self) -> None:
        processes.kill(self.apiserver)

    def start_apiserver(self) -> None:
        """Start it again if it is not running; return once it answers."""
        if not processes.is_running(self.apiserver):
            self.apiserver = devcluster.restart_process(
                "kube-apiserver", state_dir=self.state_dir, argv=self.apiserver_argv
            )
        wait_for(self.answers, timeout=90, interval=0.5, what="the kube-apiserver to answer")

    def answers(self) -> bool:
        try:
            k8s.CoreV1Api(self.api_client).list_namespace(limit=1, _request_timeout=2)
        except Exception:
            return False
        return True


@pytest.fixture(scope="session")
def private_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivatePlane]:
    state_dir = tmp_path_factory.mktemp("private-controlplane")
    cluster = devcluster.up(state_dir=state_dir)
    api = k8s_config.new_client_from_config(config_file=str(cluster.kubeconfig))
    try:
        apiserver = next(p for p in cluster.processes if p.name == "kube-apiserver")
        plane = PrivatePlane(cluster, api, apiserver, processes.argv(apiserver))
        yield plane
    finally:
        api.close()
        devcluster.down(state_dir=state_dir)


@pytest.fixture
def private_namespace(private_plane: PrivatePlane) -> Iterator[str]:
    name = f"fault-{uuid.uuid4().hex[:8]}"
    core = k8s.CoreV1Api(private_plane.api_client)
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        if private_plane.answers():
            core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture
def private_monitors(private_plane: PrivatePlane, private_namespace: str) -> Monitors:
    return Monitors(private_plane.api_client, private_namespace)


@pytest.fixture
def private_operators(
    private_plane: PrivatePlane, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[OperatorFactory]:
    factory = OperatorFactory(kubeconfig=private_plane.cluster.kubeconfig, log_dir=tmp_path)
    try:
        yield factory
    finally:
        factory.stop_all()
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            for operator in factory.started:
                print(f"\n--- {operator.log_path} (tail)\n{processes.tail(operator.log_path, 60)}")
