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
        assert monitors.absorbed("nightly", 1)["pingCount"] == 1  # none of the 503s counted
        assert http(f"{op.url}/ping/{'u' * 43}").status == 404  # loaded: unknown is 404
    finally:
        op.stop()
        gate.close()


def test_tokens_planted_in_ping_bodies_reach_no_event_status_or_log(
    operator_factory, monitors, namespace
):
    op = operator_factory.start(*isolated(namespace))
    monitors.create("backup", {"period": "1h", "grace": "5m"})
    monitors.create("other", {"period": "1h", "grace": "5m"})
    own, other = token_of(monitors, "backup"), token_of(monitors, "other")
    trace = (
        f"* Trying 10.0.0.7:8080...\n> POST /ping/{own}/fail HTTP/1.1\n"
        f"> Host: heartbeat\n< HTTP/1.1 200 OK\n"
        f"+ HEARTBEAT_TOKEN={own}\n"
        f"+ wget -q -O- https://hb.example.com/hb/{other}/start\n"
        "pg_dump: error: connection refused\n"
    )
    reply = http(f"{op.url}/ping/{own}/fail", method="POST", data=trace.encode())
    assert (reply.status, reply.body) == (200, "OK")

    status = monitors.absorbed("backup", 1)
    assert status["state"] == "Down"
    warning = wait_for(
        lambda: [e for e in monitors.events("backup") if e.type == "Warning"],
        timeout=10,
        what="the failure's Warning Event",
    )
    stored = [
        status["lastOutput"]["body"],
        *(p.get("body", "") for p in status.get("recentPings") or ()),
        *(e.message for e in warning),
    ]
    assert "pg_dump: error" in status["lastOutput"]["body"]  # the output is still there
    assert "/ping/<redacted>/fail" in status["lastOutput"]["body"]
    for text in stored:
        assert own not in text and other not in text, text
    assert own not in repr(status) and other not in repr(status)
    op.stop()
    log = op.log_text()
    assert "POST /ping/<redacted>/fail" in log  # the access line is there, redacted
    assert own not in log and other not in log
