"""The pause API against the real API server (issue 16 item 2): real ServiceAccount tokens
from the TokenRequest API, judged by the real TokenReview and SubjectAccessReview.

- allowed: a ServiceAccount with a Role granting ``patch`` on exactly this monitor pauses
  it (``spec.paused``; ``?for=`` also ``spec.pausedUntil``), and resumes it; the operator
  shows Paused and posts the Events;
- denied (403): an account without that grant, or the same account on another monitor;
  the monitor is untouched;
- invalid (401): a token that is no token, and a real token for the API server's own
  audience instead of ``heartbeat-operator``.

No token ever shows in the operator's log.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from kubernetes import client as k8s

from heartbeat_operator import devcluster
from heartbeat_operator.domain.timefmt import parse_time
from tests.e2e.scenarios import Monitors, condition
from tests.integration.conftest import OperatorFactory, OperatorProcess

pytestmark = pytest.mark.integration

AUDIENCE = "heartbeat-operator"


@dataclass
class Reply:
    status: int
    body: str
    headers: dict[str, str]


def call(operator: OperatorProcess, path: str, token: str | None) -> Reply:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    request = urllib.request.Request(operator.url + path, method="POST", data=b"", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return Reply(response.status, response.read().decode(), dict(response.headers))
    except urllib.error.HTTPError as error:
        return Reply(error.code, error.read().decode(), dict(error.headers))


def api_path(namespace: str, name: str, action: str) -> str:
    return f"/api/v1/namespaces/{namespace}/heartbeatmonitors/{name}/{action}"


def token(dev_cluster: devcluster.Cluster, namespace: str, account: str, *audience: str) -> str:
    """A TokenRequest token, as a projected volume gives a Pod (``--audience`` likewise)."""
    flags = [f"--audience={a}" for a in audience]
    done = dev_cluster.kubectl("create", "token", account, "-n", namespace, *flags)
    return str(done.stdout.strip())


@pytest.fixture
def operator(operator_factory: OperatorFactory, namespace: str) -> OperatorProcess:
    return operator_factory.start("--namespace", namespace, "--lease-namespace", namespace)


@pytest.fixture
def monitors(api_client: k8s.ApiClient, namespace: str, operator: OperatorProcess) -> Monitors:
    m = Monitors(api_client, namespace)
    for name in ("queue-worker", "billing"):
        m.create(name, {"period": "1m"})
        m.wait_ready(name)
    return m


@pytest.fixture
def accounts(dev_cluster: devcluster.Cluster, namespace: str) -> None:
    """``deployer`` may patch heartbeatmonitor ``queue-worker`` and nothing else;
    ``bystander`` may do nothing."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "pause-queue-worker", "namespace": namespace},
        "rules": [
            {
                "apiGroups": ["heartbeat.dev"],
                "resources": ["heartbeatmonitors"],
                "resourceNames": ["queue-worker"],
                "verbs": ["patch"],
            }
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "deployer-pauses", "namespace": namespace},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": role["metadata"]["name"],
        },
        "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": namespace}],
    }
    for account in ("deployer", "bystander"):
        dev_cluster.kubectl("create", "serviceaccount", account, "-n", namespace)
    items = {"apiVersion": "v1", "kind": "List", "items": [role, binding]}
    dev_cluster.kubectl("apply", "-f", "-", input=json.dumps(items))


def test_allowed_token_pauses_for_a_while_and_resumes(
    dev_cluster: devcluster.Cluster,
    namespace: str,
    operator: OperatorProcess,
    monitors: Monitors,
    accounts: None,
) -> None:
    deployer = token(dev_cluster, namespace, "deployer", AUDIENCE)

    reply = call(operator, api_path(namespace, "queue-worker", "pause"), deployer)
    assert (reply.status, reply.body) == (200, f"paused {namespace}/queue-worker")
    assert monitors.get("queue-worker")["spec"]["paused"] is True
    monitors.wait_state("queue-worker", "Paused", "Paused")
    monitors.wait_event("queue-worker", "Paused")

    asked = datetime.now(UTC)
    reply = call(operator, api_path(namespace, "queue-worker", "pause") + "?for=30m", deployer)
    assert reply.status == 200, reply.body
    spec = monitors.get("queue-worker")["spec"]
    until = parse_time(spec["pausedUntil"])
    assert reply.body == f"paused {namespace}/queue-worker until {spec['pausedUntil']}"
    assert spec["paused"] is True
    assert asked + timedelta(minutes=30) - timedelta(seconds=5) <= until
    assert until <= datetime.now(UTC) + timedelta(minutes=30)
    # The operator takes the field as part of a valid spec (never InvalidSpec).
    generation = monitors.get("queue-worker")["metadata"]["generation"]
    status = monitors.wait(
        "queue-worker",
        lambda s: s.get("observedGeneration") == generation,
        "the timed pause observed",
    )
    assert condition(status, "Ready")["status"] == "True", status
    assert status["state"] == "Paused"

    reply = call(operator, api_path(namespace, "queue-worker", "resume"), deployer)
    assert (reply.status, reply.body) == (200, f"resumed {namespace}/queue-worker")
    spec = monitors.get("queue-worker")["spec"]
    assert spec["paused"] is False and "pausedUntil" not in spec
    monitors.wait("queue-worker", lambda s: s.get("state") == "New", "New again after resume")
    monitors.wait_event("queue-worker", "Resumed")

    log = operator.log_text()
    assert deployer not in log
    assert f"system:serviceaccount:{namespace}:deployer paused heartbeatmonitor" in log


def test_a_user_without_patch_is_denied_403_and_nothing_changes(
    dev_cluster: devcluster.Cluster,
    namespace: str,
    operator: OperatorProcess,
    monitors: Monitors,
    accounts: None,
) -> None:
    bystander = token(dev_cluster, namespace, "bystander", AUDIENCE)
    reply = call(operator, api_path(namespace, "queue-worker", "pause"), bystander)
    assert reply.status == 403
    assert reply.body.startswith(
        f"forbidden: system:serviceaccount:{namespace}:bystander may not patch "
        f"heartbeatmonitors.heartbeat.dev {namespace}/queue-worker"
    )
    # The deployer may patch queue-worker only: not billing, nor a monitor that isn't.
    deployer = token(dev_cluster, namespace, "deployer", AUDIENCE)
    for name in ("billing", "no-such-monitor"):
        reply = call(operator, api_path(namespace, name, "pause"), deployer)
        assert reply.status == 403, reply.body
        assert f"{namespace}/{name}" in reply.body
    for name in ("queue-worker", "billing"):
        assert monitors.get(name)["spec"]["paused"] is False
    log = operator.log_text()
    assert bystander not in log and deployer not in log


def test_an_invalid_token_is_401(
    dev_cluster: devcluster.Cluster,
    namespace: str,
    operator: OperatorProcess,
    monitors: Monitors,
    accounts: None,
) -> None:
    path = api_path(namespace, "queue-worker", "pause")
    # Not a token the API server issued.
    forged = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJtZSJ9.bm90LWEtc2lnbmF0dXJl"
    reply = call(operator, path, forged)
    assert reply.status == 401
    assert reply.body == (
        "unauthorized: the API server did not accept the bearer token: use a "
        "ServiceAccount token for audience heartbeat-operator that has not expired"
    )
    assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    # A real token of an account allowed to patch, but meant for the API server itself
    # (a Pod's default token): never accepted, so the receiver never needs to hold one.
    for_the_api_server = token(dev_cluster, namespace, "deployer")
    reply = call(operator, path, for_the_api_server)
    assert reply.status == 401, reply.body
    # No token at all.
    reply = call(operator, path, None)
    assert reply.status == 401
    assert "Authorization: Bearer" in reply.body
    assert monitors.get("queue-worker")["spec"]["paused"] is False
    log = operator.log_text()
    assert forged not in log and for_the_api_server not in log
