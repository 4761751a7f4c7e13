"""``Record``: everything the state machine keeps, living in ``status`` (DESIGN 9.4).

``Record.to_status()`` gives the record's part of ``status`` in camelCase with the formats
of DESIGN 9.18 (times ``YYYY-MM-DDTHH:MM:SS[.mmm]Z``, durations as seconds, a field with
no value absent — never null, 0 or ""); ``Record.from_status(status)`` reads it back, so
a new leader resumes exactly where the last writer stopped. ``statuses.render_status``
adds ``state``'s conditions, ``nextDueTime``, ``alertTime`` and the token fields.

Machine-internal fields beyond DESIGN section 2's list: ``stateReason``, ``stateMessage``,
``stateSince`` (when ``state`` last changed: the ``Healthy`` condition's transition time),
``failureReason`` (the latest failed slot's reason, restored on resume),
``pauseCause`` and ``runningChangedAt`` (the ``Running`` condition's transition time).

``referenceTime`` is the anchor the next slot is computed from: the latest finishing
ping or start (an early cron ping's tick, fine print 10), the time the monitor became
active, or — after a missed slot — that slot's due time (DESIGN section 2).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from heartbeat_operator.domain.timefmt import TimeFormatError, format_time, parse_time
from heartbeat_operator.domain.vocabulary import State

MAX_OPEN_RUNS = 20
MAX_REPORTED_JOBS = 20
# Jobs whose Pods have not run, per slot (DESIGN 10.8.3); more than a few means a CronJob
# with concurrencyPolicy Allow stacking stuck Jobs: the oldest is judged first anyway.
MAX_PENDING_STARTS = 5
MAX_RECENT_TRANSITIONS = 10
MAX_RECENT_PINGS = 10
RECENT_PING_BODY_BYTES = 256  # DESIGN 9.8
# Messages (transitions, conditions) are cut to this many UTF-8 bytes: with the other caps
# it keeps status, apart from lastOutput, under 16 KiB (DESIGN 9.8; tests/unit/domain).
MAX_MESSAGE_BYTES = 300
# An Event's message (docs/cronjobs.md): the cluster's words whole ("…: not found",
# "4 restarts") where status keeps 300 bytes of them; the API takes 1,024.
MAX_EVENT_MESSAGE_BYTES = 1000

STATES: tuple[State, ...] = tuple(State)


def cut_utf8(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, never splitting a character."""
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text
    return raw[:limit].decode("utf-8", errors="ignore")


_GAP = " ... "


def cut_middle_utf8(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` UTF-8 bytes with its middle taken out: the cluster's
    causes say what first ("ImagePullBackOff") and why last ("…: not found")."""
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text
    half = (limit - len(_GAP)) // 2
    head = raw[:half].decode("utf-8", errors="ignore")
    tail = raw[len(raw) - half :].decode("utf-8", errors="ignore")
    return f"{head}{_GAP}{tail}"


@dataclass(slots=True)
class OpenRun:
    """A started run not finished yet: ``{runId, startTime, dueTime, timedOut,
    maxRuntimeFrom}``.

    ``due`` is the due time of the slot its start opened (DESIGN 10.2, 10.8.5): without
    ``maxRuntime`` the run times out at that slot's ``alertTime``, and a start without run
    id before ``due`` is a retry of this run. None in statuses written before it existed
    (read as the first slot after ``start_time``). ``max_runtime_from``, when set, is
    the spec edit that ``maxRuntime`` counts from instead of the start: the edit would
    otherwise have put the run's deadline behind it (DESIGN 9.19: edits never alert).
    """

    run_id: str | None
    start_time: datetime
    timed_out: bool = False
    due: datetime | None = None
    max_runtime_from: datetime | None = None

    def to_status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"startTime": format_time(self.start_time)}
        if self.run_id is not None:
            out["runId"] = self.run_id
        if self.due is not None:
            out["dueTime"] = format_time(self.due)
        if self.timed_out:
            out["timedOut"] = True
        if self.max_runtime_from is not None:
            out["maxRuntimeFrom"] = format_time(self.max_runtime_from)
        return out


@dataclass(slots=True)
class PendingStart:
    """An auto-wired Job created on time whose Pods have not run: ``pendingStarts[]``
    ``{jobUid, jobName, creationTime, dueTime, cause}`` (DESIGN 10.1, 10.8.3).

    ``due`` is the slot it stands for: that slot is not Late and fails ``NotStarted`` at
    its ``alertTime`` with ``cause`` unless the Job starts first.
    """

    uid: str
    name: str
    created: datetime
    due: datetime
    cause: str

    def to_status(self) -> dict[str, Any]:
        return {
            "jobUid": self.uid,
            "jobName": self.name,
            "creationTime": format_time(self.created),
            "dueTime": format_time(self.due),
            "cause": self.cause,
        }


@dataclass(slots=True)
class ReportedJob:
    """A Job ping already recorded: ``{uid, phase}`` (DESIGN 9.10).

    ``phase`` is ``start``, ``success`` or ``fail``; ``ignored`` marks a Job that started
    before ``activeSince`` (its later pings are ignored too).
    """

    uid: str
    phase: str

    def to_status(self) -> dict[str, Any]:
        return {"uid": self.uid, "phase": self.phase}


@dataclass(slots=True)
class TransitionRecord:
    """One entry of ``recentTransitions``: ``{time, state, reason, message, eventReason}``.

    ``event_reason`` is the Event the transition posts (absent when it posts none, e.g. a
    spec edit): a new leader re-creating Events the writer may not have posted (DESIGN
    9.6) posts exactly the writer's, never one derived after the fact.
    """

    time: datetime
    state: str
    reason: str
    message: str
    event_reason: str | None = None

    def to_status(self) -> dict[str, Any]:
        out = {
            "time": format_time(self.time),
            "state": self.state,
            "reason": self.reason,
            "message": self.message,
        }
        if self.event_reason:
            out["eventReason"] = self.event_reason
        return out


@dataclass(slots=True)
class PingRecord:
    """One entry of ``recentPings`` (body cut to 256 bytes)."""

    time: datetime
    kind: str
    exit_code: int | None = None
    duration_seconds: float | None = None
    run_id: str | None = None
    body: str | None = None

    def to_status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"time": format_time(self.time), "kind": self.kind}
        if self.exit_code is not None:
            out["exitCode"] = self.exit_code
        if self.duration_seconds is not None:
            out["durationSeconds"] = self.duration_seconds
        if self.run_id is not None:
            out["runId"] = self.run_id
        if self.body:
            out["body"] = self.body
        return out


@dataclass(slots=True)
class Output:
    """``lastOutput``: the latest ping that carried a body, whole."""

    time: datetime
    kind: str
    body: str

    def to_status(self) -> dict[str, Any]:
        return {"time": format_time(self.time), "kind": self.kind, "body": self.body}


@dataclass(slots=True)
class Record:
    """The state machine's memory. ``apply`` never mutates a record it is given."""

    active_since: datetime
    reference_time: datetime
    state: str = "New"
    state_reason: str = "AwaitingFirstPing"
    state_message: str = ""
    state_since: datetime | None = None
    paused_since: datetime | None = None
    pause_cause: str | None = None
    paused_until: datetime | None = None
    """When a timed pause ends by itself (``status.pausedUntil``; issue 16 item 1)."""
    failure_reason: str | None = None
    success_streak: int = 0
    consecutive_failures: int = 0
    ping_count: int = 0
    missed_runs: int = 0
    ping_counts: dict[str, int] = field(default_factory=dict)
    last_ping_time: datetime | None = None
    last_success_time: datetime | None = None
    last_failure_time: datetime | None = None
    last_start_time: datetime | None = None
    last_exit_code: int | None = None
    last_duration_seconds: float | None = None
    running_changed_at: datetime | None = None
    open_runs: list[OpenRun] = field(default_factory=list)
    pending_starts: list[PendingStart] = field(default_factory=list)
    skipped_slot: tuple[datetime, str] | None = None
    """Why the CronJob controller made no Job for the slot due at [0] (``skippedSlot``)."""
    reported_jobs: list[ReportedJob] = field(default_factory=list)
    recent_transitions: list[TransitionRecord] = field(default_factory=list)
    recent_pings: list[PingRecord] = field(default_factory=list)
    last_output: Output | None = None

    @classmethod
    def new(cls, active_since: datetime) -> Record:
        """A monitor that became active at ``active_since`` (its creation): state New."""
        return cls(active_since=active_since, reference_time=active_since, state_since=active_since)

    def copy(self) -> Record:
        """A copy safe to change (``apply`` works on one).

        Entries of ``reported_jobs``, ``recent_transitions``, ``recent_pings`` and
        ``last_output`` are never changed in place, so their lists are copied shallowly;
        open runs are (``timed_out``), so they are copied too.
        """
        out = copy.copy(self)
        out.ping_counts = dict(self.ping_counts)
        out.open_runs = [
            OpenRun(r.run_id, r.start_time, r.timed_out, r.due, r.max_runtime_from)
            for r in self.open_runs
        ]
        out.pending_starts = list(self.pending_starts)
        out.reported_jobs = list(self.reported_jobs)
        out.recent_transitions = list(self.recent_transitions)
        out.recent_pings = list(self.recent_pings)
        return out

    @property
    def running(self) -> bool:
        """Whether a started run is open and not judged ``RunTimeout``."""
        return any(not r.timed_out for r in self.open_runs)

    @property
    def last_transition_time(self) -> datetime:
        """The latest transition's time (``activeSince`` if none): inputs clamp to it."""
        if self.recent_transitions:
            return self.recent_transitions[0].time
        return self.active_since

    def to_status(self) -> dict[str, Any]:
        """The record's fields of ``status``, camelCase, unset fields absent."""
        out: dict[str, Any] = {
            "state": self.state,
            "stateReason": self.state_reason,
            "activeSince": format_time(self.active_since),
            "referenceTime": format_time(self.reference_time),
            "successStreak": self.success_streak,
            "consecutiveFailures": self.consecutive_failures,
            "pingCount": self.ping_count,
            "missedRuns": self.missed_runs,
        }
        if self.state_message:
            out["stateMessage"] = self.state_message
        optional_times = {
            "stateSince": self.state_since,
            "pausedSince": self.paused_since,
            "pausedUntil": self.paused_until,
            "lastPingTime": self.last_ping_time,
            "lastSuccessTime": self.last_success_time,
            "lastFailureTime": self.last_failure_time,
            "lastStartTime": self.last_start_time,
            "runningChangedAt": self.running_changed_at,
        }
        for key, value in optional_times.items():
            if value is not None:
                out[key] = format_time(value)
        if self.pause_cause:
            out["pauseCause"] = self.pause_cause
        if self.failure_reason:
            out["failureReason"] = self.failure_reason
        if self.last_exit_code is not None:
            out["lastExitCode"] = self.last_exit_code
        if self.last_duration_seconds is not None:
            out["lastDurationSeconds"] = self.last_duration_seconds
        counts = {k: v for k, v in sorted(self.ping_counts.items()) if v}
        if counts:
            out["pingCounts"] = counts
        if self.open_runs:
            out["openRuns"] = [r.to_status() for r in self.open_runs]
        if self.pending_starts:
            out["pendingStarts"] = [p.to_status() for p in self.pending_starts]
        if self.skipped_slot is not None:
            due, cause = self.skipped_slot
            out["skippedSlot"] = {"dueTime": format_time(due), "cause": cause}
        if self.reported_jobs:
            out["reportedJobs"] = [j.to_status() for j in self.reported_jobs]
        if self.recent_transitions:
            out["recentTransitions"] = [t.to_status() for t in self.recent_transitions]
        if self.recent_pings:
            out["recentPings"] = [p.to_status() for p in self.recent_pings]
        if self.last_output is not None:
            out["lastOutput"] = self.last_output.to_status()
        return out

    @classmethod
    def from_status(
        cls, status: Mapping[str, Any] | None, *, active_since: datetime | None = None
    ) -> Record:
        """Read a record back from ``status``.

        ``active_since`` (the creation time) is used when ``status`` has no
        ``activeSince`` (a monitor never written yet); without either, ``ValueError``.
        Malformed entries are dropped rather than failing the whole record.
        """
        st: Mapping[str, Any] = status or {}
        active = _time(st.get("activeSince")) or active_since
        if active is None:
            raise ValueError("status has no activeSince and no creation time was given")
        if _time(st.get("activeSince")) is None:
            return cls.new(active)
        rec = cls(active_since=active, reference_time=_time(st.get("referenceTime")) or active)
        state = st.get("state")
        rec.state = state if state in STATES else "New"
        rec.paused_since = _time(st.get("pausedSince"))
        if rec.state == "Paused" and rec.paused_since is None:
            # Shown as Paused while the spec could not be evaluated (DESIGN 9.7), never
            # folded as such: the machine's own state is its latest transition's.
            rec.state = "New"
            for item in _items(st.get("recentTransitions"))[:1]:
                if item.get("state") in STATES and item.get("state") != "Paused":
                    rec.state = str(item["state"])
        rec.state_reason = _str(st.get("stateReason")) or _default_reason(rec.state)
        rec.state_message = _str(st.get("stateMessage")) or ""
        rec.state_since = _time(st.get("stateSince"))
        rec.pause_cause = _str(st.get("pauseCause"))
        rec.paused_until = _time(st.get("pausedUntil")) if rec.paused_since else None
        rec.failure_reason = _str(st.get("failureReason"))
        rec.success_streak = _int(st.get("successStreak")) or 0
        rec.consecutive_failures = _int(st.get("consecutiveFailures")) or 0
        rec.ping_count = _int(st.get("pingCount")) or 0
        rec.missed_runs = _int(st.get("missedRuns")) or 0
        counts = st.get("pingCounts")
        if isinstance(counts, Mapping):
            rec.ping_counts = {str(k): v for k, v in counts.items() if _int(v) is not None}
        rec.last_ping_time = _time(st.get("lastPingTime"))
        rec.last_success_time = _time(st.get("lastSuccessTime"))
        rec.last_failure_time = _time(st.get("lastFailureTime"))
        rec.last_start_time = _time(st.get("lastStartTime"))
        rec.last_exit_code = _int(st.get("lastExitCode"))
        rec.last_duration_seconds = _num(st.get("lastDurationSeconds"))
        rec.running_changed_at = _time(st.get("runningChangedAt"))
        for item in _items(st.get("openRuns")):
            start = _time(item.get("startTime"))
            if start is not None:
                rec.open_runs.append(
                    OpenRun(
                        _str(item.get("runId")),
                        start,
                        item.get("timedOut") is True,
                        _time(item.get("dueTime")),
                        _time(item.get("maxRuntimeFrom")),
                    )
                )
        for item in _items(st.get("pendingStarts")):
            created, due = _time(item.get("creationTime")), _time(item.get("dueTime"))
            uid, name = _str(item.get("jobUid")), _str(item.get("jobName"))
            if created is not None and due is not None and uid and name:
                cause = _str(item.get("cause")) or ""
                rec.pending_starts.append(PendingStart(uid, name, created, due, cause))
        skipped = st.get("skippedSlot")
        if isinstance(skipped, Mapping):
            skipped_due, why = _time(skipped.get("dueTime")), _str(skipped.get("cause"))
            if skipped_due is not None and why:
                rec.skipped_slot = (skipped_due, why)
        for item in _items(st.get("reportedJobs")):
            uid, phase = _str(item.get("uid")), _str(item.get("phase"))
            if uid and phase:
                rec.reported_jobs.append(ReportedJob(uid, phase))
        for item in _items(st.get("recentTransitions")):
            t = _time(item.get("time"))
            if t is not None:
                rec.recent_transitions.append(
                    TransitionRecord(
                        t,
                        _str(item.get("state")) or "",
                        _str(item.get("reason")) or "",
                        _str(item.get("message")) or "",
                        _str(item.get("eventReason")),
                    )
                )
        for item in _items(st.get("recentPings")):
            t = _time(item.get("time"))
            if t is not None:
                rec.recent_pings.append(
                    PingRecord(
                        t,
                        _str(item.get("kind")) or "",
                        _int(item.get("exitCode")),
                        _num(item.get("durationSeconds")),
                        _str(item.get("runId")),
                        _str(item.get("body")),
                    )
                )
        out = st.get("lastOutput")
        if isinstance(out, Mapping):
            t = _time(out.get("time"))
            body = _str(out.get("body"))
            if t is not None and body is not None:
                rec.last_output = Output(t, _str(out.get("kind")) or "", body)
        return rec


def _default_reason(state: str) -> str:
    return {"New": "AwaitingFirstPing", "Healthy": "PingReceived", "Paused": "Paused"}.get(
        state, "Late"
    )


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_time(value)
    except TimeFormatError:
        return None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if isinstance(value, float) else value


def _items(value: Any) -> list[Mapping[str, Any]]:
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, Mapping)]
