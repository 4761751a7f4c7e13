"""The operator out of cluster with credentials that rotate (issue 13 items 11 and 12).

A kubeconfig whose user is an ``exec`` credential plugin (as EKS, GKE and AKS kubelogin
write them) or a ``tokenFile``: the token is a real one minted for a ServiceAccount of the
local control plane, bound to a Secret so that deleting the Secret revokes it. The
operator runs as its own process; it must start, serve pings, and keep serving them after
the token was rotated and the old one revoked.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from heartbeat_operator import devcluster
from tests.integration.operator_process import Monitors, condition, http, isolated
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

#: A minimal exec plugin: the token the "cloud" currently hands out, as an ExecCredential
#: of the apiVersion asked for; each run leaves a line in runs.log.
PLUGIN = """\
#!{python}
import json, os
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "runs.log"), "a") as log:
    log.write("run\\n")
asked = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
token = open(os.path.join(here, "current-token")).read().strip()
print(json.dumps({{"apiVersion": asked["apiVersion"], "kind": "ExecCredential",
                  "status": {{"token": token}}}}))
"""


class ServiceAccount:
    """A ServiceAccount bound to cluster-admin; its tokens bound to Secrets (revocable)."""

    def __init__(self, kubectl, namespace: str) -> None:
        self.kubectl = kubectl
        self.namespace = namespace
        self.name = "exec-user"
        self.binding = f"heartbeat-test-{uuid.uuid4().hex[:10]}"
        kubectl("create", "serviceaccount", self.name, "-n", namespace)
        kubectl(
            "create",
            "clusterrolebinding",
            self.binding,
            "--clusterrole=cluster-admin",
            f"--serviceaccount={namespace}:{self.name}",
        )

    def mint(self, secret: str) -> str:
        self.kubectl("create", "secret", "generic", secret, "-n", self.namespace)
        return str(
            self.kubectl(
                "create",
                "token",
                self.name,
                "-n",
                self.namespace,
                "--bound-object-kind=Secret",
                f"--bound-object-name={secret}",
                "--duration=1h",
            ).stdout.strip()
        )

    def revoke(self, secret: str) -> None:
        self.kubectl("delete", "secret", secret, "-n", self.namespace)

    def delete(self) -> None:
        self.kubectl("delete", "clusterrolebinding", self.binding, check=False)


@pytest.fixture
def account(kubectl, namespace: str) -> Iterator[ServiceAccount]:
    sa = ServiceAccount(kubectl, namespace)
    try:
        yield sa
    finally:
        sa.delete()


def write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def kubeconfig(directory: Path, cluster: devcluster.Cluster, user: dict[str, object]) -> Path:
    path = directory / "config"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "remote",
        "contexts": [{"name": "remote", "context": {"cluster": "remote", "user": "remote"}}],
        "clusters": [
            {
                "name": "remote",
                "cluster": {
                    "server": cluster.server,
                    "certificate-authority": str(cluster.ca_cert),
                },
            }
        ],
        "users": [{"name": "remote", "user": user}],
    }
    write_private(path, yaml.safe_dump(config))
    return path


@pytest.mark.parametrize(
    "style",
    ["exec-v1", "exec-v1beta1", "tokenFile"],
)
def test_the_operator_keeps_working_across_a_token_rotation(
    style: str,
    dev_cluster: devcluster.Cluster,
    account: ServiceAccount,
    api_client,
    namespace: str,
    operator_factory,
    tmp_path: Path,
) -> None:
    kube = tmp_path / "kube"
    kube.mkdir()
    first = account.mint("bound-first")
    write_private(kube / "current-token", first)
    if style.startswith("exec"):
        plugin = kube / "plugin.py"
        plugin.write_text(PLUGIN.format(python=sys.executable))
        plugin.chmod(0o755)
        version = style.removeprefix("exec-")
        user: dict[str, object] = {
            "exec": {
                "apiVersion": f"client.authentication.k8s.io/{version}",
                "command": "./plugin.py",  # relative to the kubeconfig, as client-go reads it
                "interactiveMode": "Never",
            }
        }
    else:
        user = {"tokenFile": "current-token"}
    config = kubeconfig(kube, dev_cluster, user)

    op = operator_factory.start(*isolated(namespace), kubeconfig=config)
    monitors = Monitors(api_client, namespace)
    monitors.create("nightly", {"period": "1h"})
    wait_for(
        lambda: condition(monitors.status("nightly"), "Ready").get("status") == "True",
        timeout=15,
        what="Ready",
    )
    url = monitors.url("nightly")
    assert http(url).status == 200

    # The cloud hands out a new token and revokes the old one.
    write_private(kube / "current-token", account.mint("bound-second"))
    account.revoke("bound-first")

    # The API server refuses the old token (its token cache may hold it up to 10 s); the
    # Lease renewals every 2 s meet the 401 first.
    wait_for(lambda: "(401)" in op.log_text(), timeout=30, what="the old token refused")
    assert http(url).status == 200
    monitors.absorbed("nightly", 2)  # the ping after the rotation reaches status too
    assert op.is_running()
    log = op.log_text()
    if style.startswith("exec"):
        assert len((kube / "runs.log").read_text().splitlines()) >= 2
    assert first not in log
    assert (kube / "current-token").read_text() not in log
