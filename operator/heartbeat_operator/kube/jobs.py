"""The Jobs of auto-wired CronJobs, and the pings the operator sends on their behalf.

DESIGN 4, 9.10 and 9.11. A Job owned (``controller: true``) by a CronJob yields:

- ``start`` at ``status.startTime``, run id = the Job's UID, ``scheduled_time`` from the
  ``batch.kubernetes.io/cronjob-scheduled-timestamp`` annotation when present;
- ``success`` (exit code 0) at ``status.completionTime`` once the ``Complete`` condition
  is True;
- ``fail`` at the ``Failed`` condition's ``lastTransitionTime``, with the body
  ``<reason>: <message>`` and the exit code of the failed container when its Pod still
  exists (``pick_exit_code``; none found: ``exit_code_unknown``).

Each ping carries ``job=(uid, phase)``: the status write that records it lists the Job in
``status.reportedJobs``, and ``job_pings`` leaves out what that list already holds, so
each Job yields each ping exactly once across restarts and leader changes (the domain
skips a listed ping too, should two writers race). A Job first seen already finished
yields start then finish, in one write.

Everything here but ``list_job_pods`` is pure: Job and Pod bodies in, ``JobRun`` and
``Ping`` values out. The operator only reads Jobs and Pods, never writes them (DESIGN 9.12).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from heartbeat_operator.domain.inputs import Ping
from heartbeat_operator.domain.timefmt import TimeFormatError, parse_time
from heartbeat_operator.kube.client import ApiError, KubeClient

logger = logging.getLogger(__name__)

CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
SCHEDULED_TIMESTAMP_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"

FINISHED_PHASES = frozenset({"success", "fail", "ignored"})
"""``reportedJobs`` phases after which a Job yields nothing more (``ignored``: the domain
marked a Job that started before ``activeSince``)."""


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
    def started_at(self) -> datetime | None:
        """When the run began: ``status.startTime``; for a finished Job that never got one
        (failed before any Pod ran) its creation, so a finish still has a start."""
        if self.start_time is not None:
            return self.start_time
        return self.created if self.finished else None

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
        )


@dataclasses.dataclass(frozen=True)
class ExitCode:
    """The result of looking a failed Job's Pods up once."""

    code: int | None
    """The non-zero exit code of the container that finished last; None if none found."""

    @property
    def unknown(self) -> bool:
        return self.code is None


def pick_exit_code(pods: Iterable[Mapping[str, Any]]) -> int | None:
    """The non-zero exit code of the container that finished last (DESIGN 9.11).

    Looks at every container of every Pod (init containers too), in its current state and
    its last state (a container restarted under ``restartPolicy: OnFailure`` keeps its
    earlier failure there). A termination without ``finishedAt`` ranks first-finished.
    """
    best: tuple[datetime, int] | None = None
    for pod in pods:
        status = pod.get("status") or {}
        for field in ("initContainerStatuses", "containerStatuses"):
            for container in status.get(field) or ():
                if not isinstance(container, Mapping):
                    continue
                for state_field in ("state", "lastState"):
                    state = container.get(state_field) or {}
                    terminated = state.get("terminated") if isinstance(state, Mapping) else None
                    if not isinstance(terminated, Mapping):
                        continue
                    code = terminated.get("exitCode")
                    if isinstance(code, bool) or not isinstance(code, int) or code == 0:
                        continue
                    finished = _time(terminated.get("finishedAt")) or _EPOCH
                    if best is None or finished > best[0]:
                        best = (finished, code)
    return None if best is None else best[1]


async def list_job_pods(client: KubeClient, namespace: str, uid: str) -> list[dict[str, Any]]:
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


async def lookup_exit_code(client: KubeClient, job: JobRun) -> ExitCode:
    """The failed Job's exit code; an API error counts as "Pod gone" (logged)."""
    try:
        pods = await list_job_pods(client, job.namespace, job.uid)
    except ApiError as exc:
        logger.warning("could not list the Pods of Job %s/%s: %s", job.namespace, job.name, exc)
        return ExitCode(None)
    return ExitCode(pick_exit_code(pods))


def reported_phases(status: Mapping[str, Any]) -> dict[str, set[str]]:
    """``status.reportedJobs`` as ``{uid: {phase, ...}}``."""
    out: dict[str, set[str]] = {}
    for item in status.get("reportedJobs") or ():
        if isinstance(item, Mapping):
            uid, phase = item.get("uid"), item.get("phase")
            if isinstance(uid, str) and isinstance(phase, str):
                out.setdefault(uid, set()).add(phase)
    return out


def needs_exit_code(job: JobRun, status: Mapping[str, Any]) -> bool:
    """Whether ``job_pings`` would send this Job's fail ping (so its Pods are worth a look)."""
    if job.failure is None:
        return False
    return any(p.kind == "fail" for p in job_pings(job, status, exit_code=ExitCode(None)))


def job_pings(
    job: JobRun, status: Mapping[str, Any], *, exit_code: ExitCode | None = None
) -> list[Ping]:
    """The pings ``job`` still owes the monitor whose status is ``status``, in order.

    Leaves out what ``status.reportedJobs`` lists (a Job listed with a finishing phase, or
    ``ignored``, yields nothing more), an unlisted Job that started before ``activeSince``
    (annotating a CronJob with old failed Jobs does not alert) and an unlisted Job that
    finished before ``referenceTime`` (its entry fell off the list of 20) — DESIGN 9.10.
    ``exit_code`` is the Pod lookup for a failed Job (None: not looked up, no code).
    """
    phases = reported_phases(status).get(job.uid, set())
    if phases & FINISHED_PHASES:
        return []
    started = job.started_at
    if started is None:
        return []
    if not phases:
        active_since = _time(status.get("activeSince"))
        if active_since is not None and started < active_since:
            return []
        reference = _time(status.get("referenceTime"))
        finish = job.finish_time
        if finish is not None and reference is not None and finish < reference:
            return []
    pings: list[Ping] = []
    if "start" not in phases:
        pings.append(
            Ping(
                time=started,
                kind="start",
                run_id=job.uid,
                scheduled_time=job.scheduled_time,
                job=(job.uid, "start"),
            )
        )
    if job.completion_time is not None:
        pings.append(
            Ping(
                time=job.completion_time,
                kind="success",
                exit_code=0,
                run_id=job.uid,
                job=(job.uid, "success"),
            )
        )
    elif job.failure is not None:
        code = exit_code.code if exit_code is not None else None
        pings.append(
            Ping(
                time=job.failure.time,
                kind="fail",
                exit_code=code,
                run_id=job.uid,
                body=job.failure.body,
                job=(job.uid, "fail"),
                exit_code_unknown=exit_code is not None and exit_code.unknown,
            )
        )
    return pings


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

    def of_cronjob(self, namespace: str, cronjob_uid: str) -> list[JobRun]:
        """The CronJob's Jobs, oldest start first (pings are folded in time order anyway)."""
        jobs = [
            j
            for j in self._jobs.values()
            if j.namespace == namespace and j.cronjob_uid == cronjob_uid
        ]
        return sorted(jobs, key=lambda j: (j.started_at or j.created or _EPOCH, j.name))
