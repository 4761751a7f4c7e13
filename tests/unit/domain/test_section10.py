"""DESIGN section 10 in the state machine: a run that never finishes fails (10.2), the
coincidences of fine print 14 (10.3), and pending starts of auto-wired Jobs (10.1, 10.8.3,
10.8.4, 10.8.7). Explicit times; ``T0`` = 2026-03-01T00:00Z as in test_machine.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from heartbeat_operator.domain.inputs import (
    JobPending,
    Pause,
    Ping,
    Resume,
    SlotSkipped,
    SpecEdit,
    Tick,
)
from heartbeat_operator.domain.machine import apply, view
from heartbeat_operator.domain.records import Record

from .helpers import T, fold, spec, states

T0 = T("2026-03-01T00:00:00Z")


def at(hhmmss: str) -> str:
    return f"2026-03-01T{hhmmss}Z"


def P(hhmmss: str, kind: str = "success", **kw: object) -> Ping:
    return Ping(T(at(hhmmss)), kind, **kw)  # type: ignore[arg-type]


def failures(out: list) -> list[tuple[str, str]]:
    return [(t.state, t.reason) for t in out if t.event_type == "Warning"]


# --------------------------------------------------------------------------- 10.2


@pytest.mark.parametrize(
    ("mode", "rid"),
    [("period", None), ("period", "r"), ("cron", None), ("cron", "r")],
)
def test_a_run_that_never_finishes_fails_at_the_second_slots_alert_time(
    mode: str, rid: str | None
) -> None:
    """Hourly starts that never finish, with and without run ids: the first run times out
    at the alertTime of the slot after the one it began in, whatever started since."""
    s = spec(**({"period": "1h"} if mode == "period" else {"schedule": "0 * * * *"}), grace="10m")
    first_rid = f"{rid}1" if rid else None
    second_rid = f"{rid}2" if rid else None
    rec, out = fold(
        s,
        T0,
        [P("01:00:00", "start", run_id=first_rid), P("02:00:00", "start", run_id=second_rid)],
        until=T(at("02:10:00")) + timedelta(seconds=1),
    )
    timeouts = [t for t in out if t.reason == "RunTimeout"]
    assert [t.time for t in timeouts] == [T(at("02:10:00"))]
    assert "run started at Sun 2026-03-01 01:00 UTC" in timeouts[0].message
    assert "not finished by Sun 2026-03-01 02:10 UTC" in timeouts[0].message
    assert [r.timed_out for r in rec.open_runs] == [True, False]
    assert rec.running  # the second run is still within its bound
    # Down: the next change is the next slot's alertTime, also the second run's bound.
    assert view(s, rec, T(at("02:30:00"))).next_change_at == T(at("03:10:00"))


def test_an_explicit_max_runtime_replaces_the_default_bound() -> None:
    s = spec(period="1h", grace="10m", maxRuntime="3h", failureThreshold=5)
    _rec, out = fold(s, T0, [P("01:00:00", "start")], until=T(at("03:30:00")))
    assert "RunTimeout" not in [t.reason for t in out]  # missed slots, no timeout yet
    _rec, out = fold(s, T0, [P("01:00:00", "start")], until=T(at("04:00:01")))
    assert [t.time for t in out if t.reason == "RunTimeout"] == [T(at("04:00:00"))]
    assert "maxRuntime 3h" in next(t for t in out if t.reason == "RunTimeout").message


def test_a_retry_in_the_same_slot_replaces_the_run_and_never_extends_its_deadline() -> None:
    s = spec(period="1h", grace="10m", failureThreshold=5)
    rec, _ = fold(s, T0, [P("00:10:00", "start"), P("00:40:00", "start")], until=T(at("00:41:00")))
    # Both starts are before the due time (01:10) the first one opened: one run, its bound.
    assert len(rec.open_runs) == 1
    assert rec.open_runs[0].start_time == T(at("00:40:00"))
    assert rec.open_runs[0].due == T(at("01:10:00"))
    rec, out = fold(
        s, T0, [P("00:10:00", "start"), P("00:40:00", "start")], until=T(at("01:20:01"))
    )
    assert [t.time for t in out if t.reason == "RunTimeout"] == [T(at("01:20:00"))]


def test_a_timed_out_run_tells_overlapping_runs_to_send_a_run_id() -> None:
    s = spec(period="1h", grace="10m", failureThreshold=5)
    _rec, out = fold(
        s,
        T0,
        [P("01:00:00", "start"), P("02:00:00", "start"), P("02:05:00", "success")],
        until=T(at("02:10:01")),
    )
    timeout = next(t for t in out if t.reason == "RunTimeout")
    assert "a later run finished at Sun 2026-03-01 02:05 UTC" in timeout.message
    assert "rid" in timeout.message


def test_open_runs_keep_twenty_dropping_timed_out_ones_first() -> None:
    s = spec(period="1h", grace="10m", failureThreshold=100)
    pings = [P(f"{h:02d}:00:00", "start", run_id=f"r{h}") for h in range(0, 22)]
    rec, _ = fold(s, T0, pings, until=T(at("21:00:01")))
    assert len(rec.open_runs) == 20
    assert not any(r.run_id in ("r0", "r1") for r in rec.open_runs)


def test_a_spec_edit_recomputes_default_deadlines() -> None:
    old = spec(period="1h", grace="10m", failureThreshold=5)
    rec, _ = fold(old, T0, [P("01:00:00", "start")], until=T(at("01:05:00")))
    new = spec(period="1h", grace="40m", failureThreshold=5)
    # The run's bound is the slot's alertTime under the spec in force: 02:40, not 02:10.
    assert view(new, rec, T(at("02:15:00"))).state != "Down"
    v = view(new, rec, T(at("02:20:00")))
    assert v.running


def test_an_edit_that_puts_a_runs_default_deadline_behind_it_counts_from_the_edit() -> None:
    # DESIGN 9.19: edits never alert. A run started 01:00 (deadline 02:50 under grace 50m);
    # at 02:20 grace becomes 5m, which would make that deadline 02:05, behind the edit.
    old = spec(schedule="0 * * * *", grace="50m")
    rec, _ = fold(old, T0, [P("00:30:00"), P("01:00:00", "start")], until=T(at("02:20:00")))
    new = spec(schedule="0 * * * *", grace="5m")
    edit = T(at("02:20:00"))
    rec, out = apply(new, rec, SpecEdit(edit), edit)
    rec, settled = apply(new, rec, Tick(edit), edit)
    assert failures(out + settled) == [] and rec.state == "Healthy"
    # The run stands for the first slot after the edit: it times out at 03:05 if it is
    # still open then, and a retry before 03:00 is the same run.
    assert [r.due for r in rec.open_runs] == [T(at("03:00:00"))]
    _rec, later = apply(new, rec, Tick(T(at("03:05:01"))), T(at("03:05:01")))
    assert ("Down", "RunTimeout") in failures(later)


def test_an_edit_that_puts_maxruntime_behind_it_counts_maxruntime_from_the_edit() -> None:
    old = spec(schedule="0 * * * *", grace="50m")
    rec, _ = fold(old, T0, [P("00:30:00"), P("01:00:00", "start")], until=T(at("01:10:00")))
    new = spec(schedule="0 * * * *", grace="50m", maxRuntime="5m")
    edit = T(at("01:10:00"))
    rec, out = apply(new, rec, SpecEdit(edit), edit)
    rec, settled = apply(new, rec, Tick(edit), edit)
    assert failures(out + settled) == [] and rec.state == "Healthy"
    assert rec.open_runs[0].max_runtime_from == edit
    assert Record.from_status(rec.to_status()).open_runs == rec.open_runs
    assert view(new, rec, edit).next_change_at == T(at("01:15:00"))
    _rec, later = apply(new, rec, Tick(T(at("01:15:01"))), T(at("01:15:01")))
    assert [t.time for t in later if t.reason == "RunTimeout"] == [T(at("01:15:00"))]
    (timeout,) = [t for t in later if t.reason == "RunTimeout"]
    assert "maxRuntime 5m of the spec edit at Sun 2026-03-01 01:10 UTC" in timeout.message


# --------------------------------------------------------------------------- 10.3


def test_pings_while_paused_count_as_a_ping_has_arrived() -> None:
    s = spec(period="1h", grace="10m")
    inputs = [
        Pause(T(at("00:10:00"))),
        P("00:20:00", "success"),
        Resume(T(at("00:30:00"))),
    ]
    _rec, out = fold(s, T0, inputs, until=T(at("01:40:01")))
    assert failures(out) == [("Down", "Missed")]
    assert out[-1].message.startswith("no ping since Sun 2026-03-01 00:20 UTC")  # not "yet"


def test_a_log_ping_while_paused_is_not_a_ping() -> None:
    s = spec(period="1h", grace="10m")
    inputs = [Pause(T(at("00:10:00"))), P("00:20:00", "log"), Resume(T(at("00:30:00")))]
    _rec, out = fold(s, T0, inputs, until=T(at("01:40:01")))
    assert failures(out) == [("Down", "NeverPinged")]


def test_a_run_timeout_at_a_slots_alert_time_is_one_failure() -> None:
    """Start at 01:00, never finishes: its bound (02:10) is the next slot's alertTime too."""
    s = spec(period="1h", grace="10m", failureThreshold=5)
    rec, out = fold(s, T0, [P("01:00:00", "start")], until=T(at("02:10:01")))
    assert failures(out) == [("Grace", "RunTimeout")]
    # One failure (10.3); the 02:00 slot got no start of its own: it is missed (10.8.7
    # calls it "the missed slot"), so missedRuns counts it.
    assert (rec.consecutive_failures, rec.missed_runs) == (1, 1)
    # The next slot starts from the missed one, as for Missed.
    v = view(s, rec, T(at("02:10:01")))
    assert v.next_due_time == T(at("03:00:00"))


# --------------------------------------------------------------------------- 10.1, 10.8.3


CRON = spec(schedule="0 * * * *", grace="10m")
CAUSE = (
    "Job nightly-1 created 01:00:02 UTC; Pod nightly-1-x7k Pending for 10m: "
    "ImagePullBackOff: image registry.invalid/backup:1 not found"
)


def pending(hhmmss: str, *, uid: str = "u1", cause: str = "", scheduled: str | None = "01:00:00"):
    # As the leader folds it: at the slot it was scheduled for, so the CronJob controller's
    # few seconds to create it never make the slot Late.
    return JobPending(
        time=T(at(scheduled)) if scheduled and cause == "" else T(at(hhmmss)),
        uid=uid,
        name="nightly-1",
        created=T(at(hhmmss)),
        cause=cause,
        scheduled_time=T(at(scheduled)) if scheduled else None,
    )


def test_a_job_created_on_time_is_not_late_and_fails_not_started_at_alert_time() -> None:
    rec, out = fold(CRON, T0, [pending("01:00:02")], until=T(at("01:09:00")))
    assert out == [] and rec.state == "New"  # no Late while the Job waits for its Pod
    v = view(CRON, rec, T(at("01:05:00")))
    assert v.next_change_at == T(at("01:10:00"))
    rec, out = apply(CRON, rec, pending("01:10:00", cause=CAUSE), T(at("01:10:00")))
    assert out == []  # refreshing the cause changes nothing visible
    rec, out = fold(
        CRON, T0, [pending("01:00:02"), pending("01:10:00", cause=CAUSE)], until=T(at("01:10:01"))
    )
    assert states(out) == [(at("01:10:00"), "Down", "NotStarted")]
    assert out[0].event_reason == "NotStarted" and out[0].event_type == "Warning"
    assert "ImagePullBackOff: image registry.invalid/backup:1" in out[0].message
    assert "1 of failureThreshold 1" in out[0].message
    assert rec.missed_runs == 1  # counted like Missed, never NeverPinged
    assert rec.pending_starts == []


def test_a_pod_that_starts_within_grace_is_on_time() -> None:
    start = P(
        "01:08:00", "start", run_id="u1", job=("u1", "start"), scheduled_time=T(at("01:00:00"))
    )
    done = P("01:09:00", "success", run_id="u1", job=("u1", "success"), exit_code=0)
    rec, out = fold(CRON, T0, [pending("01:00:02"), start, done], until=T(at("01:30:00")))
    assert [t.event_reason for t in out] == ["FirstPing"]
    assert rec.state == "Healthy"


def test_a_job_that_fails_before_its_pod_ran_is_one_not_started_failure() -> None:
    ended = P(
        "01:05:00",
        "fail",
        run_id="u1",
        job=("u1", "fail"),
        not_started=True,
        body="Job nightly-1 created 01:00:02 UTC; DeadlineExceeded: Job was active longer",
    )
    rec, out = fold(CRON, T0, [pending("01:00:02"), ended], until=T(at("01:20:00")))
    assert failures(out) == [("Down", "NotStarted")]
    assert "DeadlineExceeded" in out[0].message
    assert rec.missed_runs == 1


def test_a_job_judged_not_started_counts_once_when_it_later_fails() -> None:
    ended = P(
        "01:30:00",
        "fail",
        run_id="u1",
        job=("u1", "fail"),
        not_started=True,
        body="DeadlineExceeded",
    )
    s = spec(schedule="0 * * * *", grace="10m", failureThreshold=3)
    rec, out = fold(s, T0, [pending("01:00:02"), ended], until=T(at("01:40:00")))
    assert failures(out) == [("Grace", "NotStarted")]
    assert rec.consecutive_failures == 1


def test_a_start_after_its_slot_is_over_does_not_fulfil_the_next_slot() -> None:
    late_start = P(
        "01:20:00", "start", run_id="u1", job=("u1", "start"), scheduled_time=T(at("01:00:00"))
    )
    done = P("01:21:00", "success", run_id="u1", job=("u1", "success"), exit_code=0)
    s = spec(schedule="0 * * * *", grace="10m", failureThreshold=3)
    _rec, out = fold(s, T0, [pending("01:00:02"), late_start, done], until=T(at("02:10:01")))
    assert [r for r in failures(out)] == [("Grace", "NotStarted"), ("Grace", "Missed")]


def test_a_late_start_within_60_s_of_the_next_tick_does_not_fulfil_it() -> None:
    # */2 with 30 s grace: the 01:00 Job's Pod started at 01:01:10, after its slot failed
    # NotStarted. The early-ping rule (fine print 10) used to count it for the 01:02 tick,
    # so under concurrencyPolicy Forbid (no 01:02 Job) the silent 01:02 slot never alarmed.
    s = spec(schedule="*/2 * * * *", grace="30s", failureThreshold=3)
    late_start = P(
        "01:01:10", "start", run_id="u1", job=("u1", "start"), scheduled_time=T(at("01:00:00"))
    )
    job = pending("01:00:02", scheduled="01:00:00")
    _rec, out = fold(s, T(at("00:59:00")), [job, late_start], until=T(at("01:02:31")))
    assert failures(out) == [("Grace", "NotStarted"), ("Grace", "RunTimeout")]
    assert out[-1].time == T(at("01:02:30"))  # the 01:02 slot was judged, with the open run


def test_a_job_created_after_its_slot_turned_late_ends_the_lateness() -> None:
    # The leader waits 10 s for the CronJob controller; a Job made later still stands for
    # its slot (10.8.3: while it exists and has not started, the slot is not Late).
    job = JobPending(
        time=T(at("01:00:20")),
        uid="u1",
        name="nightly-1",
        created=T(at("01:00:20")),
        cause="",
        scheduled_time=T(at("01:00:00")),
    )
    done = P("00:10:00")  # a run finished: the monitor is Healthy, then Late at 01:00
    _rec, out = fold(CRON, T0, [done, job], until=T(at("01:10:01")))
    assert states(out) == [
        (at("00:10:00"), "Healthy", "PingReceived"),
        (at("01:00:00"), "Grace", "Late"),
        (at("01:00:20"), "Healthy", "PingReceived"),
        (at("01:10:00"), "Down", "NotStarted"),
    ]
    assert out[2].event_reason is None and "waiting for its Pod to start" in out[2].message


def test_a_job_for_another_slot_is_no_pending_start() -> None:
    rec, out = fold(CRON, T0, [pending("00:30:00", scheduled=None)], until=T(at("01:00:01")))
    assert states(out) == [(at("01:00:00"), "Grace", "Late")]
    assert rec.pending_starts == []


def test_a_skipped_slot_says_why() -> None:
    why = "concurrencyPolicy Forbid: Job nightly-0 active since 00:00 UTC"
    skipped = SlotSkipped(T(at("01:10:00")), T(at("01:00:00")), why)
    s = spec(schedule="0 * * * *", grace="10m", failureThreshold=3)
    rec, out = fold(s, T0, [P("00:05:00"), skipped], until=T(at("02:10:01")))
    assert failures(out) == [("Grace", "Missed"), ("Grace", "Missed")]
    assert why in out[-2].message
    assert why not in out[-1].message  # said of its own slot only
    assert rec.skipped_slot is None


def test_a_skipped_slot_of_a_monitor_never_pinged_is_missed_not_never_pinged() -> None:
    # Forbid behind a first Job that never started: the first slot failed NotStarted, the
    # next got no Job at all. 10.1: it keeps reason Missed (the CronJob runs, held back).
    why = "concurrencyPolicy Forbid: Job nightly-0 active since 01:00 UTC"
    job = pending("01:00:02", cause=CAUSE)
    skipped = SlotSkipped(T(at("02:00:01")), T(at("02:00:00")), why)
    s = spec(schedule="0 * * * *", grace="5m", failureThreshold=3)
    _rec, out = fold(s, T0, [job, skipped], until=T(at("02:05:01")))
    assert failures(out) == [("Grace", "NotStarted"), ("Grace", "Missed")]
    assert why in out[-1].message


def test_a_long_pending_cause_keeps_its_start_and_its_end() -> None:
    # The commonest auto-wired failure: a pull error whose last words say why.
    cause = "Job j created 01:00:01 UTC; Pod j-x Pending for 5m: ImagePullBackOff: " + (
        "ErrImagePull: failed to pull and unpack image: " * 8 + "not found"
    )
    _rec, out = fold(CRON, T0, [pending("01:00:02", cause=cause)], until=T(at("01:10:01")))
    (failed,) = [t for t in out if t.event_reason == "NotStarted"]
    assert "ImagePullBackOff" in failed.message
    assert failed.message.endswith("not found; 1 of failureThreshold 1")


def test_pending_starts_survive_the_status_round_trip() -> None:
    rec, _ = fold(CRON, T0, [pending("01:00:02", cause=CAUSE)], until=T(at("01:05:00")))
    again = Record.from_status(rec.to_status())
    assert again.pending_starts == rec.pending_starts
    assert again.open_runs == rec.open_runs
    run, _ = fold(CRON, T0, [P("00:59:30", "start")], until=T(at("01:00:00")))
    assert Record.from_status(run.to_status()).open_runs == run.open_runs
    assert run.open_runs[0].due == T(at("02:00:00"))
