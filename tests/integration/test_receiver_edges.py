"""The receiver's edges against the real control plane (issue 18 items 4-7): no 404 for a
valid token while the index loads, no token from a ping body in Events, status or logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.operator_process import Monitors, http, isolated
from tests.support.tcpgate import TcpGate
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def monitors(api_client, namespace):
    return Monitors(api_client, namespace)


def token_of(monitors: Monitors, name: str) -> str:
    return monitors.secret(monitors.wait_ready(name)["tokenSecretName"])["token"]


def test_a_valid_token_gets_503_not_404_until_the_index_is_loaded(
    operator_factory, monitors, namespace, kubeconfig, dev_cluster, tmp_path: Path
):
    first = operator_factory.start(*isolated(namespace))
    monitors.create("nightly", {"period": "1h", "grace": "5m"})
    token = token_of(monitors, "nightly")
    first.stop()

    # The API server does not answer this operator: its index cannot load (issue 18 item 4).
    host, port = dev_cluster.server.removeprefix("https://").rsplit(":", 1)
    gate = TcpGate(host, int(port), held=True)
    try:
        config = gate.kubeconfig(kubeconfig, tmp_path / "gated.kubeconfig")
        op = operator_factory.start(*isolated(namespace), kubeconfig=config, wait_ready=False)
        wait_for(lambda: http(f"{op.url}/healthz").status == 200, timeout=30, what="listening")
        assert http(f"{op.metrics_url}/readyz").status == 503

        replies = [http(f"{op.url}/ping/{token}") for _ in range(3)]
        assert [r.status for r in replies] == [503, 503, 503], [r.body for r in replies]
        assert all(r.headers.get("Retry-After") == "5" for r in replies)
        assert "loading" in replies[0].body
        assert token not in replies[0].body
        # An impossible token is still a plain 404: nothing to wait for.
        assert http(f"{op.url}/ping/short").status == 404
    finally:
        gate.release()
    try:
        reply = wait_for(
            lambda: (r := http(f"{op.url}/ping/{token}")).status == 200 and r,
            timeout=60,
            interval=0.5,
            what="200 once the index is loaded",
        )
        assert reply.body == "OK"
        assert monitors.status("nightly")["pingCount"] == 1  # none of the 503s counted
        assert http(f"{op.url}/ping/{'u' * 43}").status == 404  # loaded: unknown is 404
    finally:
        op.stop()
        gate.close()
