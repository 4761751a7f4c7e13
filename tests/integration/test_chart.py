"""The rendered Helm chart, every option on, applied to the real API server.

The control plane has no kubelet and no scheduler, so the Deployment's Pods never run:
these tests check what the API server decides — every object is admitted (server-side
dry-run first, then for real), defaulted and stored as rendered — and what `helm install`
itself prints and leaves behind. Whether the operator works under the chart's RBAC is
tests/integration/test_rbac.py.

ServiceMonitor and PrometheusRule need the Prometheus Operator's CRDs, which this cluster
doesn't have. The `monitoring_crds` fixture installs minimal stand-ins of
servicemonitors/prometheusrules.monitoring.coreos.com (group, version, kinds and scope
exact; the schema preserves unknown fields) when no real ones exist, so those two objects
are admitted by the real API server like the rest instead of being checked client-side
only. The stand-ins are left in place: they are cluster-scoped and another test session may
be using them; a real Prometheus Operator install replaces them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.conftest import KubectlRunner
from tests.support.charts import (
    ALL_ON,
    CHART,
    CLUSTER_GRANTS,
    EXIT_CODE_GRANTS,
    LOG_GRANTS,
    NAMESPACED_GRANTS,
    PAUSE_API_GRANTS,
    grants,
    helm_binary,
    one,
    render_text,
    run_helm,
)
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

STAND_IN_KINDS = {"ServiceMonitor": "servicemonitors", "PrometheusRule": "prometheusrules"}


def stand_in_crd(kind: str, plural: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.monitoring.coreos.com",
            "labels": {"heartbeat.dev/test-stand-in": "true"},
        },
        "spec": {
            "group": "monitoring.coreos.com",
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "listKind": f"{kind}List"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                }
                            },
                        }
                    },
                }
            ],
        },
    }


@pytest.fixture(scope="module")
def monitoring_crds(kubectl: KubectlRunner) -> None:
    for kind, plural in STAND_IN_KINDS.items():
        name = f"{plural}.monitoring.coreos.com"
        if kubectl("get", "crd", name, check=False).returncode != 0:
            kubectl("apply", "-f", "-", input=json.dumps(stand_in_crd(kind, plural)))
        kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=30s")


@pytest.fixture
def release(kubectl: KubectlRunner) -> Iterator[str]:
    """A release name of its own; its cluster-scoped objects are deleted afterwards."""
    name = f"hb{uuid.uuid4().hex[:8]}"
    yield name
    kubectl(
        "delete",
        "clusterrole,clusterrolebinding,validatingwebhookconfiguration",
        "-l",
        f"app.kubernetes.io/instance={name}",
        "--ignore-not-found",
        "--wait=false",
    )


def objects(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def stored(kubectl: KubectlRunner, obj: dict[str, Any]) -> dict[str, Any]:
    """The object as the API server stored it."""
    meta = obj["metadata"]
    args = ["get", f"{obj['kind']}.{obj['apiVersion'].split('/')[0]}", meta["name"], "-o", "json"]
    if obj["apiVersion"] == "v1" or "/" not in obj["apiVersion"]:
        args[1] = obj["kind"]
    if "namespace" in meta:
        args += ["-n", meta["namespace"]]
    result: dict[str, Any] = json.loads(kubectl(*args).stdout)
    return result


@pytest.mark.parametrize(
    "extra",
    [{}, {"watchNamespaces": ["SELF"], "jobExitCodes": False}],
    ids=["cluster-wide", "watch-namespaces"],
)
def test_chart_with_every_option_applies(
    kubectl: KubectlRunner,
    namespace: str,
    release: str,
    monitoring_crds: None,
    extra: dict[str, Any],
) -> None:
    values = {**ALL_ON, **extra}
    if "watchNamespaces" in values:
        values["watchNamespaces"] = [namespace]
    else:
        # A cluster-wide webhook whose Service has no Pods would be called by every other
        # session's monitor writes (and where its address does not answer, delay each by
        # its timeout); the namespaced variant applies one limited to ours.
        values["webhook"] = {"enabled": False}
    text = render_text(values, release=release, namespace=namespace, include_crds=False)
    rendered = objects(text)
    assert {"ServiceMonitor", "PrometheusRule", "Ingress", "NetworkPolicy", "ConfigMap"} <= {
        o["kind"] for o in rendered
    }

    dry = kubectl("apply", "--dry-run=server", "-f", "-", input=text)
    assert dry.stdout.count("(server dry run)") == len(rendered), dry.stdout
    kubectl("apply", "--server-side", "-f", "-", input=text)

    for obj in rendered:
        got = stored(kubectl, obj)
        assert got["metadata"]["labels"]["app.kubernetes.io/instance"] == release
    deployment = stored(kubectl, one(rendered, "Deployment"))
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    role = stored(kubectl, one(rendered, "ClusterRole", f"{release}-heartbeat-operator"))
    # every option on includes captureLogs: pods/log get (issue 12)
    everywhere = (
        NAMESPACED_GRANTS | EXIT_CODE_GRANTS | LOG_GRANTS | CLUSTER_GRANTS | PAUSE_API_GRANTS
    )
    expected = (CLUSTER_GRANTS | PAUSE_API_GRANTS) if extra else everywhere
    assert grants(role["rules"]) == expected
    monitor = stored(kubectl, one(rendered, "ServiceMonitor"))
    assert monitor["spec"]["endpoints"][0]["honorLabels"] is True
    rule = stored(kubectl, one(rendered, "PrometheusRule"))
    alerts = {r.get("alert") for g in rule["spec"]["groups"] for r in g["rules"]}
    assert "HeartbeatOperatorAbsent" in alerts
    if extra:
        config = stored(kubectl, one(rendered, "ValidatingWebhookConfiguration"))
        (hook,) = config["webhooks"]
        assert hook["failurePolicy"] == "Ignore"
        assert hook["namespaceSelector"]["matchExpressions"][0]["values"] == [namespace]


def test_chart_crd_is_admitted(kubectl: KubectlRunner) -> None:
    crds = [o for o in objects(render_text()) if o["kind"] == "CustomResourceDefinition"]
    assert crds
    for crd in crds:
        result = kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(crd))
        assert "(server dry run)" in result.stdout


def test_helm_install_prints_how_to_start_and_uninstall_leaves_nothing(
    kubectl: KubectlRunner,
    kubeconfig: Path,
    namespace: str,
    release: str,
    monitoring_crds: None,
) -> None:
    helm_binary()
    common = ["--kubeconfig", str(kubeconfig), "--namespace", namespace]
    values = {**ALL_ON, "webhook": {"enabled": False}}  # cluster-wide: see above
    out = run_helm("install", release, str(CHART), *common, "--skip-crds", values=values)
    assert "STATUS: deployed" in out
    # NOTES.txt: a first monitor, and how to read its URL.
    assert "kind: HeartbeatMonitor" in out
    assert "get secret my-first-job-heartbeat -o jsonpath='{.data.url}'" in out
    assert "https://heartbeat.example.com" in out

    listed = json.loads(run_helm("list", *common, "-o", "json"))
    assert [r["name"] for r in listed] == [release]
    kubectl("get", "clusterrole", f"{release}-heartbeat-operator")

    run_helm("uninstall", release, *common, "--wait")

    def nothing_left() -> bool:
        left = kubectl(
            "get",
            "deploy,svc,sa,role,rolebinding,clusterrole,clusterrolebinding,pdb,ingress,"
            "networkpolicy,configmap,servicemonitors.monitoring.coreos.com,"
            "prometheusrules.monitoring.coreos.com",
            "-A",
            "-l",
            f"app.kubernetes.io/instance={release}",
            "-o",
            "name",
        ).stdout.split()
        return not left

    wait_for(nothing_left, timeout=30, what="the release's objects to be deleted")
    # Helm keeps the CRD (and with it every monitor) on uninstall (DESIGN 9.20).
    kubectl("get", "crd", "heartbeatmonitors.heartbeat.dev")


def test_helm_upgrade_keeps_the_webhook_certificate(
    kubectl: KubectlRunner, kubeconfig: Path, namespace: str, release: str
) -> None:
    """The generated CA and serving pair survive `helm upgrade` (DESIGN 10.4): the chart
    looks its Secret up instead of generating a pair the running Pods do not serve."""
    common = ["--kubeconfig", str(kubeconfig), "--namespace", namespace, "--skip-crds"]
    values = {"watchNamespaces": [namespace]}  # the configuration stays in our namespace
    secret_name = f"{release}-heartbeat-operator-webhook-tls"

    def webhook_tls() -> tuple[dict[str, str], str]:
        secret = json.loads(
            kubectl("get", "secret", secret_name, "-n", namespace, "-o", "json").stdout
        )
        config = json.loads(
            kubectl(
                "get",
                "validatingwebhookconfiguration",
                f"{release}-heartbeat-operator",
                "-o",
                "json",
            ).stdout
        )
        return secret["data"], config["webhooks"][0]["clientConfig"]["caBundle"]

    run_helm("install", release, str(CHART), *common, values=values)
    data, ca_bundle = webhook_tls()
    assert ca_bundle == data["ca.crt"]

    run_helm("upgrade", release, str(CHART), *common, values={**values, "replicaCount": 3})
    assert webhook_tls() == (data, ca_bundle)

    run_helm("uninstall", release, "--kubeconfig", str(kubeconfig), "-n", namespace, "--wait")
    left = kubectl(
        "get",
        "secret,svc,validatingwebhookconfiguration",
        "-A",
        "-l",
        f"app.kubernetes.io/instance={release}",
        "-o",
        "name",
    ).stdout.split()
    assert left == []
