"""What the cluster says (DESIGN 10.1, 10.8.2, 10.8.7; issue 12): a Job's start from its
Pods, why it has not started, why it failed, why a slot got no Job.

The bodies are shaped as Kubernetes 1.34 writes them: the kubelet's container statuses and
waiting messages, the scheduler's ``PodScheduled`` condition, the Job controller's
``FailedCreate`` Events and ``Failed`` condition, an eviction's ``DisruptionTarget``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from heartbeat_operator.engine import cronjobs
from heartbeat_operator.engine.causes import (
    MESSAGE_LIMIT,
    age,
    cut,
    failing_container,
    failure_cause,
    job_started_at,
    not_started_cause,
    not_started_message,
    pod_started_at,
)
from heartbeat_operator.engine.jobs import JobRun

JOB_UID = "5d0b3a3e-8c4f-4b8e-a1f2-0c9d7e6b5a41"
IMAGE = "registry.example.com/backup:1.4"
NOW = datetime(2026, 12, 4, 2, 31, 10, tzinfo=UTC)


def t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def pod(
    name: str = "nightly-29012-x7k",
    *,
    created: str = "2026-12-04T02:00:04Z",
    phase: str = "Pending",
    node: str | None = "worker-2",
    containers: list[dict[str, Any]] | None = None,
    init_containers: list[dict[str, Any]] | None = None,
    container_statuses: list[dict[str, Any]] | None = None,
    init_statuses: list[dict[str, Any]] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    deleted: str | None = None,
    **status_extra: Any,
) -> dict[str, Any]:
    """A Job's Pod as ``kubectl get pod -o json`` shows it."""
    spec: dict[str, Any] = {
        "containers": containers
        or [
            {
                "name": "main",
                "image": IMAGE,
                "command": ["/bin/backup", "--all"],
                "resources": {"limits": {"memory": "256Mi"}, "requests": {"memory": "256Mi"}},
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "imagePullPolicy": "IfNotPresent",
            }
        ],
        "restartPolicy": "Never",
        "schedulerName": "default-scheduler",
        "serviceAccountName": "default",
        "terminationGracePeriodSeconds": 30,
    }
    if init_containers:
        spec["initContainers"] = init_containers
    if node:
        spec["nodeName"] = node
    metadata: dict[str, Any] = {
        "name": name,
        "generateName": "nightly-29012-",
        "namespace": "backups",
        "uid": f"uid-{name}",
        "resourceVersion": "48213",
        "creationTimestamp": created,
        "labels": {
            "batch.kubernetes.io/controller-uid": JOB_UID,
            "batch.kubernetes.io/job-name": "nightly-29012",
            "controller-uid": JOB_UID,
            "job-name": "nightly-29012",
        },
        "ownerReferences": [
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "name": "nightly-29012",
                "uid": JOB_UID,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
        "finalizers": ["batch.kubernetes.io/job-tracking"],
    }
    if deleted:
        metadata["deletionTimestamp"] = deleted
        metadata["deletionGracePeriodSeconds"] = 30
    status: dict[str, Any] = {"phase": phase, "qosClass": "Burstable"}
    if conditions is not None:
        status["conditions"] = conditions
    if node:
        status.update(hostIP="10.0.3.12", podIP="10.244.2.17", startTime=created)
    if container_statuses is not None:
        status["containerStatuses"] = container_statuses
    if init_statuses is not None:
        status["initContainerStatuses"] = init_statuses
    status.update(status_extra)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec, "status": status}


def cstatus(name: str = "main", image: str = IMAGE, *, restarts: int = 0, **state: Any) -> dict:
    """One entry of ``containerStatuses``: ``state=...`` and optionally ``lastState=...``."""
    running = "running" in state.get("state", {})
    return {
        "name": name,
        "image": image,
        "imageID": "",
        "ready": running,
        "started": running,
        "restartCount": restarts,
        "state": state.get("state", {}),
        "lastState": state.get("lastState", {}),
        "volumeMounts": [
            {
                "name": "kube-api-access-7xk2p",
                "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                "readOnly": True,
                "recursiveReadOnly": "Disabled",
            }
        ],
    }


def waiting(reason: str, message: str | None = None) -> dict[str, Any]:
    inner = {"reason": reason}
    if message is not None:
        inner["message"] = message
    return {"waiting": inner}


def running(started: str) -> dict[str, Any]:
    return {"running": {"startedAt": started}}


def terminated(code: int, reason: str, started: str | None, finished: str | None) -> dict[str, Any]:
    return {
        "terminated": {
            "exitCode": code,
            "reason": reason,
            "startedAt": started,
            "finishedAt": finished,
            "containerID": "containerd://4f3c2a1b9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d",
        }
    }


SCHEDULED = {
    "type": "PodScheduled",
    "status": "True",
    "lastProbeTime": None,
    "lastTransitionTime": "2026-12-04T02:00:04Z",
}


def not_ready(*names: str) -> list[dict[str, Any]]:
    """The kubelet's conditions of a scheduled Pod whose containers are not ready."""
    message = f"containers with unready status: [{' '.join(names)}]"
    return [
        {"type": "PodReadyToStartContainers", "status": "True", "lastProbeTime": None,
         "lastTransitionTime": "2026-12-04T02:00:06Z"},
        {"type": "Initialized", "status": "True", "lastProbeTime": None,
         "lastTransitionTime": "2026-12-04T02:00:04Z"},
        {"type": "Ready", "status": "False", "lastProbeTime": None,
         "lastTransitionTime": "2026-12-04T02:00:04Z", "reason": "ContainersNotReady",
         "message": message},
        {"type": "ContainersReady", "status": "False", "lastProbeTime": None,
         "lastTransitionTime": "2026-12-04T02:00:04Z", "reason": "ContainersNotReady",
         "message": message},
        SCHEDULED,
    ]  # fmt: skip


PULL_ERROR = (
    f'failed to pull and unpack image "{IMAGE}": failed to resolve reference "{IMAGE}": '
    f"{IMAGE}: not found"
)


def image_pull_backoff_pod(**kw: Any) -> dict[str, Any]:
    return pod(
        conditions=not_ready("main"),
        container_statuses=[
            cstatus(
                state=waiting(
                    "ImagePullBackOff",
                    f'Back-off pulling image "{IMAGE}": ErrImagePull: {PULL_ERROR}',
                )
            )
        ],
        **kw,
    )


def job_event(
    reason: str, message: str, last: str, *, count: int = 1, type_: str = "Warning"
) -> dict[str, Any]:
    """A core/v1 Event the Job controller's (legacy) recorder writes about the Job."""
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"nightly-29012.18{abs(hash((reason, last))) % 10**14:014x}",
            "namespace": "backups",
            "creationTimestamp": last,
        },
        "involvedObject": {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": "nightly-29012",
            "namespace": "backups",
            "uid": JOB_UID,
            "resourceVersion": "48190",
        },
        "reason": reason,
        "message": message,
        "source": {"component": "job-controller"},
        "firstTimestamp": "2026-12-04T02:00:03Z",
        "lastTimestamp": last,
        "count": count,
        "type": type_,
        "eventTime": None,
        "reportingComponent": "job-controller",
        "reportingInstance": "",
    }


QUOTA = (
    'Error creating: pods "nightly-29012-q8m2d" is forbidden: exceeded quota: compute, '
    "requested: limits.memory=256Mi, used: limits.memory=9984Mi, limited: limits.memory=10Gi"
)
WEBHOOK = (
    'Error creating: admission webhook "validate.kyverno.svc-fail" denied the request: '
    "resource Pod/backups/nightly-29012-8fj2k was blocked due to the following policies "
    "require-requests-limits: validate-resources: 'validation error: CPU and memory "
    "resource requests and limits are required.'"
)


# --- pod_started_at / job_started_at ------------------------------------------------------


def test_a_running_container_started_at_its_start_time():
    body = pod(phase="Running", container_statuses=[cstatus(state=running("2026-12-04T02:00:09Z"))])
    assert pod_started_at(body) == t("2026-12-04T02:00:09Z")


def test_a_pod_starts_when_its_last_regular_container_started():
    body = pod(
        phase="Running",
        containers=[{"name": "main", "image": IMAGE}, {"name": "uploader", "image": "up:2"}],
        container_statuses=[
            cstatus(state=running("2026-12-04T02:00:09Z")),
            cstatus("uploader", "up:2", state=running("2026-12-04T02:00:41Z")),
        ],
    )
    assert pod_started_at(body) == t("2026-12-04T02:00:41Z")


def test_one_regular_container_not_started_means_the_pod_has_not():
    body = pod(
        phase="Running",
        containers=[{"name": "main", "image": IMAGE}, {"name": "uploader", "image": "up:2"}],
        container_statuses=[
            cstatus(state=running("2026-12-04T02:00:09Z")),
            cstatus("uploader", "up:2", state=waiting("ErrImagePull", "not found")),
        ],
    )
    assert pod_started_at(body) is None


def test_init_and_sidecar_containers_do_not_count_as_the_start():
    body = pod(
        init_containers=[
            {"name": "migrate", "image": "migrate:3"},
            {"name": "proxy", "image": "proxy:1", "restartPolicy": "Always"},
        ],
        init_statuses=[
            cstatus("migrate", "migrate:3", state=terminated(
                0, "Completed", "2026-12-04T02:00:05Z", "2026-12-04T02:00:07Z")),
            cstatus("proxy", "proxy:1", state=running("2026-12-04T02:00:08Z")),
        ],
        container_statuses=[cstatus(state=waiting("ImagePullBackOff", "Back-off pulling image"))],
    )  # fmt: skip
    assert pod_started_at(body) is None
    body["status"]["containerStatuses"] = [cstatus(state=running("2026-12-04T02:03:00Z"))]
    assert pod_started_at(body) == t("2026-12-04T02:03:00Z")


def test_a_restarted_container_started_at_its_first_run():
    """``restartPolicy: OnFailure``: the first run is in ``lastState``; a crash-looping
    container has started (DESIGN 10.8.2)."""
    body = pod(
        phase="Running",
        container_statuses=[
            cstatus(
                restarts=3,
                state=waiting("CrashLoopBackOff", "back-off 40s restarting failed container"),
                lastState=terminated(1, "Error", "2026-12-04T02:00:10Z", "2026-12-04T02:00:12Z"),
            )
        ],
    )
    assert pod_started_at(body) == t("2026-12-04T02:00:10Z")
    body["status"]["containerStatuses"][0]["state"] = running("2026-12-04T02:01:30Z")
    assert pod_started_at(body) == t("2026-12-04T02:00:10Z")


def test_a_container_that_ran_and_ended_has_started():
    body = pod(
        phase="Failed",
        container_statuses=[
            cstatus(
                state=terminated(137, "OOMKilled", "2026-12-04T02:00:09Z", "2026-12-04T02:04:51Z")
            )
        ],
    )
    assert pod_started_at(body) == t("2026-12-04T02:00:09Z")


def test_a_container_that_ended_without_ever_starting_has_not_started():
    """The kubelet's ``ContainerStatusUnknown`` (Pod deleted before its container ran) has
    no ``startedAt``."""
    body = pod(
        phase="Failed",
        container_statuses=[
            cstatus(
                state={
                    "terminated": {
                        "exitCode": 137,
                        "reason": "ContainerStatusUnknown",
                        "message": "The container could not be located when the pod was terminated",
                        "startedAt": None,
                        "finishedAt": None,
                    }
                }
            )
        ],
    )
    assert pod_started_at(body) is None


START_ERROR = (
    "failed to create containerd task: failed to create shim task: OCI runtime create "
    'failed: runc create failed: unable to start container process: exec: "backup.sh": '
    "executable file not found in $PATH: unknown"
)


def start_error_pod(**state: Any) -> dict[str, Any]:
    """What the kubelet reports of a container the runtime could not start: terminated,
    exit code 128, ``startedAt`` the zero time."""
    failed = terminated(128, "StartError", "1970-01-01T00:00:00Z", "2026-12-04T02:00:07Z")
    failed["terminated"]["message"] = START_ERROR
    status = cstatus(state=state.get("state", failed), lastState=state.get("lastState", {}))
    return pod(phase="Failed", container_statuses=[status])


def test_a_container_the_runtime_could_not_start_never_ran():
    """StartError: no start at 1970 (DESIGN 10.1: a run has started only when it runs),
    and the cause is the runtime's words."""
    body = start_error_pod()
    assert pod_started_at(body) is None
    assert not_started_cause([body], [], NOW) == (
        f"Pod nightly-29012-x7k Failed: StartError: {START_ERROR}"
    )
    # restarted under restartPolicy: OnFailure, it crash-loops without ever having run
    looping = start_error_pod(
        state=waiting("CrashLoopBackOff", "back-off 10s restarting failed container=main"),
        lastState=start_error_pod()["status"]["containerStatuses"][0]["state"],
    )
    assert pod_started_at(looping) is None
    assert not_started_cause([looping], [], NOW).startswith(
        "Pod nightly-29012-x7k Failed: CrashLoopBackOff: back-off 10s restarting failed "
        "container=main; last exit code 128 (StartError)"
    )


def test_a_pending_pod_without_statuses_has_not_started():
    assert pod_started_at(pod(node=None, conditions=[])) is None


def test_a_job_started_with_its_first_pod():
    first = pod(
        "nightly-29012-a", phase="Failed",
        container_statuses=[cstatus(state=terminated(
            1, "Error", "2026-12-04T02:00:20Z", "2026-12-04T02:00:25Z"))],
    )  # fmt: skip
    retry = pod(
        "nightly-29012-b",
        created="2026-12-04T02:00:26Z",
        phase="Running",
        container_statuses=[cstatus(state=running("2026-12-04T02:00:31Z"))],
    )
    pending = image_pull_backoff_pod(name="nightly-29012-c")
    assert job_started_at([retry, pending, first]) == t("2026-12-04T02:00:20Z")
    assert job_started_at([pending]) is None
    assert job_started_at([]) is None


# --- not_started_cause ------------------------------------------------------------------


def test_image_pull_backoff_names_the_image_and_the_kubelets_error():
    assert not_started_cause([image_pull_backoff_pod()], [], NOW) == (
        f"Pod nightly-29012-x7k Pending for 31m: ImagePullBackOff: image {IMAGE}: "
        f"ErrImagePull: {PULL_ERROR}"
    )


def test_err_image_pull_and_invalid_image_name():
    pulling = pod(
        conditions=not_ready("main"),
        container_statuses=[cstatus(state=waiting("ErrImagePull", f"rpc error: {PULL_ERROR}"))],
    )
    assert not_started_cause([pulling], [], NOW) == (
        f"Pod nightly-29012-x7k Pending for 31m: ErrImagePull: image {IMAGE}: "
        f"rpc error: {PULL_ERROR}"
    )
    bad = "Registry.Example.com/Backup:1.4"
    invalid = pod(
        containers=[{"name": "main", "image": bad}],
        conditions=not_ready("main"),
        container_statuses=[
            cstatus(
                image=bad,
                state=waiting(
                    "InvalidImageName",
                    f'Failed to apply default image tag "{bad}": couldn\'t parse image name '
                    f'"{bad}": invalid reference format: repository name must be lowercase',
                ),
            )
        ],
    )
    cause = not_started_cause([invalid], [], NOW)
    assert cause.startswith(
        f"Pod nightly-29012-x7k Pending for 31m: InvalidImageName: image {bad}: "
    )
    assert cause.endswith("repository name must be lowercase")


def test_unschedulable_quotes_the_scheduler():
    message = (
        "0/3 nodes are available: 3 Insufficient memory. preemption: 0/3 nodes are available: "
        "3 No preemption victims found for incoming pod."
    )
    body = pod(
        node=None,
        conditions=[
            {
                "type": "PodScheduled",
                "status": "False",
                "lastProbeTime": None,
                "lastTransitionTime": "2026-12-04T02:00:04Z",
                "reason": "Unschedulable",
                "message": message,
            }
        ],
    )
    assert not_started_cause([body], [], NOW) == (
        f"Pod nightly-29012-x7k Pending for 31m: Unschedulable: {message}"
    )


@pytest.mark.parametrize(
    "message",
    [
        'secret "db-credentials" not found',
        "couldn't find key password in Secret backups/db-credentials",
        'configmap "backup-config" not found',
    ],
)
def test_create_container_config_error_quotes_the_kubelet(message):
    body = pod(
        conditions=not_ready("main"),
        container_statuses=[cstatus(state=waiting("CreateContainerConfigError", message))],
    )
    assert not_started_cause([body], [], NOW) == (
        f"Pod nightly-29012-x7k Pending for 31m: CreateContainerConfigError: {message}"
    )


def crash_looping_init_pod() -> dict[str, Any]:
    return pod(
        init_containers=[{"name": "migrate", "image": "migrate:3"}],
        conditions=[
            {"type": "Initialized", "status": "False", "reason": "ContainersNotInitialized",
             "message": "containers with incomplete status: [migrate]", "lastProbeTime": None,
             "lastTransitionTime": "2026-12-04T02:00:04Z"},
            SCHEDULED,
        ],
        init_statuses=[
            cstatus(
                "migrate", "migrate:3", restarts=4,
                state=waiting(
                    "CrashLoopBackOff",
                    "back-off 1m20s restarting failed container=migrate "
                    "pod=nightly-29012-x7k_backups(uid-nightly-29012-x7k)",
                ),
                lastState=terminated(2, "Error", "2026-12-04T02:05:01Z", "2026-12-04T02:05:02Z"),
            )
        ],
        container_statuses=[cstatus(state=waiting("PodInitializing"))],
    )  # fmt: skip


def test_crash_loop_back_off_of_an_init_container_is_the_cause():
    assert not_started_cause([crash_looping_init_pod()], [], NOW) == (
        "Pod nightly-29012-x7k Pending for 31m: CrashLoopBackOff (init container migrate): "
        "back-off 1m20s restarting failed container=migrate "
        "pod=nightly-29012-x7k_backups(uid-nightly-29012-x7k); last exit code 2 (Error), "
        "4 restarts"
    )


def test_crash_loop_back_off_of_a_regular_container_is_not_a_cause():
    """It has started (DESIGN 10.8.2): only the container that has not is named."""
    body = pod(
        phase="Running",
        containers=[{"name": "main", "image": IMAGE}, {"name": "uploader", "image": "up:2"}],
        container_statuses=[
            cstatus(
                restarts=2,
                state=waiting("CrashLoopBackOff", "back-off 20s restarting failed container=main"),
                lastState=terminated(1, "Error", "2026-12-04T02:00:10Z", "2026-12-04T02:00:12Z"),
            ),
            cstatus("uploader", "up:2", state=waiting("CreateContainerConfigError",
                                                      'secret "s3" not found')),
        ],
    )  # fmt: skip
    assert not_started_cause([body], [], NOW) == (
        "Pod nightly-29012-x7k Running: CreateContainerConfigError (container uploader): "
        'secret "s3" not found'
    )


def test_an_init_container_that_failed_for_good():
    body = pod(
        phase="Failed",
        init_containers=[{"name": "migrate", "image": "migrate:3"}],
        init_statuses=[
            cstatus("migrate", "migrate:3", state=terminated(
                3, "Error", "2026-12-04T02:00:06Z", "2026-12-04T02:00:08Z"))
        ],
        container_statuses=[cstatus(state=waiting("PodInitializing"))],
    )  # fmt: skip
    assert not_started_cause([body], [], NOW) == (
        "Pod nightly-29012-x7k Failed: Error (init container migrate), exit code 3"
    )


def test_an_image_pull_failure_of_an_init_container_names_its_image():
    body = pod(
        init_containers=[{"name": "migrate", "image": "migrate:9"}],
        init_statuses=[cstatus("migrate", "migrate:9", state=waiting("ErrImagePull", "not found"))],
        container_statuses=[cstatus(state=waiting("PodInitializing"))],
    )
    assert not_started_cause([body], [], NOW) == (
        "Pod nightly-29012-x7k Pending for 31m: ErrImagePull: image migrate:9 "
        "(init container migrate): not found"
    )


def test_on_its_way_container_creating_and_pod_initializing():
    creating = pod(conditions=not_ready("main"), container_statuses=[
        cstatus(state=waiting("ContainerCreating"))])  # fmt: skip
    assert not_started_cause([creating], [], NOW) == (
        "Pod nightly-29012-x7k Pending for 31m: ContainerCreating"
    )
    initializing = pod(
        init_containers=[{"name": "migrate", "image": "migrate:3"}],
        init_statuses=[cstatus("migrate", "migrate:3", state=running("2026-12-04T02:00:07Z"))],
        container_statuses=[cstatus(state=waiting("PodInitializing"))],
    )
    assert not_started_cause([initializing], [], NOW) == (
        "Pod nightly-29012-x7k Pending for 31m: PodInitializing: init container migrate "
        "running since 02:00:07 UTC"
    )


def test_plain_pending():
    # No scheduler ran (the local control plane has none): no condition, no node.
    unscheduled = pod(node=None, created="2026-12-04T02:30:30Z")
    assert not_started_cause([unscheduled], [], NOW) == (
        "Pod nightly-29012-x7k Pending for 40s: not scheduled to a node yet"
    )
    scheduled = pod(created="2026-12-04T00:26:00Z", conditions=[SCHEDULED])
    assert not_started_cause([scheduled], [], NOW) == "Pod nightly-29012-x7k Pending for 2h5m"


def test_no_pod_the_job_controllers_failed_create_says_why():
    events = [
        job_event("FailedCreate", WEBHOOK, "2026-12-04T02:00:03Z"),
        job_event("FailedCreate", QUOTA, "2026-12-04T02:25:40Z", count=14),
        job_event("SuccessfulDelete", "Deleted pod: nightly-29012-zz", "2026-12-04T02:29:00Z",
                  type_="Normal"),
    ]  # fmt: skip
    assert not_started_cause([], events, NOW) == (
        f"no Pod created: FailedCreate (14 times): {QUOTA}"
    )
    assert not_started_cause([], events[:1], NOW) == f"no Pod created: FailedCreate: {WEBHOOK}"


def test_failed_create_from_the_events_api_recorder():
    """An events.k8s.io-style core/v1 Event: no lastTimestamp, a series instead."""
    old = job_event("FailedCreate", WEBHOOK, "2026-12-04T02:00:03Z")
    new = job_event("FailedCreate", QUOTA, "2026-12-04T02:00:03Z")
    new.update(firstTimestamp=None, lastTimestamp=None, count=None,
               eventTime="2026-12-04T02:10:00.123456Z",
               series={"count": 3, "lastObservedTime": "2026-12-04T02:30:00.000001Z"})  # fmt: skip
    assert not_started_cause([], [old, new], NOW) == (
        f"no Pod created: FailedCreate (3 times): {QUOTA}"
    )


def test_no_pod_and_no_events():
    assert not_started_cause([], [], NOW) == "no Pod created yet"


def test_a_suspended_job_is_queued():
    assert not_started_cause([], [], NOW, suspended=True) == "Job suspended (queued)"
    assert not_started_cause([image_pull_backoff_pod()], [], NOW, suspended=True) == (
        "Job suspended (queued)"
    )


def test_the_newest_pod_not_being_deleted_speaks():
    old = pod("nightly-29012-aaa", created="2026-12-04T02:00:04Z", node=None)
    newest_deleted = image_pull_backoff_pod(
        name="nightly-29012-ccc", created="2026-12-04T02:20:00Z", deleted="2026-12-04T02:21:00Z"
    )
    newer = pod(
        "nightly-29012-bbb",
        created="2026-12-04T02:10:00Z",
        conditions=not_ready("main"),
        container_statuses=[cstatus(state=waiting("CreateContainerConfigError", "no secret"))],
    )
    assert not_started_cause([newer, newest_deleted, old], [], NOW) == (
        "Pod nightly-29012-bbb Pending for 21m: CreateContainerConfigError: no secret"
    )
    # Only a Pod being deleted: the Job controller's Events say more, if it has any.
    events = [job_event("FailedCreate", QUOTA, "2026-12-04T02:22:00Z")]
    assert not_started_cause([newest_deleted], events, NOW).startswith(
        "no Pod created: FailedCreate: Error creating"
    )
    assert not_started_cause([newest_deleted], [], NOW).startswith(
        "Pod nightly-29012-ccc Pending for 11m (being deleted): ImagePullBackOff"
    )


def test_an_evicted_pod_that_never_ran():
    body = pod(
        phase="Failed",
        reason="Evicted",
        message="The node was low on resource: ephemeral-storage. Threshold quantity: 1Gi, "
        "available: 512Mi. ",
        container_statuses=[cstatus(state=waiting("ContainerCreating"))],
    )
    assert not_started_cause([body], [], NOW) == (
        "Pod nightly-29012-x7k Failed: Evicted: The node was low on resource: "
        "ephemeral-storage. Threshold quantity: 1Gi, available: 512Mi."
    )


def test_messages_stay_under_the_limit_and_whole_characters():
    huge = "0/5000 nodes are available: " + "; ".join(
        f"{n} node(s) had untolerated taint {{zone-ü-{n}: }}" for n in range(400)
    )
    body = pod(
        node=None,
        conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                     "message": huge}],
    )  # fmt: skip
    cause = not_started_cause([body], [], NOW)
    assert len(cause.encode("utf-8")) <= MESSAGE_LIMIT
    assert cause.startswith("Pod nightly-29012-x7k Pending for 31m: Unschedulable: 0/5000 nodes")
    assert cause.endswith("…")
    message = not_started_message("nightly-29012", t("2026-12-04T02:00:03Z"), [body], [], NOW)
    assert len(message.encode("utf-8")) <= MESSAGE_LIMIT
    for limit in range(990, 1000):
        assert len(cut("ü" * 800, limit).encode("utf-8")) <= limit  # never half a character


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (40, "40s"), (59, "59s"), (60, "1m"), (31 * 60 + 12, "31m"),
     (2 * 3600 + 5 * 60 + 37, "2h5m"), (3 * 3600, "3h"), (3 * 86400 + 4 * 3600 + 600, "3d4h"),
     (-5, "0s")],
)  # fmt: skip
def test_ages_read_like_a_human_says_them(seconds, text):
    assert age(timedelta(seconds=seconds)) == text


def test_not_started_message_names_the_job_and_when_it_was_created():
    assert not_started_message(
        "nightly-29012", t("2026-12-04T02:00:03Z"), [image_pull_backoff_pod()], [], NOW
    ) == (
        f"Job nightly-29012 created 02:00:03 UTC; Pod nightly-29012-x7k Pending for 31m: "
        f"ImagePullBackOff: image {IMAGE}: ErrImagePull: {PULL_ERROR}"
    )
    assert not_started_message(
        "nightly-29012", t("2026-12-04T02:00:00Z"), [], [], NOW, suspended=True
    ) == ("Job nightly-29012 created 02:00 UTC; Job suspended (queued)")
    assert not_started_message("nightly-29012", None, [], [], NOW) == (
        "Job nightly-29012; no Pod created yet"
    )


# --- failure_cause / failing_container ---------------------------------------------------


def oom_pod(name: str = "nightly-29012-x7k", finished: str = "2026-12-04T02:04:51Z") -> dict:
    return pod(
        name,
        phase="Failed",
        conditions=[
            {"type": "PodReadyToStartContainers", "status": "False", "lastProbeTime": None,
             "lastTransitionTime": finished},
            {"type": "Ready", "status": "False", "reason": "PodFailed", "lastProbeTime": None,
             "lastTransitionTime": finished},
            SCHEDULED,
        ],
        container_statuses=[
            cstatus(state=terminated(137, "OOMKilled", "2026-12-04T02:00:09Z", finished))
        ],
    )  # fmt: skip


def test_oom_killed_with_the_backoff_limit():
    assert failure_cause(
        [oom_pod()], "BackoffLimitExceeded", "Job has reached the specified backoff limit"
    ) == (
        "BackoffLimitExceeded: Job has reached the specified backoff limit; "
        "container main OOMKilled (exit code 137)"
    )
    assert failing_container([oom_pod()]) == ("nightly-29012-x7k", "main")


def test_deadline_exceeded_after_the_pods_are_gone():
    assert failure_cause(
        [], "DeadlineExceeded", "Job was active longer than specified deadline"
    ) == ("DeadlineExceeded: Job was active longer than specified deadline")
    assert failing_container([]) is None


def test_an_ordinary_exit_code():
    ended = terminated(3, "Error", "2026-12-04T02:00:09Z", "2026-12-04T02:00:30Z")
    body = pod(phase="Failed", container_statuses=[cstatus(state=ended)])
    assert failure_cause([body], "BackoffLimitExceeded", "") == (
        "BackoffLimitExceeded; container main Error (exit code 3)"
    )
    assert failure_cause([body], None, None) == "container main Error (exit code 3)"
    assert failure_cause([], None, None) == "Failed"


def evicted_pod() -> dict[str, Any]:
    message = (
        "The node was low on resource: memory. Threshold quantity: 100Mi, available: 87864Ki. "
        "Container main was using 1418044Ki, request is 256Mi, has larger consumption of memory. "
    )
    return pod(
        "nightly-29012-ev1",
        phase="Failed",
        reason="Evicted",
        message=message,
        conditions=[
            {"type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet",
             "message": message, "lastProbeTime": None,
             "lastTransitionTime": "2026-12-04T02:10:00Z"},
            {"type": "Ready", "status": "False", "reason": "PodFailed", "lastProbeTime": None,
             "lastTransitionTime": "2026-12-04T02:10:02Z"},
            SCHEDULED,
        ],
        container_statuses=[
            cstatus(state=terminated(137, "ContainerStatusUnknown", "2026-12-04T02:00:09Z",
                                     "2026-12-04T02:10:02Z"))
        ],
    )  # fmt: skip


def test_evicted_names_the_kubelets_reason_not_the_kill():
    assert failure_cause(
        [oom_pod(finished="2026-12-04T02:04:51Z"), evicted_pod()],
        "BackoffLimitExceeded",
        "Job has reached the specified backoff limit",
    ) == (
        "BackoffLimitExceeded: Job has reached the specified backoff limit; "
        "Pod nightly-29012-ev1 Evicted: The node was low on resource: memory. Threshold "
        "quantity: 100Mi, available: 87864Ki. Container main was using 1418044Ki, request is "
        "256Mi, has larger consumption of memory."
    )
    assert failing_container([oom_pod(), evicted_pod()]) == ("nightly-29012-ev1", "main")


def test_the_latest_failure_decides_across_pods_and_restarts():
    later_oom = oom_pod("nightly-29012-b2", finished="2026-12-04T02:20:00Z")
    assert failure_cause([later_oom, evicted_pod()], "BackoffLimitExceeded", "limit") == (
        "BackoffLimitExceeded: limit; container main OOMKilled (exit code 137)"
    )
    # restartPolicy OnFailure: the failure is the container's lastState.
    restarted = pod(
        "nightly-29012-r",
        phase="Running",
        container_statuses=[
            cstatus(restarts=2, state=waiting("CrashLoopBackOff", "back-off 20s"),
                    lastState=terminated(137, "OOMKilled", "2026-12-04T02:25:00Z",
                                         "2026-12-04T02:26:00Z"))
        ],
    )  # fmt: skip
    assert failing_container([later_oom, restarted, evicted_pod()]) == ("nightly-29012-r", "main")
    assert failure_cause([restarted, later_oom], "DeadlineExceeded", "").endswith(
        "container main OOMKilled (exit code 137)"
    )


def test_a_failed_init_container_is_named_as_such():
    body = pod(
        phase="Failed",
        init_containers=[{"name": "migrate", "image": "migrate:3"}],
        init_statuses=[cstatus("migrate", "migrate:3", state=terminated(
            2, "Error", "2026-12-04T02:00:06Z", "2026-12-04T02:00:08Z"))],
        container_statuses=[cstatus(state=waiting("PodInitializing"))],
    )  # fmt: skip
    assert failure_cause([body], None, None) == "init container migrate Error (exit code 2)"
    assert failing_container([body]) == ("nightly-29012-x7k", "migrate")


def test_successful_containers_decide_nothing():
    ended = terminated(0, "Completed", "2026-12-04T02:00:09Z", "2026-12-04T02:00:30Z")
    body = pod(phase="Succeeded", container_statuses=[cstatus(state=ended)])
    assert failing_container([body]) is None


# --- docs/cronjobs.md shows what these functions say -------------------------------------

PAGE = Path(__file__).resolve().parents[3] / "docs" / "cronjobs.md"
CREATED = t("2026-12-04T02:00:03Z")


def documented_samples() -> dict[str, str]:
    """Each cause of docs/cronjobs.md's table -> the message made from real-shaped bodies."""

    def waiting_job(*pods: dict[str, Any], events=(), suspended=False) -> str:
        return not_started_message(
            "nightly-29012", CREATED, list(pods), list(events), NOW, suspended
        )

    def scheduler(message: str) -> dict[str, Any]:
        return pod(node=None, conditions=[{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": message, "lastProbeTime": None,
            "lastTransitionTime": "2026-12-04T02:00:04Z"}])  # fmt: skip

    def kubelet_waiting(reason: str, message: str | None, image: str = IMAGE) -> dict:
        return pod(
            containers=[{"name": "main", "image": image}],
            conditions=not_ready("main"),
            container_statuses=[cstatus(image=image, state=waiting(reason, message))],
        )

    def cronjob(**spec: Any) -> cronjobs.CronJobInfo:
        return cronjobs.CronJobInfo.from_body({
            "metadata": {"name": "nightly", "namespace": "backups", "uid": "cj-uid"},
            "spec": {"schedule": "0 * * * *", **spec}})  # fmt: skip

    bad = "registry.example.com/Backup:1.4"
    hung = JobRun.from_body({
        "metadata": {
            "name": "nightly-29424600", "namespace": "backups", "uid": "job-uid",
            "creationTimestamp": "2026-12-04T02:00:01Z",
            "annotations": {
                "batch.kubernetes.io/cronjob-scheduled-timestamp": "2026-12-04T02:00:00Z"},
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob",
                                 "name": "nightly", "uid": "cj-uid", "controller": True}]},
        "status": {"startTime": "2026-12-04T02:00:01Z", "active": 1}})  # fmt: skip
    assert hung is not None
    due = t("2026-12-04T03:00:00Z")
    exited = terminated(3, "Error", "2026-12-04T02:00:09Z", "2026-12-04T02:00:30Z")
    return {
        "ImagePullBackOff": waiting_job(image_pull_backoff_pod()),
        "ErrImagePull": waiting_job(
            kubelet_waiting("ErrImagePull", f"rpc error: code = NotFound desc = {PULL_ERROR}")
        ),
        "InvalidImageName": waiting_job(
            kubelet_waiting(
                "InvalidImageName",
                f'Failed to apply default image tag "{bad}": couldn\'t parse image name '
                f'"{bad}": invalid reference format: repository name must be lowercase',
                bad,
            )
        ),
        "Unschedulable": waiting_job(
            scheduler(
                "0/3 nodes are available: 3 Insufficient memory. preemption: 0/3 nodes are "
                "available: 3 No preemption victims found for incoming pod."
            )
        ),
        "CreateContainerConfigError": waiting_job(
            kubelet_waiting(
                "CreateContainerConfigError",
                "couldn't find key password in Secret backups/db-credentials",
            )
        ),
        "CrashLoopBackOff": waiting_job(crash_looping_init_pod()),
        "ContainerCreating": waiting_job(kubelet_waiting("ContainerCreating", None)),
        "not scheduled": waiting_job(pod(node=None)),
        "FailedCreate quota": waiting_job(
            events=[job_event("FailedCreate", QUOTA, "2026-12-04T02:25:40Z", count=14)]
        ),
        "FailedCreate webhook": waiting_job(
            events=[job_event("FailedCreate", WEBHOOK, "2026-12-04T02:00:03Z")]
        ),
        "StartError": waiting_job(start_error_pod()),
        "no Pod": waiting_job(),
        "suspended": waiting_job(image_pull_backoff_pod(), suspended=True),
        "OOMKilled": failure_cause(
            [oom_pod()], "BackoffLimitExceeded", "Job has reached the specified backoff limit"
        ),
        "exit code": failure_cause(
            [pod(phase="Failed", container_statuses=[cstatus(state=exited)])],
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        ),
        "Evicted": failure_cause(
            [evicted_pod()], "BackoffLimitExceeded", "Job has reached the specified backoff limit"
        ),
        "DeadlineExceeded": failure_cause(
            [], "DeadlineExceeded", "Job was active longer than specified deadline"
        ),
        "Forbid": cronjobs.skipped_slot_cause(
            cronjob(concurrencyPolicy="Forbid"), [hung], due, due
        ),
        "startingDeadlineSeconds": cronjobs.skipped_slot_cause(
            cronjob(startingDeadlineSeconds=200), [], due, due + timedelta(minutes=4)
        ),
    }


@pytest.mark.parametrize("cause", sorted(documented_samples()))
def test_the_docs_table_shows_each_message_as_made(cause):
    sample = documented_samples()[cause]
    rows = [line for line in PAGE.read_text().splitlines() if line.startswith("| ")]
    assert any(f"`{sample}`" in row for row in rows), f"docs/cronjobs.md lacks:\n{sample}"
