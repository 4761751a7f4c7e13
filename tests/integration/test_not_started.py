"""Runs that never start or never finish alert, and say why in the cluster's words
(DESIGN 10.1-10.3, 10.8.2-10.8.7; issue 12), with the real CronJob, Job and garbage
collector controllers making the Jobs and Pods on a ``* * * * *`` schedule.

The kubelet stand-in (``tests.support.kubelet``) plays each Pod the way a kubelet and the
scheduler report real failures: an image that cannot be pulled, no node with room, a
missing Secret, a container OOMKilled, a container that starts a few seconds late, one
that never finishes. Several CronJobs share one minute so the suite waits for the clock
once.
"""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.integration.operator_process import Monitors, at, isolated
from tests.support.kubelet import Kubelet
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

GRACE = 20  # s: heartbeat.dev/grace of every CronJob here
STUCK_IMAGE = "registry.invalid/does-not-exist:1"


@pytest.fixture
def monitors(api_client, namespace):
    return Monitors(api_client, namespace)


@pytest.fixture
def batch(api_client):
    return k8s.BatchV1Api(api_client)


@pytest.fixture
def kubelet(api_client, namespace):
    return Kubelet(api_client, namespace)


def minutely(
    name: str, *, image: str = "busybox:1.37", policy: str = "Forbid", env: list | None = None
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": image, "command": ["sh", "-c", "true"]}
    if env:
        container["env"] = env
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": name,
            "annotations": {"heartbeat.dev/monitor": "true", "heartbeat.dev/grace": f"{GRACE}s"},
        },
        "spec": {
            "schedule": "* * * * *",
            "concurrencyPolicy": policy,
            "jobTemplate": {
                "spec": {
                    "backoffLimit": 0,
                    "template": {"spec": {"restartPolicy": "Never", "containers": [container]}},
                }
            },
        },
    }


def transitions(status: Mapping[str, Any], reason: str) -> list[Mapping[str, Any]]:
    return [t for t in status.get("recentTransitions") or () if t.get("reason") == reason]


def events_of(
    monitors: Monitors, name: str, kind: str = "HeartbeatMonitor"
) -> dict[str, list[str]]:
    """Event reason -> messages, for the monitor (or its CronJob) named ``name``."""
    out: dict[str, list[str]] = {}
    for event in monitors.events(name):
        if event.involved_object.kind == kind:
            out.setdefault(event.reason, []).append(event.message or "")
    return out


def events_with(
    monitors: Monitors, name: str, reason: str, kind: str = "HeartbeatMonitor"
) -> dict[str, list[str]]:
    """``events_of`` once ``reason`` is among them: the writer posts a transition's Events
    right after its status write, so a test that saw the status may list them a moment
    early (a loaded machine showed it)."""
    return wait_for(
        lambda: (found := events_of(monitors, name, kind)) and reason in found and found,
        timeout=15,
        what=f"{reason} Event on {kind} {name}",
    )


def wait_transition(
    monitors: Monitors, name: str, reason: str, timeout: float
) -> tuple[Mapping[str, Any], float]:
    """The first transition with ``reason`` and the wall time it was first seen."""

    def probe() -> tuple[Mapping[str, Any], float] | None:
        found = transitions(monitors.status(name), reason)
        return (found[-1], time.time()) if found else None

    return wait_for(probe, timeout=timeout, interval=0.1, what=f"{name}: {reason}")


def test_runs_that_never_start_or_finish_alert_with_the_clusters_reason(
    operator_factory, monitors, batch, kubelet, namespace
):
    operator_factory.start(*isolated(namespace))
    stop = threading.Event()

    def after(seconds: float, then: Callable[[], None]) -> None:
        # The container's own pace (it starts a few seconds late), not a test waiting.
        if not stop.wait(seconds):
            then()

    plays: dict[str, Callable[[Any], None]] = {
        "stuck-image": lambda pod: kubelet.leave_pending(pod, "ImagePullBackOff"),
        "no-room": lambda pod: kubelet.mark_unschedulable(pod),
        "no-secret": lambda pod: kubelet.leave_pending(
            pod, "CreateContainerConfigError", 'secret "db-password" not found'
        ),
        "on-time": lambda pod: after(
            8, lambda: kubelet.finish(pod, 0, started_at=kubelet.start(pod))
        ),
        "oom": lambda pod: (kubelet.start_pod(pod), kubelet.end_pod(pod, 137, "OOMKilled")),
        "hung": lambda pod: kubelet.start_pod(pod),
        "no-exec": lambda pod: kubelet.fail_to_start(pod),
    }

    def play(pod: Any) -> bool:
        cronjob = pod.metadata.labels.get("batch.kubernetes.io/job-name", "").rsplit("-", 1)[0]
        if cronjob not in plays:
            return False
        plays[cronjob](pod)
        return True

    with kubelet.autoplay(play):
        batch.create_namespaced_cron_job(namespace, minutely("stuck-image", image=STUCK_IMAGE))
        batch.create_namespaced_cron_job(namespace, minutely("no-room"))
        batch.create_namespaced_cron_job(
            namespace,
            minutely(
                "no-secret",
                env=[
                    {
                        "name": "PASSWORD",
                        "valueFrom": {"secretKeyRef": {"name": "db-password", "key": "pw"}},
                    }
                ],
            ),
        )
        batch.create_namespaced_cron_job(namespace, minutely("on-time"))
        batch.create_namespaced_cron_job(namespace, minutely("oom"))
        batch.create_namespaced_cron_job(namespace, minutely("hung"))
        batch.create_namespaced_cron_job(namespace, minutely("no-exec"))
        for name in plays:
            monitors.wait_ready(name, timeout=30)

        # --- an image that cannot be pulled: NotStarted at alertTime, with the image ----
        failed, seen = wait_transition(monitors, "stuck-image", "NotStarted", timeout=120)
        alert_time = at(failed["time"])
        job_due = alert_time - datetime.timedelta(seconds=GRACE)
        assert job_due.second == 0, failed  # the slot's alertTime: its tick + grace
        assert seen - alert_time.timestamp() <= 3.0, "written within 3 s of alertTime"
        assert failed["state"] == "Down"
        assert "ImagePullBackOff" in failed["message"], failed
        assert STUCK_IMAGE in failed["message"], failed
        assert "Job stuck-image-" in failed["message"] and "Pod stuck-image-" in failed["message"]
        status = monitors.status("stuck-image")
        assert status["missedRuns"] >= 1
        assert not transitions(status, "Late"), "a Job made on time is a pending start"
        on_monitor = events_with(monitors, "stuck-image", "NotStarted")
        assert "Late" not in on_monitor, on_monitor
        events_with(monitors, "stuck-image", "NotStarted", "CronJob")

        # --- no node with room; a missing Secret: the scheduler's and kubelet's words ----
        unschedulable, _ = wait_transition(monitors, "no-room", "NotStarted", timeout=30)
        assert "Unschedulable" in unschedulable["message"], unschedulable
        assert "Insufficient memory" in unschedulable["message"], unschedulable
        config, _ = wait_transition(monitors, "no-secret", "NotStarted", timeout=30)
        assert "CreateContainerConfigError" in config["message"], config
        assert 'secret "db-password" not found' in config["message"], config

        # --- a command not in the image: the runtime could not start the container. The
        # kubelet says "terminated, exit 128, started at 1970": it never ran, so no start,
        # and one NotStarted failure in the runtime's words at the Job's failure ----------
        no_exec, _ = wait_transition(monitors, "no-exec", "NotStarted", timeout=30)
        assert "StartError" in no_exec["message"], no_exec
        assert "executable file not found" in no_exec["message"], no_exec
        status = monitors.status("no-exec")
        assert "lastStartTime" not in status and "start" not in status.get("pingCounts", {})
        assert "1970" not in str(status), status

        # --- a container that starts 8 s late, within grace: on time, no noise -----------
        healthy, _ = monitors.wait_state("on-time", "Healthy", timeout=30)
        assert healthy["lastExitCode"] == 0
        quiet = events_with(monitors, "on-time", "FirstPing")
        assert not {"Late", "NotStarted", "Missed", "NeverPinged"} & set(quiet), quiet

        # --- OOMKilled: Failed, exit 137, and the cause where users look -----------------
        oom, _ = monitors.wait_state("oom", "Down", timeout=30, reason="Failed")
        assert oom["lastExitCode"] == 137
        assert "OOMKilled" in oom["lastOutput"]["body"], oom["lastOutput"]
        failed_events = events_with(monitors, "oom", "Failed")
        assert any("OOMKilled" in m for m in failed_events["Failed"]), failed_events

        # --- a run that never finishes under Forbid: RunTimeout at the first skipped slot,
        # naming the Forbid and the Job; Missed naming it at the next (DESIGN 10.8.7) ----
        timeout, _ = wait_transition(monitors, "hung", "RunTimeout", timeout=150)
        assert "concurrencyPolicy Forbid" in timeout["message"], timeout
        assert "Job hung-" in timeout["message"], timeout
        missed, _ = wait_transition(monitors, "hung", "Missed", timeout=90)
        assert "concurrencyPolicy Forbid" in missed["message"], missed
        assert at(missed["time"]) - at(timeout["time"]) == datetime.timedelta(minutes=1)
        hung_jobs = [
            j
            for j in batch.list_namespaced_job(namespace).items
            if j.metadata.name.startswith("hung-")
        ]
        assert len(hung_jobs) == 1, "Forbid: the CronJob controller made no second Job"
        stop.set()
