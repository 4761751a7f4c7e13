"""Coverage by policy (issue 12, item 5), against the real API server and garbage collector.

The operator runs as a separate process with ``--auto-wire-namespace-selector``: every
CronJob without the ``heartbeat.dev/monitor`` annotation in a Namespace whose labels match
gets a monitor; ``"false"`` opts one out; ``"true"`` works in every namespace; labelling a
Namespace later adds monitors and unlabelling it deletes the ones the operator made. Then
the same under the chart's own RBAC and flags (``watchNamespaces`` plus the selector), with
no request refused.

Two namespaces per test, both watched (``--namespace``), so the label set here never
reaches another test's operator.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from heartbeat_operator import devcluster
from tests.integration.conftest import OperatorFactory
from tests.integration.operator_process import Monitors
from tests.integration.test_cronjobs import cronjob, monitor_of, wait_event, wait_monitor
from tests.integration.test_rbac import forbidden_lines, install_rbac, uninstall_rbac
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

LABEL = "heartbeat.dev/monitor-cronjobs"
SELECTOR = f"{LABEL}=true"
PLAIN: dict[str, str] = {}  # no heartbeat.dev/monitor annotation: the policy decides
OPTED_OUT = {"heartbeat.dev/monitor": "false"}
ANNOTATED = {"heartbeat.dev/monitor": "true"}


@pytest.fixture
def other_namespace(api_client: k8s.ApiClient, namespace: str) -> Iterator[str]:
    """A second fresh namespace, unlabelled."""
    name = f"t-coverage-b-{uuid.uuid4().hex[:8]}"
    core = k8s.CoreV1Api(api_client)
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        core.delete_namespace(name, propagation_policy="Background")


def label(api_client: k8s.ApiClient, namespace: str, value: str | None) -> None:
    """``kubectl label namespace <ns> heartbeat.dev/monitor-cronjobs=<value>`` (None: ``-``)."""
    k8s.CoreV1Api(api_client).patch_namespace(
        namespace,
        {"metadata": {"labels": {LABEL: value}}},
        _content_type="application/merge-patch+json",
    )


def create(batch: k8s.BatchV1Api, namespace: str, name: str, annotations: dict[str, str]) -> Any:
    return batch.create_namespaced_cron_job(namespace, cronjob(name, annotations=annotations))


def owned_by(monitor: dict[str, Any], created: Any) -> bool:
    refs = monitor["metadata"].get("ownerReferences") or []
    return [(r["kind"], r["name"], r["uid"]) for r in refs] == [
        ("CronJob", created.metadata.name, created.metadata.uid)
    ]


def test_labelled_namespace_monitors_its_cronjobs_without_annotations(
    operator_factory: OperatorFactory,
    api_client: k8s.ApiClient,
    namespace: str,
    other_namespace: str,
) -> None:
    batch = k8s.BatchV1Api(api_client)
    covered, uncovered = Monitors(api_client, namespace), Monitors(api_client, other_namespace)
    label(api_client, namespace, "true")
    operator_factory.start(
        *("--namespace", namespace, "--namespace", other_namespace),
        *("--lease-namespace", namespace),
        *("--auto-wire-namespace-selector", SELECTOR),
    )
    # The CronJobs that must get no monitor first: by the time a later CronJob of the same
    # namespace has its monitor, the leader has decided these too.
    create(batch, namespace, "opted-out", OPTED_OUT)
    create(batch, other_namespace, "elsewhere", PLAIN)
    plain = create(batch, namespace, "plain", PLAIN)
    pinned = create(batch, namespace, "pinned", ANNOTATED)
    annotated = create(batch, other_namespace, "annotated", ANNOTATED)

    # labelled namespace: a monitor for the un-annotated CronJob, made like an annotated one's
    monitor = wait_monitor(covered, "plain", lambda m: owned_by(m, plain))
    assert monitor["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "heartbeat-operator"
    assert monitor["spec"]["schedule"] == "0 0 1 1 *"
    covered.wait_ready("plain")
    wait_monitor(covered, "pinned", lambda m: owned_by(m, pinned))
    # the annotation keeps working in a namespace the selector does not match
    wait_monitor(uncovered, "annotated", lambda m: owned_by(m, annotated))
    # opted out, and un-annotated in an unlabelled namespace: none
    assert monitor_of(covered, "opted-out") is None
    assert monitor_of(uncovered, "elsewhere") is None

    # a namespace labelled later gains monitors for its un-annotated CronJobs
    label(api_client, other_namespace, "true")
    wait_monitor(uncovered, "elsewhere")

    # unlabelled: the monitor the operator made for the un-annotated CronJob is deleted;
    # the annotated CronJob's stays, and so does a monitor the user made
    uncovered.create("handmade", {"period": "1h"})
    label(api_client, namespace, None)
    wait_for(lambda: monitor_of(covered, "plain") is None, timeout=15, what="monitor deleted")
    assert monitor_of(covered, "pinned") is not None
    assert monitor_of(covered, "opted-out") is None
    assert monitor_of(uncovered, "elsewhere") is not None
    label(api_client, other_namespace, "no")  # no longer matches
    wait_for(lambda: monitor_of(uncovered, "elsewhere") is None, timeout=15, what="deleted")
    assert monitor_of(uncovered, "annotated") is not None
    assert uncovered.get("handmade")["spec"]["period"] == "1h"


def test_policy_covered_cronjob_with_a_same_named_monitor_warns_and_leaves_it_alone(
    operator_factory: OperatorFactory,
    api_client: k8s.ApiClient,
    namespace: str,
) -> None:
    batch = k8s.BatchV1Api(api_client)
    monitors = Monitors(api_client, namespace)
    monitors.create("report", {"period": "1h"})
    label(api_client, namespace, "true")
    operator_factory.start(
        "--namespace", namespace, "--lease-namespace", namespace,
        "--auto-wire-namespace-selector", SELECTOR,
    )  # fmt: skip
    create(batch, namespace, "report", PLAIN)
    conflict = wait_event(monitors.core, namespace, "CronJob", "report", "NameConflict")
    assert conflict.type == "Warning"
    assert 'heartbeat.dev/monitor: "false"' in conflict.message
    assert "ownerReferences" not in monitors.get("report")["metadata"]


def test_selector_under_the_charts_rbac_and_flags(
    dev_cluster: devcluster.Cluster,
    api_client: k8s.ApiClient,
    namespace: str,
    other_namespace: str,
    tmp_path: Path,
) -> None:
    """``watchNamespaces: [<watched>]`` and ``autoWireNamespaceSelector``: the operator runs
    as the chart's ServiceAccount with the Deployment's flags; the Namespace watch needs
    nothing the chart does not grant."""
    release_namespace, watched = namespace, other_namespace
    sa = install_rbac(
        dev_cluster,
        release_namespace,
        tmp_path,
        watchNamespaces=[watched],
        autoWireNamespaceSelector=f"{LABEL} in (true, yes)",
    )
    factory = OperatorFactory(kubeconfig=dev_cluster.kubeconfig, log_dir=tmp_path)
    try:
        assert f"--auto-wire-namespace-selector={LABEL} in (true, yes)" in sa.operator_args
        operator = factory.start(*sa.operator_args, kubeconfig=sa.kubeconfig, name=sa.release)
        batch = k8s.BatchV1Api(api_client)
        monitors = Monitors(api_client, watched)
        created = create(batch, watched, "nightly", PLAIN)
        label(api_client, watched, "yes")
        wait_monitor(monitors, "nightly", lambda m: owned_by(m, created))
        monitors.wait_ready("nightly")
        label(api_client, watched, None)
        wait_for(lambda: monitor_of(monitors, "nightly") is None, timeout=15, what="deleted")
        assert operator.is_running()
        assert forbidden_lines(operator.log_text()) == []
    finally:
        factory.stop_all()
        uninstall_rbac(dev_cluster, sa.release)


def test_invalid_selector_stops_the_operator_with_one_sentence(
    operator_factory: OperatorFactory, namespace: str
) -> None:
    operator = operator_factory.start(
        "--namespace", namespace, "--lease-namespace", namespace,
        env={"HEARTBEAT_AUTO_WIRE_NAMESPACE_SELECTOR": "team in (a"},
        wait_ready=False,
    )  # fmt: skip
    assert operator.process.wait(timeout=30) == 2
    assert operator.log_text().strip().splitlines()[-1] == (
        "heartbeat-operator run: HEARTBEAT_AUTO_WIRE_NAMESPACE_SELECTOR='team in (a': "
        "not a label selector: the list after 'team in' lacks its closing ')'"
    )
