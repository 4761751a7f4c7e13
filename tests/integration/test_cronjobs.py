"""Zero-change monitoring of annotated CronJobs, with the real CronJob, Job and garbage
collector controllers (DESIGN 4, 9.10–9.12; issue 5).

The operator runs as a separate process. There is no kubelet: ``tests.support.kubelet``
writes the status of the Pods the real Job controller creates (started, then terminated
with an exit code), and the Job controller itself sets the Job's ``Complete``/``Failed``
condition, start and completion times. Jobs are created the way users do it between
schedules (``kubectl create job --from=cronjob/...``) or by the CronJob controller on a
``* * * * *`` schedule.
"""

from __future__ import annotations

import math
import os
import re
import signal
import time
import urllib.request
from collections import Counter
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from tests.integration.operator_process import Monitors, at, condition, http, isolated
from tests.support.kubelet import Kubelet, Outcome
from tests.support.kubelet_node import kubelet_node
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

MONITOR = {"heartbeat.dev/monitor": "true"}
# Jobs are started by the tests (`kubectl create job --from=cronjob/...`); a schedule that
# fired during a test would add a Job of its own (New Year's midnight, UTC).
NEVER_DURING_TESTS = "0 0 1 1 *"
FAILED_BODY = "BackoffLimitExceeded: Job has reached the specified backoff limit"


@pytest.fixture
def monitors(api_client, namespace):
    return Monitors(api_client, namespace)


@pytest.fixture
def batch(api_client):
    return k8s.BatchV1Api(api_client)


@pytest.fixture
def kubelet(api_client, namespace):
    return Kubelet(api_client, namespace)


@pytest.fixture
def operator(operator_factory, namespace):
    return operator_factory.start(*isolated(namespace))


def cronjob(
    name: str,
    *,
    schedule: str = NEVER_DURING_TESTS,
    annotations: Mapping[str, str] = MONITOR,
    time_zone: str | None = None,
    env: list[dict[str, Any]] | None = None,
    deadline: int | None = None,
) -> dict[str, Any]:
    job_spec: dict[str, Any] = {
        "backoffLimit": 0,
        "template": {
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {"name": "main", "image": "busybox:1.37", "command": ["sh", "-c", "true"]}
                ],
            }
        },
    }
    if env:
        job_spec["template"]["spec"]["containers"][0]["env"] = env
    if deadline:
        job_spec["activeDeadlineSeconds"] = deadline
    spec: dict[str, Any] = {
        "schedule": schedule,
        "concurrencyPolicy": "Forbid",
        "jobTemplate": {"spec": job_spec},
    }
    if time_zone:
        spec["timeZone"] = time_zone
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "annotations": dict(annotations)},
        "spec": spec,
    }


def patch_cronjob(batch: k8s.BatchV1Api, namespace: str, name: str, patch: dict[str, Any]) -> None:
    """What ``kubectl patch --type merge`` does (the user's edit; the operator never writes it)."""
    batch.patch_namespaced_cron_job(
        name, namespace, patch, _content_type="application/merge-patch+json"
    )


def monitor_of(monitors: Monitors, name: str) -> dict[str, Any] | None:
    try:
        return monitors.get(name)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def wait_monitor(monitors: Monitors, name: str, check=lambda m: True, timeout: float = 15.0):
    def probe() -> dict[str, Any] | None:
        body = monitor_of(monitors, name)
        return body if body is not None and check(body) else None

    return wait_for(probe, timeout=timeout, what=f"monitor {name}")


def events_on(core: k8s.CoreV1Api, namespace: str, kind: str, name: str) -> list[Any]:
    events = core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.kind={kind},involvedObject.name={name}"
    ).items
    return sorted(events, key=lambda e: (e.first_timestamp, e.metadata.name))


def wait_event(core, namespace, kind, name, reason, timeout: float = 10.0) -> Any:
    def probe() -> Any:
        found = [e for e in events_on(core, namespace, kind, name) if e.reason == reason]
        return found[0] if found else None

    return wait_for(probe, timeout=timeout, what=f"{reason} Event on {kind} {name}")


def after_active_since(status: Mapping[str, Any]) -> None:
    """Wait until the second after ``activeSince`` (Job times have whole seconds), so the
    run's times in the assertions below come after the monitor's. Not needed for counting:
    a Job created at or after ``activeSince`` counts whatever its start says
    (``test_job_created_right_after_annotating_counts_though_its_pod_clock_says_earlier``)."""
    boundary = math.ceil(at(status["activeSince"]).timestamp())
    wait_for(lambda: time.time() >= boundary + 0.05, timeout=2.0, what="the next second")


def job_finished(batch: k8s.BatchV1Api, namespace: str, name: str, kind: str) -> Any:
    def probe() -> Any:
        job = batch.read_namespaced_job(name, namespace)
        done = [c for c in job.status.conditions or () if c.type == kind and c.status == "True"]
        return job if done else None

    return wait_for(probe, timeout=30, what=f"Job {name} {kind}")


def job_pings(status: Mapping[str, Any], uid: str) -> list[str]:
    return [p["kind"] for p in status.get("recentPings") or () if p.get("runId") == uid]


def start_a_run(
    monitors: Monitors, kubelet: Kubelet, kubectl: Any, namespace: str, cronjob_name: str, job: str
) -> tuple[Any, str, Mapping[str, Any]]:
    """``kubectl create job --from=cronjob/…``, its Pod started by the kubelet stand-in,
    and the monitor's ``Running=True`` from that start: (Pod, start time, that status)."""
    kubectl("create", "job", f"--from=cronjob/{cronjob_name}", job, "-n", namespace)
    pod = kubelet.wait_for_pod(job)
    started = kubelet.start(pod)
    running = wait_for(
        lambda: (
            (s := monitors.status(cronjob_name))
            and condition(s, "Running").get("status") == "True"
            and s
        ),
        timeout=10,
        what="Running=True from the Job's start",
    )
    return pod, started, running


# --- the monitor follows its CronJob -----------------------------------------------------


def test_annotated_cronjob_gets_an_owned_monitor_that_follows_it(
    operator, monitors, batch, namespace, kubectl
):
    annotations = {
        **MONITOR,
        "heartbeat.dev/grace": "30m",
        "heartbeat.dev/failure-threshold": "2",
        "heartbeat.dev/min-runtime": "fast",  # invalid: warned about, the rest works
    }
    created = batch.create_namespaced_cron_job(
        namespace,
        cronjob(
            "backup",
            schedule="0 2 * * *",
            annotations=annotations,
            time_zone="Europe/Berlin",
            deadline=600,
        ),
    )
    monitor = wait_monitor(monitors, "backup")
    (owner,) = monitor["metadata"]["ownerReferences"]
    assert owner == {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "name": "backup",
        "uid": created.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": False,
    }
    assert monitor["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "heartbeat-operator"
    spec = monitor["spec"]
    assert spec["schedule"] == "0 2 * * *"
    assert spec["timeZone"] == "Europe/Berlin"
    assert spec["grace"] == "30m"
    assert spec["failureThreshold"] == 2
    assert spec["maxRuntime"] == "660s"  # activeDeadlineSeconds + 60 s
    assert "minRuntime" not in spec
    # the operator owns only its fields (server-side apply, field manager heartbeat-operator)
    (managed,) = [
        m
        for m in monitor["metadata"]["managedFields"]
        if m["manager"] == "heartbeat-operator" and m["operation"] == "Apply"
    ]
    owned_spec = set(managed["fieldsV1"]["f:spec"])
    assert owned_spec == {
        "f:schedule",
        "f:timeZone",
        "f:grace",
        "f:failureThreshold",
        "f:maxRuntime",
    }
    status = monitors.wait_ready("backup")
    assert status["state"] == "New"

    core = monitors.core
    warning = wait_event(core, namespace, "CronJob", "backup", "InvalidAnnotation")
    assert warning.type == "Warning"
    assert "heartbeat.dev/min-runtime" in warning.message

    # the schedule and zone change: the monitor follows
    patch_cronjob(
        batch, namespace, "backup", {"spec": {"schedule": "30 3 * * 1-5", "timeZone": "Asia/Tokyo"}}
    )
    wait_monitor(
        monitors,
        "backup",
        lambda m: m["spec"]["schedule"] == "30 3 * * 1-5" and m["spec"]["timeZone"] == "Asia/Tokyo",
    )

    # suspend: Paused, the monitor's own spec.paused untouched; unsuspend: resumed
    patch_cronjob(batch, namespace, "backup", {"spec": {"suspend": True}})
    paused, _ = monitors.wait_state("backup", "Paused", timeout=10)
    assert condition(paused, "Healthy")["reason"] == "Paused"
    assert monitors.get("backup")["spec"].get("paused") is False  # the CRD default, as it was
    event = wait_event(core, namespace, "HeartbeatMonitor", "backup", "Paused")
    assert "suspend" in event.message
    wait_event(core, namespace, "CronJob", "backup", "Paused")  # mirrored onto the CronJob
    patch_cronjob(batch, namespace, "backup", {"spec": {"suspend": False}})
    resumed, _ = monitors.wait_state("backup", "New", timeout=10)
    assert "pausedSince" not in resumed
    wait_event(core, namespace, "HeartbeatMonitor", "backup", "Resumed")

    # hands off: the CronJob carries nothing of the operator's
    cj = kubectl("get", "cronjob", "backup", "-n", namespace, "-o", "json").stdout
    assert "kopf" not in cj and "finalizers" not in cj
    managers = {
        m.manager
        for m in batch.read_namespaced_cron_job("backup", namespace).metadata.managed_fields
    }
    assert "heartbeat-operator" not in managers

    # delete the CronJob: the garbage collector deletes the monitor (and its Secret)
    batch.delete_namespaced_cron_job("backup", namespace, propagation_policy="Background")
    wait_for(
        lambda: monitor_of(monitors, "backup") is None, timeout=30, what="monitor garbage-collected"
    )


def test_removing_the_annotation_deletes_only_the_operators_monitor(
    operator, monitors, batch, namespace
):
    # a same-named monitor the user made is never overwritten: NameConflict instead
    monitors.create("report", {"period": "1h"})
    monitors.wait_ready("report")
    batch.create_namespaced_cron_job(namespace, cronjob("report"))
    conflict = wait_event(monitors.core, namespace, "CronJob", "report", "NameConflict")
    assert conflict.type == "Warning"
    mine = monitors.get("report")
    assert mine["spec"]["period"] == "1h" and "schedule" not in mine["spec"]
    assert "ownerReferences" not in mine["metadata"]

    batch.create_namespaced_cron_job(namespace, cronjob("cleanup"))
    wait_monitor(monitors, "cleanup")
    patch_cronjob(
        batch,
        namespace,
        "cleanup",
        {"metadata": {"annotations": {"heartbeat.dev/monitor": "false"}}},
    )
    wait_for(lambda: monitor_of(monitors, "cleanup") is None, timeout=15, what="monitor deleted")
    # a typo ("True") is not "true": still not monitored, and the CronJob says so
    patch_cronjob(
        batch,
        namespace,
        "cleanup",
        {"metadata": {"annotations": {"heartbeat.dev/monitor": "True"}}},
    )
    typo = wait_event(monitors.core, namespace, "CronJob", "cleanup", "InvalidAnnotation")
    assert typo.type == "Warning"
    assert "'True'" in typo.message and "NOT monitored" in typo.message
    assert monitor_of(monitors, "cleanup") is None
    # unannotating the conflicting CronJob leaves the user's monitor alone
    patch_cronjob(
        batch, namespace, "report", {"metadata": {"annotations": {"heartbeat.dev/monitor": None}}}
    )
    assert monitor_of(monitors, "report") is not None
    assert monitors.get("report")["spec"]["period"] == "1h"


# --- pings on the job's behalf --------------------------------------------------------------


def test_job_success_and_failure_with_exit_code(
    operator, monitors, batch, kubelet, namespace, kubectl
):
    batch.create_namespaced_cron_job(namespace, cronjob("backup"))
    wait_monitor(monitors, "backup")
    after_active_since(monitors.wait_ready("backup"))

    pod, started, running = start_a_run(
        monitors, kubelet, kubectl, namespace, "backup", "backup-run-1"
    )
    # a whole second of run time, so the duration is not zero
    wait_for(lambda: time.time() >= at(started).timestamp() + 1.2, timeout=3, what="1 s of run")
    kubelet.finish(pod, 0, started_at=started)
    job = job_finished(batch, namespace, "backup-run-1", "Complete")
    healthy, _ = monitors.wait_state("backup", "Healthy", timeout=10)
    # DESIGN 10.1: the run began when its container started (Pod status), not when the
    # Job controller picked the Job up.
    expected = (job.status.completion_time - at(started)).total_seconds()
    assert expected >= 1
    assert healthy["lastDurationSeconds"] == expected
    assert healthy["lastExitCode"] == 0
    assert at(healthy["lastSuccessTime"]) == job.status.completion_time
    assert at(healthy["lastStartTime"]) == at(started)
    assert running["lastStartTime"] == healthy["lastStartTime"]
    assert job_pings(healthy, job.metadata.uid) == ["success", "start"]

    kubectl("create", "job", "--from=cronjob/backup", "backup-run-2", "-n", namespace)
    kubelet.run_job("backup-run-2", Outcome(exit_code=3))
    failed_job = job_finished(batch, namespace, "backup-run-2", "Failed")
    (failed_condition,) = [c for c in failed_job.status.conditions if c.type == "Failed"]
    body = f"{failed_condition.reason}: {failed_condition.message}"
    assert body == FAILED_BODY
    down, _ = monitors.wait_state("backup", "Down", timeout=10, reason="Failed")
    assert condition(down, "Healthy")["status"] == "False"
    assert down["lastExitCode"] == 3
    # The Job's reason, then what its Pod says (DESIGN 10.1: a failure names its cause).
    assert down["lastOutput"]["body"] == f"{body}; container main Error (exit code 3)"
    assert at(down["lastFailureTime"]) == failed_condition.last_transition_time
    assert "BackoffLimitExceeded" in condition(down, "Healthy")["message"]
    core = monitors.core
    on_monitor = wait_event(core, namespace, "HeartbeatMonitor", "backup", "Failed")
    on_cronjob = wait_event(core, namespace, "CronJob", "backup", "Failed")
    for event in (on_monitor, on_cronjob):
        assert event.type == "Warning"
        assert "BackoffLimitExceeded" in event.message
        assert "3" in event.message
    assert on_cronjob.message == on_monitor.message
    assert (
        on_cronjob.involved_object.uid
        == batch.read_namespaced_cron_job("backup", namespace).metadata.uid
    )
    # hands off: no Job or Pod carries anything of the operator's (DESIGN 9.12)
    for name in ("backup-run-1", "backup-run-2"):
        for obj in (batch.read_namespaced_job(name, namespace), *kubelet.pods_of_job(name)):
            managers = {m.manager for m in obj.metadata.managed_fields or ()}
            assert "heartbeat-operator" not in managers
            assert not any("kopf" in k for k in obj.metadata.annotations or {})
            assert not any("heartbeat" in f for f in obj.metadata.finalizers or ())
    # the FirstPing on success was mirrored too: kubectl describe cronjob shows the history
    wait_event(core, namespace, "CronJob", "backup", "FirstPing")
    described = kubectl("describe", "cronjob", "backup", "-n", namespace).stdout
    assert "Failed" in described and "BackoffLimitExceeded" in described


def test_operator_restarted_between_start_and_completion_pings_each_once(
    operator_factory, monitors, batch, kubelet, namespace, kubectl
):
    first = operator_factory.start(*isolated(namespace))
    batch.create_namespaced_cron_job(namespace, cronjob("nightly"))
    wait_monitor(monitors, "nightly")
    after_active_since(monitors.wait_ready("nightly"))
    pod, started, _ = start_a_run(monitors, kubelet, kubectl, namespace, "nightly", "nightly-run")
    first.stop()  # SIGTERM: a restart between the Job's start and its completion

    kubelet.finish(pod, 0, started_at=started)
    job = job_finished(batch, namespace, "nightly-run", "Complete")
    second = operator_factory.start(*isolated(namespace))
    healthy, _ = monitors.wait_state("nightly", "Healthy", timeout=20)
    assert healthy["pingCounts"] == {"start": 1, "success": 1}
    assert job_pings(healthy, job.metadata.uid) == ["success", "start"]
    # ("pending" too when the operator saw the Job before its Pod ran: DESIGN 10.8.3)
    reported = Counter(
        (j["uid"], j["phase"]) for j in healthy["reportedJobs"] if j["phase"] != "pending"
    )
    assert reported == {(job.metadata.uid, "start"): 1, (job.metadata.uid, "success"): 1}

    # and a crash: a third replica, taking over once the Lease expires, repeats nothing
    # and reports the next Job
    second.kill()
    third = operator_factory.start(*isolated(namespace))
    kubectl("create", "job", "--from=cronjob/nightly", "nightly-run-2", "-n", namespace)
    kubelet.run_job("nightly-run-2")
    job_finished(batch, namespace, "nightly-run-2", "Complete")
    later = wait_for(
        lambda: (
            (s := monitors.status("nightly")) and s.get("pingCounts", {}).get("success") == 2 and s
        ),
        timeout=30,
        what="the second Job's success",
    )
    assert later["pingCounts"] == {"start": 2, "success": 2}
    assert third.is_running()


@pytest.mark.parametrize(
    ("exit_code", "state", "reason"), [(0, "Healthy", None), (3, "Down", "Failed")]
)
def test_job_created_right_after_annotating_counts_though_its_pod_clock_says_earlier(
    operator, monitors, batch, kubelet, namespace, kubectl, exit_code, state, reason
):
    """The recording's report: a Job created within seconds of the monitor's Ready, whose
    container's ``startedAt`` lies before the monitor's ``activeSince`` (a node clock behind
    the API server's; the kubelet stand-in writes it backdated), was ignored as an "old
    Job" and never counted (DESIGN 9.10: only Jobs older than the monitor are ignored; a Job
    created after it is a run of the monitor's)."""
    batch.create_namespaced_cron_job(namespace, cronjob("backup"))
    wait_monitor(monitors, "backup")
    ready = monitors.wait_ready("backup")
    # No waiting for the next second: this is the user trying the CronJob at once.
    kubectl("create", "job", "--from=cronjob/backup", "backup-now", "-n", namespace)
    job = batch.read_namespaced_job("backup-now", namespace)
    assert job.metadata.creation_timestamp >= at(ready["activeSince"])
    assert "batch.kubernetes.io/cronjob-scheduled-timestamp" not in (
        job.metadata.annotations or {}
    ), "a manual Job: no slot of its own (DESIGN 9.10)"
    pod = kubelet.wait_for_pod("backup-now")
    started = kubelet.start(pod, at=timedelta(seconds=-15))  # the node's clock: 15 s behind
    assert at(started) < at(ready["activeSince"])
    kubelet.finish(pod, exit_code, started_at=started)
    job_finished(batch, namespace, "backup-now", "Complete" if exit_code == 0 else "Failed")
    finished, _ = monitors.wait_state("backup", state, timeout=15, reason=reason)
    finish = "success" if exit_code == 0 else "fail"
    assert finished["pingCounts"] == {"start": 1, finish: 1}
    assert job_pings(finished, job.metadata.uid) == [finish, "start"]
    assert finished["lastExitCode"] == exit_code
    # A run between schedules is an ordinary run at its own time: the CronJob's next slot
    # is still expected (DESIGN 9.10, 10.8.3).
    assert finished["nextDueTime"] == ready["nextDueTime"]
    reported = {(j["uid"], j["phase"]) for j in finished["reportedJobs"]}
    assert (job.metadata.uid, "ignored") not in reported


def leads(op: Any) -> bool:
    try:
        with urllib.request.urlopen(op.metrics_url + "/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return False
    return re.search(r"^heartbeat_leader 1", text, re.M) is not None


def test_leader_killed_between_start_and_completion_the_next_leader_pings_the_rest_once(
    operator_factory, monitors, batch, kubelet, namespace, kubectl
):
    replicas = [operator_factory.start(*isolated(namespace), name=f"replica-{i}") for i in (0, 1)]
    leader = wait_for(
        lambda: next((op for op in replicas if leads(op)), None), timeout=15, what="a leader"
    )
    follower = next(op for op in replicas if op is not leader)
    batch.create_namespaced_cron_job(namespace, cronjob("hourly"))
    wait_monitor(monitors, "hourly")
    after_active_since(monitors.wait_ready("hourly"))
    kubectl("create", "job", "--from=cronjob/hourly", "hourly-run", "-n", namespace)
    pod = kubelet.wait_for_pod("hourly-run")
    started = kubelet.start(pod)
    wait_for(
        lambda: condition(monitors.status("hourly"), "Running").get("status") == "True",
        timeout=10,
        what="the leader recorded the Job's start",
    )
    leader.kill()  # a crash: the Lease is not released, the follower waits it out
    kubelet.finish(pod, 0, started_at=started)
    job = job_finished(batch, namespace, "hourly-run", "Complete")
    healthy, _ = monitors.wait_state("hourly", "Healthy", timeout=30)
    # Not asserted: that the follower wrote it. On the shared control plane another
    # session's cluster-wide operator may lead its own Lease and write it first; the
    # exactly-once bookkeeping must hold either way.
    assert follower.is_running()
    assert healthy["pingCounts"] == {"start": 1, "success": 1}, healthy
    assert job_pings(healthy, job.metadata.uid) == ["success", "start"]


def test_real_cronjob_controller_every_minute_makes_the_monitor_healthy(
    operator, monitors, batch, kubelet, namespace
):
    with kubelet.autopilot() as handled:
        batch.create_namespaced_cron_job(namespace, cronjob("minutely", schedule="* * * * *"))
        monitor = wait_monitor(monitors, "minutely")
        assert monitor["spec"]["schedule"] == "* * * * *"
        healthy, _ = monitors.wait_state("minutely", "Healthy", timeout=90)
    assert handled, "the CronJob controller created a Job whose Pod the kubelet ran"
    jobs = batch.list_namespaced_job(namespace).items
    scheduled = [
        j
        for j in jobs
        if "batch.kubernetes.io/cronjob-scheduled-timestamp" in (j.metadata.annotations or {})
    ]
    assert scheduled, "a Job created by the CronJob controller"
    uids = {j.metadata.uid for j in scheduled}
    assert {p.get("runId") for p in healthy["recentPings"]} & uids
    assert healthy["lastExitCode"] == 0


def test_a_job_deleted_the_moment_it_finishes_still_counts(
    operator, monitors, batch, kubelet, namespace, kubectl
):
    """successfulJobsHistoryLimit: 0 (or ttlSecondsAfterFinished: 0) deletes a Job the
    moment it completes, racing the operator's report of its finish. The operator is
    frozen (SIGSTOP) while the Job completes and is deleted, so it reads the completion
    and the deletion back to back, the tightest a cluster plays it: the success counts
    and the deletion is no failure. (Which of the two the operator handles first depends
    on its load; the unit test ``test_a_job_deleted_right_after_it_finished_still_reports
    _its_finish`` pins the order in which the deletion wins, where the finish was lost.)"""
    batch.create_namespaced_cron_job(namespace, cronjob("cleaned"))
    wait_monitor(monitors, "cleaned")
    after_active_since(monitors.wait_ready("cleaned"))
    pod, started, _ = start_a_run(monitors, kubelet, kubectl, namespace, "cleaned", "cleaned-run-1")
    os.kill(operator.pid, signal.SIGSTOP)
    try:
        kubelet.finish(pod, 0, started_at=started)
        job = job_finished(batch, namespace, "cleaned-run-1", "Complete")
        batch.delete_namespaced_job("cleaned-run-1", namespace, propagation_policy="Background")
        wait_for(
            lambda: not batch.list_namespaced_job(namespace).items,
            timeout=10,
            what="the finished Job deleted",
        )
    finally:
        os.kill(operator.pid, signal.SIGCONT)
    healthy, _ = monitors.wait_state("cleaned", "Healthy", timeout=15)
    assert condition(healthy, "Running")["status"] == "False"
    assert at(healthy["lastSuccessTime"]) == job.status.completion_time
    assert healthy["pingCounts"].get("fail", 0) == 0
    assert job_pings(healthy, job.metadata.uid) == ["success", "start"]


def test_job_that_also_pings_its_own_url_with_a_body(
    operator, monitors, batch, kubelet, namespace, kubectl
):
    env = [
        {
            "name": "HEARTBEAT_URL",
            "valueFrom": {"secretKeyRef": {"name": "export-heartbeat", "key": "url"}},
        }
    ]
    batch.create_namespaced_cron_job(namespace, cronjob("export", env=env))
    wait_monitor(monitors, "export")
    after_active_since(monitors.wait_ready("export"))

    def work(environment: dict[str, str]) -> None:
        # what `curl -fsS --data-binary @report.txt "$HEARTBEAT_URL"` does in the container
        reply = http(environment["HEARTBEAT_URL"], method="POST", data=b"exported 42 rows\n")
        assert (reply.status, reply.body) == (200, "OK")

    kubectl("create", "job", "--from=cronjob/export", "export-run", "-n", namespace)
    kubelet.run_job("export-run", Outcome(exit_code=0, work=work))
    job = job_finished(batch, namespace, "export-run", "Complete")
    status = wait_for(
        lambda: (s := monitors.status("export")) and len(job_pings(s, job.metadata.uid)) == 2 and s,
        timeout=15,
        what="the operator's start and success pings",
    )
    assert status["state"] == "Healthy"
    own = [p for p in status["recentPings"] if p.get("body") == "exported 42 rows\n"]
    assert len(own) == 1 and "runId" not in own[0]
    assert status["lastOutput"]["body"] == "exported 42 rows\n"
    assert status["pingCounts"] == {"start": 1, "success": 2}
    assert status["pingCount"] == 3


def test_capture_logs_puts_the_failed_containers_log_tail_in_the_failure(
    operator_factory, monitors, batch, kubelet, namespace, kubectl, api_client, tmp_path
):
    """Issue 12 item 4: with ``--capture-logs`` a failed Job's failing container's last
    10,000 bytes of log become the fail ping's body, read through the real API server's
    ``pods/log`` (proxied to the stand-in kubelet of the Node the Pod is bound to)."""
    with kubelet_node(api_client, tmp_path) as node:
        operator_factory.start(*isolated(namespace, "--capture-logs"))
        batch.create_namespaced_cron_job(namespace, cronjob("logged"))
        wait_monitor(monitors, "logged")
        after_active_since(monitors.wait_ready("logged"))

        kubectl("create", "job", "--from=cronjob/logged", "logged-run", "-n", namespace)
        pod = kubelet.wait_for_pod("logged-run")
        node.bind(pod)
        # ~15 kB: more than the 10,000 bytes kept, so the tail is cut from the front.
        log = "".join(f"copied chunk {i:04d} of backup set\n" for i in range(500))
        log += "error: disk full while writing chunk 0500\nbackup aborted\n"
        node.set_log(namespace, pod.metadata.name, "main", log)
        # The API server reaches the stand-in: what `kubectl logs --tail=2` shows.
        shown = monitors.core.read_namespaced_pod_log(
            pod.metadata.name, namespace, container="main", tail_lines=2
        )
        assert shown == "error: disk full while writing chunk 0500\nbackup aborted\n"

        kubelet.run_pod(pod, Outcome(exit_code=1))
        job_finished(batch, namespace, "logged-run", "Failed")
        down, _ = monitors.wait_state("logged", "Down", timeout=15, reason="Failed")
        cause = f"{FAILED_BODY}; container main Error (exit code 1)"
        body = down["lastOutput"]["body"]
        head, tail = body.split("\n", 1)
        assert head == cause
        assert len(tail.encode()) == 10_000 and log.endswith(tail)
        assert down["lastExitCode"] == 1
        # The failure's Event quotes the body's first lines: the cause, then the log.
        event = wait_event(monitors.core, namespace, "HeartbeatMonitor", "logged", "Failed")
        assert "BackoffLimitExceeded" in event.message and "output: " in event.message
        assert tail.splitlines()[1] in event.message
        # The operator asked the kubelet for the end of the log, bounded in bytes (the first
        # request is the test's own read above).
        path = f"/containerLogs/{namespace}/{pod.metadata.name}/main"
        asked = node.requests[1:]
        assert asked and all(r.path == path for r in asked), node.requests
        assert all({"tailLines", "limitBytes"} <= set(r.query) for r in asked), asked

    # The log outlives the Pod: the status keeps it once the Pod is gone.
    monitors.core.delete_namespaced_pod(pod.metadata.name, namespace, grace_period_seconds=0)
    wait_for(lambda: not kubelet.pods_of_job("logged-run"), timeout=15, what="the Pod deleted")
    assert monitors.status("logged")["lastOutput"]["body"] == body


def test_the_example_applies_and_gives_the_monitor_its_readme_shows(
    operator, monitors, kubectl, namespace
):
    example = Path(__file__).parents[2] / "examples" / "annotated-cronjob" / "cronjob.yaml"
    kubectl("apply", "-n", namespace, "-f", str(example))
    monitor = wait_monitor(monitors, "nightly-backup")
    spec = monitor["spec"]
    assert {
        k: spec.get(k)
        for k in ("schedule", "timeZone", "grace", "minRuntime", "maxRuntime", "failureThreshold")
    } == {
        "schedule": "0 2 * * *",
        "timeZone": "Europe/Berlin",
        "grace": "15m",
        "minRuntime": "10s",
        "maxRuntime": "3660s",
        "failureThreshold": 1,
    }
    status = monitors.wait_ready("nightly-backup")
    assert status["state"] == "New"
    assert status["tokenSecretName"] == "nightly-backup-heartbeat"
