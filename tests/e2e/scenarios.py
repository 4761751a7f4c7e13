"""The operator's main scenarios (issue 4), written against any cluster.

Each scenario takes a ``Monitors`` (a Kubernetes API client and a namespace of its own)
and checks what a user would see: the token Secret, state and conditions in status, Events,
the Lease. Nothing here knows how the operator runs: in a kind cluster from the chart
(``make e2e-kind``), out of cluster against the local control plane
(``tests/e2e/run-local.sh``), or under the chart's ServiceAccount
(``tests/integration/test_rbac.py``, the RBAC proof). Timeouts are generous: these are
behaviour checks, not timing ones (the timing checks are the integration tests').

A ``200`` means the ping is stored in the API (the replica's journal, DESIGN 10.7), not
necessarily in the monitor's status yet: status absorbs it within about a second at rest,
so a ping's effect on status is waited for, never read right after the ``200``.

Pings go to the URL in the monitor's Secret. When the test runner can't reach that address
(an in-cluster Service), ``ping_base`` replaces its scheme, host and port.
"""

from __future__ import annotations

import base64
import hashlib
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from kubernetes import client as k8s

from tests.support.waiting import wait_for

GROUP, VERSION, PLURAL = "heartbeat.dev", "v1alpha1", "heartbeatmonitors"
SETTLE = 20.0  # s: generous bound for the operator to show a change in status


@dataclass
class Reply:
    status: int
    body: str


def http(url: str, *, method: str = "GET", data: bytes | None = None) -> Reply:
    request = urllib.request.Request(url, method=method, data=data)
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return Reply(response.status, response.read().decode())
    except urllib.error.HTTPError as error:
        return Reply(error.code, error.read().decode())


def condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    for item in status.get("conditions") or ():
        if item.get("type") == kind:
            return dict(item)
    return {}


class Monitors:
    """HeartbeatMonitors, their Secrets and Events in one namespace, through the real API."""

    def __init__(
        self,
        api_client: k8s.ApiClient,
        namespace: str,
        *,
        ping_base: str | None = None,
        lease_namespace: str | None = None,
    ) -> None:
        self.namespace = namespace
        self.ping_base = ping_base.rstrip("/") if ping_base else None
        self.lease_namespace = lease_namespace
        self.custom = k8s.CustomObjectsApi(api_client)
        self.core = k8s.CoreV1Api(api_client)
        self.batch = k8s.BatchV1Api(api_client)
        self.coordination = k8s.CoordinationV1Api(api_client)

    def create(self, name: str, spec: Mapping[str, Any]) -> None:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "HeartbeatMonitor",
            "metadata": {"name": name},
            "spec": dict(spec),
        }
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body)

    def patch_spec(self, name: str, spec: Mapping[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name, {"spec": dict(spec)}
        )

    def get(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name
        )
        return found

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.get(name).get("status") or {})

    def wait(self, name: str, check: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            status = self.status(name)
            return status if check(status) else None

        return wait_for(probe, timeout=SETTLE, interval=0.2, what=f"{name}: {what}")

    def absorbed(self, name: str, ping_count: int) -> dict[str, Any]:
        """The status once it counts ``ping_count`` pings (absorbed behind the 200)."""
        return self.wait(name, lambda s: s.get("pingCount", 0) >= ping_count, f"{ping_count} pings")

    def wait_state(self, name: str, state: str, reason: str | None = None) -> dict[str, Any]:
        return self.wait(
            name,
            lambda s: (
                s.get("state") == state
                and (reason is None or condition(s, "Healthy").get("reason") == reason)
            ),
            f"state {state} {reason or ''}",
        )

    def wait_ready(self, name: str) -> dict[str, Any]:
        return self.wait(
            name,
            lambda s: (
                condition(s, "Ready").get("status") == "True" and bool(s.get("tokenSecretName"))
            ),
            "Ready=True",
        )

    def secret(self, name: str) -> dict[str, str]:
        secret = self.core.read_namespaced_secret(name, self.namespace)
        return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}

    def url(self, name: str) -> str:
        """The monitor's ping URL, reachable from here."""
        status = self.wait_ready(name)
        url = self.secret(status["tokenSecretName"])["url"]
        if self.ping_base is None:
            return url
        base = urlsplit(self.ping_base)
        parts = urlsplit(url)
        return urlunsplit((base.scheme, base.netloc, base.path + parts.path, "", ""))

    def event_reasons(self, name: str) -> list[str]:
        events = self.core.list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={name}"
        ).items
        return [e.reason for e in events]

    def wait_event(self, name: str, reason: str) -> None:
        wait_for(
            lambda: reason in self.event_reasons(name),
            timeout=SETTLE,
            interval=0.2,
            what=f"{name}: a {reason} Event",
        )


# --- the scenarios ------------------------------------------------------------------------


def token_secret_and_hash(m: Monitors) -> None:
    """Creating a monitor creates its Secret (token, url) owned by it; status holds only
    the token's hash; the monitor is Ready and New."""
    m.create("tokens", {"period": "1h"})
    status = m.wait_ready("tokens")
    assert status["tokenSecretName"] == "tokens-heartbeat"
    secret = m.secret("tokens-heartbeat")
    token = secret["token"]
    assert secret["url"].endswith(f"/ping/{token}")
    assert status["tokenHash"] == "sha256:" + hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(status)
    assert status["state"] == "New"
    owner = m.core.read_namespaced_secret("tokens-heartbeat", m.namespace).metadata
    assert [(o.kind, o.name, o.controller) for o in owner.owner_references] == [
        ("HeartbeatMonitor", "tokens", True)
    ]


def ping_silence_down_and_recovery(m: Monitors) -> None:
    """A ping gives Healthy; silence gives Grace, then Down (Missed, with a Warning Event);
    the next ping gives Healthy again with a Recovered Event."""
    m.create("lifecycle", {"period": "10s", "grace": "5s"})
    url = m.url("lifecycle")
    reply = http(url)
    assert (reply.status, reply.body) == (200, "OK")
    m.wait_state("lifecycle", "Healthy")  # status absorbs it behind the 200 (DESIGN 10.7)
    m.wait_event("lifecycle", "FirstPing")
    m.wait_state("lifecycle", "Grace", "Late")
    down = m.wait_state("lifecycle", "Down", "Missed")
    assert condition(down, "Healthy")["status"] == "False"
    m.wait_event("lifecycle", "Missed")
    assert http(url).status == 200
    m.wait_state("lifecycle", "Healthy")
    m.wait_event("lifecycle", "Recovered")


def failures_and_exit_codes(m: Monitors) -> None:
    """/fail and /<code> give Down Failed with the exit code; bad requests get 4xx."""
    m.create("failing", {"period": "1h"})
    url = m.url("failing")
    assert http(url + "/fail").status == 200
    m.wait_state("failing", "Down", "Failed")
    assert http(url + "/3").status == 200
    m.wait("failing", lambda s: s.get("lastExitCode") == 3, "lastExitCode 3")
    m.wait_event("failing", "Failed")
    assert http(url + "/256").status == 400
    assert http(url.rsplit("/", 1)[0] + "/" + "x" * 43).status == 404
    assert http(url + "/0").status == 200
    m.wait_state("failing", "Healthy")


def runs_with_ids(m: Monitors) -> None:
    """A start sets Running; the finish with the same rid records the duration."""
    m.create("runs", {"period": "1h"})
    url = m.url("runs")
    assert http(url + "/start?rid=run-1").status == 200
    m.wait("runs", lambda s: condition(s, "Running").get("status") == "True", "Running")
    assert http(url + "?rid=run-1", method="POST", data=b"all good").status == 200
    status = m.wait("runs", lambda s: "lastDurationSeconds" in s, "the run's duration")
    assert condition(status, "Running")["status"] == "False"
    assert status["lastDurationSeconds"] >= 0
    assert status["lastOutput"]["body"] == "all good"
    assert status["state"] == "Healthy"


def pause_and_resume(m: Monitors) -> None:
    """Paused: pings are recorded, nothing alerts; resume counts from the resume."""
    m.create("paused", {"period": "10s", "grace": "5s"})
    url = m.url("paused")
    m.patch_spec("paused", {"paused": True})
    m.wait_state("paused", "Paused")
    m.wait_event("paused", "Paused")
    before = m.status("paused").get("pingCount", 0)
    assert http(url + "/fail").status == 200
    status = m.wait("paused", lambda s: s.get("pingCount", 0) == before + 1, "the ping counted")
    assert status["state"] == "Paused"
    m.patch_spec("paused", {"paused": False})
    resumed = m.wait(
        "paused", lambda s: s.get("state") not in (None, "Paused"), "not Paused after resume"
    )
    assert resumed["state"] != "Down"
    m.wait_event("paused", "Resumed")


def invalid_schedule(m: Monitors) -> None:
    """A cron line cronsim rejects: Ready=False InvalidSchedule, and no alerting."""
    m.create("badcron", {"schedule": "61 * * * *"})
    status = m.wait(
        "badcron",
        lambda s: condition(s, "Ready").get("reason") == "InvalidSchedule",
        "Ready=False InvalidSchedule",
    )
    assert condition(status, "Ready")["status"] == "False"
    assert condition(status, "Healthy")["reason"] == "InvalidSpec"
    assert "nextDueTime" not in status


def one_leader(m: Monitors) -> None:
    """The Lease `heartbeat-operator` names a holder, `<hostname>_<pid>` (DESIGN 9.1)."""
    if m.lease_namespace is None:
        return
    lease = wait_for(
        lambda: m.coordination.read_namespaced_lease("heartbeat-operator", m.lease_namespace),
        timeout=SETTLE,
        what="the Lease",
    )
    assert re.fullmatch(r"[^_\s]+_[0-9]+", lease.spec.holder_identity or ""), lease.spec


def _cronjob(name: str, schedule: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "annotations": {"heartbeat.dev/monitor": "true"}},
        "spec": {
            "schedule": schedule,
            "timeZone": "Europe/Berlin",
            "jobTemplate": {"spec": _job_spec(["sleep", "60"])},
        },
    }


def _job_spec(command: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "backoffLimit": 0,
        "template": {
            "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "work", "image": "busybox:1.37", "command": command}],
            }
        },
        **extra,
    }


def annotated_cronjob(m: Monitors) -> None:
    """An annotated CronJob gets a monitor it owns that follows its schedule; its failed
    Job gives Down with the Job's reason (the exit-code lookup lists the Job's Pods);
    suspending pauses it; removing the annotation deletes it."""
    m.batch.create_namespaced_cron_job(m.namespace, _cronjob("nightly", "0 3 * * *"))
    monitor = wait_for(
        lambda: m.custom.list_namespaced_custom_object(
            GROUP, VERSION, m.namespace, PLURAL, field_selector="metadata.name=nightly"
        )["items"],
        timeout=SETTLE,
        interval=0.2,
        what="the CronJob's monitor",
    )[0]
    cronjob = m.batch.read_namespaced_cron_job("nightly", m.namespace)
    (owner,) = monitor["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"], owner["controller"]) == (
        "CronJob",
        cronjob.metadata.uid,
        True,
    )
    assert (monitor["spec"]["schedule"], monitor["spec"]["timeZone"]) == (
        "0 3 * * *",
        "Europe/Berlin",
    )
    m.wait_ready("nightly")

    m.batch.patch_namespaced_cron_job("nightly", m.namespace, {"spec": {"schedule": "30 3 * * *"}})
    wait_for(
        lambda: m.get("nightly")["spec"]["schedule"] == "30 3 * * *",
        timeout=SETTLE,
        interval=0.2,
        what="the monitor to follow the CronJob's schedule",
    )

    # A run of the CronJob that can't finish in time: the Job controller fails it
    # (DeadlineExceeded) whether or not its Pod ever runs.
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "nightly-manual",
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "CronJob",
                    "name": "nightly",
                    "uid": cronjob.metadata.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": _job_spec(["sleep", "60"], activeDeadlineSeconds=1),
    }
    m.batch.create_namespaced_job(m.namespace, job)
    down = m.wait(
        "nightly",
        lambda s: s.get("state") == "Down",
        "Down after the failed Job",
    )
    # DESIGN 10.8.3: a Job that failed before any container ran is NotStarted (no start
    # sent); one whose Pod did start within the second is an ordinary failure.
    reason = condition(down, "Healthy")["reason"]
    assert reason == ("Failed" if "lastStartTime" in down else "NotStarted"), down
    assert "DeadlineExceeded" in (down.get("lastOutput") or {}).get("body", "")
    m.wait_event("nightly", reason)

    m.batch.patch_namespaced_cron_job("nightly", m.namespace, {"spec": {"suspend": True}})
    m.wait_state("nightly", "Paused")

    m.batch.patch_namespaced_cron_job(
        "nightly", m.namespace, {"metadata": {"annotations": {"heartbeat.dev/monitor": None}}}
    )
    wait_for(
        lambda: (
            not m.custom.list_namespaced_custom_object(
                GROUP, VERSION, m.namespace, PLURAL, field_selector="metadata.name=nightly"
            )["items"]
        ),
        timeout=SETTLE,
        interval=0.2,
        what="the monitor deleted with the annotation",
    )


SCENARIOS: dict[str, Callable[[Monitors], None]] = {
    "annotated-cronjob": annotated_cronjob,
    "token-secret": token_secret_and_hash,
    "ping-silence-down-recovery": ping_silence_down_and_recovery,
    "failures-and-exit-codes": failures_and_exit_codes,
    "runs-with-ids": runs_with_ids,
    "pause-and-resume": pause_and_resume,
    "invalid-schedule": invalid_schedule,
    "one-leader": one_leader,
}
