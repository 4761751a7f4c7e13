"""First proofs against the real local control plane (issue 2, item 4): it answers, its
controllers run, RBAC is on, and a HeartbeatMonitor behaves as a Kubernetes object should —
seen through a watch, with a status subresource apart from the main resource, and invalid
objects refused by the API server itself."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException

from heartbeat_operator import devcluster
from tests.integration.conftest import KubectlRunner
from tests.support.waiting import wait_for

GROUP, VERSION, PLURAL = "heartbeat.dev", "v1alpha1", "heartbeatmonitors"


def monitor(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "HeartbeatMonitor",
        "metadata": {"name": name},
        "spec": spec or {"period": "1h"},
    }


def message(error: ApiException) -> str:
    """The API server's message from a rejected request (its Status object)."""
    return str(json.loads(error.body)["message"])


@pytest.fixture
def custom(api_client: k8s.ApiClient) -> k8s.CustomObjectsApi:
    return k8s.CustomObjectsApi(api_client)


def test_readyz_ok_and_system_namespaces_listed(kubectl: KubectlRunner) -> None:
    assert kubectl("get", "--raw", "/readyz").stdout.strip() == "ok"
    names = kubectl("get", "ns", "-o", "name").stdout.split()
    assert "namespace/kube-system" in names
    assert "namespace/default" in names


def test_status_reports_the_running_control_plane(dev_cluster: devcluster.Cluster) -> None:
    found = devcluster.status()
    assert found is not None
    assert found.kubeconfig == dev_cluster.kubeconfig
    assert found.server == dev_cluster.server


def test_kubectl_matches_the_server_version(kubectl: KubectlRunner) -> None:
    versions = kubectl("version", "-o", "json").stdout
    assert '"gitVersion": "v1.34.4"' in versions.replace('":"', '": "')


def test_controller_manager_creates_service_accounts_and_collects_garbage(
    api_client: k8s.ApiClient, namespace: str
) -> None:
    core = k8s.CoreV1Api(api_client)
    # The ServiceAccount controller gives every new namespace its `default` account.
    wait_for(
        lambda: core.read_namespaced_service_account("default", namespace),
        timeout=30,
        what="ServiceAccount default in the new namespace",
    )
    # The garbage collector deletes a dependent whose owner is gone.
    owner = core.create_namespaced_config_map(
        namespace, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="owner"))
    )
    dependent_meta = k8s.V1ObjectMeta(
        name="dependent",
        owner_references=[
            k8s.V1OwnerReference(
                api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid
            )
        ],
    )
    core.create_namespaced_config_map(namespace, k8s.V1ConfigMap(metadata=dependent_meta))
    core.delete_namespaced_config_map("owner", namespace)

    def dependent_gone() -> bool:
        try:
            core.read_namespaced_config_map("dependent", namespace)
        except ApiException as error:
            return error.status == 404
        return False

    wait_for(dependent_gone, timeout=30, what="the garbage collector to delete the dependent")


def test_rbac_applies_to_a_service_account_token(
    dev_cluster: devcluster.Cluster, namespace: str, kubectl: KubectlRunner, tmp_path: Path
) -> None:
    config = dev_cluster.service_account_kubeconfig(namespace, "reader", tmp_path / "sa.yaml")
    as_reader = k8s.CoreV1Api(k8s_config.new_client_from_config(config_file=str(config)))
    with pytest.raises(ApiException) as denied:
        as_reader.list_namespaced_config_map(namespace)
    assert denied.value.status == 403
    assert f"system:serviceaccount:{namespace}:reader" in str(denied.value.body)

    kubectl("create", "configmap", "visible", "-n", namespace)
    kubectl(
        "create", "rolebinding", "reader-view", "--clusterrole=view",
        f"--serviceaccount={namespace}:reader", "-n", namespace,
    )  # fmt: skip
    wait_for(
        lambda: any(
            cm.metadata.name == "visible"
            for cm in as_reader.list_namespaced_config_map(namespace).items
        ),
        timeout=10,
        what="the RoleBinding to let the ServiceAccount list ConfigMaps",
    )


def test_a_created_monitor_is_seen_through_a_watch(
    custom: k8s.CustomObjectsApi, namespace: str
) -> None:
    listed = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
    since = listed["metadata"]["resourceVersion"]
    name = f"watched-{uuid.uuid4().hex[:6]}"
    custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, monitor(name, period="10m")
    )

    seen: list[tuple[str, dict[str, Any]]] = []
    stream = k8s_watch.Watch().stream(
        custom.list_namespaced_custom_object,
        GROUP, VERSION, namespace, PLURAL,
        resource_version=since, timeout_seconds=10,
    )  # fmt: skip
    for event in stream:
        seen.append((event["type"], event["object"]))
        if event["object"]["metadata"]["name"] == name:
            break
    assert [t for t, o in seen if o["metadata"]["name"] == name] == ["ADDED"]
    added = next(o for t, o in seen if o["metadata"]["name"] == name)
    # The schema's defaults are applied by the API server (DESIGN 9.15).
    assert added["spec"] == {
        "period": "10m",
        "grace": "5m",
        "failureThreshold": 1,
        "successThreshold": 1,
        "paused": False,
    }


def test_status_subresource_is_separate_from_the_main_resource(
    custom: k8s.CustomObjectsApi, namespace: str
) -> None:
    body = monitor("split", period="1h")
    body["status"] = {"state": "Down"}
    created = custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    assert "status" not in created  # status in a create is dropped
    generation = created["metadata"]["generation"]

    # A write to the main resource cannot change status ...
    patched = custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "split",
        {"spec": {"grace": "10m"}, "status": {"state": "Down"}},
    )  # fmt: skip
    assert patched["spec"]["grace"] == "10m"
    assert "status" not in patched
    assert patched["metadata"]["generation"] == generation + 1

    # ... and a write to /status changes status only, without a new generation.
    updated = custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "split",
        {"spec": {"grace": "20m"}, "status": {"state": "Healthy", "pingCount": 1}},
    )  # fmt: skip
    assert updated["status"] == {"state": "Healthy", "pingCount": 1}
    assert updated["spec"]["grace"] == "10m"
    assert updated["metadata"]["generation"] == generation + 1


def test_a_wrong_type_is_rejected(custom: k8s.CustomObjectsApi, namespace: str) -> None:
    with pytest.raises(ApiException) as rejected:
        custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL,
            monitor("typed", period="1h", failureThreshold="two"),
        )  # fmt: skip
    assert rejected.value.status == 422
    assert "spec.failureThreshold" in message(rejected.value)
    assert "must be of type integer" in message(rejected.value)


def test_an_unknown_field_is_rejected_under_strict_validation_and_pruned_otherwise(
    custom: k8s.CustomObjectsApi, namespace: str
) -> None:
    with pytest.raises(ApiException) as rejected:
        custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL,
            monitor("strict", period="1h", perod="2h"),
            field_validation="Strict",  # what kubectl sends by default
        )  # fmt: skip
    assert rejected.value.status == 400
    assert 'unknown field "spec.perod"' in message(rejected.value)

    created = custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL,
        monitor("lenient", period="1h", perod="2h"),
        field_validation="Ignore",
    )  # fmt: skip
    assert "perod" not in created["spec"]
    assert created["spec"]["period"] == "1h"


def test_kubectl_refuses_an_unknown_field_by_default(
    kubectl: KubectlRunner, namespace: str
) -> None:
    manifest = (
        "apiVersion: heartbeat.dev/v1alpha1\nkind: HeartbeatMonitor\n"
        "metadata: {name: typo}\nspec: {period: 1h, gracee: 5m}\n"
    )
    result = kubectl("apply", "-n", namespace, "-f", "-", input=manifest, check=False)
    assert result.returncode != 0
    assert 'unknown field "spec.gracee"' in result.stderr
