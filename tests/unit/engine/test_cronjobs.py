"""CronJob auto-wiring (DESIGN 4, 9.11, 9.12): the desired monitor, annotation checks,
ownership, Events on the CronJob, and the leader's reconcile against a fake of our own
``KubeClient`` seam (the real API is exercised in tests/integration/test_cronjobs.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.waiting import async_wait_for

from heartbeat_operator.domain.inputs import (
    PAUSE_CAUSE_CRONJOB,
    PAUSE_CAUSE_SPEC,
    PAUSE_CAUSE_UNTIL,
    JobPending,
    Pause,
    Ping,
    Resume,
    SlotSkipped,
)
from heartbeat_operator.domain.records import Record
from heartbeat_operator.domain.specs import parse_spec
from heartbeat_operator.domain.timefmt import format_time
from heartbeat_operator.domain.tokens import token_hash
from heartbeat_operator.engine.api import ApiError
from heartbeat_operator.engine.autowiring import AutoWiring
from heartbeat_operator.engine.cronjobs import (
    JOB_CREATION_ALLOWANCE,
    MAX_RECONCILES,
    CronJobInfo,
    Owner,
    build_monitor,
    created_by_operator,
    desired_spec,
    in_sync,
    invalid_annotation_event,
    mirrored_events,
    monitor_owner,
    name_conflict_event,
    pause_inputs,
    skipped_slot_cause,
    split_schedule,
)
from heartbeat_operator.engine.folding import Change
from heartbeat_operator.engine.jobs import JobRun
from heartbeat_operator.engine.monitors import Key, MonitorEntry, MonitorTable
from heartbeat_operator.engine.scheduling import Judging

NOW = datetime(2026, 11, 25, 5, 0, tzinfo=UTC)
CJ_UID = "cj-uid-1"


def cronjob_body(
    annotations: dict[str, str] | None = None,
    *,
    schedule: str = "0 2 * * *",
    time_zone: str | None = "Europe/Berlin",
    suspend: bool = False,
    deadline: int | None = None,
    uid: str = CJ_UID,
    generation: int = 1,
    concurrency_policy: str | None = None,
    starting_deadline: int | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"schedule": schedule, "suspend": suspend, "jobTemplate": {"spec": {}}}
    if concurrency_policy is not None:
        spec["concurrencyPolicy"] = concurrency_policy
    if starting_deadline is not None:
        spec["startingDeadlineSeconds"] = starting_deadline
    if time_zone:
        spec["timeZone"] = time_zone
    if deadline is not None:
        spec["jobTemplate"]["spec"]["activeDeadlineSeconds"] = deadline
    return {
        "metadata": {
            "name": "backup",
            "namespace": "ops",
            "uid": uid,
            "generation": generation,
            "annotations": {"heartbeat.dev/monitor": "true"}
            if annotations is None
            else annotations,
        },
        "spec": spec,
    }


def cronjob(**kw: Any) -> CronJobInfo:
    return CronJobInfo.from_body(cronjob_body(**kw))


# --- the desired monitor --------------------------------------------------------------------


def test_only_the_exact_value_true_means_monitored() -> None:
    assert cronjob().monitored
    for value in ("True", "yes", "1", "", "false"):
        assert not cronjob(annotations={"heartbeat.dev/monitor": value}).monitored
    assert not cronjob(annotations={}).monitored


def test_schedule_and_time_zone_follow_the_cronjob() -> None:
    spec, problems = desired_spec(cronjob())
    assert spec == {"schedule": "0 2 * * *", "timeZone": "Europe/Berlin"}
    assert problems == []
    spec, _ = desired_spec(cronjob(time_zone=None, schedule="*/5 * * * *"))
    assert spec == {"schedule": "*/5 * * * *"}  # no timeZone: UTC, never the field


def test_zone_in_the_schedule_moves_to_time_zone() -> None:
    assert split_schedule("CRON_TZ=Asia/Tokyo 0 2 * * *") == ("0 2 * * *", "Asia/Tokyo")
    assert split_schedule("TZ=UTC @daily") == ("@daily", "UTC")
    assert split_schedule("@hourly") == ("@hourly", None)
    spec, _ = desired_spec(cronjob(schedule="TZ=Asia/Tokyo 0 2 * * *", time_zone=None))
    assert spec == {"schedule": "0 2 * * *", "timeZone": "Asia/Tokyo"}


def test_annotations_set_grace_runtimes_and_threshold() -> None:
    annotations = {
        "heartbeat.dev/monitor": "true",
        "heartbeat.dev/grace": "30m",
        "heartbeat.dev/max-runtime": "2h",
        "heartbeat.dev/min-runtime": "1m",
        "heartbeat.dev/failure-threshold": "3",
    }
    spec, problems = desired_spec(cronjob(annotations=annotations, deadline=600))
    assert problems == []
    assert spec == {
        "schedule": "0 2 * * *",
        "timeZone": "Europe/Berlin",
        "grace": "30m",
        "maxRuntime": "2h",  # the annotation wins over activeDeadlineSeconds
        "minRuntime": "1m",
        "failureThreshold": 3,
    }


def test_default_max_runtime_is_active_deadline_plus_60s() -> None:
    spec, _ = desired_spec(cronjob(deadline=600))
    assert spec["maxRuntime"] == "660s"
    spec, _ = desired_spec(cronjob())
    assert "maxRuntime" not in spec


def test_invalid_annotations_are_named_and_the_rest_still_works() -> None:
    annotations = {
        "heartbeat.dev/monitor": "true",
        "heartbeat.dev/grace": "soon",
        "heartbeat.dev/max-runtime": "0s",
        "heartbeat.dev/min-runtime": "-5m",
        "heartbeat.dev/failure-threshold": "0",
    }
    spec, problems = desired_spec(cronjob(annotations=annotations, deadline=120))
    assert spec == {"schedule": "0 2 * * *", "timeZone": "Europe/Berlin", "maxRuntime": "180s"}
    assert [p.annotation for p in problems] == [
        "heartbeat.dev/grace",
        "heartbeat.dev/max-runtime",
        "heartbeat.dev/min-runtime",
        "heartbeat.dev/failure-threshold",
    ]
    for p in problems:
        assert p.annotation in p.message and repr(p.value) in p.message
    for bad in ("1001", "2.5", "three", "-1", "٣"):
        _, problems = desired_spec(
            cronjob(
                annotations={
                    "heartbeat.dev/monitor": "true",
                    "heartbeat.dev/failure-threshold": bad,
                }
            )
        )
        assert [p.annotation for p in problems] == ["heartbeat.dev/failure-threshold"], bad


def test_apply_body_owns_only_its_fields_label_and_owner_reference() -> None:
    cj = cronjob()
    spec, _ = desired_spec(cj)
    body = build_monitor(cj, spec)
    assert body == {
        "apiVersion": "heartbeat.dev/v1alpha1",
        "kind": "HeartbeatMonitor",
        "metadata": {
            "name": "backup",
            "namespace": "ops",
            "labels": {"app.kubernetes.io/managed-by": "heartbeat-operator"},
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "CronJob",
                    "name": "backup",
                    "uid": CJ_UID,
                    "controller": True,
                    "blockOwnerDeletion": False,
                }
            ],
        },
        "spec": {"schedule": "0 2 * * *", "timeZone": "Europe/Berlin"},
    }


def monitor_body(
    *,
    owner: str | None = "backup",
    owner_uid: str = CJ_UID,
    spec: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
    uid: str = "m-uid",
    rv: str = "10",
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": "backup",
        "namespace": "ops",
        "uid": uid,
        "generation": 1,
        "resourceVersion": rv,
        "creationTimestamp": "2026-11-25T04:00:00Z",
        "labels": {"app.kubernetes.io/managed-by": "heartbeat-operator"}
        if labels is None
        else labels,
    }
    if owner:
        meta["ownerReferences"] = [
            {
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "name": owner,
                "uid": owner_uid,
                "controller": True,
            }
        ]
    return {
        "metadata": meta,
        "spec": spec
        if spec is not None
        else {"schedule": "0 2 * * *", "timeZone": "Europe/Berlin", "grace": "5m"},
        "status": status or {},
    }


def test_ownership_is_a_controlling_cronjob_of_the_same_name() -> None:
    cj = cronjob()

    def ours(body: dict[str, Any]) -> bool:
        return created_by_operator(MonitorEntry.from_body(body), monitor_owner(body), cj)

    assert ours(monitor_body())
    # re-created CronJob (new uid) takes its predecessor's monitor over
    assert ours(monitor_body(owner_uid="old"))
    assert not ours(monitor_body(owner="other"))
    # The CronJob deleted with --cascade=orphan: the garbage collector took the owner
    # reference away, our label stays; the CronJob made again adopts it (no NameConflict).
    assert ours(monitor_body(owner=None))
    assert not ours(monitor_body(owner=None, labels={}))  # the user's own monitor


def test_in_sync_compares_owned_fields_label_and_owner() -> None:
    cj = cronjob()
    spec, _ = desired_spec(cj)
    body = monitor_body()
    entry = MonitorEntry.from_body(body)
    assert in_sync(entry, monitor_owner(body), cj, spec)
    assert not in_sync(entry, monitor_owner(body), cj, {**spec, "schedule": "0 3 * * *"})
    old = monitor_body(owner_uid="old")
    assert not in_sync(MonitorEntry.from_body(old), monitor_owner(old), cj, spec)
    unlabelled = monitor_body(labels={})
    assert not in_sync(MonitorEntry.from_body(unlabelled), monitor_owner(unlabelled), cj, spec)


# --- Events on the CronJob ----------------------------------------------------------------


def test_invalid_annotation_event_is_a_warning_on_the_cronjob_once_per_generation() -> None:
    cj = cronjob(annotations={"heartbeat.dev/monitor": "true", "heartbeat.dev/grace": "soon"})
    (problem,) = desired_spec(cj)[1]
    event = invalid_annotation_event(cj, problem, now=NOW)
    assert event["type"] == "Warning"
    assert event["reason"] == "InvalidAnnotation"
    assert "heartbeat.dev/grace" in event["message"]
    assert event["involvedObject"] == {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "name": "backup",
        "namespace": "ops",
        "uid": CJ_UID,
    }
    later = invalid_annotation_event(cj, problem, now=NOW.replace(hour=6))
    assert later["metadata"]["name"] == event["metadata"]["name"]  # same generation: same Event
    next_gen = cronjob(
        annotations={"heartbeat.dev/monitor": "true", "heartbeat.dev/grace": "soon"}, generation=2
    )
    assert (
        invalid_annotation_event(next_gen, problem, now=NOW)["metadata"]["name"]
        != event["metadata"]["name"]
    )


def test_name_conflict_event() -> None:
    event = name_conflict_event(cronjob(), now=NOW)
    assert (event["type"], event["reason"]) == ("Warning", "NameConflict")
    assert event["involvedObject"]["kind"] == "CronJob"
    assert "HeartbeatMonitor backup" in event["message"]
    assert event["source"] == {"component": "heartbeat-operator"}


class T:
    def __init__(self, reason: str | None, message: str = "m", kind: str = "Warning") -> None:
        self.time = NOW
        self.message = message
        self.event_reason = reason
        self.event_type = kind


def test_transitions_are_mirrored_onto_the_cronjob() -> None:
    owner = Owner("m-uid", "backup", CJ_UID)
    events = mirrored_events(
        owner, "ops", [T("Failed", "run failed: BackoffLimitExceeded: x"), T(None)]
    )
    assert len(events) == 1
    (event,) = events
    assert event["reason"] == "Failed" and event["type"] == "Warning"
    assert event["message"] == "run failed: BackoffLimitExceeded: x"
    assert event["involvedObject"]["uid"] == CJ_UID
    assert event["involvedObject"]["kind"] == "CronJob"


# --- pause and resume -----------------------------------------------------------------------


def entry(status: dict[str, Any], spec: dict[str, Any] | None = None) -> MonitorEntry:
    return MonitorEntry.from_body(monitor_body(status=status, spec=spec))


def test_suspend_pauses_and_unsuspend_resumes_with_the_cronjob_cause() -> None:
    running = entry({"state": "Healthy"})
    assert pause_inputs(cronjob(suspend=True), running, NOW) == [Pause(NOW, PAUSE_CAUSE_CRONJOB)]
    assert pause_inputs(cronjob(), running, NOW) == []
    paused = entry({"pausedSince": "2026-11-25T04:00:00Z", "pauseCause": PAUSE_CAUSE_CRONJOB})
    assert pause_inputs(cronjob(suspend=True), paused, NOW) == []
    assert pause_inputs(cronjob(), paused, NOW) == [Resume(NOW, PAUSE_CAUSE_CRONJOB)]


def test_spec_paused_stays_the_users() -> None:
    by_spec = entry(
        {"pausedSince": "2026-11-25T04:00:00Z", "pauseCause": "spec.paused"},
        {"schedule": "x", "paused": True},
    )
    assert pause_inputs(cronjob(), by_spec, NOW) == []  # never resumes a spec pause
    assert pause_inputs(cronjob(suspend=True), by_spec, NOW) == []
    both = entry(
        {"pausedSince": "2026-11-25T04:00:00Z", "pauseCause": PAUSE_CAUSE_CRONJOB},
        {"schedule": "x", "paused": True},
    )
    # The CronJob resumed; spec.paused still holds the monitor: the spec's pause follows.
    resumed = Resume(NOW, PAUSE_CAUSE_CRONJOB)
    assert pause_inputs(cronjob(), both, NOW) == [resumed, Pause(NOW, PAUSE_CAUSE_SPEC)]


def test_a_timed_pause_outlasting_a_suspend_takes_over_and_ends_by_itself() -> None:
    # Issue 16: a `kubectl heartbeat pause --for 2h` during a suspend outlives the
    # suspend: when the CronJob resumes, the monitor is paused again until pausedUntil
    # (before: resumed at once, or, by spec.paused, paused by the CronJob for good).
    until = NOW + timedelta(hours=2)
    timed = entry(
        {"pausedSince": "2026-11-25T04:00:00Z", "pauseCause": PAUSE_CAUSE_CRONJOB},
        {"schedule": "x", "pausedUntil": format_time(until)},
    )
    assert pause_inputs(cronjob(), timed, NOW) == [
        Resume(NOW, PAUSE_CAUSE_CRONJOB),
        Pause(NOW, PAUSE_CAUSE_UNTIL, until=until),
    ]
    over = entry(
        {"pausedSince": "2026-11-25T04:00:00Z", "pauseCause": PAUSE_CAUSE_CRONJOB},
        {"schedule": "x", "pausedUntil": format_time(NOW - timedelta(minutes=1))},
    )
    assert pause_inputs(cronjob(), over, NOW) == [Resume(NOW, PAUSE_CAUSE_CRONJOB)]


# --- the leader's reconcile, against a fake KubeClient ------------------------------------


class FakeClient:
    """Our own client seam: records requests, answers like the API server would."""

    def __init__(self) -> None:
        self.applied: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.deleted: list[tuple[str, dict[str, Any]]] = []
        self.events: list[dict[str, Any]] = []
        self.pods: list[dict[str, Any]] = []
        self.job_events: list[dict[str, Any]] = []
        self.pod_lists = 0
        self.rv = 100
        self.current: dict[str, Any] | None = None

    async def patch(self, path: str, body: dict[str, Any], **kw: Any) -> dict[str, Any]:
        self.applied.append((path, body, dict(kw.get("params") or {})))
        assert kw["content_type"] == "application/apply-patch+yaml"
        self.rv += 1
        # the API answers with the whole object: the applied fields over what was there
        current = self.current or {"metadata": {"uid": "m-uid", "generation": 1}, "spec": {}}
        meta = {**current["metadata"], **body["metadata"], "resourceVersion": str(self.rv)}
        self.current = {**current, "metadata": meta, "spec": {**current["spec"], **body["spec"]}}
        return self.current

    async def request(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        assert method == "DELETE"
        self.deleted.append((path, kw["body"]))
        return {}

    async def post(self, path: str, body: dict[str, Any], **kw: Any) -> dict[str, Any]:
        if any(e["metadata"]["name"] == body["metadata"]["name"] for e in self.events):
            raise ApiError(409, "AlreadyExists", "exists")
        self.events.append(body)
        return body

    async def get(self, path: str, **kw: Any) -> dict[str, Any]:
        """Pod lists by ``controller-uid`` label (counted), Event lists by involved uid."""
        if path == "/api/v1/namespaces/ops/events":
            uid = kw["params"]["fieldSelector"].removeprefix("involvedObject.uid=")
            return {"items": [e for e in self.job_events if e["involvedObject"]["uid"] == uid]}
        assert path == "/api/v1/namespaces/ops/pods"
        label, _, uid = kw["params"]["labelSelector"].partition("=")
        assert label == "batch.kubernetes.io/controller-uid"
        self.pod_lists += 1
        return {"items": [p for p in self.pods if p["metadata"]["labels"][label] == uid]}


class Harness:
    def __init__(self, leader: bool = True, *, synced: bool = True) -> None:
        self.client = FakeClient()
        self.table = MonitorTable()
        self.table.synced = synced  # the initial list of monitors is in
        self.leader = leader
        self.submitted: list[tuple[Key, Change]] = []
        self.now = NOW
        self.wiring = AutoWiring(
            client=self.client,  # type: ignore[arg-type]
            monitors=self.table,
            submit=self.submit,
            is_leader=lambda: self.leader,
            now=lambda: self.now,
        )

    async def submit(self, key: Key, change: Change) -> MonitorEntry:
        self.submitted.append((key, change))
        current = self.table.get(key)
        assert current is not None
        return current

    def monitor(self, body: dict[str, Any]) -> None:
        self.client.current = body
        self.table.upsert(body)
        self.wiring.monitor_event(None, body)

    async def reconcile(self) -> None:
        await self.wiring.reconcile(("ops", "backup"))


async def test_annotated_cronjob_gets_its_monitor_by_server_side_apply() -> None:
    h = Harness()
    h.wiring.cronjob_event("ADDED", cronjob_body())
    await h.reconcile()
    ((path, body, params),) = h.client.applied
    assert path == "/apis/heartbeat.dev/v1alpha1/namespaces/ops/heartbeatmonitors/backup"
    assert params == {"fieldManager": "heartbeat-operator", "force": "true"}
    assert body["spec"] == {"schedule": "0 2 * * *", "timeZone": "Europe/Berlin"}
    assert h.table.get(("ops", "backup")) is not None
    # nothing changed: no second apply
    await h.reconcile()
    assert len(h.client.applied) == 1
    # the schedule changes: applied again
    h.wiring.cronjob_event("MODIFIED", cronjob_body(schedule="0 3 * * *"))
    await h.reconcile()
    assert h.client.applied[-1][1]["spec"]["schedule"] == "0 3 * * *"


async def test_followers_do_nothing() -> None:
    h = Harness(leader=False)
    h.wiring.cronjob_event("ADDED", cronjob_body())
    await h.reconcile()
    assert h.client.applied == [] and h.client.events == []


async def test_same_named_monitor_not_ours_is_left_alone_with_a_name_conflict() -> None:
    h = Harness()
    h.monitor(monitor_body(owner=None, labels={}))
    h.wiring.cronjob_event("ADDED", cronjob_body())
    await h.reconcile()
    await h.reconcile()
    assert h.client.applied == [] and h.client.deleted == []
    assert [e["reason"] for e in h.client.events] == ["NameConflict"]


async def test_our_monitor_listed_before_the_owner_watch_caught_up_is_no_name_conflict() -> None:
    """At start-up the operator's own list of monitors comes in before kopf's watch of them
    (which feeds the owner map): the monitor's own ownerReferences say it is ours, so no
    NameConflict Warning (it went on every auto-wired CronJob at every start)."""
    h = Harness()
    body = monitor_body()
    h.client.current = body
    h.table.upsert(body)  # in the table; wiring.monitor_event not called yet
    h.wiring.cronjob_event("ADDED", cronjob_body())
    await h.reconcile()
    assert h.client.events == []
    assert len(h.client.applied) == 1  # a new leader applies once (DESIGN 9.11)
    h.wiring.monitor_event(None, body)
    await h.reconcile()
    assert h.client.events == [] and len(h.client.applied) == 1


async def test_removing_the_annotation_deletes_our_monitor_only() -> None:
    h = Harness()
    h.monitor(monitor_body())
    h.wiring.cronjob_event("MODIFIED", cronjob_body(annotations={"heartbeat.dev/monitor": "false"}))
    await h.reconcile()
    ((path, options),) = h.client.deleted
    assert path.endswith("/heartbeatmonitors/backup")
    assert options["preconditions"] == {"uid": "m-uid"}

    h = Harness()
    h.monitor(monitor_body(owner=None, labels={}))
    h.wiring.cronjob_event("MODIFIED", cronjob_body(annotations={}))
    await h.reconcile()
    assert h.client.deleted == []

    # A monitor a CronJob deleted with --cascade=orphan left behind (our label, no owner):
    # adopted by a monitored CronJob of its name, never deleted by an unmonitored one.
    h = Harness()
    h.monitor(monitor_body(owner=None))
    h.wiring.cronjob_event("MODIFIED", cronjob_body(annotations={}))
    await h.reconcile()
    assert h.client.deleted == []
    h.wiring.cronjob_event("MODIFIED", cronjob_body())
    await h.reconcile()
    assert [e["reason"] for e in h.client.events] == [] and len(h.client.applied) == 1

    # While the CronJob is being deleted (--cascade=orphan: the collector takes the owner
    # reference off its monitor), nothing is applied: putting the reference back made the
    # collector delete the monitor, token and history with it.
    h = Harness()
    h.monitor(monitor_body(owner=None))
    deleting = cronjob_body()
    deleting["metadata"]["deletionTimestamp"] = "2026-11-25T05:00:00Z"
    h.wiring.cronjob_event("MODIFIED", deleting)
    await h.reconcile()
    assert h.client.applied == [] and h.client.deleted == [] and h.client.events == []


async def test_a_monitor_annotation_typo_is_not_monitored_and_says_so() -> None:
    """DESIGN 9.11: any value but "true" means not monitored. A "True" or "yes" is someone
    who meant "true": the CronJob gets one Warning saying it is NOT monitored and how to
    say what was meant; no monitor is made. "false" (an opt-out) warns nothing."""
    for typo in ("True", "yes", "ture", " true", ""):
        h = Harness()
        h.wiring.cronjob_event("ADDED", cronjob_body({"heartbeat.dev/monitor": typo}))
        await h.reconcile()
        await h.reconcile()
        assert h.client.applied == [], typo
        ((event,),) = [h.client.events]
        assert (event["type"], event["reason"]) == ("Warning", "InvalidAnnotation"), typo
        assert repr(typo) in event["message"] and "NOT monitored" in event["message"]
        assert '"true"' in event["message"] and '"false"' in event["message"]
    h = Harness()
    h.wiring.cronjob_event(
        "ADDED", cronjob_body({"heartbeat.dev/monitor": "false", "heartbeat.dev/grace": "1h"})
    )
    await h.reconcile()
    assert h.client.applied == [] and h.client.events == []


async def test_a_misspelt_annotation_key_is_named_with_the_one_meant() -> None:
    """``heartbeat.dev/monitored: "true"`` monitors nothing: the CronJob is told which key
    was meant and that it is NOT monitored. On a monitored CronJob a misspelt optional
    key (``grace-period``) is named too, and the monitor is made as usual."""
    h = Harness()
    h.wiring.cronjob_event(
        "ADDED",
        cronjob_body({"heartbeat.dev/monitored": "true", "heartbeat.dev/grace": "10m"}),
    )
    await h.reconcile()
    assert h.client.applied == []
    messages = sorted(e["message"] for e in h.client.events)
    assert [e["reason"] for e in h.client.events] == ["InvalidAnnotation"] * 2
    assert "did you mean heartbeat.dev/monitor?" in messages[0]
    assert "NOT monitored" in messages[0]
    assert messages[1].startswith("heartbeat.dev/grace set, but this CronJob is NOT monitored")

    h = Harness()
    h.wiring.cronjob_event(
        "ADDED",
        cronjob_body({"heartbeat.dev/monitor": "true", "heartbeat.dev/grace-period": "10m"}),
    )
    await h.reconcile()
    assert len(h.client.applied) == 1
    ((event,),) = [h.client.events]
    assert "did you mean heartbeat.dev/grace?" in event["message"]
    assert "NOT monitored" not in event["message"]

    h = Harness()  # the operator's own vocabulary only: other prefixes are not ours
    h.wiring.cronjob_event(
        "ADDED", cronjob_body({"example.com/owner": "team-a", "heartbeat.devx/y": "1"})
    )
    await h.reconcile()
    assert h.client.events == []


async def test_invalid_annotation_warns_once_and_monitor_still_applied() -> None:
    h = Harness()
    h.wiring.cronjob_event(
        "ADDED", cronjob_body({"heartbeat.dev/monitor": "true", "heartbeat.dev/grace": "later"})
    )
    await h.reconcile()
    await h.reconcile()
    assert [e["reason"] for e in h.client.events] == ["InvalidAnnotation"]
    assert "heartbeat.dev/grace" in h.client.events[0]["message"]
    assert len(h.client.applied) == 1


def job_body(
    uid: str,
    *,
    failed: bool = False,
    complete: bool = False,
    created: str = "2026-11-25T04:30:00Z",
    scheduled: str | None = None,
    finished: str = "2026-11-25T04:31:00Z",
    failure: str = "BackoffLimitExceeded",
) -> dict[str, Any]:
    """A Job of the CronJob; ``startTime`` is when the Job controller began, not a run."""
    status: dict[str, Any] = {"startTime": created}
    if complete:
        status["completionTime"] = finished
        status["conditions"] = [{"type": "Complete", "status": "True"}]
    if failed:
        status["conditions"] = [
            {
                "type": "Failed",
                "status": "True",
                "reason": failure,
                "message": "Job has reached the specified backoff limit",
                "lastTransitionTime": finished,
            }
        ]
    meta: dict[str, Any] = {
        "name": f"backup-{uid}",
        "namespace": "ops",
        "uid": uid,
        "creationTimestamp": created,
        "ownerReferences": [
            {"kind": "CronJob", "name": "backup", "uid": CJ_UID, "controller": True}
        ],
    }
    if scheduled is not None:
        meta["annotations"] = {"batch.kubernetes.io/cronjob-scheduled-timestamp": scheduled}
    return {"metadata": meta, "status": status}


def pod_body(job_uid: str, state: dict[str, Any], *, phase: str = "Running") -> dict[str, Any]:
    """A Pod of the Job with ``job_uid``: one container ``main`` in ``state``."""
    return {
        "metadata": {
            "name": f"backup-{job_uid}-x7k",
            "namespace": "ops",
            "creationTimestamp": "2026-11-25T04:30:01Z",
            "labels": {"batch.kubernetes.io/controller-uid": job_uid},
        },
        "spec": {"nodeName": "n1", "containers": [{"name": "main", "image": IMAGE}]},
        "status": {
            "phase": phase,
            "containerStatuses": [{"name": "main", "image": IMAGE, "state": state}],
        },
    }


IMAGE = "registry.invalid/backup:1"
PULL_BACKOFF = {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}


def ran(started: str, finished: str | None = None, code: int = 0, reason: str = "") -> Any:
    if finished is None:
        return {"running": {"startedAt": started}}
    terminated: dict[str, Any] = {"exitCode": code, "startedAt": started, "finishedAt": finished}
    if reason:
        terminated["reason"] = reason
    return {"terminated": terminated}


ACTIVE = {
    "activeSince": "2026-11-25T04:00:00Z",
    "referenceTime": "2026-11-25T04:00:00Z",
    "tokenHash": "sha256:x",
}


def pings(change: Change) -> list[tuple[str, str | None]]:
    return [(p.kind, p.run_id) for p in change.inputs if isinstance(p, Ping)]


async def test_job_pings_are_submitted_once_with_the_exit_code_read_once() -> None:
    h = Harness()
    h.wiring.cronjob_event("ADDED", cronjob_body())
    h.monitor(monitor_body(status=ACTIVE))
    h.client.pods = [
        pod_body("j1", ran("2026-11-25T04:30:05Z", "2026-11-25T04:30:59Z", 3), phase="Failed"),
        pod_body("j2", ran("2026-11-25T04:30:10Z", "2026-11-25T04:30:50Z"), phase="Succeeded"),
    ]
    h.wiring.job_event("ADDED", job_body("j1", failed=True))
    h.wiring.job_event("ADDED", job_body("j2", complete=True))
    await h.reconcile()
    ((key, change),) = h.submitted
    assert key == ("ops", "backup")
    assert sorted(pings(change)) == [
        ("fail", "j1"),
        ("start", "j1"),
        ("start", "j2"),
        ("success", "j2"),
    ]
    starts = {p.run_id: p.time for p in change.inputs if isinstance(p, Ping) and p.kind == "start"}
    assert starts == {  # from each Job's Pod, never the Jobs' creation (04:30:00)
        "j1": datetime(2026, 11, 25, 4, 30, 5, tzinfo=UTC),
        "j2": datetime(2026, 11, 25, 4, 30, 10, tzinfo=UTC),
    }
    fail = next(p for p in change.inputs if isinstance(p, Ping) and p.kind == "fail")
    assert fail.exit_code == 3
    assert fail.body == (
        "BackoffLimitExceeded: Job has reached the specified backoff limit; "
        "container main Error (exit code 3)"
    )
    assert h.client.pod_lists == 2  # one list per Job
    # the write lands (reportedJobs lists j1's start only): just the rest, no other Pod list
    h.monitor(
        monitor_body(
            status={
                **ACTIVE,
                "reportedJobs": [
                    {"uid": "j1", "phase": "start"},
                    {"uid": "j2", "phase": "success"},
                ],
            },
            rv="200",
        )
    )
    await h.reconcile()
    assert pings(h.submitted[-1][1]) == [("fail", "j1")]
    assert h.client.pod_lists == 2
    # everything reported: no more writes, no more reads
    done = [{"uid": "j1", "phase": "fail"}, {"uid": "j2", "phase": "success"}]
    h.monitor(monitor_body(status={**ACTIVE, "reportedJobs": done}, rv="300"))
    count = len(h.submitted)
    await h.reconcile()
    assert len(h.submitted) == count
    assert h.client.pod_lists == 2


async def test_a_started_running_job_is_read_once_until_it_finishes() -> None:
    h = Harness()
    h.wiring.cronjob_event("ADDED", cronjob_body())
    h.monitor(monitor_body(status=ACTIVE))
    h.client.pods = [pod_body("j1", ran("2026-11-25T04:30:05Z"))]
    h.wiring.job_event("ADDED", job_body("j1"))
    await h.reconcile()
    assert pings(h.submitted[-1][1]) == [("start", "j1")]
    started = {**ACTIVE, "reportedJobs": [{"uid": "j1", "phase": "start"}]}
    h.monitor(monitor_body(status=started, rv="200"))
    for _ in range(3):  # Job status updates (ready, active) while it runs
        h.wiring.job_event("MODIFIED", job_body("j1"))
        await h.reconcile()
    assert h.client.pod_lists == 1
    assert len(h.submitted) == 1
    # it fails: its Pods are read again, for why
    h.client.pods = [
        pod_body("j1", ran("2026-11-25T04:30:05Z", "2026-11-25T05:10:00Z", 137, "OOMKilled"))
    ]
    h.now = datetime(2026, 11, 25, 5, 10, 1, tzinfo=UTC)
    h.wiring.job_event("MODIFIED", job_body("j1", failed=True, finished="2026-11-25T05:10:01Z"))
    await h.reconcile()
    assert h.client.pod_lists == 2
    (fail,) = [p for p in h.submitted[-1][1].inputs if isinstance(p, Ping)]
    assert (fail.kind, fail.exit_code) == ("fail", 137)
    assert fail.body is not None and "OOMKilled" in fail.body


async def test_a_failure_in_the_second_of_the_last_read_is_read_again() -> None:
    """API times have whole seconds: a Job that fails at 05:00:00.9 says "05:00:00", before
    a read at 05:00:00.5 that still saw it running. That read cannot tell why it failed."""
    h = Harness()
    h.wiring.cronjob_event("ADDED", cronjob_body())
    h.monitor(monitor_body(status={**ACTIVE, "reportedJobs": [{"uid": "j1", "phase": "start"}]}))
    h.client.pods = [pod_body("j1", ran("2026-11-25T04:30:05Z"))]
    h.now = datetime(2026, 11, 25, 5, 0, 0, 500000, tzinfo=UTC)
    h.wiring.job_event("ADDED", job_body("j1"))
    await h.reconcile()
    assert h.client.pod_lists == 1
    h.client.pods = [
        pod_body("j1", ran("2026-11-25T04:30:05Z", "2026-11-25T05:00:00Z", 137, "OOMKilled"))
    ]
    h.now = datetime(2026, 11, 25, 5, 0, 1, tzinfo=UTC)
    h.wiring.job_event("MODIFIED", job_body("j1", failed=True, finished="2026-11-25T05:00:00Z"))
    await h.reconcile()
    (fail,) = [p for p in h.submitted[-1][1].inputs if isinstance(p, Ping)]
    assert fail.exit_code == 137
    assert fail.body is not None and "container main OOMKilled (exit code 137)" in fail.body


async def assert_quiet_once_written(h: Harness, uid: str, phase: str) -> None:
    """Once the status lists the Job's ping as written, reconciles submit nothing more."""
    written = {**ACTIVE, "reportedJobs": [{"uid": uid, "phase": phase}]}
    h.monitor(monitor_body(status=written, rv="200"))
    await h.reconcile()
    await h.reconcile()
    assert len(h.submitted) == 1


async def test_a_job_deleted_before_it_finished_fails_at_its_deletion() -> None:
    h = Harness()
    h.wiring.cronjob_event("ADDED", cronjob_body())
    started = {**ACTIVE, "reportedJobs": [{"uid": "j1", "phase": "start"}]}
    h.monitor(monitor_body(status=started))
    h.client.pods = [pod_body("j1", ran("2026-11-25T04:30:05Z"))]
    h.wiring.job_event("ADDED", job_body("j1"))
    h.now = datetime(2026, 11, 25, 5, 3, tzinfo=UTC)
    h.wiring.job_event("DELETED", job_body("j1"))
    await h.reconcile()
    ((_, change),) = h.submitted
    (fail,) = change.inputs
    assert isinstance(fail, Ping)
    assert (fail.kind, fail.time, fail.run_id) == ("fail", h.now, "j1")
    assert fail.body == "Job backup-j1 was deleted before it finished"
    await assert_quiet_once_written(h, "j1", "fail")


async def test_a_job_deleted_right_after_it_finished_still_reports_its_finish() -> None:
    """successfulJobsHistoryLimit: 0 or ttlSecondsAfterFinished: 0 delete a Job the moment
    it finishes, before the reconcile that reports its finish: the Job as deleted still
    owes its success (it was lost, leaving the run open to time out), and a deletion
    whose event is the first to show the finish is no failure (it was one)."""
    for seen_finished in (True, False):
        h = Harness()
        h.wiring.cronjob_event("ADDED", cronjob_body())
        started = {**ACTIVE, "reportedJobs": [{"uid": "j2", "phase": "start"}]}
        h.monitor(monitor_body(status=started))
        h.wiring.job_event("ADDED", job_body("j2", complete=seen_finished))
        h.wiring.job_event("DELETED", job_body("j2", complete=True))
        await h.reconcile()
        pings = [p for c in h.submitted for p in c[1].inputs if isinstance(p, Ping)]
        assert [(p.kind, p.run_id) for p in pings] == [("success", "j2")], seen_finished
        await assert_quiet_once_written(h, "j2", "success")


async def test_deleted_jobs_of_a_cronjob_nobody_monitors_are_not_kept() -> None:
    """Every deleted Job is remembered until its finish is reported; for a CronJob that is
    not monitored nothing is reported, so nothing may stay (a cluster of thousands of
    unmonitored CronJobs with history limits deletes Jobs all day)."""
    h = Harness()
    h.wiring.cronjob_event("ADDED", cronjob_body(annotations={}))
    h.wiring.job_event("ADDED", job_body("j3", complete=True))
    h.wiring.job_event("DELETED", job_body("j3", complete=True))
    assert h.wiring._deleted
    await h.reconcile()
    assert h.submitted == [] and not h.wiring._deleted


async def test_no_job_pings_before_the_monitors_first_status_write() -> None:
    h = Harness()
    h.wiring.cronjob_event("ADDED", cronjob_body())
    h.wiring.job_event("ADDED", job_body("j1"))
    await h.reconcile()
    assert h.submitted == []


async def test_suspended_cronjob_submits_a_pause() -> None:
    h = Harness()
    h.wiring.cronjob_event("ADDED", cronjob_body(suspend=True))
    h.monitor(monitor_body(status=ACTIVE))
    await h.reconcile()
    ((_, change),) = h.submitted
    assert change.inputs == (Pause(NOW, PAUSE_CAUSE_CRONJOB),)


async def test_transitions_mirrored_only_for_our_monitors() -> None:
    h = Harness()
    h.monitor(monitor_body())
    e = h.table.get(("ops", "backup"))
    assert e is not None
    h.wiring.mirror_transitions(e, [T("Failed")])
    await h.wiring.drain(1.0)
    assert [ev["involvedObject"]["kind"] for ev in h.client.events] == ["CronJob"]

    h = Harness()
    h.monitor(monitor_body(owner=None))
    e = h.table.get(("ops", "backup"))
    assert e is not None
    h.wiring.mirror_transitions(e, [T("Failed")])
    await h.wiring.drain(1.0)
    assert h.client.events == []


async def test_run_loop_reconciles_marked_keys_while_leading() -> None:
    h = Harness()
    stop = asyncio.Event()
    task = asyncio.create_task(h.wiring.run(stop))
    h.wiring.cronjob_event("ADDED", cronjob_body())

    async def applied() -> bool:
        return bool(h.client.applied)

    await async_wait_for(applied, timeout=2.0, interval=0.01, what="the monitor applied")
    stop.set()
    await asyncio.wait_for(task, 1.0)
    await h.wiring.drain(1.0)
    assert len(h.client.applied) == 1


async def test_a_new_leader_reconciles_at_most_max_reconciles_cronjobs_at_once() -> None:
    """A new leader marks every CronJob at once: 100 of them are never 100 applies in
    flight (2,000 were, in the scale benchmark, and timed out), and all get done."""
    h = Harness()
    gate = asyncio.Event()
    in_flight: list[str] = []
    most = 0
    applied: list[str] = []

    async def patch(path: str, body: dict[str, Any], **kw: Any) -> dict[str, Any]:
        nonlocal most
        in_flight.append(path)
        most = max(most, len(in_flight))
        await gate.wait()
        in_flight.remove(path)
        applied.append(path)
        return {}

    h.client.patch = patch  # type: ignore[method-assign]
    for i in range(100):
        body = cronjob_body(uid=f"cj-{i}")
        body["metadata"]["name"] = f"backup-{i}"
        h.wiring.cronjob_event("ADDED", body)
    stop = asyncio.Event()
    task = asyncio.create_task(h.wiring.run(stop))

    async def full() -> bool:
        return len(in_flight) == MAX_RECONCILES

    await async_wait_for(full, timeout=2.0, interval=0.01, what="the first applies in flight")
    gate.set()  # `most` keeps the highest count seen until every apply is done

    async def all_applied() -> bool:
        return len(applied) == 100

    await async_wait_for(all_applied, timeout=2.0, interval=0.01, what="every CronJob applied")
    assert most == MAX_RECONCILES
    assert len(set(applied)) == 100
    stop.set()
    await asyncio.wait_for(task, 1.0)
    await h.wiring.drain(1.0)


async def test_nothing_is_applied_before_the_initial_list_of_monitors_is_in() -> None:
    """Until the monitor table has its initial list every monitor looks missing: applying
    them blind would be one write per CronJob on every start."""
    h = Harness(synced=False)
    waiting = asyncio.Event()
    wait_synced = h.table.wait_synced

    async def waiting_for_the_list() -> None:
        waiting.set()
        await wait_synced()

    h.table.wait_synced = waiting_for_the_list  # type: ignore[method-assign]
    stop = asyncio.Event()
    h.wiring.cronjob_event("ADDED", cronjob_body())
    task = asyncio.create_task(h.wiring.run(stop))

    async def is_waiting() -> bool:
        return waiting.is_set()

    await async_wait_for(is_waiting, timeout=2.0, interval=0.01, what="waiting for the list")
    assert h.client.applied == []
    h.table.synced = True

    async def applied() -> bool:
        return bool(h.client.applied)

    await async_wait_for(applied, timeout=2.0, interval=0.01, what="the monitor applied")
    stop.set()
    await asyncio.wait_for(task, 1.0)
    await h.wiring.drain(1.0)
    assert len(h.client.applied) == 1


def test_deleted_cronjob_is_forgotten_unless_recreated() -> None:
    h = Harness()
    h.wiring.cronjob_event("ADDED", cronjob_body())
    h.wiring.cronjob_event("DELETED", cronjob_body())
    assert h.wiring.cronjobs == {}
    h.wiring.cronjob_event("ADDED", cronjob_body(uid="new"))
    h.wiring.cronjob_event("DELETED", cronjob_body())  # a late event of the old one
    assert list(h.wiring.cronjobs) == [("ops", "backup")]


# --- before judging a slot (DESIGN 10.1, 10.8.3, 10.8.7) ---------------------------------

HOURLY = {"schedule": "0 * * * *", "grace": "5m"}
DUE = datetime(2026, 11, 25, 5, 0, tzinfo=UTC)  # the slot after referenceTime 04:00
ALERT = datetime(2026, 11, 25, 5, 5, tzinfo=UTC)


def hourly(
    status: dict[str, Any], spec: dict[str, Any] | None = None, **cronjob_kw: Any
) -> Harness:
    """An hourly auto-wired CronJob whose monitor last judged the 04:00 slot."""
    h = Harness()
    h.wiring.cronjob_event(
        "ADDED", cronjob_body(schedule="0 * * * *", time_zone=None, **cronjob_kw)
    )
    h.monitor(monitor_body(spec=spec or HOURLY, status={**ACTIVE, "state": "Healthy", **status}))
    return h


async def judge(h: Harness, until: datetime) -> Judging:
    entry = h.table.get(("ops", "backup"))
    assert entry is not None
    spec = parse_spec(entry.spec)
    record = Record.from_status(entry.status, active_since=NOW)
    return await h.wiring.before_judging(entry, spec, record, until)


PENDING = {
    "reportedJobs": [{"uid": "j5", "phase": "pending"}],
    "pendingStarts": [
        {
            "jobUid": "j5",
            "jobName": "backup-j5",
            "creationTime": "2026-11-25T05:00:01Z",
            "dueTime": "2026-11-25T05:00:00Z",
            "cause": "Job backup-j5 created 05:00:01 UTC; no Pod created yet",
        }
    ],
}


def slot_job(**kw: Any) -> dict[str, Any]:
    return job_body("j5", created="2026-11-25T05:00:01Z", scheduled="2026-11-25T05:00:00Z", **kw)


async def test_a_pending_slot_at_its_alert_time_gets_the_clusters_cause_now() -> None:
    h = hourly(PENDING)
    h.wiring.job_event("ADDED", slot_job())
    h.client.pods = [pod_body("j5", PULL_BACKOFF, phase="Pending")]
    h.now = ALERT
    judging = await judge(h, ALERT)
    assert judging.hold_until is None
    (refresh,) = judging.inputs
    assert isinstance(refresh, JobPending)
    assert refresh.time == ALERT  # folded right before the deadline it decides
    assert (refresh.uid, refresh.name, refresh.scheduled_time) == ("j5", "backup-j5", DUE)
    assert refresh.created == datetime(2026, 11, 25, 5, 0, 1, tzinfo=UTC)
    assert refresh.cause.startswith("Job backup-j5 created 05:00:01 UTC; Pod backup-j5-x7k")
    assert "ImagePullBackOff: image registry.invalid/backup:1" in refresh.cause
    assert h.client.pod_lists == 1  # read fresh, right before judging


async def test_a_pod_that_started_before_alert_time_gives_its_start_instead() -> None:
    h = hourly(PENDING)
    h.wiring.job_event("ADDED", slot_job())
    h.client.pods = [pod_body("j5", PULL_BACKOFF, phase="Pending")]
    await h.reconcile()  # the last read saw it waiting
    h.client.pods = [pod_body("j5", ran("2026-11-25T05:04:30Z"))]
    h.now = ALERT
    judging = await judge(h, ALERT)
    assert not any(isinstance(i, JobPending) for i in judging.inputs)
    (start,) = judging.inputs
    assert isinstance(start, Ping)
    assert (start.kind, start.run_id) == ("start", "j5")
    assert start.time == datetime(2026, 11, 25, 5, 4, 30, tzinfo=UTC)


async def test_late_is_held_while_the_cronjob_controller_creates_the_slots_job() -> None:
    h = hourly({})
    until = DUE + timedelta(milliseconds=10)
    assert await judge(h, until) == Judging(hold_until=DUE + JOB_CREATION_ALLOWANCE)
    # after the allowance: judged (Late), nothing to add before the alertTime
    assert await judge(h, DUE + JOB_CREATION_ALLOWANCE) == Judging()
    # the Job is there: no hold, its pending start is folded first
    h.wiring.job_event("ADDED", slot_job())
    h.client.pods = [pod_body("j5", PULL_BACKOFF, phase="Pending")]
    judging = await judge(h, until)
    assert judging.hold_until is None
    (pending,) = judging.inputs
    assert isinstance(pending, JobPending) and pending.time == DUE


async def test_a_run_deadline_before_the_slot_is_due_is_never_held() -> None:
    """An auto-wired run's maxRuntime (activeDeadlineSeconds + 60 s) ends between two
    slots: its RunTimeout is judged on time, not when the next slot's Job is due."""
    h = hourly(
        {
            "reportedJobs": [{"uid": "j4", "phase": "start"}],
            "openRuns": [
                {
                    "runId": "j4",
                    "startTime": "2026-11-25T04:00:05Z",
                    "dueTime": "2026-11-25T04:00:00Z",
                }
            ],
        },
        spec={**HOURLY, "maxRuntime": "660s"},  # activeDeadlineSeconds 600
    )
    timeout = datetime(2026, 11, 25, 4, 11, 5, tzinfo=UTC)
    assert (await judge(h, timeout)).hold_until is None


async def test_a_slot_forbidden_by_an_active_job_says_which() -> None:
    h = hourly({"reportedJobs": [{"uid": "j4", "phase": "start"}]}, concurrency_policy="Forbid")
    h.wiring.job_event(
        "ADDED", job_body("j4", created="2026-11-25T04:00:01Z", scheduled="2026-11-25T04:00:00Z")
    )
    h.client.pods = [pod_body("j4", ran("2026-11-25T04:00:05Z"))]
    h.now = ALERT
    judging = await judge(h, ALERT)
    assert judging.inputs == (
        SlotSkipped(
            ALERT, DUE, "concurrencyPolicy Forbid: Job backup-j4 active since 04:00:01 UTC"
        ),
    )


async def test_nothing_is_asked_of_a_monitor_not_ours_or_paused() -> None:
    h = hourly({}, concurrency_policy="Forbid")
    h.wiring.owners.clear()
    assert await judge(h, ALERT) == Judging()
    h = hourly({"pausedSince": "2026-11-25T04:30:00Z", "pauseCause": PAUSE_CAUSE_CRONJOB})
    assert await judge(h, ALERT) == Judging()


def test_skipped_slot_cause() -> None:
    def parsed(body: dict[str, Any]) -> JobRun:
        job = JobRun.from_body(body)
        assert job is not None
        return job

    forbid = cronjob(concurrency_policy="Forbid")
    active = parsed(job_body("j4", created="2026-11-25T04:00:01Z"))
    assert skipped_slot_cause(forbid, [active], DUE, ALERT) == (
        "concurrencyPolicy Forbid: Job backup-j4 active since 04:00:01 UTC"
    )
    # a Job that finished before the slot was due blocked nothing
    done = parsed(
        job_body(
            "j4", created="2026-11-25T04:00:01Z", complete=True, finished="2026-11-25T04:20:00Z"
        )
    )
    assert skipped_slot_cause(forbid, [done], DUE, ALERT) == (
        "the CronJob controller created no Job for it"
    )
    # ... nor one that finished after it but was created after it (not blocking it)
    later = parsed(job_body("j6", created="2026-11-25T05:01:00Z"))
    assert "Forbid" not in skipped_slot_cause(forbid, [later], DUE, ALERT)
    # Allow: an active Job is no reason
    assert "Forbid" not in skipped_slot_cause(cronjob(), [active], DUE, ALERT)
    deadline = cronjob(starting_deadline=60)
    assert skipped_slot_cause(deadline, [], DUE, ALERT) == (
        "startingDeadlineSeconds (60s) passed before the CronJob controller created a Job"
    )
    # the deadline has not passed yet: no claim that it did
    soon = DUE + timedelta(seconds=30)
    assert "startingDeadlineSeconds" not in skipped_slot_cause(deadline, [], DUE, soon)
    # a Job was made for the slot: not skipped
    made = parsed(job_body("j5", created="2026-11-25T05:00:01Z", scheduled="2026-11-25T05:00:00Z"))
    assert skipped_slot_cause(forbid, [active, made], DUE, ALERT) == ""


async def test_a_jobs_failure_message_reaches_the_monitor_without_tokens() -> None:
    # Issue 18 item 5: the Job's words are stored in status and quoted in Events.
    own = "Own-token_" + "q" * 33
    other = "Other-token_" + "r" * 31
    h = Harness()
    h.wiring.cronjob_event("ADDED", cronjob_body())
    h.monitor(monitor_body(status={**ACTIVE, "tokenHash": token_hash(own)}))
    job = job_body("j1", failed=True)
    job["status"]["conditions"][0]["message"] = (
        f"TOKEN={own} curl -v https://hb.example.com/hb/{other}/fail failed"
    )
    h.wiring.job_event("ADDED", job)
    await h.reconcile()
    ((_, change),) = h.submitted
    fail = next(p for p in change.inputs if isinstance(p, Ping) and p.kind == "fail")
    assert fail.body == (
        "BackoffLimitExceeded: TOKEN=<redacted> curl -v https://hb.example.com/hb/<redacted>/fail"
        " failed"
    )


def fail_bodies(h: Harness) -> list[str]:
    return [
        p.body or ""
        for _, change in h.submitted
        for p in change.inputs
        if isinstance(p, Ping) and p.kind == "fail"
    ]


async def test_a_job_failed_after_its_pod_never_ran_keeps_the_pods_words() -> None:
    # activeDeadlineSeconds passed while the Pod was in ImagePullBackOff: the Job
    # controller deletes the Pod, then sets Failed. The read before said why; the read
    # after finds no Pod, and the failure said "no Pod created yet" (DESIGN 10.1).
    h = hourly(PENDING)
    h.wiring.job_event("ADDED", slot_job())
    h.client.pods = [pod_body("j5", PULL_BACKOFF, phase="Pending")]
    await h.reconcile()
    h.client.pods = []
    h.wiring.job_event(
        "MODIFIED",
        slot_job(failed=True, failure="DeadlineExceeded", finished="2026-11-25T05:03:00Z"),
    )
    await h.reconcile()
    (body,) = fail_bodies(h)
    assert "ImagePullBackOff: image registry.invalid/backup:1" in body
    assert "no Pod created yet" not in body


async def test_a_job_refused_by_a_quota_until_it_failed_names_the_refusal() -> None:
    h = hourly(PENDING)
    h.client.job_events = [
        {
            "involvedObject": {"uid": "j5"},
            "reason": "FailedCreate",
            "message": 'pods "backup-j5-x7k" is forbidden: exceeded quota: compute',
            "lastTimestamp": "2026-11-25T05:00:05Z",
            "count": 3,
        }
    ]
    h.wiring.job_event(
        "ADDED", slot_job(failed=True, failure="DeadlineExceeded", finished="2026-11-25T05:03:00Z")
    )
    await h.reconcile()
    (body,) = fail_bodies(h)
    assert "exceeded quota: compute" in body
