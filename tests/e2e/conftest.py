"""Fixtures for the end-to-end suite: any cluster named by KUBECONFIG, the operator already
running there (installed from the chart by `make e2e-kind`, or out of cluster by
tests/e2e/run-local.sh). Not part of `make test` (pyproject's testpaths leave it out).

Environment:
  KUBECONFIG                     the cluster; without it every test is skipped, saying why
  HEARTBEAT_E2E_PING_BASE        base URL the pings go to instead of the Secrets' URLs
  HEARTBEAT_E2E_SERVICE          <namespace>/<service>: port-forward to the ping Service
                                 and ping through it (the Secrets name in-cluster addresses)
  HEARTBEAT_E2E_LEASE_NAMESPACE  where the operator's Lease is (checked when set)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tests.e2e.scenarios import Monitors
from tests.support.waiting import wait_for


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.environ.get("KUBECONFIG"):
        return
    skip = pytest.mark.skip(
        reason="KUBECONFIG is not set: the e2e suite runs against the cluster it names "
        "(make e2e-kind, or tests/e2e/run-local.sh for the local control plane)"
    )
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def api_client() -> Iterator[k8s.ApiClient]:
    api = k8s_config.new_client_from_config(config_file=os.environ["KUBECONFIG"])
    try:
        yield api
    finally:
        api.close()


@pytest.fixture(scope="session")
def ping_base() -> Iterator[str | None]:
    explicit = os.environ.get("HEARTBEAT_E2E_PING_BASE")
    service = os.environ.get("HEARTBEAT_E2E_SERVICE")
    if explicit or not service:
        yield explicit or None
        return
    namespace, name = service.split("/", 1)
    kubectl = shutil.which("kubectl")
    assert kubectl, "HEARTBEAT_E2E_SERVICE needs kubectl on PATH for the port-forward"
    forward = subprocess.Popen(
        [kubectl, "port-forward", "-n", namespace, f"service/{name}", ":8080"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert forward.stdout is not None
        stdout = forward.stdout

        def forwarded_port() -> str | None:
            line = stdout.readline()  # blocks until kubectl says where it listens
            match = re.search(r"Forwarding from 127\.0\.0\.1:(\d+)", line)
            return match.group(1) if match else None

        port = wait_for(forwarded_port, timeout=30, interval=0, what="kubectl port-forward")
        yield f"http://127.0.0.1:{port}"
    finally:
        forward.terminate()
        forward.wait(timeout=10)


@pytest.fixture
def namespace(api_client: k8s.ApiClient) -> Iterator[str]:
    core = k8s.CoreV1Api(api_client)
    name = f"e2e-{uuid.uuid4().hex[:10]}"
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture
def monitors(api_client: k8s.ApiClient, namespace: str, ping_base: str | None) -> Monitors:
    return Monitors(
        api_client,
        namespace,
        ping_base=ping_base,
        lease_namespace=os.environ.get("HEARTBEAT_E2E_LEASE_NAMESPACE") or None,
    )
