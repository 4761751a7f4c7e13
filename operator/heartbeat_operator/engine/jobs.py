"""The Jobs of auto-wired CronJobs, and the pings the operator sends on their behalf.

DESIGN 4, 9.10, 9.11 and 10.1 (fine print 10.8.2, 10.8.3). A Job owned
(``controller: true``) by a CronJob yields:

- while none of its Pods has run: ``JobPending`` once (the slot it was made for is not
  Late, and fails ``NotStarted`` at its ``alertTime`` unless a start comes first);
- ``start`` at the moment its Pod first ran (``JobPods.started_at``, from Pod status:
  never the Job's creation), run id = the Job's UID, ``scheduled_time`` from the
  ``batch.kubernetes.io/cronjob-scheduled-timestamp`` annotation when present; with no
  Pod left, the Job's ``status.startTime``;
- ``success`` (exit code 0) at ``status.completionTime`` once the ``Complete`` condition
  is True;
- ``fail`` at the ``Failed`` condition's ``lastTransitionTime``, with the body
  ``<reason>: <message>`` plus what the Pods say (OOMKilled, Evicted, ...) and the exit
  code of the failed container when its Pod still exists (none found:
  ``exit_code_unknown``); a Job that failed before any Pod ran sends no start and a
  ``fail`` with ``not_started`` (reason ``NotStarted``).

Each ping carries ``job=(uid, phase)``: the status write that records it lists the Job in
``status.reportedJobs``, and ``job_pings`` leaves out what that list already holds, so
each Job yields each ping exactly once across restarts and leader changes (the domain
skips a listed ping too, should two writers race). A Job first seen already finished
yields start then finish, in one write.

Everything here but ``list_job_pods`` is pure: Job and Pod bodies in, ``JobRun``,
``JobPods`` and input values out. The operator only reads Jobs and Pods, never writes
them (DESIGN 9.12), and holds no Pod: the leader lists one Job's Pods when it needs them
(``AutoWiring``) and keeps only the ``JobPods`` summary.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from heartbeat_operator.domain.inputs import Input, JobPending, Ping
from heartbeat_operator.domain.machine import job_predates
from heartbeat_operator.domain.timefmt import TimeFormatError, format_clock, parse_time
from heartbeat_operator.domain.vocabulary import PingKind
from heartbeat_operator.engine import causes, podreads
from heartbeat_operator.engine.api import ApiError, KubeApi

logger = logging.getLogger(__name__)

CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
SCHEDULED_TIMESTAMP_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"

FINISHED_PHASES = frozenset({"success", "fail", "ignored"})
"""``reportedJobs`` phases after which a Job yields nothing more (``ignored``: the domain
marked a Job that started before ``activeSince``)."""
WAITING_PHASES = frozenset({"pending", "notstarted"})
"""Phases of a Job already known not to have started (``notstarted``: its slot failed)."""


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_time(value)
    except TimeFormatError:
        return None


def controller_owner(meta: Mapping[str, Any], kind: str) -> tuple[str, str] | None:
    """``(name, uid)`` of the object's controller owner when it is of ``kind``."""
    for ref in meta.get("ownerReferences") or ():
        if isinstance(ref, Mapping) and ref.get("controller") is True and ref.get("kind") == kind:
            name, uid = ref.get("name"), ref.get("uid")
            if isinstance(name, str) and isinstance(uid, str) and name and uid:
                return name, uid
    return None


@dataclasses.dataclass(frozen=True)
class Failure:
    """The Job's ``Failed`` condition."""

    time: datetime
    reason: str
    message: str

    @property
    def body(self) -> str:
        """The fail ping's body (DESIGN 9.11): ``<reason>: <message>``."""
        return f"{self.reason}: {self.message}" if self.message else self.reason


@dataclasses.dataclass(frozen=True)
class JobRun:
    """What the operator needs of one Job of a CronJob."""

    namespace: str
    name: str
    uid: str
    cronjob: str
    """The owning CronJob's name (the monitor has the same name)."""
    cronjob_uid: str
    created: datetime | None
    start_time: datetime | None
    scheduled_time: datetime | None
    completion_time: datetime | None
    """``status.completionTime``, only once the ``Complete`` condition is True."""
    failure: Failure | None
    suspended: bool = False
    """``spec.suspend``: held by a queue (Kueue and the like), a ``NotStarted`` cause."""
    ready: int = 0
    """``status.ready``: Pods running and ready (the start signal without Pod reads)."""

    @property
    def key(self) -> tuple[str, str]:
        """The monitor's (and CronJob's) key."""
        return (self.namespace, self.cronjob)

    @property
    def finished(self) -> bool:
        return self.completion_time is not None or self.failure is not None

    @property
    def finish_time(self) -> datetime | None:
        if self.completion_time is not None:
            return self.completion_time
        return self.failure.time if self.failure is not None else None

    @property
    def sort_time(self) -> datetime:
        return self.start_time or self.created or _EPOCH

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> JobRun | None:
        """Parse a Job; None unless a CronJob controls it."""
        meta = body.get("metadata") or {}
        owner = controller_owner(meta, "CronJob")
        if owner is None:
            return None
        status = body.get("status") or {}
        annotations = meta.get("annotations") or {}
        conditions = {
            c.get("type"): c
            for c in status.get("conditions") or ()
            if isinstance(c, Mapping) and c.get("status") == "True"
        }
        completion = None
        if "Complete" in conditions:
            completion = _time(status.get("completionTime")) or _time(
                conditions["Complete"].get("lastTransitionTime")
            )
        failure = None
        failed = conditions.get("Failed")
        if failed is not None and completion is None:
            when = _time(failed.get("lastTransitionTime")) or _time(failed.get("lastProbeTime"))
            if when is not None:
                failure = Failure(
                    when, str(failed.get("reason") or "Failed"), str(failed.get("message") or "")
                )
        return cls(
            namespace=str(meta.get("namespace") or ""),
            name=str(meta.get("name") or ""),
            uid=str(meta.get("uid") or ""),
            cronjob=owner[0],
            cronjob_uid=owner[1],
            created=_time(meta.get("creationTimestamp")),
            start_time=_time(status.get("startTime")),
            scheduled_time=_time(annotations.get(SCHEDULED_TIMESTAMP_ANNOTATION)),
            completion_time=completion,
            failure=failure,
            suspended=(body.get("spec") or {}).get("suspend") is True,
            ready=_count(status.get("ready")),
        )


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclasses.dataclass(frozen=True)
class JobPods:
    """What one read of a Job's Pods (and, with none, its Events) said, at ``read_at``.

    ``started_at`` is DESIGN 10.8.2's start (None: no Pod has run); ``waiting`` the
    cluster's words for why not ("Pod x Pending for 3m: ImagePullBackOff: ..."),
    ``failure`` what the Pods say of a failure ("container main OOMKilled (exit code
    137)"), ``exit_code`` the failed container's code, ``found`` whether any Pod was
    listed, ``log_tail`` the failing container's last output (``--capture-logs``),
    ``job_finished`` whether the Job had finished when its Pods were read (then this read
    tells all: a Job's finish is final).
    """

    read_at: datetime
    found: bool
    started_at: datetime | None = None
    waiting: str = ""
    failure: str = ""
    exit_code: int | None = None
    failing_container: tuple[str, str] | None = None
    log_tail: str | None = None
    job_finished: bool = False


def summarize_pods(
    job: JobRun,
    pods: list[dict[str, Any]],
    events: list[dict[str, Any]],
    now: datetime,
) -> JobPods:
    """The ``JobPods`` of one read (pure: the bodies the API returned)."""
    waiting = causes.not_started_message(
        job.name, job.created or now, pods, events, now, job.suspended
    )
    failure = ""
    if job.failure is not None:
        failure = causes.failure_cause(pods, job.failure.reason, job.failure.message)
    return JobPods(
        read_at=now,
        found=bool(pods),
        started_at=causes.job_started_at(pods),
        waiting=waiting,
        failure=failure,
        exit_code=pick_exit_code(pods),
        failing_container=causes.failing_container(pods),
        job_finished=job.finished,
    )


def job_start(job: JobRun, pods: JobPods | None, phases: set[str]) -> datetime | None:
    """DESIGN 10.8.2: when the Job's run began, or None while no Pod of it has run.

    From Pod status when a read found Pods; once its start is reported (``phases`` holds
    ``start``), it ran, whatever its Pods say now (gone at its deadline or by its TTL, or
    a retry's Pod pending); with no Pod left (or Pods not readable), the Job's
    ``status.startTime`` once it finished — unless it failed while known to be waiting
    (its Pods removed by the Job controller at its deadline) — or once a Pod is ready
    (``status.ready``, the signal left when Pods cannot be listed).
    """
    if pods is not None and pods.started_at is not None:
        return pods.started_at
    fallback = job.start_time or job.created
    if "start" in phases:
        return fallback  # reported: only its being not None matters (no second start)
    if pods is not None and pods.found:
        return None
    if job.completion_time is not None:
        return fallback
    if job.failure is not None:
        return None if phases & WAITING_PHASES else fallback
    if pods is None and job.ready > 0:
        return fallback
    return None


def pick_exit_code(pods: Iterable[Mapping[str, Any]]) -> int | None:
    """The non-zero exit code of the container that finished last (DESIGN 9.11): every
    container of every Pod, init containers too but not sidecars, in its current state
    and its last state (a container restarted under ``restartPolicy: OnFailure`` keeps
    its earlier failure there); ``causes.terminations``. Not the runtime's 128 for a
    container it could not start (``causes.never_ran``): nothing ran to exit."""
    best: tuple[datetime, int] | None = None
    for finished, _pod, _container, _init, terminated in causes.terminations(pods):
        if causes.never_ran(terminated):
            continue
        if best is None or finished > best[0]:
            best = (finished, terminated["exitCode"])
    return None if best is None else best[1]


async def list_job_pods(client: KubeApi, namespace: str, uid: str) -> list[dict[str, Any]]:
    """The Job's Pods, listed once by ``batch.kubernetes.io/controller-uid`` (DESIGN 9.11).

    Raises ``ApiError`` (e.g. 403 when the chart's ``pods list`` rule is off).
    """
    answer = await client.get(
        f"/api/v1/namespaces/{namespace}/pods",
        params={"labelSelector": f"{CONTROLLER_UID_LABEL}={uid}"},
        kind="pods",
    )
    items = answer.get("items") or []
    return [item for item in items if isinstance(item, dict)]


async def read_job_pods(
    client: KubeApi, job: JobRun, now: datetime, *, capture_logs: bool = False
) -> JobPods | None:
    """List the Job's Pods once (and its Events when it has none: quota and admission
    refusals are ``FailedCreate`` Events, DESIGN 10.8.3); with ``capture_logs``, a failed
    Job's failing container's last 10,000 bytes of output. None when Pods cannot be read
    (logged; e.g. 403 with the chart's ``pods list`` rule off)."""
    try:
        pods = await list_job_pods(client, job.namespace, job.uid)
    except ApiError as exc:
        logger.warning("could not list the Pods of Job %s/%s: %s", job.namespace, job.name, exc)
        return None
    events: list[dict[str, Any]] = []
    if not pods and job.completion_time is None:  # also once failed: refused by a quota
        try:
            events = await podreads.list_job_events(client, job.namespace, job.uid)
        except ApiError as exc:
            logger.info("could not list the Events of Job %s/%s: %s", job.namespace, job.name, exc)
    summary = summarize_pods(job, pods, events, now)
    if capture_logs and job.failure is not None and summary.failing_container is not None:
        pod, container = summary.failing_container
        tail = await podreads.read_log_tail(client, job.namespace, pod, container)
        if tail:
            summary = dataclasses.replace(summary, log_tail=tail)
    return summary


def reported_phases(status: Mapping[str, Any]) -> dict[str, set[str]]:
    """``status.reportedJobs`` as ``{uid: {phase, ...}}``."""
    out: dict[str, set[str]] = {}
    for item in status.get("reportedJobs") or ():
        if isinstance(item, Mapping):
            uid, phase = item.get("uid"), item.get("phase")
            if isinstance(uid, str) and isinstance(phase, str):
                out.setdefault(uid, set()).add(phase)
    return out


def job_inputs(job: JobRun, status: Mapping[str, Any], pods: JobPods | None) -> list[Input]:
    """The inputs ``job`` still owes the monitor whose status is ``status``, in order.

    Leaves out what ``status.reportedJobs`` lists (a Job listed with a finishing phase, or
    ``ignored``, yields nothing more), an unlisted Job older than ``activeSince``
    (``machine.job_predates``: annotating a CronJob with old failed Jobs does not alert;
    a Job created after it counts even when its Pod's clock says it started before) and an
    unlisted Job that finished before ``referenceTime`` (its entry fell off the list of
    20) — DESIGN 9.10.
    ``pods`` is the latest read of its Pods (None: not read: Pods not readable).
    """
    phases = reported_phases(status).get(job.uid, set())
    if phases & FINISHED_PHASES:
        return []
    started = job_start(job, pods, phases)
    if not phases:
        active_since = _time(status.get("activeSince"))
        if active_since is not None and job_predates(job.created, started, active_since):
            return []
        reference = _time(status.get("referenceTime"))
        finish = job.finish_time
        if finish is not None and reference is not None and finish < reference:
            return []
    if started is None:
        return _waiting_inputs(job, status, pods, phases)
    out: list[Input] = []
    if "start" not in phases:
        out.append(
            Ping(
                time=started,
                kind=PingKind.START,
                run_id=job.uid,
                scheduled_time=job.scheduled_time,
                job=(job.uid, "start"),
                job_created=job.created,
            )
        )
    if job.completion_time is not None:
        out.append(
            Ping(
                time=job.completion_time,
                kind=PingKind.SUCCESS,
                exit_code=0,
                run_id=job.uid,
                job=(job.uid, "success"),
            )
        )
    elif job.failure is not None:
        code = pods.exit_code if pods is not None else None
        out.append(
            Ping(
                time=job.failure.time,
                kind=PingKind.FAIL,
                exit_code=code,
                run_id=job.uid,
                body=failure_body(job.failure, pods),
                job=(job.uid, "fail"),
                exit_code_unknown=code is None and pods is not None,
            )
        )
    return out


def _waiting_inputs(
    job: JobRun, status: Mapping[str, Any], pods: JobPods | None, phases: set[str]
) -> list[Input]:
    """A Job none of whose Pods has run: pending, or failed before it ever ran."""
    created = job.created or job.sort_time
    cause = waiting_cause(job, pods)
    if job.failure is not None:
        if cause.endswith(causes.NO_POD_YET):
            # The Job controller deletes a Pod that never ran when the Job fails: the
            # cause its slot's pending start recorded (the Pod's) is still why (10.1).
            cause = _pending_cause(status, job.uid) or cause
        return [
            Ping(
                time=job.failure.time,
                kind=PingKind.FAIL,
                # An init container that failed (DESIGN 9.11 counts its exit code) kept
                # the Job from starting: NotStarted, with that code.
                exit_code=pods.exit_code if pods is not None else None,
                run_id=job.uid,
                body=f"{cause}; {job.failure.body}",
                job=(job.uid, "fail"),
                not_started=True,
            )
        ]
    if phases & WAITING_PHASES:
        return []
    reference = _time(status.get("referenceTime"))
    if reference is not None and created < reference and job.scheduled_time is None:
        return []  # older than the slot expected: it cannot stand for it
    return [
        JobPending(
            # At the slot it was made for: the CronJob controller's seconds to create it
            # never make that slot Late (DESIGN 10.8.3).
            time=job.scheduled_time or created,
            uid=job.uid,
            name=job.name,
            created=created,
            cause=cause,
            scheduled_time=job.scheduled_time,
        )
    ]


def _pending_cause(status: Mapping[str, Any], uid: str) -> str | None:
    for item in status.get("pendingStarts") or ():
        if isinstance(item, Mapping) and item.get("jobUid") == uid:
            cause = item.get("cause")
            return cause if isinstance(cause, str) and cause else None
    return None


MAX_DELETED_REMEMBERED = 5
"""Jobs remembered per CronJob after their deletion, until their finish (or, unfinished,
their failure by deletion) is reported."""


def deleted_inputs(job: JobRun, deleted_at: datetime, status: Mapping[str, Any]) -> list[Input]:
    """A Job deleted before it finished (``concurrencyPolicy: Replace``, ``kubectl
    delete``) is a failure at its deletion (DESIGN 10.8.3); ``NotStarted`` if it never ran,
    saying why as its pending start recorded it. Nothing for a Job never reported in
    ``status`` (it stood for no slot) or already finished."""
    phases = reported_phases(status).get(job.uid, set())
    if not phases or phases & FINISHED_PHASES:
        return []
    if "start" in phases:
        return [
            Ping(
                time=deleted_at,
                kind=PingKind.FAIL,
                run_id=job.uid,
                body=f"Job {job.name} was deleted before it finished",
                job=(job.uid, "fail"),
            )
        ]
    created = format_clock(job.created) if job.created is not None else "earlier"
    waited = _pending_cause(status, job.uid) or f"Job {job.name} created {created}"
    return [
        Ping(
            time=deleted_at,
            kind=PingKind.FAIL,
            run_id=job.uid,
            body=f"{waited}; deleted before any Pod of it ran",
            job=(job.uid, "fail"),
            not_started=True,
        )
    ]


def waiting_cause(job: JobRun, pods: JobPods | None) -> str:
    """ "Job x created T; Pod y Pending for 3m: ImagePullBackOff: ..." (DESIGN 10.1)."""
    if pods is not None:
        return pods.waiting
    created = format_clock(job.created) if job.created is not None else "at an unknown time"
    return f"Job {job.name} created {created}; no Pod of it is ready (Pods not readable)"


def failure_body(failure: Failure, pods: JobPods | None) -> str:
    """The fail ping's body: the Job's reason, what the Pods say, and with
    ``--capture-logs`` the failing container's last output (DESIGN 9.11, 10.1; issue 12)."""
    body = pods.failure if pods is not None and pods.failure else failure.body
    if pods is not None and pods.log_tail:
        body = f"{body}\n{pods.log_tail}"
    return body


class JobTable:
    """The Jobs of CronJobs, as last seen by the watch, by UID."""

    def __init__(self) -> None:
        self._jobs: dict[str, JobRun] = {}

    def __len__(self) -> int:
        return len(self._jobs)

    def upsert(self, body: Mapping[str, Any]) -> JobRun | None:
        job = JobRun.from_body(body)
        if job is None or not job.uid:
            return None
        self._jobs[job.uid] = job
        return job

    def remove(self, uid: str) -> JobRun | None:
        return self._jobs.pop(uid, None)

    def get(self, uid: str) -> JobRun | None:
        return self._jobs.get(uid)

    def of_cronjob(self, namespace: str, cronjob_uid: str) -> list[JobRun]:
        """The CronJob's Jobs, oldest first (pings are folded in time order anyway)."""
        jobs = [
            j
            for j in self._jobs.values()
            if j.namespace == namespace and j.cronjob_uid == cronjob_uid
        ]
        return sorted(jobs, key=lambda j: (j.sort_time, j.name))
