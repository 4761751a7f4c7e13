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
import shutil
import subprocess
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
    ROOT,
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
    # The CRD is the shared cluster's (dev up installed it): the release leaves it alone.
    values["crds"] = {"enabled": False}
    out = run_helm("install", release, str(CHART), *common, values=values)
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
    # With crds.enabled=false the release never touched the CRD.
    kubectl("get", "crd", "heartbeatmonitors.heartbeat.dev")


def test_helm_upgrade_keeps_the_webhook_certificate(
    kubectl: KubectlRunner, kubeconfig: Path, namespace: str, release: str
) -> None:
    """The generated CA and serving pair survive `helm upgrade` (DESIGN 10.4): the chart
    looks its Secret up instead of generating a pair the running Pods do not serve."""
    common = ["--kubeconfig", str(kubeconfig), "--namespace", namespace]
    # The configuration stays in our namespace; the CRD is the shared cluster's.
    values = {"watchNamespaces": [namespace], "crds": {"enabled": False}}
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


# --- upgrading the CRD with the chart (issue 17 item 2) ---------------------------------

# The last commit of chart 0.1.0, which shipped the CRD in crds/: Helm installed it once
# and never upgraded it.
PREVIOUS_CHART_COMMIT = "99e4d4a5e7760cff030bf46d37eb73f5ec0d2534"
PREVIOUS_CHART_VERSION = "0.1.0"


def previous_chart(into: Path) -> Path:
    """The chart as released at PREVIOUS_CHART_COMMIT, from git."""
    archive = subprocess.run(
        [
            "git",
            "-C",
            str(ROOT),
            "archive",
            PREVIOUS_CHART_COMMIT,
            "deploy/helm/heartbeat-operator",
        ],
        capture_output=True,
        check=True,
    )
    into.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    chart = into / "deploy" / "helm" / "heartbeat-operator"
    assert yaml.safe_load((chart / "Chart.yaml").read_text())["version"] == PREVIOUS_CHART_VERSION
    return chart


def own_crd(path: Path, group: str, *, new_status_field: str | None = None) -> str:
    """Rewrite a chart's CRD file into a group of this test's own, so the upgrade never
    touches the shared cluster's heartbeatmonitors.heartbeat.dev; optionally add a status
    field (the change a new chart version brings). Returns the CRD's name."""
    crd = yaml.safe_load(path.read_text())
    crd["metadata"]["name"] = f"heartbeatmonitors.{group}"
    crd["spec"]["group"] = group
    # kubectl's short names and categories would be ambiguous with the real CRD's.
    crd["spec"]["names"].pop("shortNames", None)
    crd["spec"]["names"].pop("categories", None)
    if new_status_field:
        (version,) = crd["spec"]["versions"]
        status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
        status["properties"][new_status_field] = {"type": "string"}
    path.write_text(yaml.safe_dump(crd, sort_keys=False))
    name: str = crd["metadata"]["name"]
    return name


def test_helm_upgrade_from_the_previous_chart_upgrades_a_changed_crd(
    kubectl: KubectlRunner, kubeconfig: Path, namespace: str, release: str, tmp_path: Path
) -> None:
    """Chart 0.1.0 installed the CRD from crds/, which Helm never upgrades: a new status
    field was pruned until someone applied the CRD by hand. From this chart on the CRD is
    a template: `helm upgrade --take-ownership` (docs/install.md) adopts the old CRD once
    and upgrades it, the new field is stored, and uninstalling keeps the CRD (crds.keep)."""
    group = f"u{uuid.uuid4().hex[:8]}.heartbeat.dev"
    old = previous_chart(tmp_path / "old")
    (old_crd_file,) = (old / "crds").glob("*.yaml")
    crd_name = own_crd(old_crd_file, group)
    new = tmp_path / "new"
    shutil.copytree(CHART, new)
    (new_crd_file,) = (new / "files" / "crds").glob("*.yaml")
    assert own_crd(new_crd_file, group, new_status_field="upgradeProbe") == crd_name

    common = ["--kubeconfig", str(kubeconfig), "--namespace", namespace]
    values = {"watchNamespaces": [namespace]}  # the webhook stays in our namespace
    try:
        run_helm("install", release, str(old), *common, values=values)
        kubectl("wait", "--for=condition=Established", f"crd/{crd_name}", "--timeout=30s")
        monitor = {
            "apiVersion": f"{group}/v1alpha1",
            "kind": "HeartbeatMonitor",
            "metadata": {"name": "upgraded", "namespace": namespace},
            "spec": {"period": "1h"},
        }
        kubectl("create", "-f", "-", input=json.dumps(monitor))

        def write_probe() -> dict[str, Any]:
            kubectl(
                "patch", f"heartbeatmonitors.{group}", "upgraded", "-n", namespace,
                "--subresource=status", "--type=merge",
                "-p", json.dumps({"status": {"upgradeProbe": "kept"}}),
            )  # fmt: skip
            got = kubectl(
                "get", f"heartbeatmonitors.{group}", "upgraded", "-n", namespace, "-o", "json"
            )
            status: dict[str, Any] = json.loads(got.stdout).get("status", {})
            return status

        # The old schema prunes the field: the failure a user saw after `helm upgrade`.
        assert "upgradeProbe" not in write_probe()

        out = run_helm("upgrade", release, str(new), *common, "--take-ownership", values=values)
        assert "STATUS: deployed" in out

        def upgraded() -> bool:
            crd = json.loads(kubectl("get", "crd", crd_name, "-o", "json").stdout)
            (version,) = crd["spec"]["versions"]
            fields = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
            return "upgradeProbe" in fields

        wait_for(upgraded, timeout=30, what="the CRD to carry the new chart's schema")
        wait_for(
            lambda: write_probe().get("upgradeProbe") == "kept",
            timeout=30,
            what="the new status field to be stored, not pruned",
        )
        crd = json.loads(kubectl("get", "crd", crd_name, "-o", "json").stdout)
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert crd["metadata"]["annotations"]["meta.helm.sh/release-name"] == release
        assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        # A second upgrade owns it already: no flag needed.
        run_helm("upgrade", release, str(new), *common, values={**values, "replicaCount": 3})

        run_helm("uninstall", release, *common, "--wait")
        # crds.keep: the CRD, and with it every monitor, outlives the release.
        kubectl("get", "crd", crd_name)
        kubectl("get", f"heartbeatmonitors.{group}", "upgraded", "-n", namespace)
    finally:
        kubectl("delete", "crd", crd_name, "--ignore-not-found", "--wait=false")


def test_a_release_into_default_gets_a_namespace_of_its_own(
    kubectl: KubectlRunner, kubeconfig: Path, namespace: str, release: str
) -> None:
    """DESIGN 10.8.17: `helm install` without `-n` (the `default` namespace) puts the
    operator, its journal Secrets' Role and its Lease in `heartbeat-system`, created by the
    chart, kept through upgrades and on uninstall; a namespace that exists already is used
    as it is."""
    common = ["--kubeconfig", str(kubeconfig), "--namespace", "default"]
    values: dict[str, Any] = {
        "watchNamespaces": [namespace],
        "crds": {"enabled": False},
        "webhook": {"enabled": False},
    }
    own = "heartbeat-system"
    deployment = f"{release}-heartbeat-operator"
    try:
        run_helm("install", release, str(CHART), *common, values=values)
        created = json.loads(kubectl("get", "namespace", own, "-o", "json").stdout)
        assert created["metadata"]["labels"]["app.kubernetes.io/instance"] == release
        kubectl("get", "deployment", deployment, "-n", own)
        kubectl("get", "role", f"{deployment}-journal", "-n", own)
        assert not kubectl("get", "deploy,role", "-n", "default", "-o", "name").stdout.split()

        run_helm("upgrade", release, str(CHART), *common, values={**values, "replicaCount": 3})
        after = json.loads(kubectl("get", "namespace", own, "-o", "json").stdout)
        assert after["metadata"]["uid"] == created["metadata"]["uid"]
        assert after["status"]["phase"] == "Active"

        run_helm("uninstall", release, *common, "--wait")
        kept = json.loads(kubectl("get", "namespace", own, "-o", "json").stdout)
        assert kept["status"]["phase"] == "Active"  # the journal Secrets outlive a release
        assert not kubectl("get", "deploy", "-n", own, "-o", "name").stdout.split()

        # A namespace made by someone else is used, not taken over (no ownership error).
        theirs = f"{namespace}-ops"
        kubectl("create", "namespace", theirs)
        run_helm("install", release, str(CHART), *common, values={**values, "namespace": theirs})
        kubectl("get", "deployment", deployment, "-n", theirs)
        labels = json.loads(kubectl("get", "namespace", theirs, "-o", "json").stdout)["metadata"]
        assert "app.kubernetes.io/instance" not in (labels.get("labels") or {})
        run_helm("uninstall", release, *common, "--wait")
        kubectl("delete", "namespace", theirs, "--wait=false")

        # A release an older chart put in default (as `namespace: default` does) stays
        # there on upgrade: its journal Secrets, pings answered 200, are there.
        kubectl("delete", "namespace", own, "--wait=true")
        run_helm("install", release, str(CHART), *common, values={**values, "namespace": "default"})
        run_helm("upgrade", release, str(CHART), *common, values=values)
        kubectl("get", "deployment", deployment, "-n", "default")
        assert not kubectl(
            "get", "namespace", own, "--ignore-not-found", "-o", "name"
        ).stdout.strip()
        run_helm("uninstall", release, *common, "--wait")
    finally:
        subprocess.run(
            [helm_binary(), "uninstall", release, *common], capture_output=True, check=False
        )
        kubectl("delete", "namespace", own, "--ignore-not-found", "--wait=false")
