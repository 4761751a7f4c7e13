"""Job -> inputs (DESIGN 4, 9.10, 9.11, 10.1, 10.8.2, 10.8.3): a run starts when its Pod
runs, a Job whose Pod never ran is a pending start (then ``NotStarted``), failures say
why, a deleted Job fails, each input once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from heartbeat_operator.domain.inputs import JobPending, Ping
from heartbeat_operator.engine.api import ApiError
from heartbeat_operator.engine.causes import failure_cause
from heartbeat_operator.engine.jobs import (
    Failure,
    JobPods,
    JobRun,
    JobTable,
    deleted_inputs,
    failure_body,
    job_inputs,
    job_start,
    pick_exit_code,
    read_job_pods,
    reported_phases,
    summarize_pods,
    waiting_cause,
)

UID = "0f6c1a52-7d3e-4a8e-9c1b-3e2f5a6b7c8d"
CRONJOB_UID = "c0000000-0000-0000-0000-000000000001"
JOB_NAME = "backup-29399640"
IMAGE = "registry.invalid/backup:1.4"


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
    ready: int | None = None,
    suspend: bool = False,
) -> dict[str, Any]:
    """A Job as the API returns it. ``startTime`` is set by the Job controller when it
    starts creating Pods, long before any of them runs (never the run's start)."""
    conditions = []
    status: dict[str, Any] = {}
    if start:
        status["startTime"] = start
    if ready is not None:
        status["ready"] = ready
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
            "name": JOB_NAME,
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
        "spec": {"suspend": suspend},
        "status": status,
    }


def run(body: dict[str, Any]) -> JobRun:
    parsed = JobRun.from_body(body)
    assert parsed is not None
    return parsed


# --- Pods as the API returns them ------------------------------------------------------


def pod(
    container_state: dict[str, Any],
    *,
    name: str = f"{JOB_NAME}-x7k",
    created: str = "2026-11-25T02:00:02Z",
    phase: str = "Running",
    last_state: dict[str, Any] | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {"name": "main", "image": IMAGE, "state": container_state}
    if last_state is not None:
        status["lastState"] = last_state
    return {
        "metadata": {
            "name": name,
            "namespace": "ops",
            "creationTimestamp": created,
            "labels": {"batch.kubernetes.io/controller-uid": UID},
        },
        "spec": {"nodeName": "node-1", "containers": [{"name": "main", "image": IMAGE}]},
        "status": {"phase": phase, "containerStatuses": [status]},
    }


def running(started: str) -> dict[str, Any]:
    return pod({"running": {"startedAt": started}})


def image_pull_backoff() -> dict[str, Any]:
    return pod(
        {
            "waiting": {
                "reason": "ImagePullBackOff",
                "message": f'Back-off pulling image "{IMAGE}": not found',
            }
        },
        phase="Pending",
    )


def oom_killed(started: str, finished: str) -> dict[str, Any]:
    return pod(
        {
            "terminated": {
                "reason": "OOMKilled",
                "exitCode": 137,
                "startedAt": started,
                "finishedAt": finished,
            }
        },
        phase="Failed",
    )


READ_AT = t("2026-11-25T02:31:00")


def read(body: dict[str, Any], *pods: dict[str, Any], events: Any = ()) -> JobPods:
    """One read of the Job's Pods (and Events), summarized as the leader keeps it."""
    return summarize_pods(run(body), list(pods), list(events), READ_AT)


ACTIVE = {"activeSince": "2026-11-25T01:00:00Z", "referenceTime": "2026-11-25T01:00:00Z"}


def status_with(*entries: tuple[str, str]) -> dict[str, Any]:
    return {**ACTIVE, "reportedJobs": [{"uid": u, "phase": p} for u, p in entries]}


# --- parsing -----------------------------------------------------------------------------


def test_only_jobs_a_cronjob_controls_are_parsed() -> None:
    assert JobRun.from_body(job(owner_kind="ReplicaSet")) is None
    parsed = run(job(ready=1, suspend=True))
    assert parsed.key == ("ops", "backup")
    assert parsed.cronjob_uid == CRONJOB_UID
    assert parsed.ready == 1 and parsed.suspended


# --- start means running (DESIGN 10.1, 10.8.2) ----------------------------------------


def test_running_job_starts_when_its_pod_ran_not_at_creation_or_start_time() -> None:
    body = job()  # created 02:00:01, startTime 02:00:03
    inputs = job_inputs(run(body), ACTIVE, read(body, running("2026-11-25T02:00:40Z")))
    assert inputs == [
        Ping(
            time=t("2026-11-25T02:00:40"),
            kind="start",
            run_id=UID,
            scheduled_time=t("2026-11-25T02:00:00"),
            job=(UID, "start"),
            job_created=t("2026-11-25T02:00:01"),
        )
    ]


def test_job_without_schedule_annotation_has_no_slot() -> None:
    body = job(scheduled=None)
    (start,) = job_inputs(run(body), ACTIVE, read(body, running("2026-11-25T02:00:40Z")))
    assert isinstance(start, Ping) and start.scheduled_time is None


def test_job_whose_pod_has_not_run_is_one_pending_start_at_its_slot_with_the_cause() -> None:
    body = job()  # the Job controller set startTime: the Pod still never ran
    inputs = job_inputs(run(body), ACTIVE, read(body, image_pull_backoff()))
    assert len(inputs) == 1
    (pending,) = inputs
    assert isinstance(pending, JobPending)
    # At the slot it was made for (its scheduled timestamp), never Late for the seconds
    # the CronJob controller took to create it.
    assert pending.time == t("2026-11-25T02:00:00")
    assert pending.scheduled_time == t("2026-11-25T02:00:00")
    assert (pending.uid, pending.name) == (UID, JOB_NAME)
    assert pending.created == t("2026-11-25T02:00:01")
    assert pending.cause.startswith(f"Job {JOB_NAME} created 02:00:01 UTC; Pod {JOB_NAME}-x7k")
    assert "ImagePullBackOff" in pending.cause and IMAGE in pending.cause
    assert not any(isinstance(i, Ping) for i in inputs)


def test_pending_start_is_reported_once() -> None:
    body = job()
    pods = read(body, image_pull_backoff())
    assert job_inputs(run(body), status_with((UID, "pending")), pods) == []
    assert job_inputs(run(body), status_with((UID, "notstarted")), pods) == []
    # ... and the start still comes when the Pod runs
    started = read(body, running("2026-11-25T02:40:00Z"))
    (start,) = job_inputs(run(body), status_with((UID, "pending")), started)
    assert isinstance(start, Ping) and start.kind == "start"
    assert start.time == t("2026-11-25T02:40:00")


def test_pending_job_without_slot_is_pending_at_its_creation_unless_older_than_the_slot() -> None:
    body = job(scheduled=None, created="2026-11-25T02:00:01Z")
    (pending,) = job_inputs(run(body), ACTIVE, read(body, image_pull_backoff()))
    assert isinstance(pending, JobPending) and pending.time == t("2026-11-25T02:00:01")
    later = {**ACTIVE, "referenceTime": "2026-11-25T03:00:00Z"}
    assert job_inputs(run(body), later, read(body, image_pull_backoff())) == []


def test_pending_job_with_pods_not_readable_says_so() -> None:
    body = job()
    (pending,) = job_inputs(run(body), ACTIVE, None)
    assert isinstance(pending, JobPending)
    assert pending.cause == (
        f"Job {JOB_NAME} created 02:00:01 UTC; no Pod of it is ready (Pods not readable)"
    )
    assert waiting_cause(run(body), None) == pending.cause


def test_pending_job_with_no_pod_names_the_job_controllers_failed_create() -> None:
    body = job()
    event = {
        "reason": "FailedCreate",
        "message": 'pods "x" is forbidden: exceeded quota: compute',
        "lastTimestamp": "2026-11-25T02:00:05Z",
        "count": 4,
    }
    (pending,) = job_inputs(run(body), ACTIVE, read(body, events=[event]))
    assert isinstance(pending, JobPending)
    assert 'FailedCreate (4 times): pods "x" is forbidden: exceeded quota' in pending.cause


def test_suspended_job_is_a_queued_pending_start() -> None:
    body = job(suspend=True, start=None)
    (pending,) = job_inputs(run(body), ACTIVE, read(body))
    assert isinstance(pending, JobPending)
    assert pending.cause.endswith("Job suspended (queued)")


# --- failures say why (DESIGN 10.1, 10.8.3) -------------------------------------------


def test_job_that_failed_before_any_pod_ran_is_one_not_started_fail() -> None:
    body = job(
        failed=(
            "2026-11-25T02:30:00Z",
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
        )
    )
    inputs = job_inputs(run(body), ACTIVE, read(body, image_pull_backoff()))
    assert len(inputs) == 1  # no start: it never ran
    (fail,) = inputs
    assert isinstance(fail, Ping)
    assert (fail.kind, fail.time, fail.not_started) == ("fail", t("2026-11-25T02:30:00"), True)
    assert fail.run_id == UID and fail.job == (UID, "fail")
    assert fail.body is not None
    assert "ImagePullBackOff" in fail.body and IMAGE in fail.body
    assert fail.body.endswith("; DeadlineExceeded: Job was active longer than specified deadline")
    # reported pending first: still the one fail
    (again,) = job_inputs(run(body), status_with((UID, "pending")), None)
    assert isinstance(again, Ping) and again.not_started and again.kind == "fail"


def test_oom_killed_job_fails_with_the_cause_and_exit_code_137() -> None:
    body = job(
        failed=(
            "2026-11-25T02:05:00Z",
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        )
    )
    pods = read(body, oom_killed("2026-11-25T02:00:30Z", "2026-11-25T02:04:58Z"))
    start, fail = job_inputs(run(body), ACTIVE, pods)
    assert isinstance(start, Ping) and isinstance(fail, Ping)
    assert (start.kind, start.time) == ("start", t("2026-11-25T02:00:30"))
    assert (fail.kind, fail.time) == ("fail", t("2026-11-25T02:05:00"))
    assert fail.exit_code == 137 and not fail.exit_code_unknown and not fail.not_started
    assert fail.body == (
        "BackoffLimitExceeded: Job has reached the specified backoff limit; "
        "container main OOMKilled (exit code 137)"
    )


def test_a_job_whose_container_could_not_start_fails_not_started() -> None:
    """``exec: "backup.sh": executable file not found``: the kubelet says the container
    terminated (exit code 128) having "started" at 1970. It never ran (DESIGN 10.1): no
    start, one NotStarted failure in the runtime's words, no exit code of a run."""
    body = job(
        failed=(
            "2026-11-25T02:00:20Z",
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        )
    )
    message = 'exec: "backup.sh": executable file not found in $PATH: unknown'
    never = pod(
        {
            "terminated": {
                "reason": "StartError",
                "message": message,
                "exitCode": 128,
                "startedAt": "1970-01-01T00:00:00Z",
                "finishedAt": "2026-11-25T02:00:15Z",
            }
        },
        phase="Failed",
    )
    (fail,) = job_inputs(run(body), ACTIVE, read(body, never))
    assert isinstance(fail, Ping)
    assert (fail.kind, fail.time, fail.not_started) == ("fail", t("2026-11-25T02:00:20"), True)
    assert fail.exit_code is None
    assert fail.body is not None and f"StartError: {message}" in fail.body
    assert fail.body.endswith("; BackoffLimitExceeded: Job has reached the specified backoff limit")


def test_a_job_whose_init_container_failed_is_not_started_with_its_exit_code() -> None:
    # DESIGN 9.11 counts init containers' exit codes: the run never began (NotStarted),
    # and lastExitCode says what the init container exited with, as its message does.
    body = job(failed=("2026-11-25T02:00:40Z", "BackoffLimitExceeded", "backoff limit"))
    init_failed = pod({"waiting": {"reason": "PodInitializing"}}, phase="Failed")
    init_failed["spec"]["initContainers"] = [{"name": "migrate", "image": IMAGE}]
    init_failed["status"]["initContainerStatuses"] = [
        {
            "name": "migrate",
            "image": IMAGE,
            "state": {
                "terminated": {
                    "reason": "Error",
                    "exitCode": 2,
                    "startedAt": "2026-11-25T02:00:10Z",
                    "finishedAt": "2026-11-25T02:00:12Z",
                }
            },
        }
    ]
    (fail,) = job_inputs(run(body), ACTIVE, read(body, init_failed))
    assert isinstance(fail, Ping) and fail.not_started
    assert fail.exit_code == 2


def test_failed_job_whose_pods_are_gone_says_exit_code_unknown() -> None:
    body = job(failed=("2026-11-25T02:01:00Z", "BackoffLimitExceeded", "x"))
    start, fail = job_inputs(run(body), ACTIVE, read(body))  # read, no Pod left
    assert isinstance(start, Ping) and start.time == t("2026-11-25T02:00:03")  # startTime
    assert isinstance(fail, Ping)
    assert fail.exit_code is None and fail.exit_code_unknown is True
    assert fail.body == "BackoffLimitExceeded: x"
    # Pods not readable: no claim about them either way
    fail = job_inputs(run(body), ACTIVE, None)[-1]
    assert isinstance(fail, Ping)
    assert fail.exit_code is None and fail.exit_code_unknown is False


def test_a_job_that_ran_is_not_not_started_when_its_pods_are_gone_at_its_failure() -> None:
    # activeDeadlineSeconds: the Job controller deletes the running Pod and fails the Job;
    # its start was reported (after a moment Pending): a Failed run, not NotStarted.
    body = job(failed=("2026-11-25T02:01:00Z", "DeadlineExceeded", "Job was active longer"))
    reported = status_with((UID, "pending"), (UID, "start"))
    (fail,) = job_inputs(run(body), reported, read(body))  # read, no Pod left
    assert isinstance(fail, Ping) and fail.kind == "fail" and not fail.not_started
    assert fail.exit_code_unknown is True
    assert fail.body == "DeadlineExceeded: Job was active longer"
    # A retry's Pod pending when the Job fails: it ran all the same.
    (fail,) = job_inputs(run(body), reported, read(body, image_pull_backoff()))
    assert isinstance(fail, Ping) and not fail.not_started


def test_a_job_that_never_ran_keeps_its_pending_cause_once_its_pod_is_deleted() -> None:
    body = job(failed=("2026-11-25T02:30:00Z", "DeadlineExceeded", "Job was active longer"))
    waited = "Job backup-29012 created 02:00:01 UTC; Pod backup-x Pending for 29m: ImagePullBackOff"
    status = {
        **status_with((UID, "pending")),
        "pendingStarts": [{"jobUid": UID, "jobName": JOB_NAME, "cause": waited}],
    }
    (fail,) = job_inputs(run(body), status, read(body))  # the Pod is gone
    assert isinstance(fail, Ping) and fail.not_started
    assert fail.body == f"{waited}; DeadlineExceeded: Job was active longer"


def test_completed_job_yields_start_at_the_pod_then_success_with_exit_code_0() -> None:
    body = job(complete="2026-11-25T02:06:55Z")
    done = pod(
        {
            "terminated": {
                "exitCode": 0,
                "reason": "Completed",
                "startedAt": "2026-11-25T02:00:15Z",
                "finishedAt": "2026-11-25T02:06:54Z",
            }
        },
        phase="Succeeded",
    )
    start, success = job_inputs(run(body), ACTIVE, read(body, done))
    assert isinstance(start, Ping) and isinstance(success, Ping)
    assert (start.kind, start.time) == ("start", t("2026-11-25T02:00:15"))
    assert (success.kind, success.time, success.exit_code) == (
        "success",
        t("2026-11-25T02:06:55"),
        0,
    )
    assert success.run_id == UID and success.job == (UID, "success")
    # the duration the domain computes: completion - the Pod's start
    assert (success.time - start.time).total_seconds() == 400


def test_failure_body_adds_the_log_tail() -> None:
    failure = Failure(t("2026-11-25T02:05:00"), "BackoffLimitExceeded", "limit")
    assert failure_body(failure, None) == "BackoffLimitExceeded: limit"
    pods = JobPods(READ_AT, True, failure="BackoffLimitExceeded: limit; container main Error")
    assert failure_body(failure, pods) == "BackoffLimitExceeded: limit; container main Error"
    with_log = JobPods(READ_AT, True, failure="", log_tail="line 1\npanic: disk full\n")
    assert (
        failure_body(failure, with_log) == "BackoffLimitExceeded: limit\nline 1\npanic: disk full\n"
    )


# --- job_start fallbacks (DESIGN 10.8.2) -----------------------------------------------


def test_job_start_falls_back_to_start_time_only_when_pods_cannot_tell() -> None:
    no_pods = read(job())
    # no Pod left of a completed Job: its startTime
    assert job_start(run(job(complete="2026-11-25T02:06:55Z")), no_pods, set()) == t(
        "2026-11-25T02:00:03"
    )
    failed = run(job(failed=("2026-11-25T02:30:00Z", "DeadlineExceeded", "x")))
    assert job_start(failed, no_pods, set()) == t("2026-11-25T02:00:03")
    # ... but not for a Job that failed while known to be waiting (its Pods removed at its
    # deadline): it never ran
    assert job_start(failed, no_pods, {"pending"}) is None
    assert job_start(failed, no_pods, {"notstarted"}) is None
    # still running, no Pod listed: not started
    assert job_start(run(job()), no_pods, set()) is None
    # Pods found, none started: not started, whatever the Job says
    pending = read(job(), image_pull_backoff())
    assert job_start(run(job(ready=1)), pending, set()) is None
    # Pods not readable: a ready Pod is the signal left
    assert job_start(run(job(ready=1)), None, set()) == t("2026-11-25T02:00:03")
    assert job_start(run(job(ready=0)), None, set()) is None
    assert job_start(run(job(ready=1, start=None)), None, set()) == t("2026-11-25T02:00:01")


# --- once, and only for the monitor's time (DESIGN 9.10) ------------------------------


def test_each_ping_once_reported_phases_are_left_out() -> None:
    body = job(complete="2026-11-25T02:06:55Z")
    complete, pods = run(body), read(body, running("2026-11-25T02:00:15Z"))
    (success,) = job_inputs(complete, status_with((UID, "start")), pods)
    assert isinstance(success, Ping) and success.kind == "success"
    assert job_inputs(complete, status_with((UID, "start"), (UID, "success")), pods) == []
    assert job_inputs(complete, status_with((UID, "success")), pods) == []
    assert job_inputs(complete, status_with((UID, "ignored")), pods) == []
    assert job_inputs(complete, status_with((UID, "fail")), pods) == []
    assert job_inputs(run(job()), status_with((UID, "start")), pods) == []
    # another Job's entries do not matter
    assert len(job_inputs(complete, status_with(("other", "success")), pods)) == 2


def test_jobs_started_before_the_monitor_became_active_are_ignored() -> None:
    status = {"activeSince": "2026-11-25T03:00:00Z", "referenceTime": "2026-11-25T03:00:00Z"}
    failed = job(failed=("2026-11-25T02:01:00Z", "BackoffLimitExceeded", "x"))
    assert job_inputs(run(failed), status, read(failed)) == []
    assert job_inputs(run(job()), status, read(job(), running("2026-11-25T02:00:15Z"))) == []
    # a Job created before activeSince whose Pod has not run either
    assert job_inputs(run(job()), status, read(job(), image_pull_backoff())) == []


def test_a_job_counts_from_its_pods_start_against_active_since() -> None:
    # Created before the monitor became active, its Pod ran after: a run of the monitor's.
    status = {"activeSince": "2026-11-25T02:00:30Z", "referenceTime": "2026-11-25T02:00:30Z"}
    (start,) = job_inputs(run(job()), status, read(job(), running("2026-11-25T02:01:00Z")))
    assert isinstance(start, Ping) and start.time == t("2026-11-25T02:01:00")


def test_a_job_created_after_active_since_counts_though_its_pod_started_earlier() -> None:
    # The examples' recording: a Job created a second after the monitor became active, its
    # container's startedAt (the Node's clock, behind the API server's) before activeSince.
    # It was left out as an old Job; it is a run of the monitor's (DESIGN 9.10).
    status = {"activeSince": "2026-11-25T02:00:00Z", "referenceTime": "2026-11-25T02:00:00Z"}
    body = job(complete="2026-11-25T02:00:20Z")  # created 02:00:01
    inputs = job_inputs(run(body), status, read(body, running("2026-11-25T01:59:50Z")))
    assert [(p.kind, p.time) for p in inputs if isinstance(p, Ping)] == [
        ("start", t("2026-11-25T01:59:50")),
        ("success", t("2026-11-25T02:00:20")),
    ]
    assert inputs[0].job_created == t("2026-11-25T02:00:01")  # the domain decides by it
    # Still waiting for its Pod: a pending start, not left out either.
    (pending,) = job_inputs(run(job()), status, read(job(), image_pull_backoff()))
    assert isinstance(pending, JobPending)


def test_listed_start_keeps_its_finish_even_after_a_resume_moved_active_since() -> None:
    status = {
        "activeSince": "2026-11-25T03:00:00Z",
        "referenceTime": "2026-11-25T03:00:00Z",
        "reportedJobs": [{"uid": UID, "phase": "start"}],
    }
    body = job(complete="2026-11-25T03:10:00Z")
    inputs = job_inputs(run(body), status, read(body, running("2026-11-25T02:00:15Z")))
    assert [p.kind for p in inputs if isinstance(p, Ping)] == ["success"]
    assert len(inputs) == 1


def test_unlisted_job_that_finished_before_reference_time_is_ignored() -> None:
    status = {"activeSince": "2026-11-25T01:00:00Z", "referenceTime": "2026-11-25T04:00:00Z"}
    body = job(complete="2026-11-25T02:06:55Z")
    assert job_inputs(run(body), status, read(body, running("2026-11-25T02:00:15Z"))) == []


def test_reported_phases() -> None:
    status = status_with(("a", "start"), ("a", "success"), ("b", "start"))
    assert reported_phases(status) == {"a": {"start", "success"}, "b": {"start"}}
    assert reported_phases({"reportedJobs": [{"uid": 1}, "junk"]}) == {}


# --- a Job deleted before it finished (DESIGN 10.8.3) ----------------------------------


def test_deleted_job_fails_at_its_deletion_once() -> None:
    gone = run(job())
    at = t("2026-11-25T02:20:00")
    (fail,) = deleted_inputs(gone, at, status_with((UID, "start")))
    assert isinstance(fail, Ping)
    assert (fail.kind, fail.time, fail.run_id, fail.job) == ("fail", at, UID, (UID, "fail"))
    assert fail.body == f"Job {JOB_NAME} was deleted before it finished"
    assert not fail.not_started
    (never_ran,) = deleted_inputs(gone, at, status_with((UID, "pending")))
    assert isinstance(never_ran, Ping) and never_ran.not_started
    assert never_ran.body == (
        f"Job {JOB_NAME} created 02:00:01 UTC; deleted before any Pod of it ran"
    )
    # Its pending start said why it had not run (Replace deleted it while it waited).
    waited = f"Job {JOB_NAME} created 02:00:01 UTC; Pod x Pending for 58s: ImagePullBackOff"
    status = {
        **status_with((UID, "pending")),
        "pendingStarts": [{"jobUid": UID, "jobName": JOB_NAME, "cause": waited}],
    }
    (never_ran,) = deleted_inputs(gone, at, status)
    assert isinstance(never_ran, Ping)
    assert never_ran.body == f"{waited}; deleted before any Pod of it ran"
    # never reported (it stood for no slot) or already finished: nothing
    assert deleted_inputs(gone, at, ACTIVE) == []
    assert deleted_inputs(gone, at, status_with((UID, "start"), (UID, "fail"))) == []
    assert deleted_inputs(gone, at, status_with((UID, "start"), (UID, "success"))) == []


# --- exit codes ------------------------------------------------------------------------


def terminated(code: int, finished: str | None) -> dict[str, Any]:
    term: dict[str, Any] = {"exitCode": code}
    if finished:
        term["finishedAt"] = finished
    return {"terminated": term}


def statuses(*containers: dict[str, Any], init: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    return {"status": {"containerStatuses": list(containers), "initContainerStatuses": list(init)}}


def test_exit_code_of_the_container_that_finished_last_non_zero() -> None:
    pods = [
        statuses(
            {"name": "main", "state": terminated(3, "2026-11-25T02:00:40Z")},
            {"name": "sidecar", "state": terminated(0, "2026-11-25T02:00:50Z")},
        ),
        statuses({"name": "main", "state": terminated(7, "2026-11-25T02:00:20Z")}),
    ]
    assert pick_exit_code(pods) == 3


def test_exit_code_from_last_state_and_init_containers() -> None:
    restarted = statuses(
        {
            "name": "main",
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": terminated(42, "2026-11-25T02:01:00Z"),
        }
    )
    assert pick_exit_code([restarted]) == 42
    init_failed = statuses(
        init=({"name": "setup", "state": terminated(9, "2026-11-25T02:00:10Z")},)
    )
    assert pick_exit_code([init_failed]) == 9


def test_a_sidecar_stopped_after_the_main_container_failed_is_not_the_failure() -> None:
    # A native sidecar (an init container with restartPolicy Always, e.g. a database
    # proxy) gets SIGTERM once main has exited 3, and exits 143 a second later: the Job
    # failed because of main (DESIGN 4: the failed container's code; 10.8.2).
    pod = statuses(
        {"name": "main", "state": terminated(3, "2026-11-25T02:00:40Z")},
        init=({"name": "proxy", "state": terminated(143, "2026-11-25T02:00:41Z")},),
    )
    pod["spec"] = {
        "initContainers": [{"name": "proxy", "restartPolicy": "Always"}],
        "containers": [{"name": "main"}],
    }
    assert pick_exit_code([pod]) == 3
    cause = failure_cause([pod], "BackoffLimitExceeded", "Job has reached the backoff limit")
    assert "container main Error (exit code 3)" in cause and "143" not in cause


def test_no_exit_code_when_no_container_failed_or_no_pod() -> None:
    assert pick_exit_code([]) is None
    ok = statuses({"name": "main", "state": terminated(0, "2026-11-25T02:00:40Z")})
    assert pick_exit_code([ok]) is None
    assert pick_exit_code([{"status": {"phase": "Pending"}}]) is None


def test_exit_code_without_finish_time_ranks_first_finished() -> None:
    pods = [
        statuses(
            {"name": "a", "state": terminated(5, None)},
            {"name": "b", "state": terminated(6, "2026-11-25T02:00:00Z")},
        )
    ]
    assert pick_exit_code(pods) == 6


# --- one read of a Job's Pods --------------------------------------------------------


class PodClient:
    """Our own ``KubeClient`` seam: answers Pod and Event lists and log reads."""

    def __init__(
        self,
        pods: list[dict[str, Any]],
        events: list[dict[str, Any]] | None = None,
        *,
        refuse: ApiError | None = None,
        log: bytes = b"",
    ) -> None:
        self.pods, self.events, self.refuse, self.log = pods, events or [], refuse, log
        self.calls: list[tuple[str, dict[str, str]]] = []

    async def get(self, path: str, *, params: dict[str, str], kind: str) -> dict[str, Any]:
        self.calls.append((path, params))
        if self.refuse is not None:
            raise self.refuse
        if path == "/api/v1/namespaces/ops/pods":
            assert params == {"labelSelector": f"batch.kubernetes.io/controller-uid={UID}"}
            return {"items": self.pods}
        assert path == "/api/v1/namespaces/ops/events"
        assert params == {"fieldSelector": f"involvedObject.uid={UID}"}
        return {"items": self.events}

    async def get_bytes(self, path: str, *, params: dict[str, str], kind: str) -> bytes:
        self.calls.append((path, params))
        return self.log


async def test_read_job_pods_lists_pods_once_and_events_only_without_pods() -> None:
    client = PodClient([running("2026-11-25T02:00:40Z")])
    pods = await read_job_pods(client, run(job()), READ_AT)  # type: ignore[arg-type]
    assert pods is not None and pods.found and pods.started_at == t("2026-11-25T02:00:40")
    assert [c[0] for c in client.calls] == ["/api/v1/namespaces/ops/pods"]

    event = {"reason": "FailedCreate", "message": "admission webhook denied the request"}
    client = PodClient([], [event])
    pods = await read_job_pods(client, run(job()), READ_AT)  # type: ignore[arg-type]
    assert pods is not None and not pods.found
    assert "admission webhook denied the request" in pods.waiting
    assert len(client.calls) == 2


async def test_read_job_pods_is_none_when_pods_cannot_be_listed() -> None:
    client = PodClient([], refuse=ApiError(403, "Forbidden", "pods is forbidden"))
    assert await read_job_pods(client, run(job()), READ_AT) is None  # type: ignore[arg-type]


async def test_capture_logs_puts_the_failing_containers_tail_in_the_fail_body() -> None:
    body = job(failed=("2026-11-25T02:05:00Z", "BackoffLimitExceeded", "limit"))
    client = PodClient(
        [oom_killed("2026-11-25T02:00:30Z", "2026-11-25T02:04:58Z")], log=b"loading\nkilled\n"
    )
    pods = await read_job_pods(client, run(body), READ_AT, capture_logs=True)  # type: ignore[arg-type]
    assert pods is not None and pods.log_tail == "loading\nkilled\n"
    log_path, params = client.calls[-1]
    assert log_path == f"/api/v1/namespaces/ops/pods/{JOB_NAME}-x7k/log"
    assert params["container"] == "main"
    fail = job_inputs(run(body), ACTIVE, pods)[-1]
    assert isinstance(fail, Ping)
    assert fail.body == (
        "BackoffLimitExceeded: limit; container main OOMKilled (exit code 137)\nloading\nkilled\n"
    )
    # without the flag: no log read
    client = PodClient([oom_killed("2026-11-25T02:00:30Z", "2026-11-25T02:04:58Z")], log=b"x")
    pods = await read_job_pods(client, run(body), READ_AT)  # type: ignore[arg-type]
    assert pods is not None and pods.log_tail is None and len(client.calls) == 1


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
