"""Fixtures for tests against the real local control plane (etcd, kube-apiserver,
kube-controller-manager; ``heartbeat_operator.devcluster``). Never a mock of the API.

Session-wide:

``dev_cluster`` -> ``devcluster.Cluster``
    Reuses a running control plane (e.g. one from ``heartbeat-operator dev up``) or starts
    one, with the CRDs of ``deploy/crds/`` applied. At the end of the session it is stopped
    only if this session started it and no other test session is using it (DESIGN 9.5).
    Tip: run ``heartbeat-operator dev up`` once; every later session starts in a second.
    ``dev_cluster.service_account_kubeconfig(ns, name, path)`` mints a TokenRequest token
    for a ServiceAccount into a kubeconfig (for RBAC tests).
``kubeconfig`` -> ``Path`` of the admin kubeconfig (client cert in ``system:masters``).
``api_client`` -> ``kubernetes.client.ApiClient`` built from that kubeconfig.
``kubectl(*args, check=True, input=None, timeout=60)`` -> ``CompletedProcess[str]``
    Runs the kubectl built with the control plane (same version) against it.

Per test:

``namespace`` -> ``str``: a fresh namespace, deleted after the test (not waited for).
``operator_factory`` -> ``OperatorFactory``: start ``heartbeat-operator run`` as a separate
    process::

        op = operator_factory.start()              # free --port/--metrics-port, waits /readyz
        op = operator_factory.start("--namespace", namespace, env={"HEARTBEAT_X": "1"},
                                    kubeconfig=sa_kubeconfig, wait_ready=False)
        op.url, op.metrics_url, op.port, op.metrics_port, op.log_path, op.log_text()
        op.wait_ready(timeout=30); op.stop() (SIGTERM, SIGKILL after 10 s; returns the exit
        code); op.kill() (SIGKILL); op.is_running()

    Command: ``<venv>/bin/heartbeat-operator run --host 127.0.0.1 --port P --metrics-port M
    *args`` with ``KUBECONFIG`` set and ``PYTHONUNBUFFERED=1``; stdout and stderr go to
    ``log_path`` under the test's ``tmp_path``. At the end of the test every process still
    running is stopped; when the test failed, each log's tail is printed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from heartbeat_operator import devcluster
from heartbeat_operator.devcluster import processes
from tests.support.waiting import wait_for

KubectlRunner = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    # Remember each phase's report on the item, so teardown can tell a failed test.
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def dev_cluster() -> Iterator[devcluster.Cluster]:
    with devcluster.shared() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def kubeconfig(dev_cluster: devcluster.Cluster) -> Path:
    return dev_cluster.kubeconfig


@pytest.fixture(scope="session")
def api_client(kubeconfig: Path) -> Iterator[k8s.ApiClient]:
    api = k8s_config.new_client_from_config(config_file=str(kubeconfig))
    try:
        yield api
    finally:
        api.close()


@pytest.fixture(scope="session")
def kubectl(dev_cluster: devcluster.Cluster) -> KubectlRunner:
    def run(
        *args: str, check: bool = True, input: str | None = None, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        result = dev_cluster.kubectl(*args, check=False, input=input, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} exited {result.returncode}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result

    return run


@pytest.fixture
def namespace(api_client: k8s.ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    # Namespace names: DNS labels of at most 63 characters.
    stem = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())
    name = f"t-{stem[:40].strip('-')}-{uuid.uuid4().hex[:8]}"
    core = k8s.CoreV1Api(api_client)
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        # The namespace controller finishes the deletion; no test waits for it.
        core.delete_namespace(name, propagation_policy="Background")


# --- the operator as a separate process -------------------------------------------------


def _operator_command() -> list[str]:
    script = Path(sys.executable).parent / "heartbeat-operator"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "heartbeat_operator"]


@dataclass
class OperatorProcess:
    """One running ``heartbeat-operator run``."""

    process: subprocess.Popen[bytes]
    port: int
    metrics_port: int
    log_path: Path
    argv: list[str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def is_running(self) -> bool:
        return self.process.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _readyz(self) -> bool:
        if not self.is_running():
            raise AssertionError(
                f"operator exited with {self.process.returncode} before /readyz was ok; "
                f"log tail:\n{processes.tail(self.log_path, 40)}"
            )
        try:
            with urllib.request.urlopen(f"{self.metrics_url}/readyz", timeout=1.0) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout: float = 30.0) -> None:
        try:
            wait_for(self._readyz, timeout=timeout, interval=0.1, what="operator /readyz")
        except AssertionError as error:
            raise AssertionError(
                f"{error}\nlog tail:\n{processes.tail(self.log_path, 40)}"
            ) from None

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM; SIGKILL if still running after ``timeout`` s. Returns the exit code."""
        if self.is_running():
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()

    def kill(self) -> int:
        if self.is_running():
            self.process.kill()
        return self.process.wait()


@dataclass
class OperatorFactory:
    kubeconfig: Path
    log_dir: Path
    started: list[OperatorProcess] = field(default_factory=list)

    def start(
        self,
        *args: str,
        kubeconfig: Path | None = None,
        env: Mapping[str, str] | None = None,
        wait_ready: bool = True,
        ready_timeout: float = 30.0,
        name: str = "operator",
    ) -> OperatorProcess:
        port, metrics_port = processes.free_ports(2)
        argv = [
            *_operator_command(),
            "run",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--metrics-port",
            str(metrics_port),
            *args,
        ]
        full_env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig or self.kubeconfig),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        log_path = self.log_dir / f"{name}-{len(self.started)}.log"
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=full_env
            )
        operator = OperatorProcess(process, port, metrics_port, log_path, argv)
        self.started.append(operator)
        if wait_ready:
            operator.wait_ready(ready_timeout)
        return operator

    def stop_all(self) -> None:
        for operator in self.started:
            operator.stop()


@pytest.fixture
def operator_factory(
    kubeconfig: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[OperatorFactory]:
    factory = OperatorFactory(kubeconfig=kubeconfig, log_dir=tmp_path)
    try:
        yield factory
    finally:
        factory.stop_all()
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            for operator in factory.started:
                print(f"\n--- {operator.log_path} (tail)\n{processes.tail(operator.log_path, 60)}")
