"""Zero-change monitoring of annotated CronJobs (DESIGN 4, 9.10, 9.11, 9.12).

A CronJob annotated ``heartbeat.dev/monitor: "true"`` — or, with
``--auto-wire-namespace-selector``, any CronJob without that annotation in a Namespace the
selector matches (coverage by policy, issue 12 item 5) — gets a HeartbeatMonitor of the same
name, owned by it, whose ``schedule`` and ``timeZone`` follow the CronJob and whose
``grace``, ``maxRuntime``, ``minRuntime`` and ``failureThreshold`` come from optional
annotations. The operator pings on the job's behalf from the Jobs the CronJob owns
(``engine.jobs``), shows the monitor Paused while the CronJob is suspended, and mirrors the
monitor's transition Events onto the CronJob.

How it is split:

- pure builders — ``CronJobInfo.from_body``, ``desired_spec`` (annotation validation),
  ``build_monitor`` (the server-side apply body), the Event bodies — no I/O;
- ``AutoWiring`` — the in-memory CronJob, Job and owner tables every replica keeps from
  kopf's watch (``kube.watching.register_autowiring`` adds the ``@kopf.on.event``
  handlers: no change handlers, timers, daemons or finalizers, so kopf never writes to a
  CronJob, Job or Pod), and the
  leader's reconciler: only the Lease holder applies monitors, deletes them and submits
  Job pings and pause/resume (DESIGN 6: the leader writes what Jobs change). Status
  writes go through the writer's per-monitor lane (``Writer.submit``) like every other.

Ownership: the operator applies with field manager ``heartbeat-operator`` only
``spec.schedule``, ``spec.timeZone``, the annotation-set fields, the label
``app.kubernetes.io/managed-by: heartbeat-operator`` and the owner reference
(``controller: true``, ``blockOwnerDeletion: false``: deleting a CronJob never waits for
its monitor). A monitor is "created by the operator" when a CronJob of its name controls
it; any other same-named monitor is left alone and the CronJob gets a ``NameConflict``
Warning.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from heartbeat_operator.domain.durations import MAX_DURATION, DurationError, parse_duration
from heartbeat_operator.domain.inputs import (
    PAUSE_CAUSE_CRONJOB,
    Input,
    JobPending,
    Pause,
    Ping,
    Resume,
    SlotSkipped,
)
from heartbeat_operator.domain.records import Record
from heartbeat_operator.domain.selectors import Selector
from heartbeat_operator.domain.specs import MonitorSpec
from heartbeat_operator.domain.timefmt import format_clock
from heartbeat_operator.domain.tokens import redact_tokens
from heartbeat_operator.domain.vocabulary import EventType
from heartbeat_operator.engine import jobs as jobs_
from heartbeat_operator.engine.api import (
    APPLY_PATCH,
    GROUP,
    PLURAL,
    VERSION,
    ApiError,
    KubeApi,
    monitor_path,
)
from heartbeat_operator.engine.events import (
    Aggregate,
    InvolvedObject,
    apply_event,
    build_event,
    event_posts,
)
from heartbeat_operator.engine.folding import Change
from heartbeat_operator.engine.monitors import Key, MonitorEntry, MonitorTable
from heartbeat_operator.engine.scheduling import Judging
from heartbeat_operator.engine.workqueue import WorkQueue
from heartbeat_operator.recording import UnknownToken

logger = logging.getLogger(__name__)

CRONJOBS = "cronjob"  # the auto-wiring's kind of key in the shared work queue
MONITOR_ANNOTATION = "heartbeat.dev/monitor"
GRACE_ANNOTATION = "heartbeat.dev/grace"
MAX_RUNTIME_ANNOTATION = "heartbeat.dev/max-runtime"
MIN_RUNTIME_ANNOTATION = "heartbeat.dev/min-runtime"
FAILURE_THRESHOLD_ANNOTATION = "heartbeat.dev/failure-threshold"

DURATION_ANNOTATIONS = {
    GRACE_ANNOTATION: "grace",
    MAX_RUNTIME_ANNOTATION: "maxRuntime",
    MIN_RUNTIME_ANNOTATION: "minRuntime",
}
MANAGED_SPEC_FIELDS = (
    "schedule",
    "timeZone",
    "grace",
    "maxRuntime",
    "minRuntime",
    "failureThreshold",
)

FIELD_MANAGER = "heartbeat-operator"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "heartbeat-operator"
CRONJOB_API_VERSION = "batch/v1"

ACTIVE_DEADLINE_MARGIN = 60
"""Seconds added to the Job template's ``activeDeadlineSeconds`` for the default
``maxRuntime`` (DESIGN 9.11): the Job controller kills the run at its deadline, and the
minute covers its Pods' termination before the Job's ``Failed`` condition is written."""

JOB_CREATION_ALLOWANCE = datetime.timedelta(seconds=10)
"""How long after a slot's due time the leader waits for the CronJob controller's Job
before judging the slot Late (DESIGN 10.8.3: a Job created on time is a pending start;
the controller creates it within a second or two, more on a busy control plane)."""

MAX_RECONCILES = 32
"""CronJobs the leader reconciles at once (each: an apply, a Pod list per unfinished Job, a
status write). A new leader marks every CronJob at once; unbounded, 2,000 CronJobs were
2,000 requests in flight that timed out and were retried (5,286 applies), starved the
Lease renewal (leadership lost 9 times) and left their peak in the RSS (issue 12;
bench/README.md "scale, Pods present"). The scheduler's bound is the same
(``scheduling.MAX_RECONCILES``)."""

MAX_DURATION_CHARS = 64  # the CRD's maxLength for durations
MAX_FAILURE_THRESHOLD = 1000  # the CRD's maximum


# --- the CronJob, parsed once at the edge ---------------------------------------------


@dataclasses.dataclass(frozen=True)
class CronJobInfo:
    """What the operator reads of a CronJob (it never writes one: DESIGN 9.12)."""

    namespace: str
    name: str
    uid: str
    generation: int
    annotations: Mapping[str, str]
    schedule: str
    time_zone: str | None
    suspend: bool
    active_deadline_seconds: int | None
    concurrency_policy: str = "Allow"
    starting_deadline_seconds: int | None = None

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)

    @property
    def monitored(self) -> bool:
        """Exactly ``"true"`` (DESIGN 9.11: any other value means not monitored)."""
        return self.annotations.get(MONITOR_ANNOTATION) == "true"

    @property
    def annotated(self) -> bool:
        """Whether the annotation decides (any value), rather than a namespace policy."""
        return MONITOR_ANNOTATION in self.annotations

    @property
    def involved(self) -> InvolvedObject:
        return InvolvedObject(
            self.namespace, self.name, self.uid, api_version=CRONJOB_API_VERSION, kind="CronJob"
        )

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> CronJobInfo:
        meta = body.get("metadata") or {}
        spec = body.get("spec") or {}
        template = ((spec.get("jobTemplate") or {}).get("spec")) or {}
        deadline = template.get("activeDeadlineSeconds")
        if isinstance(deadline, bool) or not isinstance(deadline, int) or deadline <= 0:
            deadline = None
        schedule, time_zone = split_schedule(str(spec.get("schedule") or ""))
        zone = spec.get("timeZone")
        if isinstance(zone, str) and zone:
            time_zone = zone
        return cls(
            namespace=str(meta.get("namespace") or ""),
            name=str(meta.get("name") or ""),
            uid=str(meta.get("uid") or ""),
            generation=int(meta.get("generation") or 0),
            annotations={str(k): str(v) for k, v in (meta.get("annotations") or {}).items()},
            schedule=schedule,
            time_zone=time_zone,
            suspend=spec.get("suspend") is True,
            active_deadline_seconds=deadline,
            concurrency_policy=str(spec.get("concurrencyPolicy") or "Allow"),
            starting_deadline_seconds=_positive_int(spec.get("startingDeadlineSeconds")),
        )


def _positive_int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    return value


def skipped_slot_cause(
    cronjob: CronJobInfo,
    jobs: Sequence[jobs_.JobRun],
    due: datetime.datetime,
    now: datetime.datetime,
) -> str:
    """Why the CronJob controller made no Job for the slot due at ``due`` (DESIGN 10.1,
    10.8.7), from what the CronJob and its Jobs show; "" when a Job was made for it."""
    if any(job.scheduled_time == due for job in jobs):
        return ""
    if cronjob.concurrency_policy == "Forbid":
        for job in jobs:
            began = job.created or job.sort_time
            finished = job.finish_time
            if began < due and (finished is None or finished > due):
                return (
                    f"concurrencyPolicy Forbid: Job {job.name} active since {format_clock(began)}"
                )
    deadline = cronjob.starting_deadline_seconds
    if deadline is not None and now > due + datetime.timedelta(seconds=deadline):
        return (
            f"startingDeadlineSeconds ({deadline}s) passed before the CronJob controller "
            "created a Job"
        )
    return "the CronJob controller created no Job for it"


def split_schedule(schedule: str) -> tuple[str, str | None]:
    """``"CRON_TZ=Europe/Berlin 0 2 * * *"`` -> ``("0 2 * * *", "Europe/Berlin")``.

    Older CronJobs carry their zone in the schedule (``TZ=`` or ``CRON_TZ=``); the monitor
    wants it in ``timeZone``. ``spec.timeZone``, when set, wins (``CronJobInfo``).
    """
    text = schedule.strip()
    for prefix in ("CRON_TZ=", "TZ="):
        if text.startswith(prefix):
            zone, _, rest = text[len(prefix) :].partition(" ")
            return rest.strip(), zone or None
    return text, None


def monitoring(
    cronjob: CronJobInfo,
    namespace_labels: Mapping[str, str] | None,
    selector: Selector | None,
) -> bool | None:
    """Whether the CronJob is monitored; None while that cannot be known yet.

    The annotation decides wherever it is set: exactly ``"true"`` monitors, any other
    value (``"false"`` to opt out of a policy) does not (DESIGN 9.11). Without it, the
    CronJob is monitored when a namespace selector is set and its Namespace's labels match
    (issue 12, item 5). ``namespace_labels`` None means the Namespace has not been seen
    yet: undecided, so a replica that starts leading before its Namespace watch has
    caught up neither creates nor deletes anything on a guess.
    """
    if cronjob.annotated:
        return cronjob.monitored
    if selector is None:
        return False
    if namespace_labels is None:
        return None
    return selector.matches(namespace_labels)


# --- the desired monitor ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class InvalidAnnotation:
    """An optional annotation whose value is ignored, and why."""

    annotation: str
    value: str
    message: str


def desired_spec(cronjob: CronJobInfo) -> tuple[dict[str, Any], list[InvalidAnnotation]]:
    """The spec fields the operator owns on the CronJob's monitor, and the invalid annotations.

    ``schedule`` and ``timeZone`` (absent: UTC) follow the CronJob; each optional annotation
    sets its field; an invalid one is left out (the CRD default or nothing applies) and
    reported, and the rest still works. Default ``maxRuntime``: the Job template's
    ``activeDeadlineSeconds`` + 60 s, when set.
    """
    spec: dict[str, Any] = {"schedule": cronjob.schedule}
    if cronjob.time_zone:
        spec["timeZone"] = cronjob.time_zone
    problems: list[InvalidAnnotation] = []
    for annotation, field in DURATION_ANNOTATIONS.items():
        value = cronjob.annotations.get(annotation)
        if value is None:
            continue
        text = value.strip()
        try:
            if len(text) > MAX_DURATION_CHARS:
                raise DurationError(f"longer than {MAX_DURATION_CHARS} characters")
            parse_duration(text)
        except DurationError:
            problems.append(
                InvalidAnnotation(
                    annotation,
                    value,
                    f"annotation {annotation}: {_shown(value)} is not a positive duration "
                    f"like 30s, 5m or 1h30m; ignored (spec.{field} not set from it)",
                )
            )
            continue
        spec[field] = text
    deadline = cronjob.active_deadline_seconds
    if "maxRuntime" not in spec and deadline is not None:
        bound = deadline + ACTIVE_DEADLINE_MARGIN
        # Above the CRD's 10-year bound the apply would be refused and the CronJob left
        # unmonitored: the run-timeout of DESIGN 10.2 applies instead.
        if bound <= MAX_DURATION.total_seconds():
            spec["maxRuntime"] = f"{bound}s"
    value = cronjob.annotations.get(FAILURE_THRESHOLD_ANNOTATION)
    if value is not None:
        text = value.strip()
        if text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_FAILURE_THRESHOLD:
            spec["failureThreshold"] = int(text)
        else:
            problems.append(
                InvalidAnnotation(
                    FAILURE_THRESHOLD_ANNOTATION,
                    value,
                    f"annotation {FAILURE_THRESHOLD_ANNOTATION}: {_shown(value)} is not a "
                    f"whole number from 1 to {MAX_FAILURE_THRESHOLD}; ignored "
                    "(spec.failureThreshold not set from it)",
                )
            )
    return spec, problems


def _shown(value: str, limit: int = 80) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")


def owner_reference(cronjob: CronJobInfo) -> dict[str, Any]:
    return {
        "apiVersion": CRONJOB_API_VERSION,
        "kind": "CronJob",
        "name": cronjob.name,
        "uid": cronjob.uid,
        "controller": True,
        "blockOwnerDeletion": False,
    }


def build_monitor(cronjob: CronJobInfo, spec: Mapping[str, Any]) -> dict[str, Any]:
    """The server-side apply body: exactly the fields the operator owns (DESIGN 9.11)."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "HeartbeatMonitor",
        "metadata": {
            "name": cronjob.name,
            "namespace": cronjob.namespace,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE},
            "ownerReferences": [owner_reference(cronjob)],
        },
        "spec": dict(spec),
    }


@dataclasses.dataclass(frozen=True)
class Owner:
    """A monitor's controlling CronJob, as the monitor's ``ownerReferences`` name it."""

    monitor_uid: str
    cronjob: str
    cronjob_uid: str


def monitor_owner(body: Mapping[str, Any]) -> Owner | None:
    meta = body.get("metadata") or {}
    owner = jobs_.controller_owner(meta, "CronJob")
    if owner is None:
        return None
    return Owner(str(meta.get("uid") or ""), owner[0], owner[1])


def entry_owner(entry: MonitorEntry) -> Owner | None:
    """The monitor's controlling CronJob, as the table's copy of it names it."""
    if entry.cronjob is None:
        return None
    return Owner(entry.uid, *entry.cronjob)


def created_by_operator(owner: Owner | None, cronjob: CronJobInfo) -> bool:
    """Whether the monitor is the one the operator made for this CronJob.

    A CronJob of the monitor's name controls it (a CronJob re-created under the same name
    takes its predecessor's monitor over rather than conflicting with it).
    """
    return owner is not None and owner.cronjob == cronjob.name


def in_sync(
    entry: MonitorEntry, owner: Owner | None, cronjob: CronJobInfo, spec: Mapping[str, Any]
) -> bool:
    """Whether the monitor already shows every field the operator would apply."""
    if owner is None or owner.cronjob_uid != cronjob.uid or owner.monitor_uid != entry.uid:
        return False
    if entry.labels.get(MANAGED_BY_LABEL) != MANAGED_BY_VALUE:
        return False
    return all(entry.spec.get(field) == value for field, value in spec.items())


# --- Events on the CronJob ------------------------------------------------------------------


def _once_name(cronjob: CronJobInfo, *parts: str) -> str:
    """A name fixed by what the Event reports, so a retry or a new leader re-creates the same
    object and 409 means it is already there (DESIGN 9.6, 9.7: once per CronJob generation)."""
    text = "\x00".join((cronjob.uid, str(cronjob.generation), *parts))
    return f"{cronjob.name[:200]}.{hashlib.sha256(text.encode('utf-8')).hexdigest()[:16]}"


def invalid_annotation_event(
    cronjob: CronJobInfo, problem: InvalidAnnotation, *, now: datetime.datetime, instance: str = ""
) -> dict[str, Any]:
    """Warning ``InvalidAnnotation`` naming the annotation; once per generation and value."""
    body = build_event(
        cronjob.involved,
        time=now,
        reason="InvalidAnnotation",
        event_type=EventType.WARNING,
        message=problem.message,
        instance=instance,
    )
    body["metadata"]["name"] = _once_name(
        cronjob, "InvalidAnnotation", problem.annotation, problem.value
    )
    return body


def name_conflict_event(
    cronjob: CronJobInfo, *, now: datetime.datetime, instance: str = ""
) -> dict[str, Any]:
    """Warning ``NameConflict``: a monitor of this name exists that the operator did not make.

    The way out it suggests is how the CronJob came to be monitored: its annotation, or
    its Namespace's labels (coverage by policy: opt it out with ``"false"``)."""
    if cronjob.annotated:
        remedy = "or remove the annotation heartbeat.dev/monitor"
    else:
        remedy = (
            'or annotate this CronJob heartbeat.dev/monitor: "false" (its namespace\'s '
            "labels select it for monitoring)"
        )
    body = build_event(
        cronjob.involved,
        time=now,
        reason="NameConflict",
        event_type=EventType.WARNING,
        message=(
            f"HeartbeatMonitor {cronjob.name} already exists and was not created for this "
            "CronJob; it is left alone and this CronJob is not monitored. Rename or delete "
            f"that monitor, {remedy}"
        ),
        instance=instance,
    )
    body["metadata"]["name"] = _once_name(cronjob, "NameConflict")
    return body


class EventLike(Protocol):
    """A monitor transition (``domain.machine.Transition``) or a folding ``ExtraEvent``."""

    @property
    def time(self) -> datetime.datetime: ...
    @property
    def message(self) -> str: ...
    @property
    def event_reason(self) -> str | None: ...
    @property
    def event_type(self) -> str: ...


def mirrored_events(
    owner: Owner, namespace: str, transitions: Sequence[EventLike], *, instance: str = ""
) -> list[dict[str, Any] | Aggregate]:
    """The monitor's transition Events, posted on its CronJob too (DESIGN 9.7).

    Named like the monitor's own (DESIGN 9.6), from the CronJob's uid: whoever posts them
    posts the same objects. A failure while already Down (``events.Repeat``, marked by the
    writer) patches the CronJob's Event of the transition into Down, as on the monitor
    (DESIGN 10.8.13).
    """
    cronjob = InvolvedObject(
        namespace, owner.cronjob, owner.cronjob_uid, api_version=CRONJOB_API_VERSION, kind="CronJob"
    )
    return event_posts(cronjob, transitions, instance=instance)


# --- pause and resume -----------------------------------------------------------------------


def pause_inputs(cronjob: CronJobInfo, entry: MonitorEntry, now: datetime.datetime) -> list[Input]:
    """``Pause``/``Resume`` with cause ``CronJob suspend`` when the monitor does not match the
    CronJob's ``spec.suspend`` yet. The monitor's own ``spec.paused`` is never touched: a
    monitor paused by its spec stays so; a suspend pause ends when the CronJob resumes,
    unless by then ``spec.paused`` holds it (the spec's resume will then end it)."""
    paused = bool(entry.status.get("pausedSince"))
    cause = entry.status.get("pauseCause")
    if cronjob.suspend and not paused:
        return [Pause(now, PAUSE_CAUSE_CRONJOB)]
    if (
        not cronjob.suspend
        and paused
        and cause == PAUSE_CAUSE_CRONJOB
        and entry.spec.get("paused") is not True
    ):
        return [Resume(now, PAUSE_CAUSE_CRONJOB)]
    return []


# --- the watches and the leader's reconciler ------------------------------------------------

Submit = Callable[[Key, Change], Awaitable[MonitorEntry]]


class AutoWiring:
    """CronJob auto-wiring for one replica: tables on every replica, actions on the leader.

    Hooks (``running``): ``register(registry, wiring)`` adds the watches;
    ``writer.on_transitions.append(wiring.mirror_transitions)``;
    ``wiring.leadership_changed(leading)`` from the Lease; ``await wiring.run(stop)``.
    """

    def __init__(
        self,
        *,
        client: KubeApi,
        monitors: MonitorTable,
        submit: Submit,
        is_leader: Callable[[], bool],
        exit_codes: bool = True,
        capture_logs: bool = False,
        namespace_selector: Selector | None = None,
        instance: str = "",
        now: Callable[[], datetime.datetime] | None = None,
        work: WorkQueue | None = None,
    ) -> None:
        self.client = client
        self.monitors = monitors
        self.submit = submit
        self.is_leader = is_leader
        self.read_pods = exit_codes
        # Issue 12, item 4: a failed Job's log tail follows the cause in its fail ping
        # (RBAC pods/log get, granted only while on).
        self.capture_logs = capture_logs
        # Issue 12, item 5: coverage by policy; None (off) when no selector is set.
        self.namespace_selector = namespace_selector
        self.instance = instance
        self._now = now or (lambda: datetime.datetime.now(datetime.UTC))
        self.cronjobs: dict[Key, CronJobInfo] = {}
        self.jobs = jobs_.JobTable()
        self.owners: dict[Key, Owner] = {}
        # Labels of every Namespace seen (only watched with a namespace selector) and the
        # CronJobs of each, so a Namespace relabelled re-decides exactly its CronJobs.
        self.namespace_labels: dict[str, Mapping[str, str]] = {}
        self._names_in: dict[str, set[str]] = {}
        self._applied: dict[Key, dict[str, Any]] = {}
        # The latest read of a Job's Pods, by Job uid (only this summary: no Pod is held).
        self._pods: dict[str, jobs_.JobPods] = {}
        # Jobs deleted before they finished (Replace, kubectl delete): a failure each.
        self._deleted: dict[Key, list[tuple[jobs_.JobRun, datetime.datetime]]] = {}
        self._posted: set[str] = set()
        # CronJobs to reconcile: the work queue shared with the scheduler (issue 14 item
        # 3), held while this replica does not lead (a follower keeps its marks).
        self.work = work or WorkQueue()
        # At most MAX_RECONCILES at once, and none before the initial list of monitors is
        # in (``run``): 2,000 CronJobs at once timed out and cost the Lease (bench scale-pods).
        self.work.add_kind(CRONJOBS, self._reconcile_guarded, limit=MAX_RECONCILES)
        self._monitors_listed = False
        self._tasks: set[asyncio.Task[Any]] = set()  # Event posts

    # --- fed by the watches (every replica) ---------------------------------------------

    def cronjob_event(self, type: str | None, body: Mapping[str, Any]) -> None:
        info = CronJobInfo.from_body(body)
        if not info.namespace or not info.name:
            return
        if type == "DELETED":
            if self.cronjobs.get(info.key, info).uid == info.uid:
                self.cronjobs.pop(info.key, None)
                self._applied.pop(info.key, None)
                names = self._names_in.get(info.namespace)
                if names is not None:
                    names.discard(info.name)
                    if not names:
                        del self._names_in[info.namespace]
            return
        self.cronjobs[info.key] = info
        self._names_in.setdefault(info.namespace, set()).add(info.name)
        self.mark(info.key)

    def namespace_event(self, type: str | None, body: Mapping[str, Any]) -> None:
        """A Namespace's labels decide its un-annotated CronJobs (issue 12, item 5).

        Labelled to match: they gain monitors; unlabelled: the monitors the operator made
        for them are deleted, as when an annotation is removed. Only a change of the
        selector's answer re-decides the Namespace's CronJobs (first sight is one).
        """
        meta = body.get("metadata") or {}
        name = str(meta.get("name") or "")
        if not name or self.namespace_selector is None:
            return
        before = self.namespace_labels.get(name)
        if type == "DELETED":
            self.namespace_labels.pop(name, None)
            return  # its CronJobs and their monitors go with it (garbage collector)
        labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
        self.namespace_labels[name] = labels
        if before is not None and self.namespace_selector.matches(
            before
        ) == self.namespace_selector.matches(labels):
            return
        for cronjob in self._names_in.get(name, ()):
            self.mark((name, cronjob))

    def monitoring(self, cronjob: CronJobInfo) -> bool | None:
        """``monitoring`` with this replica's selector and Namespace table."""
        return monitoring(
            cronjob, self.namespace_labels.get(cronjob.namespace), self.namespace_selector
        )

    def job_event(self, type: str | None, body: Mapping[str, Any]) -> None:
        if type == "DELETED":
            uid = str((body.get("metadata") or {}).get("uid") or "")
            gone = self.jobs.remove(uid)
            self._pods.pop(uid, None)
            if gone is not None:
                if not gone.finished:
                    deleted = self._deleted.setdefault(gone.key, [])
                    deleted.append((gone, self._now()))
                    del deleted[: -jobs_.MAX_DELETED_REMEMBERED]
                self.mark(gone.key)
            return
        job = self.jobs.upsert(body)
        if job is not None:
            self.mark(job.key)

    def monitor_event(self, type: str | None, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        owner = monitor_owner(body)
        if type == "DELETED":
            current = self.owners.get(key)
            if current is not None and current.monitor_uid == meta.get("uid"):
                del self.owners[key]
            self._applied.pop(key, None)
        elif owner is None:
            self.owners.pop(key, None)
        else:
            self.owners[key] = owner
        if key in self.cronjobs:
            self.mark(key)

    def leadership_changed(self, leading: bool) -> None:
        """A new leader starts from what the watches hold (DESIGN 9.1). The CronJob copies
        of Events missing after a leader change are the scheduler's ``EventKeeper``'s,
        through ``event_targets``."""
        self._applied.clear()
        if leading:
            for key in self.cronjobs:
                self.mark(key)
            if self._monitors_listed:
                self.work.release(CRONJOBS)
        else:
            self.work.hold(CRONJOBS)

    def event_targets(self, entry: MonitorEntry) -> list[InvolvedObject]:
        """The CronJob an auto-wired monitor's Events are also posted on (or none)."""
        owner = self.owners.get(entry.key)
        if owner is None or owner.monitor_uid != entry.uid:
            return []
        cronjob = InvolvedObject(
            entry.namespace,
            owner.cronjob,
            owner.cronjob_uid,
            api_version=CRONJOB_API_VERSION,
            kind="CronJob",
        )
        return [cronjob]

    def mark(self, key: Key) -> None:
        self.work.mark(CRONJOBS, key)

    # --- every replica: Events of an auto-wired monitor also go to its CronJob --------------

    def mirror_transitions(self, entry: MonitorEntry, transitions: Sequence[EventLike]) -> None:
        """``Writer.on_transitions`` listener (any replica: whoever wrote the transition)."""
        owner = self.owners.get(entry.key)
        if owner is None or owner.monitor_uid != entry.uid:
            return
        for body in mirrored_events(owner, entry.namespace, transitions, instance=self.instance):
            self._spawn(apply_event(self.client, body))

    # --- the leader's loop -------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Reconcile marked CronJobs while leading until ``stop``, each key one at a time
        and at most ``MAX_RECONCILES`` at once (the shared ``WorkQueue``; a follower keeps its
        marks: at most one per CronJob, all re-marked when it starts leading). Not before the
        initial list of monitors is in: until then every CronJob's monitor looks missing and
        would be applied blind."""
        stopping = asyncio.ensure_future(stop.wait())
        try:
            synced = asyncio.ensure_future(self.monitors.wait_synced())
            await asyncio.wait({synced, stopping}, return_when=asyncio.FIRST_COMPLETED)
            synced.cancel()
            self._monitors_listed = True
            if self.is_leader():
                self.work.release(CRONJOBS)
            await stopping
        finally:
            stopping.cancel()
            self.work.hold(CRONJOBS)

    async def drain(self, timeout: float) -> None:
        """Wait (up to ``timeout``) for the Event posts and reconciles running now."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
        await self.work.drain(timeout)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reconcile_guarded(self, key: Key) -> None:
        try:
            await self.reconcile(key)
        except Exception:
            logger.exception("auto-wiring of CronJob %s/%s failed", *key)

    async def reconcile(self, key: Key) -> None:
        """Bring the CronJob's monitor, its pause and its Job pings up to date (leader)."""
        cronjob = self.cronjobs.get(key)
        if cronjob is None or not self.is_leader():
            return
        entry = self.monitors.get(key)
        # Ownership from the monitor the table holds, not from the owner map: that map is fed
        # by kopf's watch of monitors, which lags behind our own list at start-up, and a
        # guess there posted a false NameConflict on every auto-wired CronJob (issue 12).
        owner = entry_owner(entry) if entry is not None else None
        ours = entry is not None and created_by_operator(owner, cronjob)
        monitored = self.monitoring(cronjob)
        if monitored is None:
            return  # its Namespace is not in yet: that Namespace's event marks it again
        if not monitored:
            if entry is not None and ours and not entry.deleting:
                await self._delete(entry)
            return
        spec, problems = desired_spec(cronjob)
        now = self._now()
        for problem in problems:
            await self._post_once(
                invalid_annotation_event(cronjob, problem, now=now, instance=self.instance)
            )
        if entry is not None and not ours:
            await self._post_once(name_conflict_event(cronjob, now=now, instance=self.instance))
            return
        body = build_monitor(cronjob, spec)
        if (
            entry is None
            or self._applied.get(key) != body
            or not in_sync(entry, owner, cronjob, spec)
        ):
            if not await self._apply(key, body):
                return
            entry = self.monitors.get(key)
        if entry is None or entry.deleting or not entry.has_status:
            return  # the leader's first write (token, Ready) comes before any Job ping
        inputs: list[Input] = pause_inputs(cronjob, entry, now)
        inputs.extend(await self._job_inputs(cronjob, entry))
        if inputs:
            try:
                await self.submit(key, Change(inputs=tuple(inputs)))
            except UnknownToken:
                logger.debug("monitor %s/%s went away before its Job pings were written", *key)

    async def _job_inputs(
        self, cronjob: CronJobInfo, entry: MonitorEntry, *, fresh: bool = False
    ) -> list[Input]:
        """What the CronJob's Jobs still owe the monitor (``jobs.job_inputs``), reading
        each Job's Pods when its start or failure is not known yet (``fresh``: always)."""
        out: list[Input] = []
        reported = jobs_.reported_phases(entry.status)
        for job in self.jobs.of_cronjob(cronjob.namespace, cronjob.uid):
            phases = reported.get(job.uid, set())
            if phases & jobs_.FINISHED_PHASES:
                self._pods.pop(job.uid, None)
                continue
            pods = await self._pods_of(job, fresh=fresh)
            out.extend(jobs_.job_inputs(job, entry.status, pods))
        deleted = self._deleted.get(cronjob.key, [])
        for job, when in list(deleted):
            phases = reported.get(job.uid, set())
            owed = jobs_.deleted_inputs(job, when, phases)
            if not owed:
                deleted.remove((job, when))
            out.extend(owed)
        return [_redacted(i, entry.token_hash) for i in out]

    async def _pods_of(self, job: jobs_.JobRun, *, fresh: bool) -> jobs_.JobPods | None:
        """The Job's Pods as last read, read again unless that read still tells all: a
        start seen before the Job finished needs no other read until it does."""
        if not self.read_pods:
            return None
        known = self._pods.get(job.uid)
        # Whether the Job had finished at that read, never its finish time against the
        # read's: API times have whole seconds (and another clock), so a failure in the
        # second of a read looked older than the read and kept the Pods of before it.
        if (
            known is not None
            and not fresh
            and ((known.started_at is not None and not job.finished) or known.job_finished)
        ):
            return known
        pods = await jobs_.read_job_pods(
            self.client, job, self._now(), capture_logs=self.capture_logs
        )
        if pods is not None:
            self._pods[job.uid] = pods
        return pods

    async def before_judging(
        self, entry: MonitorEntry, spec: MonitorSpec, record: Record, until: datetime.datetime
    ) -> Judging:
        """What the cluster says of the slot about to be judged (leader; DESIGN 10.8.3).

        The scheduler calls this when a deadline of ``entry`` is due by ``until``. For an
        auto-wired monitor it re-reads the Pods of the Jobs that may stand for the slot:
        a start found at or before the deadline is folded first (the run was on time); a
        Job still waiting gets its cause refreshed, so ``NotStarted`` names what the
        cluster says now; a slot with no Job says why (``SlotSkipped``). While the CronJob
        controller may still be creating the slot's Job, the Late judgement is held.
        """
        cronjob = self.cronjobs.get(entry.key)
        owner = self.owners.get(entry.key)
        if cronjob is None or owner is None or owner.monitor_uid != entry.uid:
            return Judging()
        if record.paused_since is not None:
            return Judging()
        inputs = await self._job_inputs(cronjob, entry, fresh=True)
        slot = spec.slots.next_slot(record.reference_time)
        if slot is None:
            return Judging(tuple(inputs))
        alert = slot.alert(spec.grace)
        waiting = [p for p in record.pending_starts if p.due == slot.due]
        made_for_slot = waiting or any(
            isinstance(i, JobPending | Ping) and i.time <= alert for i in inputs
        )
        if (
            not made_for_slot
            and record.state in ("New", "Healthy")
            # Only the slot's own Late judgement waits for its Job: a run's deadline before
            # the slot is due (maxRuntime) is judged on time.
            and slot.due <= until < slot.due + JOB_CREATION_ALLOWANCE
            and not cronjob.suspend
        ):
            return Judging(tuple(inputs), hold_until=slot.due + JOB_CREATION_ALLOWANCE)
        if alert > until:
            return Judging(tuple(inputs))
        for pending in waiting:
            job = self.jobs.get(pending.uid)
            pods = self._pods.get(pending.uid)
            if job is None or pods is None or pods.started_at is not None:
                continue
            inputs.append(
                JobPending(
                    time=alert,
                    uid=job.uid,
                    name=job.name,
                    created=pending.created,
                    cause=pods.waiting,
                    scheduled_time=job.scheduled_time,
                )
            )
        if not waiting:
            jobs = self.jobs.of_cronjob(cronjob.namespace, cronjob.uid)
            why = skipped_slot_cause(cronjob, jobs, slot.due, until)
            if why:
                inputs.append(SlotSkipped(alert, slot.due, why))
        return Judging(tuple(inputs))

    async def _apply(self, key: Key, body: dict[str, Any]) -> bool:
        try:
            written = await self.client.patch(
                monitor_path(*key),
                body,
                kind=PLURAL,
                content_type=APPLY_PATCH,
                params={"fieldManager": FIELD_MANAGER, "force": "true"},
            )
        except ApiError as exc:
            logger.warning("could not apply the monitor of CronJob %s/%s: %s", *key, exc)
            return False
        self._applied[key] = body
        if written:
            self.monitors.upsert(written)
            owner = monitor_owner(written)
            if owner is not None:
                self.owners[key] = owner
        return True

    async def _delete(self, entry: MonitorEntry) -> None:
        """Delete the monitor the operator made (the annotation was removed), by uid."""
        path = monitor_path(entry.namespace, entry.name)
        try:
            await self.client.request(
                "DELETE",
                path,
                body={
                    "apiVersion": "v1",
                    "kind": "DeleteOptions",
                    "preconditions": {"uid": entry.uid},
                },
                kind=PLURAL,
            )
        except ApiError as exc:
            if not exc.not_found and not exc.conflict:
                logger.warning("could not delete monitor %s/%s: %s", *entry.key, exc)
            return
        self._applied.pop(entry.key, None)
        logger.info(
            "deleted monitor %s/%s: its CronJob is no longer monitored (annotation or "
            "namespace labels)",
            *entry.key,
        )

    async def _post_once(self, body: dict[str, Any]) -> None:
        name = body["metadata"]["name"]
        if name in self._posted:
            return
        if await apply_event(self.client, body):
            self._posted.add(name)


__all__ = [
    "FIELD_MANAGER",
    "MONITOR_ANNOTATION",
    "AutoWiring",
    "CronJobInfo",
    "InvalidAnnotation",
    "Owner",
    "build_monitor",
    "desired_spec",
    "monitoring",
]


def _redacted(item: Input, hashed: str | None) -> Input:
    """A Job's words with no ping token in them: its failure message, its container's
    termination message and log tail (``--capture-logs``) may hold the job's own ping URL
    (a ``curl -v`` trace), and they are stored in status and quoted in Events (issue 18
    item 5). The mirror knows the monitor's token by its hash only."""
    if isinstance(item, Ping) and item.body:
        return dataclasses.replace(item, body=redact_tokens(item.body, hashed=hashed))
    if isinstance(item, JobPending) and item.cause:
        return dataclasses.replace(item, cause=redact_tokens(item.cause, hashed=hashed))
    return item
