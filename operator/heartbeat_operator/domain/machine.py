"""The heartbeat state machine: a fold over a ``Record`` (DESIGN section 2, 9.4).

``apply(spec, record, input, now)`` folds one input and returns the new record with the
transitions it made (one per Event to post); ``view(spec, record, now)`` says what the
monitor looks like at ``now`` and when that can next change without new input.

The state is a function of the record's counters and its reference time:

- Paused while ``pausedSince`` is set;
- else the *base* state: Down while ``consecutiveFailures >= failureThreshold`` (and not
  yet left by ``successThreshold`` successes), Grace with the failure's reason while
  ``0 < consecutiveFailures``, Healthy once a run has finished, New before;
- a New or Healthy monitor whose slot is past ``nextDueTime`` is Grace(``Late``) (a
  failure reason outranks ``Late``, fine print 3).

Deadlines (the slot's due time, its alert time, each open run's ``maxRuntime``) are
settled in time order, each at its exact time; an input first settles every deadline
strictly before its own time, so a ping at a deadline is on time (fine print 9, 13).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from heartbeat_operator.domain.durations import format_duration
from heartbeat_operator.domain.inputs import (
    PAUSE_CAUSE_SPEC,
    PAUSE_CAUSE_UNTIL,
    Input,
    JobPending,
    Pause,
    Ping,
    Resume,
    SlotSkipped,
    SpecEdit,
    Tick,
)
from heartbeat_operator.domain.outages import (
    OPERATOR_UNAVAILABLE,
    Outage,
    containing,
    overlapping,
)
from heartbeat_operator.domain.records import (
    MAX_EVENT_MESSAGE_BYTES,
    MAX_MESSAGE_BYTES,
    MAX_OPEN_RUNS,
    MAX_PENDING_STARTS,
    MAX_RECENT_PINGS,
    MAX_RECENT_TRANSITIONS,
    MAX_REPORTED_JOBS,
    RECENT_PING_BODY_BYTES,
    OpenRun,
    Output,
    PendingStart,
    PingRecord,
    Record,
    ReportedJob,
    TransitionRecord,
    cut_middle_utf8,
    cut_utf8,
)
from heartbeat_operator.domain.schedules import Slot
from heartbeat_operator.domain.specs import MonitorSpec
from heartbeat_operator.domain.timefmt import format_local, seconds
from heartbeat_operator.domain.vocabulary import EventType

# Fine print 10: in cron mode a start or finish up to 60 s before a tick counts for it.
EARLY_PING_WINDOW = timedelta(seconds=60)
_EPSILON = timedelta(microseconds=1)

# How many lines of a failure's body go into its Event message, and how long each may be.
_BODY_LINES = 3
# 160: a Job failure's first line ("BackoffLimitExceeded: ...; container main OOMKilled
# (exit code 137)", issue 12) fits whole; the message is cut at 300 bytes anyway.
_BODY_LINE_CHARS = 160

NORMAL = EventType.NORMAL
WARNING = EventType.WARNING


@dataclass(frozen=True, slots=True)
class Transition:
    """A state or reason change (or a failed slot while already Down), at its exact time.

    ``state``/``reason``/``message`` are what the monitor shows after it (``reason`` is the
    ``Healthy`` condition's reason). ``event_reason`` (DESIGN 9.7: ``FirstPing``,
    ``Missed``, ``NeverPinged``, ``NotStarted``, ``Failed``, ``RunTimeout``, ``RanTooFast``,
    ``Recovered``, ``Paused``, ``Resumed``, ``OperatorUnavailable``) and ``event_type``
    (``Normal``/``Warning``) say which Event to post; ``event_reason`` is None for a change
    that posts none: entering Grace for lateness and leaving it with a start or finish
    (DESIGN 10.8.13), a start during the first slot's Late window returning the monitor to
    New, a spec edit. The same transition is already prepended to
    ``record.recent_transitions``.
    """

    time: datetime
    state: str
    reason: str
    message: str
    event_reason: str | None
    event_type: str


@dataclass(frozen=True, slots=True)
class View:
    """The monitor at one instant.

    ``next_due_time``/``alert_time`` are None while paused (or if the schedule never fires
    again); ``next_change_at`` is the next instant the view can change with no new input
    (the leader sleeps until then, then applies ``Tick``), None if never.
    ``running`` is the ``Running`` condition.
    """

    state: str
    reason: str
    message: str
    next_due_time: datetime | None
    alert_time: datetime | None
    next_change_at: datetime | None
    running: bool


@dataclass(frozen=True, slots=True)
class _Deadline:
    time: datetime
    # 0 late, 1 missed, 2 run timeout: ties settle in this order, except that a run timeout
    # at a slot's alertTime is that slot's one failure (order 1 with both set, DESIGN 10.3).
    order: int
    slot: Slot | None = None
    run: OpenRun | None = None


# --------------------------------------------------------------------------- entry points


def apply(
    spec: MonitorSpec,
    record: Record,
    input: Input,
    now: datetime,
    *,
    outages: Sequence[Outage] = (),
) -> tuple[Record, list[Transition]]:
    """Fold one input into a copy of ``record``; return it and the transitions made.

    Every input first settles the deadlines strictly before its time (like ``Tick``): a
    ping, pause or resume at the same instant as a deadline is applied first. An input
    time earlier than the record's latest transition is clamped to it (DESIGN 9.3).
    ``now`` is the caller's clock, part of the DESIGN 9.4 signature; the machine itself
    reads times only from inputs, so a fold is the same whenever it is computed.
    ``SpecEdit`` is folded with the *new* spec (it settles nothing: deadlines of the old
    spec are the leader's to settle before; the edit itself never alerts).
    ``outages``: the operator's own known outages (``domain.outages``, DESIGN 10.5): a
    deadline they cover is judged ``OperatorUnavailable`` instead of failing.
    """
    del now  # the input's own time rules (DESIGN 9.3); see the docstring
    rec = record.copy()
    out: list[Transition] = []
    at = max(input.time, rec.last_transition_time)
    if isinstance(input, SpecEdit):
        _spec_edit(spec, rec, input, at, out)
        return rec, out
    _settle(spec, rec, at, out, outages)
    if isinstance(input, Ping):
        _ping(spec, rec, input, at, out)
    elif isinstance(input, JobPending):
        _job_pending(spec, rec, input, at, out)
    elif isinstance(input, SlotSkipped):
        _slot_skipped(rec, input)
    elif isinstance(input, Pause):
        _pause(spec, rec, input, at, out)
    elif isinstance(input, Resume):
        _resume(spec, rec, input, at, out)
    else:
        assert isinstance(input, Tick)
    return rec, out


def view(
    spec: MonitorSpec, record: Record, now: datetime, *, outages: Sequence[Outage] = ()
) -> View:
    """The monitor at ``now``: deadlines before ``now`` that ``record`` has not settled yet
    are settled on a copy first, so the answer never depends on when the last Tick ran.

    If ``record`` is behind (it has such a deadline), ``next_change_at`` is the earliest
    of them — in the past: the leader must apply ``Tick`` and write now.
    """
    if record.paused_since is None:
        slot = spec.slots.next_slot(record.reference_time)
        deadline = _next_deadline(spec, record, slot, outages)
        if deadline is not None and deadline.time < now:
            rec = record.copy()
            _settle(spec, rec, now, [], outages)
            return replace(describe(spec, rec), next_change_at=deadline.time)
        return _describe(spec, record, slot, deadline)
    if record.paused_until is not None and record.paused_until < now:
        # A timed pause that has ended (issue 16 item 1): wake now, at its end.
        rec = record.copy()
        _settle(spec, rec, now, [], outages)
        return replace(describe(spec, rec), next_change_at=record.paused_until)
    return describe(spec, record)


def describe(spec: MonitorSpec, record: Record) -> View:
    """The record exactly as it stands, nothing settled (``statuses.render_status`` uses
    this, so a status shows what its record says; ``next_change_at`` may be past)."""
    if record.paused_since is not None:
        # A timed pause changes by itself when it ends (issue 16 item 1); others never.
        return View(
            record.state,
            record.state_reason,
            record.state_message,
            None,
            None,
            record.paused_until,
            False,
        )
    slot = spec.slots.next_slot(record.reference_time)
    return _describe(spec, record, slot, _next_deadline(spec, record, slot))


def _describe(
    spec: MonitorSpec, rec: Record, slot: Slot | None, deadline: _Deadline | None
) -> View:
    if rec.paused_since is not None:  # pragma: no cover - callers check
        return View(rec.state, rec.state_reason, rec.state_message, None, None, None, False)
    message = rec.state_message or _awaiting_message(spec, rec, slot)
    return View(
        state=rec.state,
        reason=rec.state_reason,
        message=message,
        next_due_time=slot.due if slot is not None else None,
        alert_time=slot.alert(spec.grace) if slot is not None else None,
        next_change_at=deadline.time if deadline is not None else None,
        running=rec.running,
    )


# --------------------------------------------------------------------------- deadlines


def _next_deadline(
    spec: MonitorSpec, rec: Record, slot: Slot | None, outages: Sequence[Outage] = ()
) -> _Deadline | None:
    if rec.paused_since is not None:
        return None
    best: _Deadline | None = None
    if slot is not None:
        # DESIGN 10.8.3: a slot whose Job exists but has not started is not Late; nor is
        # one whose due time fell in an outage of ours (DESIGN 10.5: our downtime is not
        # the job's lateness; docs/decisions.md).
        if (
            rec.state in ("New", "Healthy")
            and _pending_for(rec, slot) is None
            and containing(outages, slot.due) is None
        ):
            best = _Deadline(slot.due, 0, slot=slot)
        else:
            best = _Deadline(slot.alert(spec.grace), 1, slot=slot)
    for run in rec.open_runs:
        if run.timed_out:
            continue
        t = run_deadline(spec, run)
        if t is None:
            continue
        if best is None or t < best.time:
            best = _Deadline(t, 2, run=run)
        elif best.order == 1 and best.run is None and t == best.time:
            best = _Deadline(t, 1, slot=best.slot, run=run)
    return best


def run_deadline(spec: MonitorSpec, run: OpenRun) -> datetime | None:
    """When ``run`` times out (DESIGN 10.2, 10.8.5): ``maxRuntime`` after its start when
    the spec sets one, else the ``alertTime`` of the slot its start opened (so a run that
    never finishes always fails, by the second slot's ``alertTime`` at the latest)."""
    if spec.max_runtime is not None:
        return (run.max_runtime_from or run.start_time) + spec.max_runtime
    if run.due is not None:
        slot = spec.slots.slot_due_at(run.due)
    else:  # a status written before openRuns had dueTime
        slot = spec.slots.next_slot(run.start_time)
    return slot.alert(spec.grace) if slot is not None else None


def _pending_for(rec: Record, slot: Slot) -> PendingStart | None:
    for pending in rec.pending_starts:
        if pending.due == slot.due:
            return pending
    return None


def _settle(
    spec: MonitorSpec,
    rec: Record,
    until: datetime,
    out: list[Transition],
    outages: Sequence[Outage] = (),
) -> None:
    """Fire every deadline strictly before ``until``, in time order.

    A timed pause that ends before ``until`` resumes at its end (issue 16 item 1); the
    slots after it are then settled as after any resume.
    """
    while True:
        if rec.paused_since is not None:
            end = rec.paused_until
            if end is None or end >= until:
                return
            resume_at = max(end, rec.last_transition_time)
            _resume(spec, rec, Resume(resume_at, PAUSE_CAUSE_UNTIL), resume_at, out)
            continue
        slot = spec.slots.next_slot(rec.reference_time) if rec.paused_since is None else None
        deadline = _next_deadline(spec, rec, slot, outages)
        if deadline is None or deadline.time >= until:
            return
        at = max(deadline.time, rec.last_transition_time)
        if deadline.order == 0:
            assert deadline.slot is not None
            _go_late(spec, rec, deadline.slot, at, out)
        elif _operator_unavailable(spec, rec, deadline, at, out, outages):
            pass
        elif deadline.order == 1 and deadline.run is not None:
            assert deadline.slot is not None
            _time_out(spec, rec, deadline.run, at, out, slot=deadline.slot)
        elif deadline.order == 1:
            assert deadline.slot is not None
            _miss(spec, rec, deadline.slot, at, out)
        else:
            assert deadline.run is not None
            _time_out(spec, rec, deadline.run, at, out)


def _go_late(
    spec: MonitorSpec, rec: Record, slot: Slot, at: datetime, out: list[Transition]
) -> None:
    message = (
        f"{_since(spec, rec)}; expected by {_at(spec, slot.due)} + grace "
        f"{format_duration(spec.grace)} (missed after {_at(spec, slot.alert(spec.grace))})"
    )
    # DESIGN 10.8.13: a slot whose start or finish arrives within grace posts neither
    # `Late` nor `Recovered`. Whether it will is unknown at the due time, so this
    # transition posts nothing now (state Grace, reason Late, HeartbeatMonitorLate); a
    # slot that stays silent posts its `Late` with its Warning at alertTime
    # (engine.folding, docs/decisions.md).
    _transition(rec, out, at, "Grace", "Late", message, None, NORMAL)


def _miss(spec: MonitorSpec, rec: Record, slot: Slot, at: datetime, out: list[Transition]) -> None:
    pending = _pending_for(rec, slot)
    skipped = _end_slot(rec, slot)
    rec.missed_runs += 1
    if pending is not None:
        # DESIGN 10.1, 10.8.4: the slot's Job never ran; never replaced by NeverPinged.
        _report_job(rec, pending.uid, JUDGED_NOT_STARTED)
        message = pending.cause or (
            f"Job {pending.name} created {_at(spec, pending.created)}; no Pod of it has started"
        )
        _fail_slot(spec, rec, at, "NotStarted", message, out)
        return
    # DESIGN 10.1: a slot the CronJob controller made no Job for keeps reason Missed
    # (the job exists and is held back, e.g. behind a Job that never started).
    reason = "Missed" if _ever_pinged(rec) or skipped else "NeverPinged"
    message = (
        f"{_since(spec, rec)}; expected by {_at(spec, slot.due)} "
        f"+ grace {format_duration(spec.grace)}"
    )
    _fail_slot(spec, rec, at, reason, message, out, skipped)


def _end_slot(rec: Record, slot: Slot) -> str:
    """A slot judged failed at its ``alertTime``: the next one is due one period (or the
    next tick) after its due time (DESIGN section 2); what the cluster said of it goes.
    Returns why the CronJob controller skipped it, if it said (DESIGN 10.8.7)."""
    rec.reference_time = max(rec.reference_time, slot.due)
    rec.pending_starts = [p for p in rec.pending_starts if p.due > slot.due]
    skipped = rec.skipped_slot
    if skipped is not None and skipped[0] <= slot.due:
        rec.skipped_slot = None
        if skipped[0] == slot.due:
            return skipped[1]
    return ""


def _operator_unavailable(
    spec: MonitorSpec,
    rec: Record,
    deadline: _Deadline,
    at: datetime,
    out: list[Transition],
    outages: Sequence[Outage],
) -> bool:
    """DESIGN 10.5, 10.8.9: a slot with no ping whose window (``nextDueTime`` to
    ``alertTime``) overlaps an outage of ours by at least 10 s, or a run whose deadline
    fell in one, is judged ``OperatorUnavailable``: no failure, no success, no missed run;
    the next slot counts as usual. An auto-wired Job that exists is still judged from
    its objects (``NotStarted``). One Event per outage: a further slot judged in the same
    outage changes the state if it must, without an Event. Returns False if no outage
    covers ``deadline`` (it is judged as usual)."""
    if not outages:
        return False
    slot, run = deadline.slot, deadline.run
    outage: Outage | None = None
    if run is not None:
        outage = containing(outages, deadline.time)
    if outage is None and slot is not None and deadline.order == 1:
        if run is None and _pending_for(rec, slot) is not None:
            return False  # DESIGN 10.8.9: a Job that exists is judged from its objects
        outage = overlapping(outages, slot.due, slot.alert(spec.grace))
    if outage is None:
        return False
    if run is not None:
        was_running = rec.running
        run.timed_out = True  # its finish may have been lost with us: it ends uncounted
        if was_running and not rec.running:
            rec.running_changed_at = at
    if slot is not None and deadline.order == 1:
        _end_slot(rec, slot)
    if run is not None:
        rid = f" (rid {run.run_id})" if run.run_id else ""
        started = _at(spec, run.start_time)
        what = f"run started at {started}{rid}, due to finish by {_at(spec, deadline.time)}"
    else:
        assert slot is not None
        what = f"run expected by {_at(spec, slot.due)} + grace {format_duration(spec.grace)}"
    message = (
        f"{what}: not counted, the operator was unavailable from {_at(spec, outage.start)} "
        f"to {_at(spec, outage.end)} ({format_duration(_whole_seconds(outage.duration))}); "
        f"{_next_expected(spec, rec)}"
    )
    reported = any(
        t.event_reason == OPERATOR_UNAVAILABLE and t.time >= outage.start
        for t in rec.recent_transitions
    )
    state, _ = _base_state(spec, rec)
    event = None if reported else OPERATOR_UNAVAILABLE
    _transition(
        rec, out, at, state, OPERATOR_UNAVAILABLE, message, event, NORMAL, force=not reported
    )
    return True


def _whole_seconds(value: timedelta) -> timedelta:
    return timedelta(seconds=max(1, round(value.total_seconds())))


def _time_out(
    spec: MonitorSpec,
    rec: Record,
    run: OpenRun,
    at: datetime,
    out: list[Transition],
    *,
    slot: Slot | None = None,
) -> None:
    """``run`` did not finish by its deadline. With ``slot``, the deadline is also that
    slot's ``alertTime``: one failure, ``RunTimeout``, and the next slot counts from the
    missed one's due time, as for ``Missed`` (DESIGN 10.3, 10.8.7). That slot got no
    start of its own, so it is also one of ``missedRuns``."""
    was_running = rec.running
    run.timed_out = True
    if was_running and not rec.running:
        rec.running_changed_at = at
    skipped = ""
    if slot is not None:
        skipped = _end_slot(rec, slot)
        rec.missed_runs += 1
    rid = f" (rid {run.run_id})" if run.run_id else ""
    started = _at(spec, run.start_time)
    if spec.max_runtime is not None:
        message = (
            f"run started at {started}{rid} did not finish within "
            f"maxRuntime {format_duration(spec.max_runtime)}"
        )
        if run.max_runtime_from is not None:
            message += f" of the spec edit at {_at(spec, run.max_runtime_from)}"
    else:
        message = f"run started at {started}{rid}, not finished by {_at(spec, at)}"
        finished = [t for t in (rec.last_success_time, rec.last_failure_time) if t]
        if run.run_id is None and finished and max(finished) > run.start_time:
            # DESIGN 10.8.6: without run ids, overlapping runs cannot be told apart.
            message += (
                f"; a later run finished at {_at(spec, max(finished))}: overlapping runs "
                "must send ?rid= to be told apart"
            )
    _fail_slot(spec, rec, at, "RunTimeout", message, out, skipped)


# --------------------------------------------------------------------------- inputs


def _ping(spec: MonitorSpec, rec: Record, ping: Ping, at: datetime, out: list[Transition]) -> None:
    if ping.job is not None and not _admit_job(rec, ping):
        return
    judged = False
    if ping.job is not None:
        uid = ping.job[0]
        judged = any(j.uid == uid and j.phase == JUDGED_NOT_STARTED for j in rec.reported_jobs)
        rec.pending_starts = [p for p in rec.pending_starts if p.uid != uid]
    paused = rec.paused_since is not None
    run: OpenRun | None = None
    duration: timedelta | None = None
    if ping.finishes and not paused:
        run = _close_run(rec, ping.run_id)
        if run is not None:
            duration = max(at - run.start_time, timedelta(0))
    _record_ping(rec, ping, at, duration)
    if paused or ping.kind == "log":
        return  # fine print 8: recorded, changes nothing else; a log ping changes nothing
    if judged and ping.not_started:
        return  # its slot already failed NotStarted: one failure per Job
    if ping.kind == "start":
        _start(spec, rec, ping, at, out)
    else:
        _finish(spec, rec, ping, at, run, duration, out)


JUDGED_NOT_STARTED = "notstarted"
"""``reportedJobs`` phase of a Job whose slot was judged ``NotStarted`` (its own failure
later, still before any start, is recorded and counts nothing more)."""


def _job_pending(
    spec: MonitorSpec, rec: Record, job: JobPending, at: datetime, out: list[Transition]
) -> None:
    """DESIGN 10.8.3: a Job created on time for the slot expected is a pending start."""
    for i, pending in enumerate(rec.pending_starts):
        if pending.uid == job.uid:
            if job.cause and job.cause != pending.cause:
                rec.pending_starts[i] = replace(pending, cause=_cause(job.cause))
            return
    if any(j.uid == job.uid for j in rec.reported_jobs):
        return
    if job_predates(job.created, None, rec.active_since):
        _report_job(rec, job.uid, "ignored")
        return
    _report_job(rec, job.uid, "pending")
    if rec.paused_since is not None:
        return
    slot = spec.slots.next_slot(rec.reference_time)
    if slot is None or not _created_on_time(spec, rec, job, slot):
        return
    cause = _cause(job.cause)
    rec.pending_starts.append(PendingStart(job.uid, job.name, job.created, slot.due, cause))
    del rec.pending_starts[:-MAX_PENDING_STARTS]
    # DESIGN 10.8.3: while the slot's Job exists and has not started, the slot is not
    # Late. A Job the CronJob controller made later than the leader waited for it (a busy
    # controller at midnight) ends a lateness already entered.
    created = f"Job {job.name} created {_at(spec, job.created)}, waiting for its Pod to start"
    _end_lateness(spec, rec, at, created, out)


def _created_on_time(spec: MonitorSpec, rec: Record, job: JobPending, slot: Slot) -> bool:
    """Whether ``job`` was made for ``slot``: scheduled for its tick, or created in its
    window (cron: from 60 s before its tick, fine print 10; period: after the last run)."""
    if job.created > slot.alert(spec.grace):
        return False
    if job.scheduled_time is not None:
        return job.scheduled_time == slot.due
    if spec.is_cron:
        return job.created >= slot.due - EARLY_PING_WINDOW
    return job.created > rec.reference_time


def _slot_skipped(rec: Record, skipped: SlotSkipped) -> None:
    """Why the CronJob controller made no Job for the slot due at ``skipped.due``; its
    failure's message adds it (DESIGN 10.1, 10.8.7)."""
    if skipped.due > rec.reference_time:
        rec.skipped_slot = (skipped.due, _cause(skipped.cause))


def _cause(text: str) -> str:
    """A cause as status keeps it: no longer than the message it will end up in, its
    start and its end kept."""
    return cut_middle_utf8(text, MAX_MESSAGE_BYTES)


def job_predates(
    created: datetime | None, started: datetime | None, active_since: datetime
) -> bool:
    """Whether a Job is older than its monitor's ``activeSince`` (DESIGN 9.10: ignored, so
    annotating a CronJob whose old Jobs failed does not alert).

    A Job created at or after ``activeSince`` is a run of the monitor's, whatever its start
    says: that start is a container's ``startedAt`` (DESIGN 10.8.2), written by the kubelet
    from its Node's clock, and a Node a few seconds behind the API server put the start of
    a Job created right after the monitor's ``Ready`` before ``activeSince``: it was
    ignored, never counted, and the monitor later reported ``NeverPinged`` (the examples'
    recording; docs/decisions.md). The start is then clamped to ``activeSince`` (9.3). A
    Job created earlier (or of unknown creation) is old when it began before: its start,
    or while it has not started, its creation.
    """
    if created is not None and created >= active_since:
        return False
    began = started if started is not None else created
    return began is not None and began < active_since


def _admit_job(rec: Record, ping: Ping) -> bool:
    """DESIGN 9.10: each Job ping exactly once; old Jobs ignored."""
    assert ping.job is not None
    uid, phase = ping.job
    listed = [j.phase for j in rec.reported_jobs if j.uid == uid]
    if phase in listed or "ignored" in listed:
        return False
    if phase == "start" and job_predates(ping.job_created, ping.time, rec.active_since):
        _report_job(rec, uid, "ignored")
        return False
    if phase != "start" and not listed and ping.time < rec.reference_time:
        return False
    _report_job(rec, uid, phase)
    return True


def _report_job(rec: Record, uid: str, phase: str) -> None:
    rec.reported_jobs.append(ReportedJob(uid, phase))
    del rec.reported_jobs[:-MAX_REPORTED_JOBS]


def record_ping_only(record: Record, ping: Ping) -> Record:
    """Record a ping on a monitor whose spec cannot be evaluated: counted, never judged.

    A 200 always counts (DESIGN 2: ``pingCount``); nothing alerts on an invalid spec.
    """
    rec = record.copy()
    _record_ping(rec, ping, ping.time, None)
    return rec


def _record_ping(rec: Record, ping: Ping, at: datetime, duration: timedelta | None) -> None:
    rec.ping_count += 1
    # The plain string: it becomes a JSON object key, and orjson takes only exact str keys
    # (a PingKind member is a str subclass; issue 14 item 4).
    kind = str(ping.kind)
    rec.ping_counts[kind] = rec.ping_counts.get(kind, 0) + 1
    rec.last_ping_time = at
    body = ping.body or None
    rec.recent_pings.insert(
        0,
        PingRecord(
            time=at,
            kind=ping.kind,
            exit_code=ping.exit_code,
            duration_seconds=seconds(duration) if duration is not None else None,
            run_id=ping.run_id,
            body=cut_utf8(body, RECENT_PING_BODY_BYTES) if body else None,
        ),
    )
    del rec.recent_pings[MAX_RECENT_PINGS:]
    if body:
        rec.last_output = Output(at, ping.kind, body)


def _close_run(rec: Record, run_id: str | None) -> OpenRun | None:
    """Fine print 5: by id, else the most recent open run of any kind."""
    if not rec.open_runs:
        return None
    if run_id is not None:
        for i, run in enumerate(rec.open_runs):
            if run.run_id == run_id:
                return rec.open_runs.pop(i)
        return None
    latest = max(range(len(rec.open_runs)), key=lambda i: rec.open_runs[i].start_time)
    return rec.open_runs.pop(latest)


def _anchor(spec: MonitorSpec, rec: Record, at: datetime, run: OpenRun | None = None) -> datetime:
    """The reference time a start or finish at ``at`` gives (fine print 10: early pings).

    Only the slot currently expected can be pinged early: a ping at or after its due time
    is that slot's run, even when the following tick is less than 60 s away (an
    every-minute schedule would otherwise skip a slot per ping). Nor is a finish that
    closes an open ``run``: it ends that run, whose start already said which slot it is
    for (an hourly job started at 01:00 and done at 01:59:30 did not run for 02:00; a
    start that was itself early moved the reference time to its tick already).
    """
    current = spec.slots.next_slot(rec.reference_time) if spec.is_cron else None
    if run is not None or current is None or not at < current.due <= at + EARLY_PING_WINDOW:
        return at
    return current.due


def _start(spec: MonitorSpec, rec: Record, ping: Ping, at: datetime, out: list[Transition]) -> None:
    ref = _anchor(spec, rec, at)
    if ping.scheduled_time is not None:
        # DESIGN 9.10: a Job's start counts for the slot it was scheduled for, if that
        # slot is not over (else for the current one).
        named = spec.slots.next_slot(ping.scheduled_time - _EPSILON)
        if named is not None and named.due == ping.scheduled_time:
            if named.due > rec.reference_time and at <= named.alert(spec.grace):
                ref = named.due
            else:
                # DESIGN 10.8.3: a start after its slot is over is an ordinary start at its
                # own time; it does not fulfil the next slot, not even when that slot's
                # tick is less than 60 s away (fine print 10 is for runners' clocks).
                ref = at
    rec.reference_time = max(rec.reference_time, ref)
    was_running = rec.running
    # Fine print 5 and 13, DESIGN 10.2 and 10.8.5: a start replaces an open run with the
    # same id; without an id, only an open run without id that began in the same slot (a
    # retry: the start comes before the due time of the slot that run opened), whose
    # deadline it inherits so retries never extend it. A start for a later slot leaves the
    # earlier run open, to time out.
    slot = spec.slots.next_slot(rec.reference_time)
    due = slot.due if slot is not None else None
    kept: list[OpenRun] = []
    for run in rec.open_runs:
        if ping.run_id is not None and run.run_id == ping.run_id:
            continue
        if ping.run_id is None and run.run_id is None:
            run_due = run.due if run.due is not None else _first_due_after(spec, run.start_time)
            if run_due is not None and ref < run_due:
                due = run_due if due is None else min(due, run_due)
                continue
        kept.append(run)
    kept.append(OpenRun(ping.run_id, at, due=due))
    while len(kept) > MAX_OPEN_RUNS:  # 10.8.6: the oldest timed-out run goes first
        oldest = next((i for i, r in enumerate(kept) if r.timed_out), 0)
        del kept[oldest]
    rec.open_runs = kept
    rec.last_start_time = at
    if not was_running:
        rec.running_changed_at = at
    started = f"run started at {_at(spec, at)}"
    if _base_state(spec, rec)[0] == "New":
        started += "; the first run has begun, awaiting its finish"
    elif (rec.state, rec.state_reason) == ("Healthy", "PingReceived"):
        _restate(rec, f"{started}; {_next_expected(spec, rec)}")
    _end_lateness(spec, rec, at, started, out)


def _end_lateness(
    spec: MonitorSpec, rec: Record, at: datetime, what: str, out: list[Transition]
) -> None:
    """The slot the monitor was late for is no longer pending (a start or finish moved
    the reference time past it, or its Job turned up, 10.8.3): back to the state the
    counters give, without an Event (DESIGN 10.8.13). ``what`` says why."""
    if rec.state != "Grace" or rec.state_reason != "Late":
        return
    state, reason = _base_state(spec, rec)
    if state == "New":
        # Fine print 13: a start in the first slot's Late window returns to New.
        _transition(rec, out, at, "New", "AwaitingFirstPing", what, None, NORMAL)
    else:
        _transition(
            rec, out, at, state, reason, f"{what}; {_next_expected(spec, rec)}", None, NORMAL
        )


def _finish(
    spec: MonitorSpec,
    rec: Record,
    ping: Ping,
    at: datetime,
    run: OpenRun | None,
    duration: timedelta | None,
    out: list[Transition],
) -> None:
    failure: str | None = "Failed" if ping.failed else None
    if ping.not_started:
        failure = "NotStarted"
    if (
        failure is None
        and spec.min_runtime is not None
        and duration is not None
        and duration < spec.min_runtime
    ):
        failure = "RanTooFast"
    rec.reference_time = max(rec.reference_time, _anchor(spec, rec, at, run))
    first = rec.last_success_time is None and rec.last_failure_time is None
    rec.last_exit_code = ping.exit_code
    rec.last_duration_seconds = seconds(duration) if duration is not None else None
    if failure is None:
        rec.last_success_time = at
    else:
        rec.last_failure_time = at
    if run is not None and run.timed_out:
        # Fine print 6 and 13: a late finish is recorded and changes no count; but like
        # any finish it moves the reference time, so a slot it was late for is no longer
        # pending (the next slot is due after it, section 2).
        late = f"late finish at {_at(spec, at)} of a run already judged RunTimeout"
        _end_lateness(spec, rec, at, late, out)
        return
    if run is not None and not rec.running:
        rec.running_changed_at = at
    if failure is None:
        _succeed(spec, rec, at, duration, out, first=first)
        return
    if failure == "NotStarted":
        # DESIGN 10.8.3: a Job that ended before any container ran; counted like Missed.
        rec.missed_runs += 1
        _fail_slot(spec, rec, at, failure, ping.body or "the Job ended before its Pod ran", out)
        return
    if failure == "RanTooFast":
        assert spec.min_runtime is not None and duration is not None
        message = (
            f"run finished in {_human_seconds(duration)}, faster than minRuntime "
            f"{format_duration(spec.min_runtime)}"
        )
        _fail_slot(spec, rec, at, failure, message, out)
        return
    _fail_slot(spec, rec, at, failure, _failure_message(spec, ping, at), out, _output_excerpt(ping))


def _succeed(
    spec: MonitorSpec,
    rec: Record,
    at: datetime,
    duration: timedelta | None,
    out: list[Transition],
    *,
    first: bool = False,
) -> None:
    """A success. ``first``: no run had finished before it (the base state was New)."""
    late = rec.state == "Grace" and rec.state_reason == "Late"
    rec.success_streak += 1
    took = f" in {_human_seconds(duration)}" if duration is not None else ""
    what = f"success at {_at(spec, at)}{took}"
    if rec.state == "Down":
        if rec.success_streak < spec.success_threshold:
            return  # fine print 7: leaving Down takes successThreshold successes
        rec.consecutive_failures = 0
        message = (
            f"{what}; {rec.success_streak} of successThreshold {spec.success_threshold}; "
            f"{_next_expected(spec, rec)}"
        )
        _transition(rec, out, at, "Healthy", "PingReceived", message, "Recovered", NORMAL)
        return
    rec.consecutive_failures = 0
    message = f"{what}; {_next_expected(spec, rec)}"
    if rec.state == "New" or (late and first):
        # A first-ever success within grace is still the first ping (DESIGN 9.7, 10.8.13).
        _transition(rec, out, at, "Healthy", "PingReceived", message, "FirstPing", NORMAL)
    elif late:
        # DESIGN 10.8.13: a finish within grace ends lateness without a `Recovered`.
        _transition(rec, out, at, "Healthy", "PingReceived", message, None, NORMAL)
    elif rec.state != "Healthy":
        _transition(rec, out, at, "Healthy", "PingReceived", message, "Recovered", NORMAL)
    elif rec.state_reason != "PingReceived":
        # After a slot judged OperatorUnavailable (DESIGN 10.5): the reason says a run
        # succeeded again; no Event, nothing recovered.
        _transition(rec, out, at, "Healthy", "PingReceived", message, None, NORMAL)
    else:
        _restate(rec, message)


def _fail_slot(
    spec: MonitorSpec,
    rec: Record,
    at: datetime,
    reason: str,
    message: str,
    out: list[Transition],
    detail: str = "",
) -> None:
    """A slot counted as failed: one Warning Event, also while already Down (DESIGN 9.7).

    ``detail`` (a failure's first output lines) goes last, so cutting a long message
    never loses the "n of failureThreshold" count.
    """
    rec.consecutive_failures += 1
    rec.success_streak = 0
    rec.failure_reason = reason
    state = "Down" if rec.consecutive_failures >= spec.failure_threshold else "Grace"
    if rec.state == "Down":
        state = "Down"  # leaving Down takes successes, not edits or counters
    counted = f"{rec.consecutive_failures} of failureThreshold {spec.failure_threshold}"

    def within(limit: int) -> str:
        room = limit - len(counted.encode("utf-8")) - 2
        return f"{cut_middle_utf8(message, room)}; {counted}" + (f"; {detail}" if detail else "")

    kept, said = within(MAX_MESSAGE_BYTES), within(MAX_EVENT_MESSAGE_BYTES)
    _transition(rec, out, at, state, reason, kept, reason, WARNING, force=True, said=said)


def _pause(
    spec: MonitorSpec, rec: Record, pause: Pause, at: datetime, out: list[Transition]
) -> None:
    if rec.paused_since is not None:
        if _spec_pause(rec.pause_cause) and _spec_pause(pause.cause):
            # The spec now pauses differently (for longer, shorter, or with no end): the
            # monitor stays Paused, so no Event; the message says until when.
            rec.pause_cause = pause.cause
            rec.paused_until = pause.until
            rec.state_message = cut_utf8(_pause_message(spec, pause), MAX_MESSAGE_BYTES)
        return
    was_running = rec.running
    rec.paused_since = at
    rec.pause_cause = pause.cause
    rec.paused_until = pause.until
    rec.open_runs = []  # fine print 8: pausing forgets open runs
    rec.pending_starts = []
    rec.skipped_slot = None
    if was_running:
        rec.running_changed_at = at
    _transition(rec, out, at, "Paused", "Paused", _pause_message(spec, pause), "Paused", NORMAL)


def _spec_pause(cause: str | None) -> bool:
    """Whether a pause comes from the monitor's spec (not from its CronJob's suspend)."""
    return cause in (None, PAUSE_CAUSE_SPEC, PAUSE_CAUSE_UNTIL)


def _pause_message(spec: MonitorSpec, pause: Pause) -> str:
    if pause.until is not None:
        return (
            f"paused by {pause.cause} until {format_local(pause.until, spec.zone)}; "
            "pings are recorded but change no state"
        )
    return f"paused by {pause.cause}; pings are recorded but change no state"


def _resume(
    spec: MonitorSpec, rec: Record, resume: Resume, at: datetime, out: list[Transition]
) -> None:
    if rec.paused_since is None:
        return
    ended = rec.paused_until if resume.cause == PAUSE_CAUSE_UNTIL else None
    rec.paused_since = None
    rec.pause_cause = None
    rec.paused_until = None
    # Fine print 8: active again from the resume; counters and the state they give are
    # kept, lateness is not.
    rec.active_since = at
    rec.reference_time = at
    state, reason = _base_state(spec, rec)
    if ended is not None and ended <= at:
        cleared = f"{resume.cause} {format_local(ended, spec.zone)} reached"
    else:
        cleared = f"{resume.cause} cleared"
    message = f"resumed ({cleared}); {_next_expected(spec, rec)}"
    _transition(rec, out, at, state, reason, message, "Resumed", NORMAL, force=True)


def _spec_edit(
    spec: MonitorSpec, rec: Record, edit: SpecEdit, at: datetime, out: list[Transition]
) -> None:
    """DESIGN 9.19: an edit keeps counters and the reference time and never alerts."""
    if rec.paused_since is not None:
        return
    slot = spec.slots.next_slot(rec.reference_time)
    if edit.restart:
        # Only the count restarts: ``activeSince`` stays, so a Job that started while
        # nothing was judged (its start only recorded) is still the monitor's, and its
        # failure after the fix pages (``job_predates``).
        rec.reference_time = at
        slot = spec.slots.next_slot(at)
    elif slot is None or slot.alert(spec.grace) <= at:
        rec.active_since = at
        rec.reference_time = at
        slot = spec.slots.next_slot(at)
    _keep_run_deadlines_ahead(spec, rec, at)
    if rec.state == "Down" and rec.consecutive_failures < spec.failure_threshold:
        reason = rec.failure_reason or "Missed"
        message = (
            f"spec edited: {rec.consecutive_failures} of failureThreshold {spec.failure_threshold}"
        )
        _transition(rec, out, at, "Grace", reason, message, None, NORMAL)
    late = slot is not None and slot.due < at
    if rec.state == "Grace" and rec.state_reason == "Late" and not late:
        state, reason = _base_state(spec, rec)
        message = f"spec edited; {_next_expected(spec, rec)}"
        _transition(rec, out, at, state, reason, message, None, NORMAL)
    elif rec.state in ("New", "Healthy") and late:
        assert slot is not None
        _go_late(spec, rec, slot, at, out)


def _keep_run_deadlines_ahead(spec: MonitorSpec, rec: Record, at: datetime) -> None:
    """DESIGN 9.19 for open runs: an edit recomputes their deadlines (10.8.5), and one
    the new spec puts at or before the edit counts from the edit instead, as the slots
    do: a default deadline becomes the ``alertTime`` of the first slot after the edit (the
    run stands for that slot now, retries included); ``maxRuntime`` counts from the edit."""
    for run in rec.open_runs:
        deadline = run_deadline(spec, run)
        if run.timed_out or deadline is None or deadline > at:
            continue
        if spec.max_runtime is not None:
            run.max_runtime_from = at
        else:
            slot = spec.slots.next_slot(at)
            if slot is not None:
                run.due = slot.due


# --------------------------------------------------------------------------- helpers


def _base_state(spec: MonitorSpec, rec: Record) -> tuple[str, str]:
    """The state the counters give, without lateness (resume, a start ending Late)."""
    failure = rec.failure_reason or "Missed"
    if rec.consecutive_failures >= spec.failure_threshold:
        return "Down", failure
    if rec.consecutive_failures > 0:
        return "Grace", failure
    if rec.last_success_time is not None or rec.last_failure_time is not None:
        return "Healthy", "PingReceived"
    return "New", "AwaitingFirstPing"


def _transition(
    rec: Record,
    out: list[Transition],
    at: datetime,
    state: str,
    reason: str,
    message: str,
    event_reason: str | None,
    event_type: str,
    *,
    force: bool = False,
    said: str | None = None,
) -> None:
    """``message`` as status keeps it (300 bytes); ``said``, when longer, as the Event
    says it (1,000 bytes)."""
    if not force and state == rec.state and reason == rec.state_reason:
        return
    said = cut_utf8(said if said is not None else message, MAX_EVENT_MESSAGE_BYTES)
    message = cut_utf8(message, MAX_MESSAGE_BYTES)
    if state != rec.state:
        rec.state_since = at
    rec.state = state
    rec.state_reason = reason
    rec.state_message = message
    rec.recent_transitions.insert(0, TransitionRecord(at, state, reason, message, event_reason))
    del rec.recent_transitions[MAX_RECENT_TRANSITIONS:]
    out.append(Transition(at, state, reason, said, event_reason, event_type))


def _restate(rec: Record, message: str) -> None:
    """A new message for a state that does not change: no transition, no Event, but the
    ``Healthy`` condition says what is true now ("success at …; next expected by …"
    after every success), not what was true at the last change."""
    rec.state_message = cut_utf8(message, MAX_MESSAGE_BYTES)


def _first_due_after(spec: MonitorSpec, at: datetime) -> datetime | None:
    slot = spec.slots.next_slot(at)
    return slot.due if slot is not None else None


def _ever_pinged(rec: Record) -> bool:
    """Fine print 2: whether a success, fail, exit-code or start ping ever arrived."""
    counts = rec.ping_counts
    return any(counts.get(k, 0) for k in ("success", "fail", "exit", "start"))


def _since(spec: MonitorSpec, rec: Record) -> str:
    times = [t for t in (rec.last_start_time, rec.last_success_time, rec.last_failure_time) if t]
    # A ping recorded while paused counts as a ping (10.3) but moves none of those times.
    times += [p.time for p in rec.recent_pings if p.kind != "log"]
    if times:
        return f"no ping since {_at(spec, max(times))}"
    return f"no ping yet (active since {_at(spec, rec.active_since)})"


def _next_expected(spec: MonitorSpec, rec: Record) -> str:
    slot = spec.slots.next_slot(rec.reference_time)
    if slot is None:
        return "the schedule has no further runs"
    return f"next expected by {_at(spec, slot.due)} + grace {format_duration(spec.grace)}"


def _at(spec: MonitorSpec, value: datetime) -> str:
    """A time in a message: the monitor's local time with date and zone, plus UTC where it
    has a ``timeZone`` (issue 16 item 3: "09:30 EST (14:30 UTC)", never a bare UTC clock
    a New York reader must convert)."""
    return format_local(value, spec.zone)


def _awaiting_message(spec: MonitorSpec, rec: Record, slot: Slot | None) -> str:
    if rec.state == "New":
        if slot is None:
            return "awaiting the first ping; the schedule has no further runs"
        return f"awaiting the first ping; first run expected by {_at(spec, slot.due)}"
    return ""


def _human_seconds(value: timedelta) -> str:
    return f"{seconds(value)}s"


def _failure_message(spec: MonitorSpec, ping: Ping, at: datetime) -> str:
    parts = [f"run failed at {_at(spec, at)}"]
    if ping.exit_code is not None:
        parts.append(f"exit code {ping.exit_code}")
    elif ping.exit_code_unknown:
        parts.append("exit code unknown (Pod gone)")
    elif ping.kind == "fail":
        parts.append("fail ping")
    if ping.run_id:
        parts.append(f"rid {ping.run_id}")
    return ", ".join(parts)


def _output_excerpt(ping: Ping) -> str:
    """A failure's first lines of output, for its Event message (DESIGN section 3)."""
    if not ping.body:
        return ""
    lines = [ln.strip()[:_BODY_LINE_CHARS] for ln in ping.body.splitlines() if ln.strip()]
    if not lines:
        return ""
    return "output: " + " | ".join(lines[:_BODY_LINES])
