"""Job -> pings (DESIGN 4, 9.10, 9.11): times, run ids, failure bodies, exit codes, once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from heartbeat_operator.domain.inputs import Ping
from heartbeat_operator.kube.jobs import (
    ExitCode,
    JobRun,
    JobTable,
    job_pings,
    needs_exit_code,
    pick_exit_code,
    reported_phases,
)

UID = "0f6c1a52-7d3e-4a8e-9c1b-3e2f5a6b7c8d"
CRONJOB_UID = "c0000000-0000-0000-0000-000000000001"


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def job(
    *,
    start: str | None = "2026-11-25T02:00:03Z",
    complete: str | None = None,
    failed: tuple[str, str, str] | None = None,
    scheduled: str | None = "2026-11-25T02:00:00Z",
    owner_kind: str = "CronJob",
    created: str = "2026-11-25T02:00:01Z",
) -> dict[str, Any]:
    conditions = []
    status: dict[str, Any] = {}
    if start:
        status["startTime"] = start
    if complete:
        status["completionTime"] = complete
        conditions.append({"type": "SuccessCriteriaMet", "status": "True"})
        conditions.append({"type": "Complete", "status": "True", "lastTransitionTime": complete})
    if failed:
        when, reason, message = failed
        conditions.append({"type": "FailureTarget", "status": "True", "lastTransitionTime": when})
        conditions.append(
            {
                "type": "Failed",
                "status": "True",
                "lastTransitionTime": when,
                "reason": reason,
                "message": message,
            }
        )
    if conditions:
        status["conditions"] = conditions
    annotations = {}
    if scheduled:
        annotations["batch.kubernetes.io/cronjob-scheduled-timestamp"] = scheduled
    return {
        "metadata": {
            "name": "backup-29399640",
            "namespace": "ops",
            "uid": UID,
            "creationTimestamp": created,
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": owner_kind,
                    "name": "backup",
                    "uid": CRONJOB_UID,
                    "controller": True,
                }
            ],
        },
        "status": status,
    }


def run(body: dict[str, Any]) -> JobRun:
    parsed = JobRun.from_body(body)
    assert parsed is not None
    return parsed


ACTIVE = {"activeSince": "2026-11-25T01:00:00Z", "referenceTime": "2026-11-25T01:00:00Z"}


def test_only_jobs_a_cronjob_controls_are_parsed() -> None:
    assert JobRun.from_body(job(owner_kind="ReplicaSet")) is None
    parsed = run(job())
    assert parsed.key == ("ops", "backup")
    assert parsed.cronjob_uid == CRONJOB_UID


def test_running_job_yields_start_with_run_id_and_slot() -> None:
    pings = job_pings(run(job()), ACTIVE)
    assert pings == [
        Ping(
            time=t("2026-11-25T02:00:03"),
            kind="start",
            run_id=UID,
            scheduled_time=t("2026-11-25T02:00:00"),
            job=(UID, "start"),
        )
    ]


def test_job_without_schedule_annotation_has_no_slot() -> None:
    (start,) = job_pings(run(job(scheduled=None)), ACTIVE)
    assert start.scheduled_time is None


def test_pending_job_yields_nothing_yet() -> None:
    assert job_pings(run(job(start=None)), ACTIVE) == []


def test_completed_job_first_seen_yields_start_then_success_with_exit_code_0() -> None:
    pings = job_pings(run(job(complete="2026-11-25T02:06:55Z")), ACTIVE)
    assert [p.kind for p in pings] == ["start", "success"]
    success = pings[1]
    assert success.time == t("2026-11-25T02:06:55")
    assert success.exit_code == 0
    assert success.run_id == UID
    assert success.job == (UID, "success")
    # the duration the domain computes: completion - start
    assert (success.time - pings[0].time).total_seconds() == 412


def test_failed_job_yields_fail_with_reason_message_body_and_exit_code() -> None:
    body = job(
        failed=(
            "2026-11-25T02:01:00Z",
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        )
    )
    pings = job_pings(run(body), ACTIVE, exit_code=ExitCode(3))
    assert [p.kind for p in pings] == ["start", "fail"]
    fail = pings[1]
    assert fail.time == t("2026-11-25T02:01:00")
    assert fail.body == "BackoffLimitExceeded: Job has reached the specified backoff limit"
    assert fail.exit_code == 3
    assert fail.exit_code_unknown is False
    assert fail.job == (UID, "fail")


def test_failed_job_whose_pods_are_gone_says_exit_code_unknown() -> None:
    body = job(
        failed=(
            "2026-11-25T02:01:00Z",
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
        )
    )
    fail = job_pings(run(body), ACTIVE, exit_code=ExitCode(None))[-1]
    assert fail.exit_code is None
    assert fail.exit_code_unknown is True
    # exit codes switched off: no lookup, no claim about the Pod
    fail = job_pings(run(body), ACTIVE, exit_code=None)[-1]
    assert fail.exit_code is None and fail.exit_code_unknown is False


def test_job_failed_before_it_started_gets_its_creation_as_start() -> None:
    body = job(start=None, failed=("2026-11-25T02:00:30Z", "BackoffLimitExceeded", "x"))
    start, fail = job_pings(run(body), ACTIVE)
    assert start.time == t("2026-11-25T02:00:01")
    assert fail.kind == "fail"


def status_with(*entries: tuple[str, str]) -> dict[str, Any]:
    return {**ACTIVE, "reportedJobs": [{"uid": u, "phase": p} for u, p in entries]}


def test_each_ping_once_reported_phases_are_left_out() -> None:
    complete = run(job(complete="2026-11-25T02:06:55Z"))
    assert [p.kind for p in job_pings(complete, status_with((UID, "start")))] == ["success"]
    assert job_pings(complete, status_with((UID, "start"), (UID, "success"))) == []
    assert job_pings(complete, status_with((UID, "success"))) == []
    assert job_pings(run(job()), status_with((UID, "start"))) == []
    assert job_pings(complete, status_with((UID, "ignored"))) == []
    # another Job's entries do not matter
    assert len(job_pings(complete, status_with(("other", "success")))) == 2


def test_jobs_started_before_the_monitor_became_active_are_ignored() -> None:
    status = {"activeSince": "2026-11-25T03:00:00Z", "referenceTime": "2026-11-25T03:00:00Z"}
    failed = job(failed=("2026-11-25T02:01:00Z", "BackoffLimitExceeded", "x"))
    assert job_pings(run(failed), status) == []
    assert job_pings(run(job()), status) == []


def test_listed_start_keeps_its_finish_even_after_a_resume_moved_active_since() -> None:
    status = {
        "activeSince": "2026-11-25T03:00:00Z",
        "referenceTime": "2026-11-25T03:00:00Z",
        "reportedJobs": [{"uid": UID, "phase": "start"}],
    }
    pings = job_pings(run(job(complete="2026-11-25T03:10:00Z")), status)
    assert [p.kind for p in pings] == ["success"]


def test_unlisted_job_that_finished_before_reference_time_is_ignored() -> None:
    status = {"activeSince": "2026-11-25T01:00:00Z", "referenceTime": "2026-11-25T04:00:00Z"}
    assert job_pings(run(job(complete="2026-11-25T02:06:55Z")), status) == []


def test_needs_exit_code_only_for_an_unreported_failure() -> None:
    failed = run(job(failed=("2026-11-25T02:01:00Z", "BackoffLimitExceeded", "x")))
    assert needs_exit_code(failed, ACTIVE)
    assert not needs_exit_code(failed, status_with((UID, "fail")))
    assert not needs_exit_code(run(job(complete="2026-11-25T02:06:55Z")), ACTIVE)


def test_reported_phases() -> None:
    status = status_with(("a", "start"), ("a", "success"), ("b", "start"))
    assert reported_phases(status) == {"a": {"start", "success"}, "b": {"start"}}
    assert reported_phases({"reportedJobs": [{"uid": 1}, "junk"]}) == {}


def terminated(code: int, finished: str | None) -> dict[str, Any]:
    term: dict[str, Any] = {"exitCode": code}
    if finished:
        term["finishedAt"] = finished
    return {"terminated": term}


def pod(*containers: dict[str, Any], init: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    return {"status": {"containerStatuses": list(containers), "initContainerStatuses": list(init)}}


def test_exit_code_of_the_container_that_finished_last_non_zero() -> None:
    pods = [
        pod(
            {"name": "main", "state": terminated(3, "2026-11-25T02:00:40Z")},
            {"name": "sidecar", "state": terminated(0, "2026-11-25T02:00:50Z")},
        ),
        pod({"name": "main", "state": terminated(7, "2026-11-25T02:00:20Z")}),
    ]
    assert pick_exit_code(pods) == 3


def test_exit_code_from_last_state_and_init_containers() -> None:
    restarted = pod(
        {
            "name": "main",
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": terminated(42, "2026-11-25T02:01:00Z"),
        }
    )
    assert pick_exit_code([restarted]) == 42
    init_failed = pod(init=({"name": "setup", "state": terminated(9, "2026-11-25T02:00:10Z")},))
    assert pick_exit_code([init_failed]) == 9


def test_no_exit_code_when_no_container_failed_or_no_pod() -> None:
    assert pick_exit_code([]) is None
    assert (
        pick_exit_code([pod({"name": "main", "state": terminated(0, "2026-11-25T02:00:40Z")})])
        is None
    )
    assert pick_exit_code([{"status": {"phase": "Pending"}}]) is None


def test_exit_code_without_finish_time_ranks_first_finished() -> None:
    pods = [
        pod(
            {"name": "a", "state": terminated(5, None)},
            {"name": "b", "state": terminated(6, "2026-11-25T02:00:00Z")},
        )
    ]
    assert pick_exit_code(pods) == 6


def test_job_table_groups_jobs_by_cronjob_uid() -> None:
    table = JobTable()
    assert table.upsert(job()) is not None
    other = job()
    other["metadata"] = {**other["metadata"], "uid": "u2", "name": "backup-2"}
    other["metadata"]["ownerReferences"] = [
        {"kind": "CronJob", "name": "backup", "uid": "older-cronjob", "controller": True}
    ]
    table.upsert(other)
    assert table.upsert(job(owner_kind="ReplicaSet")) is None
    assert [j.uid for j in table.of_cronjob("ops", CRONJOB_UID)] == [UID]
    assert table.remove(UID) is not None
    assert table.of_cronjob("ops", CRONJOB_UID) == []
