"""Timed pauses (``spec.pausedUntil``, issue 16 item 1): the domain decides with ``now``."""

from __future__ import annotations

from heartbeat_operator.domain.inputs import (
    PAUSE_CAUSE_CRONJOB,
    PAUSE_CAUSE_SPEC,
    PAUSE_CAUSE_UNTIL,
    Pause,
    Ping,
    Resume,
    Tick,
)
from heartbeat_operator.domain.pausing import spec_pause, spec_pause_inputs
from heartbeat_operator.domain.records import Record
from heartbeat_operator.domain.specs import SpecError, parse_spec
from heartbeat_operator.domain.statuses import READY_TOKEN, render_status
from heartbeat_operator.domain.timefmt import format_time

from .helpers import T, apply, fold, spec, states, view

CREATED = T("2026-03-01T00:00:00Z")
UNTIL = T("2026-03-01T00:30:00Z")


def timed_pause(at: str = "2026-03-01T00:10:00Z") -> Pause:
    return Pause(T(at), PAUSE_CAUSE_UNTIL, until=UNTIL)


def test_a_timed_pause_resumes_by_itself_at_its_end_with_a_resumed_transition() -> None:
    s = spec(period="1h", grace="5m")
    rec, out = fold(s, CREATED, [timed_pause()], until=T("2026-03-01T00:45:00Z"))
    assert states(out) == [
        ("2026-03-01T00:10:00Z", "Paused", "Paused"),
        ("2026-03-01T00:30:00Z", "New", "AwaitingFirstPing"),
    ]
    assert out[0].message.startswith("paused by spec.pausedUntil until Sun 2026-03-01 00:30 UTC")
    assert out[1].event_reason == "Resumed"
    assert "spec.pausedUntil Sun 2026-03-01 00:30 UTC reached" in out[1].message
    # The next slot counts from the end of the pause (fine print 8), not from creation.
    assert rec.paused_since is None and rec.paused_until is None
    assert view(s, rec, T("2026-03-01T00:45:00Z")).next_due_time == T("2026-03-01T01:30:00Z")


def test_a_tick_exactly_at_the_end_is_still_paused() -> None:
    s = spec(period="1h")
    rec, out = fold(s, CREATED, [timed_pause()], until=UNTIL)
    assert [t.state for t in out] == ["Paused"]
    assert rec.paused_until == UNTIL


def test_view_wakes_the_leader_at_the_end_of_a_timed_pause() -> None:
    s = spec(period="1h")
    rec, _ = fold(s, CREATED, [timed_pause()])
    before = view(s, rec, T("2026-03-01T00:20:00Z"))
    assert (before.state, before.next_change_at) == ("Paused", UNTIL)
    after = view(s, rec, T("2026-03-01T00:31:00Z"))
    # Behind: wake now (the past end), and the view shows the monitor resumed.
    assert (after.state, after.next_change_at) == ("New", UNTIL)


def test_a_spec_pause_with_no_end_never_wakes() -> None:
    s = spec(period="1h")
    rec, _ = fold(s, CREATED, [Pause(T("2026-03-01T00:10:00Z"))])
    assert view(s, rec, T("2026-03-02T00:00:00Z")).next_change_at is None


def test_extending_a_timed_pause_changes_its_end_without_an_event() -> None:
    s = spec(period="1h")
    later = T("2026-03-01T02:00:00Z")
    rec, out = fold(
        s,
        CREATED,
        [timed_pause(), Pause(T("2026-03-01T00:20:00Z"), PAUSE_CAUSE_UNTIL, until=later)],
        until=T("2026-03-01T01:00:00Z"),
    )
    assert [t.state for t in out] == ["Paused"]
    assert rec.paused_until == later
    assert "until Sun 2026-03-01 02:00 UTC" in rec.state_message


def test_a_cronjob_suspend_is_not_ended_by_a_spec_pause() -> None:
    s = spec(period="1h")
    rec, _ = fold(
        s, CREATED, [Pause(T("2026-03-01T00:05:00Z"), PAUSE_CAUSE_CRONJOB), timed_pause()]
    )
    assert (rec.pause_cause, rec.paused_until) == (PAUSE_CAUSE_CRONJOB, None)


def test_pings_while_timed_paused_are_recorded_and_judge_nothing() -> None:
    s = spec(period="1h")
    rec, out = fold(
        s,
        CREATED,
        [timed_pause(), Ping(T("2026-03-01T00:15:00Z"), "fail")],
        until=T("2026-03-01T00:20:00Z"),
    )
    assert rec.ping_count == 1 and rec.consecutive_failures == 0
    assert [t.state for t in out] == ["Paused"]


def test_status_shows_when_the_pause_ends() -> None:
    s = spec(period="1h")
    rec, _ = fold(s, CREATED, [timed_pause()])
    status = render_status(
        spec=s, record=rec, now=T("2026-03-01T00:11:00Z"), generation=1, ready=READY_TOKEN
    )
    assert status["state"] == "Paused"
    assert status["pausedUntil"] == "2026-03-01T00:30:00Z"
    assert status["pauseCause"] == "spec.pausedUntil"
    assert Record.from_status(status).paused_until == UNTIL


def test_spec_pause_reads_paused_until_against_now() -> None:
    raw = {"period": "1h", "pausedUntil": "2026-03-01T00:30:00Z"}
    assert spec_pause(raw, T("2026-03-01T00:29:59Z")) == Pause(
        T("2026-03-01T00:29:59Z"), PAUSE_CAUSE_UNTIL, until=UNTIL
    )
    assert spec_pause(raw, UNTIL) is None  # over: nothing to pause
    assert spec_pause({**raw, "paused": True}, UNTIL) == Pause(UNTIL, PAUSE_CAUSE_SPEC)
    assert spec_pause({"period": "1h", "pausedUntil": "soon"}, UNTIL) is None


def test_spec_pause_inputs_pause_extend_and_resume() -> None:
    now = T("2026-03-01T00:10:00Z")
    timed = {"period": "1h", "pausedUntil": format_time(UNTIL)}
    active = Record.new(CREATED)
    assert spec_pause_inputs(timed, active, now) == [Pause(now, PAUSE_CAUSE_UNTIL, until=UNTIL)]
    paused, _ = apply(spec(period="1h"), active, Pause(now, PAUSE_CAUSE_UNTIL, until=UNTIL), now)
    assert spec_pause_inputs(timed, paused, now) == []
    forever = {"period": "1h", "paused": True}
    assert spec_pause_inputs(forever, paused, now) == [Pause(now, PAUSE_CAUSE_SPEC)]
    assert spec_pause_inputs({"period": "1h"}, paused, now) == [Resume(now, PAUSE_CAUSE_UNTIL)]
    assert spec_pause_inputs({"period": "1h"}, active, now) == []


def test_resume_before_the_end_says_cleared() -> None:
    s = spec(period="1h")
    rec, out = fold(
        s, CREATED, [timed_pause(), Resume(T("2026-03-01T00:20:00Z"), PAUSE_CAUSE_UNTIL)]
    )
    assert out[-1].event_reason == "Resumed"
    assert "spec.pausedUntil cleared" in out[-1].message
    assert rec.paused_until is None
    assert apply(s, rec, Tick(UNTIL), UNTIL)[1] == []


def test_parse_spec_reads_and_checks_paused_until() -> None:
    assert spec(period="1h", pausedUntil="2026-03-01T01:30:00+01:00").paused_until == UNTIL
    try:
        parse_spec({"period": "1h", "pausedUntil": "tomorrow"})
    except SpecError as exc:
        assert (exc.reason, exc.field) == ("InvalidSpec", "spec.pausedUntil")
    else:  # pragma: no cover - the assertion above is the test
        raise AssertionError("an unreadable pausedUntil must be refused")


def test_a_timed_pause_that_outlasts_a_suspend_resumes_by_itself_at_its_end() -> None:
    # Issue 16 (engine.cronjobs.pause_inputs): the suspend ends while pausedUntil is ahead.
    s = spec(period="1h", grace="5m")
    later = T("2026-03-01T00:40:00Z")
    at = T("2026-03-01T00:20:00Z")
    inputs = [
        Pause(T("2026-03-01T00:10:00Z"), PAUSE_CAUSE_CRONJOB),
        Resume(at, PAUSE_CAUSE_CRONJOB),
        Pause(at, PAUSE_CAUSE_UNTIL, until=later),
    ]
    rec, out = fold(s, CREATED, inputs, until=T("2026-03-01T00:50:00Z"))
    assert [t.event_reason for t in out] == ["Paused", "Resumed", "Paused", "Resumed"]
    assert out[-1].time == later and rec.paused_since is None
