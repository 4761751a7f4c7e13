"""Zero-change monitoring of annotated CronJobs (DESIGN 4, 9.10, 9.11, 9.12).

A CronJob annotated ``heartbeat.dev/monitor: "true"`` — or, with
``--auto-wire-namespace-selector``, any CronJob without that annotation in a Namespace the
selector matches (coverage by policy, issue 12 item 5) — gets a HeartbeatMonitor of the same
name, owned by it, whose ``schedule`` and ``timeZone`` follow the CronJob and whose
``grace``, ``maxRuntime``, ``minRuntime`` and ``failureThreshold`` come from optional
annotations. The operator pings on the job's behalf from the Jobs the CronJob owns
(``engine.jobs``), shows the monitor Paused while the CronJob is suspended, and mirrors the
monitor's transition Events onto the CronJob.

This module is the pure half (issue 14 item 8): ``CronJobInfo.from_body``,
``desired_spec`` (annotation validation), ``build_monitor`` (the server-side apply body),
owners, the Event bodies and the pause inputs, no I/O. The tables every replica keeps and
the leader's reconciler that acts on them are ``engine.autowiring``.

Ownership: the operator applies with field manager ``heartbeat-operator`` only
``spec.schedule``, ``spec.timeZone``, the annotation-set fields, the label
``app.kubernetes.io/managed-by: heartbeat-operator`` and the owner reference
(``controller: true``, ``blockOwnerDeletion: false``: deleting a CronJob never waits for
its monitor). A monitor is "created by the operator" when a CronJob of its name controls
it; any other same-named monitor is left alone and the CronJob gets a ``NameConflict``
Warning.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import hashlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from heartbeat_operator.domain.durations import MAX_DURATION, DurationError, parse_duration
from heartbeat_operator.domain.inputs import (
    PAUSE_CAUSE_CRONJOB,
    Input,
    Pause,
    Resume,
)
from heartbeat_operator.domain.pausing import spec_pause
from heartbeat_operator.domain.selectors import Selector
from heartbeat_operator.domain.timefmt import format_clock
from heartbeat_operator.domain.vocabulary import EventType
from heartbeat_operator.engine import jobs as jobs_
from heartbeat_operator.engine.api import (
    GROUP,
    VERSION,
)
from heartbeat_operator.engine.events import (
    Aggregate,
    InvolvedObject,
    build_event,
    event_posts,
)
from heartbeat_operator.engine.monitors import Key, MonitorEntry

logger = logging.getLogger(__name__)

MONITOR_ANNOTATION = "heartbeat.dev/monitor"
GRACE_ANNOTATION = "heartbeat.dev/grace"
MAX_RUNTIME_ANNOTATION = "heartbeat.dev/max-runtime"
MIN_RUNTIME_ANNOTATION = "heartbeat.dev/min-runtime"
FAILURE_THRESHOLD_ANNOTATION = "heartbeat.dev/failure-threshold"

#: The annotations the operator owns on CronJobs; any other one under this prefix is a slip.
ANNOTATION_PREFIX = "heartbeat.dev/"
DURATION_ANNOTATIONS = {
    GRACE_ANNOTATION: "grace",
    MAX_RUNTIME_ANNOTATION: "maxRuntime",
    MIN_RUNTIME_ANNOTATION: "minRuntime",
}
#: Every annotation the operator reads on a CronJob (docs/cronjobs.md, "Annotations").
CRONJOB_ANNOTATIONS = (
    MONITOR_ANNOTATION,
    *DURATION_ANNOTATIONS,
    FAILURE_THRESHOLD_ANNOTATION,
)
_SUFFIXES = [key.removeprefix(ANNOTATION_PREFIX) for key in CRONJOB_ANNOTATIONS]
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
    #: ``metadata.deletionTimestamp`` is set: the garbage collector is at its dependents
    #: (``--cascade=orphan`` or ``foreground``); the operator leaves its monitor alone.
    deleting: bool = False

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
            deleting=bool(meta.get("deletionTimestamp")),
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


def annotation_problems(cronjob: CronJobInfo, *, monitored: bool) -> list[InvalidAnnotation]:
    """What in the CronJob's ``heartbeat.dev/`` annotations looks like a slip, beyond the
    values ``desired_spec`` judges: each one a Warning ``InvalidAnnotation``.

    A typo must not switch monitoring off without a word. DESIGN 9.11 keeps ``"True"``,
    ``"yes"`` or ``"ture"`` from monitoring (only ``"true"`` does), but almost everyone who
    writes one meant ``"true"``; so do most who write ``heartbeat.dev/monitored`` or set
    ``heartbeat.dev/grace`` with no ``heartbeat.dev/monitor`` at all. Each is told, with
    the CronJob's actual fate (``monitored``) and what to write instead. ``"false"`` is an
    opt-out: nothing to say about it, nor about the other annotations beside it."""
    annotations = cronjob.annotations
    fate = "" if monitored else "; this CronJob is NOT monitored"
    problems: list[InvalidAnnotation] = []
    value = annotations.get(MONITOR_ANNOTATION)
    if value is not None and value not in ("true", "false"):
        problems.append(
            InvalidAnnotation(
                MONITOR_ANNOTATION,
                value,
                f'annotation {MONITOR_ANNOTATION}: {_shown(value)} is neither "true" nor '
                f'"false"{fate}; set it to "true" to monitor it, or "false" to opt out',
            )
        )
    for key in sorted(annotations):
        if not key.startswith(ANNOTATION_PREFIX) or key in CRONJOB_ANNOTATIONS:
            continue
        # Compared without the prefix, which every candidate shares.
        suffix = key.removeprefix(ANNOTATION_PREFIX)
        near = difflib.get_close_matches(suffix, _SUFFIXES, n=1, cutoff=0.5)
        hint = (
            f"did you mean {ANNOTATION_PREFIX}{near[0]}?"
            if near
            else f"it reads {', '.join(CRONJOB_ANNOTATIONS)}"
        )
        problems.append(
            InvalidAnnotation(
                key,
                annotations[key],
                f"annotation {_shown(key)} is not one heartbeat-operator reads on a CronJob "
                f"({hint}); ignored{fate}",
            )
        )
    if value is None and not monitored:
        settings = [key for key in CRONJOB_ANNOTATIONS if key in annotations]
        if settings:
            problems.append(
                InvalidAnnotation(
                    MONITOR_ANNOTATION,
                    "",
                    f"{', '.join(settings)} set, but this CronJob is NOT monitored: it has no "
                    f'annotation {MONITOR_ANNOTATION}: "true"',
                )
            )
    return problems


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


def created_by_operator(entry: MonitorEntry, owner: Owner | None, cronjob: CronJobInfo) -> bool:
    """Whether the monitor is the one the operator made for this CronJob.

    A CronJob of the monitor's name controls it (a CronJob re-created under the same name
    takes its predecessor's monitor over rather than conflicting with it); so does one
    whose CronJob owner reference the garbage collector took away (the CronJob deleted
    with ``--cascade=orphan``) while it still carries the operator's ``managed-by`` label:
    adopted by a monitored CronJob, as a ReplicaSet adopts the orphaned Pods its selector
    matches (``AutoWiring.reconcile`` never deletes such a monitor).
    """
    if owner is not None:
        return owner.cronjob == cronjob.name
    return entry.labels.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE


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
    CronJob's ``spec.suspend`` yet. The monitor's own pause fields are never touched: a
    monitor paused by its spec stays so; a suspend pause ends when the CronJob resumes,
    unless by then the spec holds a pause (``spec.paused``, or a ``spec.pausedUntil``
    still ahead): the suspend's pause ends and the spec's begins at the same instant
    (``Resumed``, then ``Paused`` with its end), so a timed pause ends by itself at
    ``pausedUntil`` (issue 16)."""
    paused = bool(entry.status.get("pausedSince"))
    cause = entry.status.get("pauseCause")
    if cronjob.suspend and not paused:
        return [Pause(now, PAUSE_CAUSE_CRONJOB)]
    if not cronjob.suspend and paused and cause == PAUSE_CAUSE_CRONJOB:
        held = spec_pause(entry.spec, now)
        resume: list[Input] = [Resume(now, PAUSE_CAUSE_CRONJOB)]
        return resume if held is None else [*resume, held]
    return []


__all__ = [
    "FIELD_MANAGER",
    "MONITOR_ANNOTATION",
    "CronJobInfo",
    "InvalidAnnotation",
    "Owner",
    "build_monitor",
    "desired_spec",
    "monitoring",
]
