"""The state machine, rule by rule (DESIGN section 2 and its fine print), explicit times.

Most cases use ``period: 1h, grace: 10m`` from ``T0`` = 2026-03-01T00:00Z: the first slot
is due 01:00 and missed after 01:10.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from heartbeat_operator.domain.inputs import Pause, Ping, Resume, SpecEdit, Tick
from heartbeat_operator.domain.machine import Transition, apply, job_predates, view
from heartbeat_operator.domain.records import Record
from heartbeat_operator.domain.timefmt import format_time

from .helpers import US, T, fold, spec, states

T0 = T("2026-03-01T00:00:00Z")
HOURLY = spec(period="1h", grace="10m")


def at(hhmmss: str) -> str:
    return f"2026-03-01T{hhmmss}Z"


def P(hhmmss: str, kind: str = "success", **kw: object) -> Ping:
    return Ping(T(at(hhmmss)), kind, **kw)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- New


def test_new_monitor_view() -> None:
    v = view(HOURLY, Record.new(T0), T0)
    assert (v.state, v.reason, v.running) == ("New", "AwaitingFirstPing", False)
    assert (v.next_due_time, v.alert_time) == (T(at("01:00:00")), T(at("01:10:00")))
    assert v.next_change_at == T(at("01:00:00"))
    assert "01:00 UTC" in v.message


def test_first_slot_turns_late_at_due_time_exactly() -> None:
    rec, out = fold(HOURLY, T0, [], until=T(at("01:00:00")))
    assert out == [] and rec.state == "New"  # a deadline exactly at the Tick is not settled
    rec, out = fold(HOURLY, T0, [], until=T(at("01:00:00")) + US)
    assert states(out) == [(at("01:00:00"), "Grace", "Late")]
    # DESIGN 10.8.13: lateness is status and metrics; the Late transition posts no Event.
    assert out[0].event_reason is None
    assert rec.recent_transitions[0].event_reason is None
    assert view(HOURLY, rec, T(at("01:05:00"))).next_change_at == T(at("01:10:00"))


def test_never_pinged_counts_toward_failure_threshold() -> None:
    s = spec(period="1h", grace="10m", failureThreshold=2)
    rec, out = fold(s, T0, [], until=T(at("03:30:00")))
    assert states(out) == [
        (at("01:00:00"), "Grace", "Late"),
        (at("01:10:00"), "Grace", "NeverPinged"),  # below the threshold: Grace, not Down
        (at("02:10:00"), "Down", "NeverPinged"),  # no Late in between: a failure outranks it
        (at("03:10:00"), "Down", "NeverPinged"),  # each further empty slot counts again
    ]
    assert [t.event_reason for t in out] == [None, "NeverPinged", "NeverPinged", "NeverPinged"]
    assert [t.event_type for t in out[1:]] == ["Warning"] * 3
    assert "1 of failureThreshold 2" in out[1].message
    assert "3 of failureThreshold 2" in out[3].message
    assert (rec.missed_runs, rec.consecutive_failures) == (3, 3)
    # After a miss the next slot is due one period after the missed one's due time.
    v = view(s, rec, T(at("03:30:00")))
    assert (v.next_due_time, v.alert_time) == (T(at("04:00:00")), T(at("04:10:00")))


def test_view_of_a_record_that_is_behind() -> None:
    rec = Record.new(T0)
    v = view(HOURLY, rec, T(at("02:30:00")))
    # Settled on a copy: the state at 02:30 ...
    assert (v.state, v.reason, v.next_due_time) == ("Down", "NeverPinged", T(at("03:00:00")))
    # ... and the record's own overdue deadline, so a leader wakes at once to write it.
    assert v.next_change_at == T(at("01:00:00"))
    assert rec.state == "New"  # the record itself is untouched


def test_first_success_is_first_ping() -> None:
    rec, out = fold(HOURLY, T0, [P("00:20:00")])
    assert states(out) == [(at("00:20:00"), "Healthy", "PingReceived")]
    assert (out[0].event_reason, out[0].event_type) == ("FirstPing", "Normal")
    v = view(HOURLY, rec, T(at("00:20:00")))
    assert v.next_due_time == T(at("01:20:00"))  # the reference time is the ping
    assert rec.last_success_time == T(at("00:20:00"))


# --------------------------------------------------------------------------- Healthy/Grace/Down


def test_late_then_success_within_grace_is_healthy_again_without_events() -> None:
    _rec, out = fold(HOURLY, T0, [P("00:30:00"), P("01:35:00")])
    assert states(out) == [
        (at("00:30:00"), "Healthy", "PingReceived"),
        (at("01:30:00"), "Grace", "Late"),
        (at("01:35:00"), "Healthy", "PingReceived"),
    ]
    # DESIGN 10.8.13: a slot whose finish arrives within grace posts neither Late nor
    # Recovered (the status still shows both transitions, at their times).
    assert [t.event_reason for t in out] == ["FirstPing", None, None]
    assert "expected by Sun 2026-03-01 01:30 UTC + grace 10m" in out[1].message


def test_pings_exactly_at_due_and_alert_are_on_time() -> None:
    _, out = fold(HOURLY, T0, [P("00:00:00"), P("01:00:00")])
    assert [t.state for t in out] == ["Healthy"]  # no Late at 01:00
    _, out = fold(HOURLY, T0, [P("00:00:00"), P("01:10:00")])
    assert states(out)[1:] == [
        (at("01:00:00"), "Grace", "Late"),
        (at("01:10:00"), "Healthy", "PingReceived"),
    ]


def test_missed_after_pings_says_missed_with_the_design_message() -> None:
    s = spec(period="1h", grace="30m")
    _, out = fold(s, T0, [P("02:00:14")], until=T(at("04:00:00")))
    assert states(out)[-1] == (at("03:30:14"), "Down", "Missed")
    assert out[-1].message == (
        "no ping since Sun 2026-03-01 02:00:14 UTC; expected by Sun 2026-03-01 03:00:14 UTC "
        "+ grace 30m; 1 of failureThreshold 1"
    )


def test_fail_below_threshold_is_grace_with_reason_then_down() -> None:
    s = spec(period="1h", grace="10m", failureThreshold=2)
    rec, out = fold(
        s, T0, [P("00:10:00"), P("00:20:00", "fail"), P("00:40:00", "exit", exit_code=3)]
    )
    assert states(out) == [
        (at("00:10:00"), "Healthy", "PingReceived"),
        (at("00:20:00"), "Grace", "Failed"),
        (at("00:40:00"), "Down", "Failed"),
    ]
    assert [t.event_type for t in out] == ["Normal", "Warning", "Warning"]
    assert "exit code 3" in out[2].message and "2 of failureThreshold 2" in out[2].message
    assert rec.last_exit_code == 3 and rec.last_failure_time == T(at("00:40:00"))


def test_failure_while_down_posts_again_and_grace_reason_outranks_late() -> None:
    s = spec(period="1h", grace="10m")
    _, out = fold(s, T0, [P("00:10:00", "fail"), P("00:20:00", "fail")], until=T(at("01:25:00")))
    # A second failure while Down posts again; 01:20's due passes with no Late.
    assert states(out) == [(at("00:10:00"), "Down", "Failed"), (at("00:20:00"), "Down", "Failed")]
    assert [t.event_reason for t in out] == ["Failed", "Failed"]
    # Down stays Down through the due time (no Late) until the miss at its alert time.
    _, out = fold(s, T0, [P("00:10:00", "fail")], until=T(at("01:31:00")))
    assert states(out) == [(at("00:10:00"), "Down", "Failed"), (at("01:20:00"), "Down", "Missed")]


def test_fail_body_first_lines_and_pod_gone_in_messages() -> None:
    body = "backup failed\n\ndisk full\nline three\nline four"
    _, out = fold(HOURLY, T0, [P("00:10:00", "fail", body=body)])
    assert "backup failed | disk full | line three" in out[0].message
    assert "line four" not in out[0].message
    job = Ping(T(at("00:10:00")), "fail", exit_code_unknown=True, body="BackoffLimitExceeded: x")
    _, out = fold(HOURLY, T0, [job])
    assert "exit code unknown (Pod gone)" in out[0].message
    assert "BackoffLimitExceeded: x" in out[0].message


def test_exit_codes_and_last_exit_code() -> None:
    rec, out = fold(HOURLY, T0, [P("00:10:00", "exit", exit_code=0)])
    assert out[0].state == "Healthy" and rec.last_exit_code == 0
    rec, _ = fold(HOURLY, T0, [P("00:10:00", "exit", exit_code=0), P("00:20:00")])
    assert rec.last_exit_code is None  # a plain success removes it (DESIGN 9.11)
    rec, out = fold(HOURLY, T0, [P("00:10:00", "exit", exit_code=255)])
    assert out[0].state == "Down" and rec.last_exit_code == 255


def test_success_threshold_applies_only_to_leaving_down() -> None:
    s = spec(period="1h", grace="10m", failureThreshold=1, successThreshold=2)
    _, out = fold(
        s,
        T0,
        [P("00:05:00", "fail"), P("00:10:00"), P("00:15:00", "fail"), P("00:20:00"), P("00:25:00")],
    )
    assert states(out) == [
        (at("00:05:00"), "Down", "Failed"),
        (at("00:15:00"), "Down", "Failed"),  # the failure reset the streak
        (at("00:25:00"), "Healthy", "PingReceived"),
    ]
    assert out[-1].event_reason == "Recovered" and "2 of successThreshold 2" in out[-1].message
    s3 = spec(period="1h", grace="10m", failureThreshold=2, successThreshold=3)
    _, out = fold(s3, T0, [P("00:05:00", "fail"), P("00:10:00")])
    assert states(out)[-1] == (at("00:10:00"), "Healthy", "PingReceived")  # from Grace: one


# --------------------------------------------------------------------------- 10.8.13


def events_posted(out: list[Transition]) -> list[tuple[str, str]]:
    """``[(time, event_reason), ...]`` of the transitions that post an Event."""
    return [(format_time(t.time), t.event_reason) for t in out if t.event_reason]


def test_a_start_within_grace_posts_neither_late_nor_recovered() -> None:
    rec, out = fold(HOURLY, T0, [P("00:30:00"), P("01:32:00", "start"), P("01:50:00")])
    assert states(out) == [
        (at("00:30:00"), "Healthy", "PingReceived"),
        (at("01:30:00"), "Grace", "Late"),
        (at("01:32:00"), "Healthy", "PingReceived"),  # the start ends lateness
    ]
    assert events_posted(out) == [(at("00:30:00"), "FirstPing")]
    assert [(t.state, t.event_reason) for t in rec.recent_transitions[:2]] == [
        ("Healthy", None),
        ("Grace", None),
    ]
    assert rec.to_status()["recentTransitions"][0].get("eventReason") is None


def test_a_first_success_within_grace_is_still_the_first_ping() -> None:
    _rec, out = fold(HOURLY, T0, [P("01:05:00")])
    assert states(out) == [
        (at("01:00:00"), "Grace", "Late"),
        (at("01:05:00"), "Healthy", "PingReceived"),
    ]
    assert [t.event_reason for t in out] == [None, "FirstPing"]


def test_grace_running_out_posts_the_miss_and_no_late_event() -> None:
    rec, out = fold(HOURLY, T0, [P("00:30:00")], until=T(at("01:45:00")))
    assert states(out)[1:] == [
        (at("01:30:00"), "Grace", "Late"),
        (at("01:40:00"), "Down", "Missed"),
    ]
    assert events_posted(out) == [(at("00:30:00"), "FirstPing"), (at("01:40:00"), "Missed")]
    assert out[-1].event_type == "Warning"
    # The next run, on time, leaves Down: that is a recovery, and it says so.
    rec, more = apply(HOURLY, rec, P("02:31:00"), T(at("02:31:00")))
    assert events_posted(more) == [(at("02:31:00"), "Recovered")]


def test_a_finish_within_grace_that_leaves_down_or_a_counted_failure_still_recovers() -> None:
    # Down, then the next slot's success arrives within its grace: out of Down, Recovered.
    _, out = fold(HOURLY, T0, [P("00:30:00", "fail"), P("01:35:00")])
    assert events_posted(out) == [(at("00:30:00"), "Failed"), (at("01:35:00"), "Recovered")]
    # Grace(Failed) below the threshold: no Late at the due time, Recovered on the success.
    s = spec(period="1h", grace="10m", failureThreshold=2)
    _, out = fold(s, T0, [P("00:30:00", "fail"), P("01:35:00")])
    assert states(out) == [
        (at("00:30:00"), "Grace", "Failed"),
        (at("01:35:00"), "Healthy", "PingReceived"),
    ]
    assert events_posted(out) == [(at("00:30:00"), "Failed"), (at("01:35:00"), "Recovered")]


def test_a_fail_within_grace_posts_only_its_failure() -> None:
    _, out = fold(HOURLY, T0, [P("00:30:00"), P("01:35:00", "fail")])
    assert states(out)[1:] == [
        (at("01:30:00"), "Grace", "Late"),
        (at("01:35:00"), "Down", "Failed"),
    ]
    assert events_posted(out) == [(at("00:30:00"), "FirstPing"), (at("01:35:00"), "Failed")]


def test_a_spec_edit_that_makes_the_slot_late_posts_no_event() -> None:
    rec, _ = fold(HOURLY, T0, [P("00:30:00")])
    edited = spec(period="50m", grace="30m")
    now = T(at("01:25:00"))
    rec, out = apply(edited, rec, SpecEdit(now), now)
    assert states(out) == [(at("01:25:00"), "Grace", "Late")]
    assert out[0].event_reason is None


# --------------------------------------------------------------------------- runs


def test_start_marks_the_slot_begun_and_running() -> None:
    s = spec(period="1h", grace="10m")
    rec, out = fold(s, T0, [P("00:50:00", "start")], until=T(at("01:45:00")))
    assert out == [] and rec.state == "New"
    v = view(s, rec, T(at("01:45:00")))
    assert v.running and v.next_due_time == T(at("01:50:00"))
    rec, out = fold(s, T0, [P("00:50:00", "start"), P("01:45:00")])
    assert states(out) == [(at("01:45:00"), "Healthy", "PingReceived")]
    assert rec.last_duration_seconds == 3300 and not rec.running


def test_start_in_the_first_slots_late_window_returns_to_new() -> None:
    _rec, out = fold(HOURLY, T0, [P("01:05:00", "start"), P("01:40:00")])
    assert states(out) == [
        (at("01:00:00"), "Grace", "Late"),
        (at("01:05:00"), "New", "AwaitingFirstPing"),
        (at("01:40:00"), "Healthy", "PingReceived"),
    ]
    assert out[1].event_reason is None and out[2].event_reason == "FirstPing"


def test_max_runtime_boundary_and_timeout() -> None:
    s = spec(period="1h", grace="10m", maxRuntime="30m")
    _, out = fold(s, T0, [P("00:10:00", "start"), P("00:40:00")])
    assert [t.state for t in out] == ["Healthy"]  # finishing at exactly maxRuntime is on time
    rec, out = fold(s, T0, [P("00:10:00", "start")], until=T(at("00:45:00")))
    assert states(out) == [(at("00:40:00"), "Down", "RunTimeout")]
    assert out[0].event_type == "Warning" and "maxRuntime 30m" in out[0].message
    assert not view(s, rec, T(at("00:45:00"))).running


def test_late_finish_after_timeout_is_recorded_but_changes_nothing() -> None:
    s = spec(period="1h", grace="10m", maxRuntime="30m", failureThreshold=3)
    rec, out = fold(s, T0, [P("00:10:00", "start"), P("00:50:00")])
    assert states(out) == [(at("00:40:00"), "Grace", "RunTimeout")]
    assert rec.last_success_time == T(at("00:50:00"))
    assert rec.last_duration_seconds == 2400
    assert rec.reference_time == T(at("00:50:00"))
    assert (rec.consecutive_failures, rec.success_streak) == (1, 0)
    assert rec.open_runs == []


def test_min_runtime_boundary_and_too_fast() -> None:
    s = spec(period="1h", grace="10m", minRuntime="1m")
    _, out = fold(s, T0, [P("00:10:00", "start"), P("00:11:00")])
    assert out[-1].state == "Healthy"  # exactly minRuntime is not too fast
    rec, out = fold(s, T0, [P("00:10:00", "start"), P("00:10:30")])
    assert states(out) == [(at("00:10:30"), "Down", "RanTooFast")]
    assert "faster than minRuntime 1m" in out[0].message
    assert rec.last_failure_time == T(at("00:10:30"))
    # An unpaired finish has no duration, so it is never too fast.
    _, out = fold(s, T0, [P("00:10:00", "start", run_id="a"), P("00:10:30", run_id="b")])
    assert out[-1].state == "Healthy"


def test_overlapping_runs_pair_by_id() -> None:
    s = spec(period="1h", grace="10m", maxRuntime="30m")
    rec, out = fold(
        s,
        T0,
        [
            P("00:00:00", "start", run_id="a"),
            P("00:20:00", "start", run_id="b"),
            P("00:25:00", run_id="a"),
            P("00:45:00", run_id="b"),
        ],
    )
    assert [t.state for t in out] == ["Healthy"]
    assert rec.recent_pings[0].duration_seconds == 1500
    assert rec.recent_pings[1].duration_seconds == 1500
    assert rec.open_runs == []


def test_finish_without_id_closes_the_most_recent_run() -> None:
    rec, _ = fold(
        HOURLY,
        T0,
        [P("00:00:00", "start", run_id="a"), P("00:05:00", "start", run_id="b"), P("00:06:00")],
    )
    assert [r.run_id for r in rec.open_runs] == ["a"]
    assert rec.last_duration_seconds == 60


def test_start_without_id_replaces_an_open_run_without_id() -> None:
    s = spec(period="1h", grace="10m", maxRuntime="30m")
    rec, out = fold(
        s, T0, [P("00:00:00", "start"), P("00:20:00", "start")], until=T(at("00:45:00"))
    )
    assert out == []  # the first run's maxRuntime (00:30) was cancelled
    assert len(rec.open_runs) == 1 and rec.open_runs[0].start_time == T(at("00:20:00"))
    rec, _ = fold(s, T0, [P("00:00:00", "start", run_id="x"), P("00:20:00", "start", run_id="x")])
    assert len(rec.open_runs) == 1  # a start reusing an open run's id replaces it


def test_timed_out_run_stays_open_until_a_replacing_start() -> None:
    s = spec(period="1h", grace="10m", maxRuntime="10m", failureThreshold=5)
    rec, _out = fold(s, T0, [P("00:00:00", "start")], until=T(at("00:15:00")))
    assert rec.open_runs[0].timed_out
    rec, _ = apply(s, rec, P("00:20:00", "start"), T(at("00:20:00")))
    assert [r.timed_out for r in rec.open_runs] == [False]


def test_log_ping_changes_nothing_but_is_recorded() -> None:
    rec, out = fold(HOURLY, T0, [P("00:10:00", "log", body="hello")])
    assert out == [] and rec.state == "New"
    assert rec.ping_count == 1 and rec.ping_counts == {"log": 1}
    assert rec.last_output is not None and rec.last_output.body == "hello"
    assert rec.reference_time == T0
    # A log ping is not a "ping" for NeverPinged.
    _, out = fold(HOURLY, T0, [P("00:10:00", "log")], until=T(at("01:11:00")))
    assert out[-1].reason == "NeverPinged"


# --------------------------------------------------------------------------- pause


def test_nothing_alerts_while_paused_and_resume_counts_from_the_resume() -> None:
    s = spec(period="1h", grace="10m")
    rec, out = fold(
        s,
        T0,
        [P("00:10:00"), Pause(T(at("00:30:00"))), P("02:00:00", "fail", body="x")],
        until=T(at("05:00:00")),
    )
    assert states(out) == [
        (at("00:10:00"), "Healthy", "PingReceived"),
        (at("00:30:00"), "Paused", "Paused"),
    ]
    assert out[1].event_reason == "Paused" and "spec.paused" in out[1].message
    assert rec.ping_count == 2 and rec.ping_counts == {"success": 1, "fail": 1}
    assert rec.last_failure_time is None and rec.consecutive_failures == 0
    assert rec.last_output is not None and rec.last_ping_time == T(at("02:00:00"))
    v = view(s, rec, T(at("05:00:00")))
    assert (v.state, v.next_due_time, v.next_change_at) == ("Paused", None, None)
    rec, out = apply(s, rec, Resume(T(at("05:00:00"))), T(at("05:00:00")))
    assert states(out) == [(at("05:00:00"), "Healthy", "PingReceived")]
    assert out[0].event_reason == "Resumed"
    assert view(s, rec, T(at("05:00:00"))).next_due_time == T(at("06:00:00"))


def test_resume_keeps_down_and_drops_lateness() -> None:
    s = spec(period="1h", grace="10m")
    _, out = fold(
        s, T0, [P("00:10:00", "fail"), Pause(T(at("00:20:00"))), Resume(T(at("03:00:00")))]
    )
    assert states(out)[-1] == (at("03:00:00"), "Down", "Failed")
    _rec, out = fold(s, T0, [P("00:00:00"), Pause(T(at("01:05:00"))), Resume(T(at("01:30:00")))])
    assert states(out)[1:] == [
        (at("01:00:00"), "Grace", "Late"),
        (at("01:05:00"), "Paused", "Paused"),
        (at("01:30:00"), "Healthy", "PingReceived"),
    ]


def test_pause_forgets_open_runs_and_a_pause_at_a_deadline_comes_first() -> None:
    s = spec(period="1h", grace="10m", maxRuntime="20m")
    rec, out = fold(s, T0, [P("00:00:00", "start"), Pause(T(at("00:20:00")))])
    assert states(out) == [(at("00:20:00"), "Paused", "Paused")]  # no RunTimeout at 00:20
    assert rec.open_runs == [] and not rec.running
    _, out = fold(s, T0, [Pause(T(at("01:10:00")))])
    assert states(out) == [(at("01:00:00"), "Grace", "Late"), (at("01:10:00"), "Paused", "Paused")]


# --------------------------------------------------------------------------- time details


def test_inputs_earlier_than_the_latest_transition_are_clamped() -> None:
    rec, _ = fold(HOURLY, T0, [P("00:30:00")])
    rec, out = apply(HOURLY, rec, P("00:10:00", "fail"), T(at("00:31:00")))
    assert out[0].time == T(at("00:30:00"))
    assert rec.last_failure_time == T(at("00:30:00"))


def test_tick_is_idempotent_and_changes_nothing_before_a_deadline() -> None:
    rec, _ = fold(HOURLY, T0, [P("00:30:00")])
    again, out = apply(HOURLY, rec, Tick(T(at("01:00:00"))), T(at("01:00:00")))
    assert out == [] and again.to_status() == rec.to_status()


def test_early_cron_ping_counts_for_the_coming_tick() -> None:
    s = spec(schedule="0 * * * *", grace="5m")
    rec, out = fold(s, T0, [P("00:59:30")], until=T(at("01:30:00")))
    assert [t.state for t in out] == ["Healthy"]  # counted for 01:00; next due 02:00
    assert rec.reference_time == T(at("01:00:00"))
    assert rec.last_success_time == T(at("00:59:30"))  # the arrival time is kept
    rec, out = fold(s, T0, [P("00:58:59")], until=T(at("01:30:00")))
    assert states(out)[1:] == [
        (at("01:00:00"), "Grace", "Late"),
        (at("01:05:00"), "Down", "Missed"),
    ]


def test_the_finish_of_a_run_that_started_long_before_is_not_an_early_ping() -> None:
    # An hourly job started at 01:00 and done at 01:59:30 ran for 01:00: its 02:00 run
    # is still expected (counting the finish for 02:00 left a silent 02:00 unalarmed
    # until 03:05). A finish whose start was itself within the window stays early.
    s = spec(schedule="0 * * * *", grace="5m")
    rec, out = fold(s, T0, [P("01:00:00", "start"), P("01:59:30")], until=T(at("02:06:00")))
    assert states(out)[-2:] == [
        (at("02:00:00"), "Grace", "Late"),
        (at("02:05:00"), "Down", "Missed"),
    ]
    rec, out = fold(s, T0, [P("01:59:10", "start"), P("01:59:40")], until=T(at("02:06:00")))
    assert view(s, rec, T(at("02:06:00"))).next_due_time == T(at("03:00:00"))
    assert states(out)[-1] == (at("01:59:40"), "Healthy", "PingReceived")  # no Late at 02:00
    # Every minute: the 00:02 run's finish at 00:02:30 is not the 00:03 run.
    s = spec(schedule="* * * * *", grace="20s")
    pings = [P("00:01:00", "start"), P("00:01:30"), P("00:02:00", "start"), P("00:02:30")]
    _rec, out = fold(s, T0, pings, until=T(at("00:03:21")))
    assert states(out)[-2:] == [
        (at("00:03:00"), "Grace", "Late"),
        (at("00:03:20"), "Down", "Missed"),
    ]


def test_every_minute_pings_at_each_tick_count_once_each() -> None:
    s = spec(schedule="* * * * *", grace="30s")
    rec, out = fold(s, T0, [P("00:01:00"), P("00:02:00"), P("00:02:59.500")])
    assert [t.state for t in out] == ["Healthy"]
    # The ping at 00:02:00 is the 00:02 run (not an early 00:03 one); 00:02:59.5 is early.
    assert rec.reference_time == T(at("00:03:00"))
    assert view(s, rec, T(at("00:03:00"))).next_due_time == T(at("00:04:00"))


def test_cron_fall_back_alert_is_after_the_second_occurrence() -> None:
    s = spec(schedule="30 2 * * *", timeZone="Europe/Berlin", grace="15m")
    created = T("2026-10-24T12:00:00Z")
    rec, out = fold(s, created, [Ping(T("2026-10-24T12:00:00Z"), "success")])
    rec, out = apply(s, rec, Tick(T("2026-10-25T01:50:00Z")), T("2026-10-25T01:50:00Z"))
    # due 02:30 CEST (00:30Z); the CronJob may run at 02:30 CET (01:30Z): alert 01:45Z.
    assert states(out) == [
        ("2026-10-25T00:30:00Z", "Grace", "Late"),
        ("2026-10-25T01:45:00Z", "Down", "Missed"),
    ]
    # A run at the second occurrence is on time, and the next slot is the next day.
    rec, _ = fold(
        s, created, [Ping(created, "success"), Ping(T("2026-10-25T01:30:05Z"), "success")]
    )
    assert view(s, rec, T("2026-10-25T01:31:00Z")).next_due_time == T("2026-10-26T01:30:00Z")


# --------------------------------------------------------------------------- Jobs


def job_ping(t: str, kind: str, uid: str, **kw: object) -> Ping:
    return Ping(T(t), kind, run_id=uid, job=(uid, kind), **kw)  # type: ignore[arg-type]


def test_job_pings_are_counted_exactly_once() -> None:
    s = spec(period="1h", grace="10m")
    rec, _ = fold(
        s,
        T0,
        [
            job_ping(at("00:10:00"), "start", "u1"),
            job_ping(at("00:12:00"), "success", "u1", exit_code=0),
        ],
    )
    again, out = apply(
        s, rec, job_ping(at("00:12:00"), "success", "u1", exit_code=0), T(at("00:13:00"))
    )
    assert out == [] and again.ping_count == rec.ping_count == 2
    assert [(j.uid, j.phase) for j in rec.reported_jobs] == [("u1", "start"), ("u1", "success")]
    assert rec.last_exit_code == 0 and rec.last_duration_seconds == 120


def test_old_jobs_are_ignored() -> None:
    s = spec(period="1h", grace="10m")
    created = T(at("00:30:00"))
    # Started before the monitor became active: ignored, and so is its failure.
    rec, out = fold(
        s,
        created,
        [job_ping(at("00:10:00"), "start", "old"), job_ping(at("00:40:00"), "fail", "old")],
    )
    assert out == [] and rec.ping_count == 0
    # An unlisted Job that finished before the reference time is ignored.
    rec, _ = fold(s, created, [P("00:50:00")])
    rec, out = apply(s, rec, job_ping(at("00:45:00"), "fail", "gone"), T(at("00:55:00")))
    assert out == [] and rec.ping_counts == {"success": 1}


def test_a_job_created_after_active_since_counts_though_its_start_is_earlier() -> None:
    # DESIGN 9.10: only Jobs older than the monitor are ignored. The start is the Pod's
    # startedAt, from its Node's clock: a Job created right after the monitor whose Node is
    # behind the API server said it started before activeSince, and was never counted.
    s = spec(period="1h", grace="10m")
    created = T(at("00:30:00"))
    job_created = T(at("00:30:01"))
    rec, out = fold(
        s,
        created,
        [
            job_ping(at("00:29:46"), "start", "new", job_created=job_created),
            job_ping(at("00:30:05"), "success", "new", exit_code=0),
        ],
    )
    assert rec.ping_counts == {"start": 1, "success": 1}
    assert [(j.uid, j.phase) for j in rec.reported_jobs] == [("new", "start"), ("new", "success")]
    assert states(out) == [(at("00:30:05"), "Healthy", "PingReceived")]
    # its start is clamped to activeSince (9.3): nothing is placed before the monitor began
    assert rec.last_start_time == created and rec.last_duration_seconds == 5
    # A Job created in the very second the monitor was (whole seconds) is not older either.
    rec, _ = fold(s, created, [job_ping(at("00:29:59"), "start", "same", job_created=created)])
    assert rec.ping_counts == {"start": 1}
    # Created before activeSince and started before it: old, ignored with its finish.
    rec, out = fold(
        s,
        created,
        [
            job_ping(at("00:29:50"), "start", "old", job_created=T(at("00:29:40"))),
            job_ping(at("00:30:05"), "success", "old", exit_code=0),
        ],
    )
    assert out == [] and rec.ping_count == 0
    assert [(j.uid, j.phase) for j in rec.reported_jobs] == [("old", "ignored")]


def test_job_predates_is_by_creation_then_by_start() -> None:
    since = T(at("00:30:00"))
    early, late = T(at("00:29:00")), T(at("00:31:00"))
    assert not job_predates(since, early, since)  # created with the monitor: new
    assert not job_predates(late, early, since)  # created after: new, whatever its clock
    assert job_predates(early, early, since)  # created and started before: old
    assert not job_predates(early, late, since)  # pending at annotation, ran after: new
    assert job_predates(early, None, since)  # created before, not started: old so far
    assert job_predates(None, early, since) and not job_predates(None, late, since)
    assert not job_predates(None, None, since)


def test_job_start_counts_for_its_scheduled_slot_if_not_over() -> None:
    s = spec(schedule="*/5 * * * *", grace="10m")
    rec, _ = fold(s, T0, [P("00:00:00")])
    start = Ping(
        T(at("00:07:00")), "start", run_id="j", job=("j", "start"), scheduled_time=T(at("00:05:00"))
    )
    rec, _ = apply(s, rec, start, T(at("00:07:00")))
    assert rec.reference_time == T(at("00:05:00"))
    assert view(s, rec, T(at("00:07:00"))).next_due_time == T(at("00:10:00"))
    # Its slot is over (past 00:05 + 10m): the start counts for the current slot.
    late = Ping(
        T(at("00:16:00")), "start", run_id="k", job=("k", "start"), scheduled_time=T(at("00:05:00"))
    )
    rec2, _ = apply(s, rec, late, T(at("00:16:00")))
    assert rec2.reference_time == T(at("00:16:00"))


# --------------------------------------------------------------------------- spec edits


def test_spec_edit_never_alerts_and_restarts_when_the_alert_is_past() -> None:
    old = spec(period="2h", grace="10m")
    rec, _ = fold(old, T0, [P("00:00:00")])
    rec, _ = apply(old, rec, Tick(T(at("01:30:00"))), T(at("01:30:00")))
    new = spec(period="1h", grace="10m")  # would have been missed at 01:10
    rec, out = apply(new, rec, SpecEdit(T(at("01:30:00"))), T(at("01:30:00")))
    assert out == [] and rec.state == "Healthy"
    assert rec.active_since == rec.reference_time == T(at("01:30:00"))
    assert view(new, rec, T(at("01:30:00"))).next_due_time == T(at("02:30:00"))
    # An edit whose recomputed alert is still ahead keeps the reference time.
    rec, _ = fold(old, T0, [P("00:00:00")])
    rec, out = apply(spec(period="1h", grace="1h"), rec, SpecEdit(T(at("01:30:00"))), T0)
    assert rec.reference_time == T0
    assert states(out) == [(at("01:30:00"), "Grace", "Late")]
    assert out[0].event_type == "Normal"


@pytest.mark.parametrize("threshold", [1, 2])
def test_down_needs_threshold_failures(threshold: int) -> None:
    s = spec(period="1h", grace="10m", failureThreshold=threshold)
    _, out = fold(s, T0, [P("00:05:00"), P("00:10:00", "fail")])
    assert out[-1].state == ("Down" if threshold == 1 else "Grace")


def test_records_keep_their_caps() -> None:
    s = spec(period="1h", grace="10m", failureThreshold=1000)
    inputs = []
    for i in range(40):
        t = T0 + timedelta(minutes=i)
        inputs.append(Ping(t, "start", run_id=f"r{i}", job=(f"u{i}", "start")))
    for i in range(40):
        inputs.append(Ping(T0 + timedelta(minutes=40 + i), "fail", body="x" * 400))
    rec, _ = fold(s, T0, inputs)
    assert len(rec.open_runs) <= 20 and len(rec.reported_jobs) == 20
    assert len(rec.recent_pings) == 10 and len(rec.recent_transitions) == 10
    assert all(len((p.body or "").encode()) <= 256 for p in rec.recent_pings)
    assert rec.last_output is not None and len(rec.last_output.body) == 400


def test_the_message_says_what_is_true_now_not_at_the_last_change() -> None:
    # Successes and starts on a Healthy monitor change no state, yet "next expected by"
    # moves with each: the Healthy condition's message must not keep the first one's.
    s = spec(period="1h", grace="10m")
    rec, out = fold(s, T0, [P("00:10:00"), P("00:40:00")])
    assert [t.reason for t in out] == ["PingReceived"]  # one transition, one Event
    assert rec.state_message == (
        "success at Sun 2026-03-01 00:40 UTC; next expected by Sun 2026-03-01 01:40 UTC + grace 10m"
    )
    rec, _ = apply(s, rec, P("01:00:00", "start"), T(at("01:00:00")))
    assert rec.state_message.startswith("run started at Sun 2026-03-01 01:00 UTC; next expected")
    assert view(s, rec, T(at("01:00:00"))).message == rec.state_message


def test_an_event_says_the_clusters_words_whole_where_status_keeps_300_bytes() -> None:
    cause = (
        "Job backup-29012 created 02:00:01 UTC; Pod backup-29012-x7k Pending for 29m: "
        'ImagePullBackOff: Back-off pulling image "registry.invalid/backup:1.4": '
        + "ErrImagePull: failed to pull and unpack image: " * 5
        + "not found"
    )
    s = spec(period="1h", grace="10m")
    fail = Ping(T(at("00:30:00")), "fail", body=cause, not_started=True)
    rec, out = fold(s, T0, [fail])
    (event,) = [t for t in out if t.event_reason == "NotStarted"]
    assert event.message == f"{cause}; 1 of failureThreshold 1"
    assert len(rec.state_message.encode()) <= 300
    # Status keeps both ends of the cause: what ("ImagePullBackOff") and why ("not found").
    assert "ImagePullBackOff" in rec.state_message
    assert " ... " in rec.state_message
    assert rec.state_message.endswith("not found; 1 of failureThreshold 1")
    assert rec.recent_transitions[0].message == rec.state_message


def test_messages_give_the_monitors_local_time_across_a_dst_change() -> None:
    # Issue 16 item 3: a New York job due at 09:30 local reads "09:30 EST (14:30 UTC)" in
    # winter and "09:30 EDT (13:30 UTC)" after the spring change (Sun 2026-03-08), with the
    # date, never a bare UTC clock the reader must convert.
    s = spec(schedule="30 9 * * *", timeZone="America/New_York", grace="5m")
    fri = Ping(time=T("2026-03-06T14:31:00Z"), kind="success")
    sat = Ping(time=T("2026-03-07T14:30:20Z"), kind="success")
    _, out = fold(s, T("2026-03-06T12:00:00Z"), [fri, sat], until=T("2026-03-08T14:00:00Z"))
    first = next(t for t in out if t.event_reason == "FirstPing")
    assert first.message == (
        "success at Fri 2026-03-06 09:31 EST (14:31 UTC); "
        "next expected by Sat 2026-03-07 09:30 EST (14:30 UTC) + grace 5m"
    )
    # Saturday's run: the next one is due after the change, an hour earlier in UTC.
    rec, _ = fold(s, T("2026-03-06T12:00:00Z"), [fri, sat])
    assert rec.state_message == (
        "success at Sat 2026-03-07 09:30:20 EST (14:30:20 UTC); "
        "next expected by Sun 2026-03-08 09:30 EDT (13:30 UTC) + grace 5m"
    )
    # Sunday's slot goes by silent: the Missed message is in local time too.
    assert out[-1].reason == "Missed"
    assert out[-1].message.startswith(
        "no ping since Sat 2026-03-07 09:30:20 EST (14:30:20 UTC); "
        "expected by Sun 2026-03-08 09:30 EDT (13:30 UTC) + grace 5m"
    )


def test_a_late_finish_during_a_late_window_ends_the_lateness() -> None:
    # Run a timed out (Down, RunTimeout), run b succeeded, the next slot turned Late, then
    # run a's finish arrived: it moves the reference time like any finish (fine print 6),
    # so the slot it was late for is no longer pending. It used to stay Late with a
    # nextDueTime in the future, and the next slot never turned Late on time.
    s = spec(period="1h", grace="10m", maxRuntime="30m")
    pings = [
        P("00:00:00", "start", run_id="a"),
        P("01:00:00", "start", run_id="b"),
        P("01:05:00", run_id="b"),
        P("02:07:00", run_id="a"),
    ]
    rec, out = fold(s, T0, pings, until=T(at("03:20:00")))
    assert states(out) == [
        (at("00:30:00"), "Down", "RunTimeout"),
        (at("01:05:00"), "Healthy", "PingReceived"),
        (at("02:05:00"), "Grace", "Late"),
        (at("02:07:00"), "Healthy", "PingReceived"),
        (at("03:07:00"), "Grace", "Late"),
        (at("03:17:00"), "Down", "Missed"),
    ]
    assert out[3].event_reason is None  # no Recovered: nothing was counted (10.8.13)
    assert "late finish at" in out[3].message and "RunTimeout" in out[3].message
    assert (rec.consecutive_failures, rec.missed_runs) == (1, 1)
