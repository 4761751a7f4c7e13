"""The kubelet stand-in plays failures the real Job controller believes (issue 12).

Against the real control plane: the Job controller (kube-controller-manager) reads the Pod
statuses ``tests.support.kubelet`` writes and sets the Job's own status, and
``heartbeat_operator.engine.causes`` reads the real objects back. No operator runs here;
these are the ground rules the operator's NotStarted and failure tests stand on.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
import pytest
from kubernetes import client as k8s

from heartbeat_operator.engine.causes import (
    failing_container,
    failure_cause,
    job_started_at,
    not_started_cause,
    pod_started_at,
)
from heartbeat_operator.engine.podreads import list_job_events
from heartbeat_operator.kube.client import KubeClient
from tests.support.kubelet import Kubelet
from tests.support.waiting import wait_for

IMAGE = "registry.invalid/does-not-exist:1"


@pytest.fixture
def batch(api_client):
    return k8s.BatchV1Api(api_client)


@pytest.fixture
def kubelet(api_client, namespace):
    return Kubelet(api_client, namespace)


def create_job(batch: k8s.BatchV1Api, namespace: str, name: str) -> None:
    batch.create_namespaced_job(
        namespace,
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name},
            "spec": {
                "backoffLimit": 0,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "main", "image": IMAGE}],
                    }
                },
            },
        },
    )


def job_body(batch: k8s.BatchV1Api, namespace: str, name: str) -> dict[str, Any]:
    answer: Any = batch.read_namespaced_job(name, namespace, _preload_content=False)
    return dict(json.loads(answer.data))


def condition(job: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for item in job.get("status", {}).get("conditions") or ():
        if item["type"] == kind and item["status"] == "True":
            return dict(item)
    return None


def job_events(kubeconfig, namespace: str, uid: str, monkeypatch) -> list[dict[str, Any]]:
    """The operator's own read (async client, fieldSelector) against the real API server."""
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))

    async def read() -> list[dict[str, Any]]:
        info = kopf.login_with_kubeconfig(settings=kopf.OperatorSettings())
        assert info is not None
        client = KubeClient(info)
        try:
            return await list_job_events(client, namespace, uid)
        finally:
            await client.close()

    return asyncio.run(read())


def test_a_pod_left_in_image_pull_back_off_keeps_its_job_active_unstarted(
    batch, kubelet, namespace, kubeconfig, monkeypatch
):
    create_job(batch, namespace, "stuck")
    pod = kubelet.wait_for_pod("stuck")
    kubelet.leave_pending(pod, "ImagePullBackOff", at=timedelta(seconds=-5))

    def waiting_reason() -> str | None:
        (body,) = kubelet.pod_bodies("stuck")
        statuses = body["status"].get("containerStatuses") or [{}]
        return statuses[0].get("state", {}).get("waiting", {}).get("reason")

    wait_for(lambda: waiting_reason() == "ImagePullBackOff", timeout=10, what="pod waiting")
    job = wait_for(
        lambda: (j := job_body(batch, namespace, "stuck"))["status"].get("active") == 1 and j,
        timeout=15,
        what="the Job controller counting its Pod active",
    )
    assert job["status"].get("ready", 0) == 0
    assert condition(job, "Complete") is None and condition(job, "Failed") is None
    assert "completionTime" not in job["status"]

    pods = kubelet.pod_bodies("stuck")
    assert pod_started_at(pods[0]) is None
    assert job_started_at(pods) is None
    cause = not_started_cause(pods, [], datetime.now(UTC))
    name = pod.metadata.name
    assert cause.startswith(f"Pod {name} Pending for ")
    assert f": ImagePullBackOff: image {IMAGE}: ErrImagePull: " in cause
    assert cause.endswith(f"{IMAGE}: not found")

    # The Job controller's Events, read as the operator reads them (by involvedObject.uid).
    events = wait_for(
        lambda: job_events(kubeconfig, namespace, job["metadata"]["uid"], monkeypatch),
        timeout=10,
        what="the Job's SuccessfulCreate Event",
    )
    assert {e["reason"] for e in events} == {"SuccessfulCreate"}
    assert all(e["involvedObject"]["uid"] == job["metadata"]["uid"] for e in events)


def test_an_unschedulable_pod_says_what_the_scheduler_said(batch, kubelet, namespace):
    create_job(batch, namespace, "big")
    pod = kubelet.wait_for_pod("big")
    kubelet.mark_unschedulable(pod)
    pods = wait_for(
        lambda: (p := kubelet.pod_bodies("big"))[0]["status"].get("conditions") and p,
        timeout=10,
        what="PodScheduled=False",
    )
    assert not_started_cause(pods, [], datetime.now(UTC)).endswith(
        ": Unschedulable: 0/3 nodes are available: 3 Insufficient memory."
    )


def test_an_oom_killed_pod_fails_its_job_and_the_cause_says_so(batch, kubelet, namespace):
    create_job(batch, namespace, "hungry")
    pod = kubelet.wait_for_pod("hungry")
    started = kubelet.start_pod(pod, at=timedelta(minutes=-3))
    kubelet.end_pod(pod, 137, "OOMKilled")
    job = wait_for(
        lambda: condition(j := job_body(batch, namespace, "hungry"), "Failed") and j,
        timeout=20,
        what="the Job controller failing the Job",
    )
    failed = condition(job, "Failed")
    assert failed is not None and failed["reason"] == "BackoffLimitExceeded"
    pods = kubelet.pod_bodies("hungry")
    assert failure_cause(pods, failed["reason"], failed["message"]) == (
        f"BackoffLimitExceeded: {failed['message']}; container main OOMKilled (exit code 137)"
    )
    assert failing_container(pods) == (pod.metadata.name, "main")
    # The container keeps the start it had: the run lasted from then to the kill.
    assert pod_started_at(pods[0]) == started


def test_start_pod_writes_the_start_the_operator_reads(batch, kubelet, namespace):
    create_job(batch, namespace, "runs")
    pod = kubelet.wait_for_pod("runs")
    started = kubelet.start_pod(pod, at=timedelta(minutes=-3))
    assert started.microsecond == 0 and started < datetime.now(UTC) - timedelta(minutes=2)
    job = wait_for(
        lambda: (j := job_body(batch, namespace, "runs"))["status"].get("ready") == 1 and j,
        timeout=15,
        what="the Job controller counting its Pod ready",
    )
    assert job["status"]["active"] == 1
    pods = kubelet.pod_bodies("runs")
    assert pod_started_at(pods[0]) == started
    assert job_started_at(pods) == started
    # A start in the future (a clock ahead of ours) is written as given, too.
    later = kubelet.start_pod(pod, at=timedelta(seconds=30))
    assert pod_started_at(kubelet.pod_bodies("runs")[0]) == later


def test_an_evicted_pod_fails_its_job_and_the_cause_quotes_the_kubelet(batch, kubelet, namespace):
    create_job(batch, namespace, "evicted")
    pod = kubelet.wait_for_pod("evicted")
    kubelet.start_pod(pod, at=timedelta(minutes=-1))
    kubelet.evict_pod(pod)
    job = wait_for(
        lambda: condition(j := job_body(batch, namespace, "evicted"), "Failed") and j,
        timeout=20,
        what="the Job controller failing the Job",
    )
    failed = condition(job, "Failed")
    assert failed is not None
    cause = failure_cause(kubelet.pod_bodies("evicted"), failed["reason"], failed["message"])
    assert cause.startswith(f"{failed['reason']}: ")
    assert f"; Pod {pod.metadata.name} Evicted: The node was low on resource: memory." in cause


def test_a_container_that_cannot_start_fails_its_job_and_never_started(batch, kubelet, namespace):
    create_job(batch, namespace, "no-exec")
    pod = kubelet.wait_for_pod("no-exec")
    kubelet.fail_to_start(pod)
    job = wait_for(
        lambda: condition(j := job_body(batch, namespace, "no-exec"), "Failed") and j,
        timeout=20,
        what="the Job controller failing the Job",
    )
    assert condition(job, "Failed")["reason"] == "BackoffLimitExceeded"
    pods = kubelet.pod_bodies("no-exec")
    (state,) = [s["state"]["terminated"] for s in pods[0]["status"]["containerStatuses"]]
    assert (state["reason"], state["exitCode"], state["startedAt"]) == (
        "StartError",
        128,
        "1970-01-01T00:00:00Z",
    )
    assert pod_started_at(pods[0]) is None and job_started_at(pods) is None
