"""The operator end to end: a real control plane, the operator as a separate process,
pings over HTTP, state read back from the API (DESIGN 2, 3, 9.3, 9.6, 9.7; issue 4)."""

from __future__ import annotations

import subprocess
import time
from datetime import timedelta

import pytest

from tests.integration.operator_process import (
    Monitors,
    at,
    condition,
    http,
    isolated,
    transition,
)
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

WRITE_WINDOW = 3.0  # s: DESIGN 9.16, the one timed assertion the tests make


@pytest.fixture
def monitors(api_client, namespace):
    return Monitors(api_client, namespace)


@pytest.fixture
def operator(operator_factory, namespace):
    return operator_factory.start(*isolated(namespace))


def test_period_monitor_goes_healthy_grace_down_and_recovers(operator, monitors):
    created = time.time()
    monitors.create("backup", {"period": "10s", "grace": "5s"})
    monitors.wait_ready("backup", timeout=5.0)  # DESIGN 9.20: Ready within 5 s
    assert time.time() - created <= 5.0
    url = monitors.url("backup")

    reply = http(url)
    assert (reply.status, reply.body) == (200, "OK")
    status = monitors.absorbed("backup", 1)  # in status behind the 200 (DESIGN 10.7)
    assert status["state"] == "Healthy"
    assert condition(status, "Healthy")["reason"] == "PingReceived"
    pinged = at(status["lastPingTime"])
    assert at(status["nextDueTime"]) == pinged + timedelta(seconds=10)
    assert at(status["alertTime"]) == pinged + timedelta(seconds=15)
    due, alert = status["nextDueTime"], status["alertTime"]

    grace, seen = monitors.wait_state("backup", "Grace", timeout=20)
    assert condition(grace, "Healthy")["reason"] == "Late"
    assert transition(grace, "Grace", "Late")["time"] == due
    assert seen - at(due).timestamp() <= WRITE_WINDOW
    grace_lag = seen - at(due).timestamp()

    down, seen = monitors.wait_state("backup", "Down", timeout=20)
    healthy = condition(down, "Healthy")
    assert (healthy["status"], healthy["reason"]) == ("False", "Missed")
    assert healthy["lastTransitionTime"] == alert
    assert transition(down, "Down", "Missed")["time"] == alert
    assert seen - at(alert).timestamp() <= WRITE_WINDOW
    print(
        f"\nGrace seen {grace_lag:.2f} s after nextDueTime, "
        f"Down {seen - at(alert).timestamp():.2f} s after alertTime"
    )
    missed = wait_for(
        lambda: [e for e in monitors.events("backup") if e.reason == "Missed"],
        timeout=5,
        what="Missed Event",
    )
    assert missed[0].type == "Warning"
    assert missed[0].source.component == "heartbeat-operator"
    assert missed[0].reporting_component == "heartbeat-operator"

    assert http(url).status == 200
    status = monitors.absorbed("backup", 2)
    assert status["state"] == "Healthy"
    wait_for(lambda: "Recovered" in monitors.event_reasons("backup"), timeout=5, what="Recovered")
    reasons = monitors.event_reasons("backup")
    assert reasons.count("FirstPing") == 1 and reasons.count("Missed") == 1
    # DESIGN 9.7: the silent slot's Late, posted once the slot failed (10.8.13: a slot whose
    # ping comes within grace posts none), with the time it turned Late.
    (late,) = [e for e in monitors.events("backup") if e.reason == "Late"]
    assert late.type == "Normal"
    assert late.first_timestamp == at(due).replace(microsecond=0)  # Event times: whole seconds
    token = url.rsplit("/", 1)[1]
    assert all(token not in (e.message or "") for e in monitors.events("backup"))
    assert token not in operator.log_text()


def test_a_ping_within_grace_posts_neither_late_nor_recovered(operator, monitors):
    """DESIGN 10.8.13: a slot whose finish arrives within grace posts no Event; the status
    still shows Grace (Late) and the return to Healthy, at their times."""
    monitors.create("tardy", {"period": "3s", "grace": "1m"})
    url = monitors.url("tardy")
    assert http(url).status == 200
    grace, _ = monitors.wait_state("tardy", "Grace", timeout=20)
    assert condition(grace, "Healthy")["reason"] == "Late"
    assert http(url).status == 200
    status = monitors.absorbed("tardy", 2)
    assert status["state"] == "Healthy"
    shown = [(t["state"], t["reason"], t.get("eventReason")) for t in status["recentTransitions"]]
    assert shown[:2] == [("Healthy", "PingReceived", None), ("Grace", "Late", None)]
    # A failure's Event is posted after those transitions' would have been: once it is
    # there, a Late or Recovered Event would be too.
    assert http(url + "/fail").status == 200
    wait_for(lambda: "Failed" in monitors.event_reasons("tardy"), timeout=5, what="Failed")
    assert sorted(monitors.event_reasons("tardy")) == ["Failed", "FirstPing"]


def test_fail_exit_codes_bad_requests_and_bodies(operator, monitors):
    monitors.create("job", {"period": "1h"})
    url = monitors.url("job")

    assert http(url + "/fail").status == 200
    status = monitors.absorbed("job", 1)
    assert status["state"] == "Down"
    assert condition(status, "Healthy")["reason"] == "Failed"

    assert http(url + "/3").status == 200
    status = monitors.absorbed("job", 2)
    assert (status["state"], status["lastExitCode"]) == ("Down", 3)
    assert condition(status, "Healthy")["reason"] == "Failed"
    failed = wait_for(
        lambda: [
            e for e in monitors.events("job") if e.reason == "Failed" and "exit code 3" in e.message
        ],
        timeout=5,
        what="a Failed Event naming exit code 3",
    )
    assert failed[0].type == "Warning"

    # An exit code is recorded as the success or failure it reports, with the code.
    assert http(url + "/0").status == 200
    status = monitors.absorbed("job", 3)
    assert (status["state"], status["lastExitCode"]) == ("Healthy", 0)
    newest, before = status["recentPings"][:2]
    assert (newest["kind"], newest["exitCode"], before["kind"], before["exitCode"]) == (
        "success", 0, "fail", 3,
    )  # fmt: skip
    assert status["pingCounts"] == {"fail": 2, "success": 1}

    assert http(url + "/256").status == 400
    assert http(url.rsplit("/", 1)[0] + "/" + "x" * 43).status == 404

    body = bytes(ord("a") + i % 26 for i in range(20_000))
    reply = http(url + "/log", method="POST", data=body)
    assert reply.status == 200
    assert reply.headers.get("Ping-Body-Limit") == "10000"
    output = monitors.absorbed("job", 4)["lastOutput"]
    assert output["body"] == body[:10_000].decode()
    assert output["kind"] == "log"
    assert all(
        len(p.get("body", "").encode()) <= 256 for p in monitors.status("job")["recentPings"]
    )


def test_start_and_success_with_run_id_then_run_timeout(operator, monitors):
    monitors.create("etl", {"period": "1h", "maxRuntime": "3s"})
    url = monitors.url("etl")

    assert http(url + "/start?rid=r1").status == 200
    status = monitors.absorbed("etl", 1)
    assert condition(status, "Running")["status"] == "True"
    assert http(url + "?rid=r1").status == 200
    status = monitors.absorbed("etl", 2)
    assert condition(status, "Running")["status"] == "False"
    assert status["state"] == "Healthy"
    assert status["lastDurationSeconds"] > 0
    assert status["recentPings"][0]["runId"] == "r1"

    assert http(url + "/start?rid=r2").status == 200
    started = at(monitors.absorbed("etl", 3)["lastStartTime"])
    down, seen = monitors.wait_state("etl", "Down", timeout=15, reason="RunTimeout")
    assert at(transition(down, "Down", "RunTimeout")["time"]) == started + timedelta(seconds=3)
    assert seen - (started + timedelta(seconds=3)).timestamp() <= WRITE_WINDOW
    wait_for(lambda: "RunTimeout" in monitors.event_reasons("etl"), timeout=5, what="Event")


def test_failure_threshold_two_needs_two_missed_slots(operator, monitors):
    monitors.create("twice", {"period": "4s", "grace": "2s", "failureThreshold": 2})
    url = monitors.url("twice")
    assert http(url).status == 200

    grace, _ = monitors.wait_state("twice", "Grace", timeout=15, reason="Missed")
    assert grace["consecutiveFailures"] == 1
    down, _ = monitors.wait_state("twice", "Down", timeout=15, reason="Missed")
    assert down["consecutiveFailures"] == 2
    assert down["missedRuns"] == 2
    wait_for(
        lambda: monitors.event_reasons("twice").count("Missed") == 2,
        timeout=5,
        what="one Missed Event per missed slot",
    )


def test_pause_never_alerts_and_resume_counts_from_the_resume(operator, monitors):
    monitors.create("nightly", {"period": "3s", "grace": "1s"})
    url = monitors.url("nightly")
    assert http(url).status == 200
    monitors.patch_spec("nightly", {"paused": True})
    paused, _ = monitors.wait_state("nightly", "Paused", timeout=5)
    assert condition(paused, "Healthy")["reason"] == "Paused"
    assert "pausedSince" in paused

    # Three slots' worth of silence: still Paused, nothing missed. A ping is recorded.
    count = paused["pingCount"]
    with pytest.raises(AssertionError):
        wait_for(
            lambda: monitors.status("nightly").get("state") != "Paused",
            timeout=9,
            what="the paused monitor to leave Paused",
        )
    assert http(url).status == 200
    status = monitors.absorbed("nightly", count + 1)
    assert (status["state"], status["pingCount"], status["missedRuns"]) == ("Paused", count + 1, 0)

    before_resume = time.time()
    monitors.patch_spec("nightly", {"paused": False})
    resumed, _ = monitors.wait_state("nightly", "Healthy", timeout=5)
    assert "pausedSince" not in resumed
    # The next slot counts from the resume, never from before the pause.
    assert at(resumed["nextDueTime"]).timestamp() >= before_resume + 3 - 0.001
    wait_for(
        lambda: {"Paused", "Resumed"} <= set(monitors.event_reasons("nightly")),
        timeout=5,
        what="Paused and Resumed Events",
    )


def test_invalid_monitors_are_rejected_or_not_ready(operator, monitors, kubectl, namespace):
    both = (
        "apiVersion: heartbeat.dev/v1alpha1\nkind: HeartbeatMonitor\n"
        "metadata: {name: both}\nspec: {period: 1h, schedule: '0 2 * * *'}\n"
    )
    result = kubectl("apply", "-n", namespace, "-f", "-", input=both, check=False)
    assert result.returncode != 0
    negative = both.replace("name: both", "name: neg").replace(
        "period: 1h, schedule: '0 2 * * *'", "period: 1h, grace: -5m"
    )
    result = kubectl("apply", "-n", namespace, "-f", "-", input=negative, check=False)
    assert result.returncode != 0

    monitors.create("badcron", {"schedule": "61 2 * * *"})
    status = wait_for(
        lambda: (
            (s := monitors.status("badcron"))
            and condition(s, "Ready").get("status") == "False"
            and s
        ),
        timeout=5,
        what="Ready=False",
    )
    assert condition(status, "Ready")["reason"] == "InvalidSchedule"
    assert condition(status, "Healthy")["reason"] == "InvalidSpec"
    assert "nextDueTime" not in status and "alertTime" not in status
    wait_for(lambda: monitors.event_reasons("badcron") == ["InvalidSpec"], timeout=5, what="Event")


def test_seed_shell_example_turns_a_monitor_healthy(operator, monitors):
    monitors.create("cron-job", {"schedule": "*/5 * * * *"})
    url = monitors.url("cron-job")
    # The seed's example, as written, with only the host changed (ours is 127.0.0.1:<port>).
    result = subprocess.run(
        ["sh", "-c", 'curl -fsS -m 10 --retry 5 -o /dev/null "$PING_URL"'],
        env={"PING_URL": url, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert monitors.absorbed("cron-job", 1)["state"] == "Healthy"


def test_objects_carry_no_kopf_marks(operator, monitors, api_client, namespace):
    monitors.create("plain", {"period": "1h"})
    url = monitors.url("plain")
    assert http(url).status == 200
    body = monitors.get("plain")
    meta = body["metadata"]
    assert not [k for k in meta.get("annotations") or {} if "kopf.zalando.org" in k]
    assert not meta.get("finalizers")
    assert "kopf" not in body["status"]
    secret = monitors.core.read_namespaced_secret(body["status"]["tokenSecretName"], namespace)
    assert secret.type == "Opaque"
    assert secret.metadata.labels == {
        "app.kubernetes.io/managed-by": "heartbeat-operator",
        "heartbeat.dev/monitor": "plain",
    }
    (owner,) = secret.metadata.owner_references
    assert (owner.kind, owner.uid, owner.controller) == ("HeartbeatMonitor", meta["uid"], True)
    assert body["status"]["tokenHash"].startswith("sha256:")
    assert url.rsplit("/", 1)[1] not in str(body)


def test_deleting_a_monitor_completes_with_the_operator_stopped(operator, monitors, namespace):
    monitors.create("short-lived", {"period": "1h"})
    secret_name = monitors.wait_ready("short-lived")["tokenSecretName"]
    assert operator.stop() == 0
    monitors.delete("short-lived")
    wait_for(
        lambda: (
            not monitors.custom.list_namespaced_custom_object(
                "heartbeat.dev", "v1alpha1", namespace, "heartbeatmonitors"
            )["items"]
        ),
        timeout=10,
        what="the monitor gone (no finalizer)",
    )
    # The garbage collector removes the Secret the operator created (owner reference).
    wait_for(
        lambda: (
            secret_name
            not in [s.metadata.name for s in monitors.core.list_namespaced_secret(namespace).items]
        ),
        timeout=30,
        what="the owned Secret garbage-collected",
    )
