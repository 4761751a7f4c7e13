"""What the cluster says about a run: when a Job's Pod started, why it has not, why it failed.

DESIGN 10.1 and 10.8 (issue 12). The monitor's messages quote the cluster rather than
guess: the scheduler's ``Unschedulable`` message, the kubelet's waiting reason and message
with the container's image, the Job controller's ``FailedCreate`` Events and ``Failed``
condition, the CronJob controller's reasons for skipping a slot.

Everything here is pure: Pod, Job, CronJob and core/v1 Event bodies as the API returns
them (plain mappings, camelCase), ``now`` passed in, strings and times out. The reads
that fetch those bodies are in ``podreads.py``; the reconcilers decide when to call.

Every message is at most ``MESSAGE_LIMIT`` bytes of UTF-8: a long scheduler message (one
clause per node group) or an admission webhook's answer is cut at the end, never in the
middle of a character.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from heartbeat_operator.domain.durations import format_duration
from heartbeat_operator.domain.timefmt import (
    TimeFormatError,
    format_clock,
    format_time,
    parse_time,
)

MESSAGE_LIMIT = 1000
"""Bytes of UTF-8 in any message made here: well inside an Event's message (1 KiB is
what ``kubectl get events`` users read) and a ``Healthy`` condition's 32 KiB."""

SCHEDULED_TIMESTAMP_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"

IMAGE_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "RegistryUnavailable",
        "SignatureValidationFailed",
    }
)
"""Waiting reasons the kubelet gives when it cannot get a container's image: the message
names the image (DESIGN 10.1)."""

START_FAILURES = frozenset({"StartError", "ContainerCannotRun", "RunContainerError"})
"""Termination reasons of a container the runtime could not start (an executable not found,
a mount that failed): it never ran (DESIGN 10.1), though the kubelet reports it
``terminated`` with exit code 128 and the zero time (1970) as its ``startedAt``."""

BENIGN_WAITING = frozenset({"ContainerCreating", "PodInitializing"})
"""Waiting reasons of a Pod on its way: named only when nothing says more."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BACKOFF_PREFIX = re.compile(r'^Back-off pulling image "[^"]*"(?::\s*)?')


# --- small readers ------------------------------------------------------------------------


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_time(value)
    except TimeFormatError:
        return None


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Mapping[str, Any]]:
    if not isinstance(value, list | tuple):
        return []
    return [item for item in value if isinstance(item, Mapping)]


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _exit_code(terminated: Mapping[str, Any]) -> int | None:
    code = terminated.get("exitCode")
    if isinstance(code, bool) or not isinstance(code, int):
        return None
    return code


def cut(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` in at most ``limit`` bytes of UTF-8, ending in "…" when cut."""
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text
    marker = "…".encode()
    # errors="ignore" drops a character split by the cut: never half a character.
    return raw[: limit - len(marker)].decode("utf-8", errors="ignore") + "…"


def age(delta: timedelta) -> str:
    """A duration for a human, to the precision that matters: "40s", "31m", "2h5m", "3d4h"."""
    total = int(delta.total_seconds())
    if total < 60:
        return f"{max(total, 0)}s"
    if total < 3600:
        return f"{total // 60}m"
    if total < 86400:
        return format_duration(timedelta(minutes=total // 60))
    return format_duration(timedelta(hours=total // 3600))


def _when(at: datetime, reference: datetime) -> str:
    """A clock time when ``at`` is within a day of ``reference`` (the usual case), else the
    full time: "since 02:00:03 UTC" is ambiguous for a Job stuck for three days."""
    if abs(reference - at) < timedelta(days=1):
        return format_clock(at)
    return format_time(at)


# --- when a Pod started (DESIGN 10.8.2) ------------------------------------------------


def never_ran(terminated: Mapping[str, Any]) -> bool:
    """Whether a ``terminated`` state is a container the runtime could not start: a
    ``START_FAILURES`` reason, or the zero time as its ``startedAt``."""
    if _text(terminated.get("reason")) in START_FAILURES:
        return True
    started = _time(terminated.get("startedAt"))
    return started is not None and started <= _EPOCH


def _container_started_at(status: Mapping[str, Any]) -> datetime | None:
    """The earliest ``startedAt`` of a container: in ``state.running``, ``state.terminated``
    or ``lastState.terminated`` (a restarted container's first run is in ``lastState``);
    never that of a termination that is a failure to start (``never_ran``)."""
    state, last = _map(status.get("state")), _map(status.get("lastState"))
    times = [_time(_map(state.get("running")).get("startedAt"))]
    for terminated in (_map(state.get("terminated")), _map(last.get("terminated"))):
        if not never_ran(terminated):
            times.append(_time(terminated.get("startedAt")))
    found = [t for t in times if t is not None]
    return min(found) if found else None


def _regular_names(pod: Mapping[str, Any]) -> list[str]:
    """Names of the Pod's regular containers (``spec.containers``; never init containers,
    sidecars included: a sidecar is an init container with ``restartPolicy: Always``)."""
    names = [_text(c.get("name")) for c in _list(_map(pod.get("spec")).get("containers"))]
    if not names:
        # A body without spec (trimmed by a caller): its regular containers' statuses.
        statuses = _list(_map(pod.get("status")).get("containerStatuses"))
        names = [_text(c.get("name")) for c in statuses]
    return [n for n in names if n]


def pod_started_at(pod: Mapping[str, Any]) -> datetime | None:
    """The instant by which every regular container of ``pod`` had started; None if one
    never did (DESIGN 10.8.2).

    Per container the earliest ``startedAt`` found in its status; the Pod's start is the
    latest of those. Init and sidecar containers do not count; a regular container that
    crash-loops has started.
    """
    names = _regular_names(pod)
    if not names:
        return None
    statuses = {
        _text(s.get("name")): s for s in _list(_map(pod.get("status")).get("containerStatuses"))
    }
    starts = []
    for name in names:
        status = statuses.get(name)
        started = _container_started_at(status) if status is not None else None
        if started is None:
            return None
        starts.append(started)
    return max(starts)


def job_started_at(pods: Iterable[Mapping[str, Any]]) -> datetime | None:
    """The Job's start: the earliest start of any of its Pods (one run per Job, whatever
    its parallelism or retries); None if no Pod has started."""
    starts = [t for t in (pod_started_at(pod) for pod in pods) if t is not None]
    return min(starts) if starts else None


# --- why a Job's Pod has not run (DESIGN 10.1, 10.8.2, 10.8.3) -------------------------


def _created(obj: Mapping[str, Any]) -> datetime | None:
    return _time(_map(obj.get("metadata")).get("creationTimestamp"))


def _deleted(obj: Mapping[str, Any]) -> bool:
    return bool(_map(obj.get("metadata")).get("deletionTimestamp"))


def pick_pod(pods: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The Pod that tells most: the newest one not being deleted, else the newest one.

    A Job's replacement Pod carries the current state; a Pod being deleted is on its way
    out (the Job controller or a user removed it) and only speaks when nothing else does.
    """
    ranked = sorted(
        pods,
        key=lambda p: (
            not _deleted(p),
            _created(p) or _EPOCH,
            _text(_map(p.get("metadata")).get("name")),
        ),
    )
    return ranked[-1] if ranked else None


def _event_time(event: Mapping[str, Any]) -> datetime:
    """When an Event was last seen: the legacy recorder's ``lastTimestamp``, else the
    events.k8s.io recorder's ``series.lastObservedTime`` or ``eventTime``."""
    for value in (
        event.get("lastTimestamp"),
        _map(event.get("series")).get("lastObservedTime"),
        event.get("eventTime"),
        event.get("firstTimestamp"),
        _map(event.get("metadata")).get("creationTimestamp"),
    ):
        when = _time(value)
        if when is not None:
            return when
    return _EPOCH


def _event_count(event: Mapping[str, Any]) -> int:
    for value in (_map(event.get("series")).get("count"), event.get("count")):
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return 1


def failed_create(events: Iterable[Mapping[str, Any]]) -> str | None:
    """What the Job controller's newest ``FailedCreate`` Event says (quota, admission
    webhooks, a missing ServiceAccount), or None."""
    failures = [e for e in events if e.get("reason") == "FailedCreate"]
    if not failures:
        return None
    newest = max(failures, key=_event_time)
    message = _text(newest.get("message")) or "the Job controller could not create a Pod"
    count = _event_count(newest)
    times = f" ({count} times)" if count > 1 else ""
    return f"no Pod created: FailedCreate{times}: {message}"


def _image_of(pod: Mapping[str, Any], name: str, status: Mapping[str, Any]) -> str:
    """The image as the Pod's spec names it (what the user wrote), else the status's."""
    spec = _map(pod.get("spec"))
    for field in ("initContainers", "containers"):
        for container in _list(spec.get(field)):
            if container.get("name") == name and _text(container.get("image")):
                return _text(container.get("image"))
    return _text(status.get("image")) or "(unknown)"


def _is_sidecar(pod: Mapping[str, Any], name: str) -> bool:
    for container in _list(_map(pod.get("spec")).get("initContainers")):
        if container.get("name") == name:
            return container.get("restartPolicy") == "Always"
    return False


def _container_count(pod: Mapping[str, Any]) -> int:
    spec = _map(pod.get("spec"))
    return len(_list(spec.get("initContainers"))) + len(_list(spec.get("containers")))


def _label(pod: Mapping[str, Any], name: str, init: bool) -> str:
    """ "init container X" always (that it is an init container is news); "container X"
    only when the Pod has more than one container."""
    if init:
        kind = "sidecar container" if _is_sidecar(pod, name) else "init container"
        return f"{kind} {name}"
    if _container_count(pod) > 1:
        return f"container {name}"
    return ""


def _with_label(reason: str, label: str) -> str:
    return f"{reason} ({label})" if label else reason


def _waiting_cause(
    pod: Mapping[str, Any], status: Mapping[str, Any], init: bool
) -> tuple[int, str] | None:
    """(rank, text) for a container that has not started; rank 0 says why, 1 only that it
    is on its way. None: this container tells nothing (or has started)."""
    name = _text(status.get("name"))
    label = _label(pod, name, init)
    state = _map(status.get("state"))
    waiting = state.get("waiting")
    if isinstance(waiting, Mapping):
        reason = _text(waiting.get("reason")) or "Waiting"
        message = _text(waiting.get("message"))
        if reason in IMAGE_REASONS:
            # The kubelet's back-off message repeats the image before the pull's error.
            message = _BACKOFF_PREFIX.sub("", message)
            image = _image_of(pod, name, status)
            head = f"{reason}: image {image}" + (f" ({label})" if label else "")
            return 0, f"{head}: {message}" if message else head
        if reason == "CrashLoopBackOff" and not init and _container_started_at(status):
            return None  # a regular container that crash-loops has started (10.8.2)
        if reason in BENIGN_WAITING:
            return 1, _with_label(reason, label)
        text = _with_label(reason, label)
        if message:
            text = f"{text}: {message}"
        if reason == "CrashLoopBackOff":
            text += _last_exit(status)
        return 0, text
    terminated = state.get("terminated")
    if isinstance(terminated, Mapping) and never_ran(terminated):
        reason = _text(terminated.get("reason")) or "StartError"
        message = _text(terminated.get("message"))
        text = _with_label(reason, label)
        return 0, f"{text}: {message}" if message else text
    if init and isinstance(terminated, Mapping):
        code = _exit_code(terminated)
        if code:
            reason = _text(terminated.get("reason")) or "Error"
            return 0, f"{_with_label(reason, label)}, exit code {code}"
        return None
    if init and isinstance(state.get("running"), Mapping) and not _is_sidecar(pod, name):
        since = _time(_map(state.get("running")).get("startedAt"))
        when = f" since {format_clock(since)}" if since is not None else ""
        return 1, f"PodInitializing: {label} running{when}"
    return None


def _last_exit(status: Mapping[str, Any]) -> str:
    terminated = _map(_map(status.get("lastState")).get("terminated"))
    code = _exit_code(terminated)
    if code is None:
        return ""
    reason = _text(terminated.get("reason")) or "Error"
    restarts = status.get("restartCount")
    tries = f", {restarts} restarts" if isinstance(restarts, int) and restarts > 1 else ""
    return f"; last exit code {code} ({reason}){tries}"


def _pod_detail(pod: Mapping[str, Any]) -> str:
    """The most informative thing the Pod's status says about why it has not run."""
    status = _map(pod.get("status"))
    for condition in _list(status.get("conditions")):
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            reason = _text(condition.get("reason")) or "NotScheduled"
            message = _text(condition.get("message"))
            return f"{reason}: {message}" if message else reason
    found: list[tuple[int, int, str]] = []
    order = 0
    for field, init in (("initContainerStatuses", True), ("containerStatuses", False)):
        for container in _list(status.get(field)):
            cause = _waiting_cause(pod, container, init)
            if cause is not None:
                found.append((cause[0], order, cause[1]))
            order += 1
    causes = sorted(found)
    if causes and causes[0][0] == 0:
        return causes[0][2]
    reason = _text(status.get("reason"))
    if reason:  # a Pod-level verdict: Evicted, UnexpectedAdmissionError, NodeAffinity...
        message = _text(status.get("message"))
        return f"{reason}: {message}" if message else reason
    if causes:
        return causes[0][2]
    if not _text(_map(pod.get("spec")).get("nodeName")):
        return "not scheduled to a node yet"
    return ""


def _pod_cause(pod: Mapping[str, Any], now: datetime) -> str:
    meta = _map(pod.get("metadata"))
    name = _text(meta.get("name")) or "(unnamed)"
    phase = _text(_map(pod.get("status")).get("phase")) or "Pending"
    created = _created(pod)
    head = f"Pod {name} {phase}"
    if phase == "Pending" and created is not None:
        head += f" for {age(now - created)}"
    if _deleted(pod):
        head += " (being deleted)"
    detail = _pod_detail(pod)
    return f"{head}: {detail}" if detail else head


#: What ``not_started_cause`` says when nothing tells more.
NO_POD_YET = "no Pod created yet"


def not_started_cause(
    pods: Sequence[Mapping[str, Any]],
    events: Iterable[Mapping[str, Any]],
    now: datetime,
    *,
    suspended: bool = False,
) -> str:
    """The cluster's words for why a Job's Pod has not run (DESIGN 10.1), for example
    ``Pod nightly-29012-x7k Pending for 31m: ImagePullBackOff: image
    registry.example.com/backup:1.4: ErrImagePull: ...: not found``.

    ``pods`` are the Job's Pods, ``events`` the core/v1 Events about the Job (for its
    ``FailedCreate``), ``suspended`` the Job's ``spec.suspend``. In that order: a suspended
    Job; the newest Pod not being deleted (scheduler, then the kubelet's waiting reasons
    with init containers first, then a Pod-level reason such as Evicted); with none, the
    Job controller's ``FailedCreate``; else a Pod being deleted; else "no Pod created yet".
    """
    if suspended:
        return "Job suspended (queued)"
    pod = pick_pod(pods)
    if pod is None or _deleted(pod):
        said = failed_create(events)
        if said is not None:
            return cut(said)
    if pod is None:
        return NO_POD_YET
    return cut(_pod_cause(pod, now))


def not_started_message(
    job_name: str,
    job_created: datetime | None,
    pods: Sequence[Mapping[str, Any]],
    events: Iterable[Mapping[str, Any]],
    now: datetime,
    suspended: bool = False,
) -> str:
    """The ``NotStarted`` message: "Job nightly-29012 created 02:00:03 UTC; " + the cause."""
    created = f" created {_when(job_created, now)}" if job_created is not None else ""
    cause = not_started_cause(pods, events, now, suspended=suspended)
    return cut(f"Job {job_name}{created}; {cause}")


# --- why a Job failed (DESIGN 10.1) ------------------------------------------------------


def terminations(
    pods: Iterable[Mapping[str, Any]],
) -> Iterable[tuple[datetime, Mapping[str, Any], str, bool, Mapping[str, Any]]]:
    """Every non-zero termination that can fail a Job: (finishedAt, pod, container, init,
    terminated). Not a sidecar's: the kubelet stops sidecars (SIGTERM, exit 143) after
    the main container ended, and their end never fails a Pod (DESIGN 10.8.2: sidecars
    do not count), so the failed container's code is the one reported (DESIGN 4)."""
    for pod in pods:
        status = _map(pod.get("status"))
        for field, init in (("initContainerStatuses", True), ("containerStatuses", False)):
            for container in _list(status.get(field)):
                if init and _is_sidecar(pod, _text(container.get("name"))):
                    continue
                for state_field in ("state", "lastState"):
                    terminated = _map(_map(container.get(state_field)).get("terminated"))
                    if not _exit_code(terminated):
                        continue
                    finished = _time(terminated.get("finishedAt")) or _EPOCH
                    yield finished, pod, _text(container.get("name")), init, terminated


def failing_container(pods: Iterable[Mapping[str, Any]]) -> tuple[str, str] | None:
    """``(pod name, container name)`` of the termination that decided a Job's failure: the
    latest ``finishedAt`` with a non-zero exit code (init containers too). For log capture.

    The termination may be in the container's ``lastState`` (restarted under
    ``restartPolicy: OnFailure``): its log is then the ``previous`` one.
    """
    best: tuple[datetime, str, str] | None = None
    for finished, pod, container, _init, _terminated in terminations(pods):
        if best is None or finished > best[0]:
            best = (finished, _text(_map(pod.get("metadata")).get("name")), container)
    return None if best is None else (best[1], best[2])


def _pod_verdict_time(pod: Mapping[str, Any]) -> datetime:
    """When a Pod-level failure (Evicted) happened: its ``DisruptionTarget`` condition or
    the last container's end, whichever is later (the containers die after the verdict)."""
    status = _map(pod.get("status"))
    times = [
        _time(c.get("lastTransitionTime"))
        for c in _list(status.get("conditions"))
        if c.get("type") in ("DisruptionTarget", "Ready")
    ]
    for field in ("initContainerStatuses", "containerStatuses"):
        for container in _list(status.get(field)):
            terminated = _map(_map(container.get("state")).get("terminated"))
            times.append(_time(terminated.get("finishedAt")))
    found = [t for t in times if t is not None]
    return max(found) if found else (_created(pod) or _EPOCH)


def _failure_detail(pods: Sequence[Mapping[str, Any]]) -> str:
    candidates: list[tuple[datetime, int, str]] = []
    for finished, _pod, container, init, terminated in terminations(pods):
        reason = _text(terminated.get("reason")) or "Error"
        kind = "init container" if init else "container"
        code = _exit_code(terminated)
        candidates.append((finished, 0, f"{kind} {container} {reason} (exit code {code})"))
    for pod in pods:
        status = _map(pod.get("status"))
        reason = _text(status.get("reason"))
        if status.get("phase") == "Failed" and reason:
            name = _text(_map(pod.get("metadata")).get("name"))
            message = _text(status.get("message"))
            text = f"Pod {name} {reason}" + (f": {message}" if message else "")
            # Ranked above its own containers' deaths at the same time: "Evicted" is the
            # why, their exit 137 only the how.
            candidates.append((_pod_verdict_time(pod), 1, text))
    if not candidates:
        return ""
    return max(candidates, key=lambda c: (c[0], c[1]))[2]


def failure_cause(
    pods: Sequence[Mapping[str, Any]],
    job_failure_reason: str | None,
    job_failure_message: str | None,
) -> str:
    """The cause a failed Job's fail ping names (DESIGN 10.1), for example
    ``BackoffLimitExceeded: Job has reached the specified backoff limit; container main
    OOMKilled (exit code 137)``.

    The Job's ``Failed`` condition (``BackoffLimitExceeded``, ``DeadlineExceeded``,
    ``PodFailurePolicy``...) first, then what its Pods say of the latest failure: a
    container's termination reason and exit code (``OOMKilled``, ``Error``...) or a
    Pod-level verdict with its message (``Evicted``). A container's termination message
    is left out: with ``FallbackToLogsOnError`` it holds the job's output, which is only
    captured on request (``--capture-logs``).
    """
    parts = []
    reason = _text(job_failure_reason)
    message = _text(job_failure_message)
    if reason:
        parts.append(f"{reason}: {message}" if message else reason)
    elif message:
        parts.append(message)
    detail = _failure_detail(pods)
    if detail:
        parts.append(detail)
    return cut("; ".join(parts) or "Failed")
