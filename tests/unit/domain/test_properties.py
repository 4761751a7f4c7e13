"""Properties of the state machine (issue 3), checked with hypothesis."""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from heartbeat_operator.domain.inputs import Input, Ping, Tick
from heartbeat_operator.domain.machine import Transition, apply, view
from heartbeat_operator.domain.records import Record
from heartbeat_operator.domain.specs import MonitorSpec
from heartbeat_operator.simulating import Event, simulate

from .helpers import US, T, spec

T0 = T("2026-03-01T00:00:00Z")
WINDOW_S = 3 * 86400

SPECS = [
    spec(period="1h", grace="10m"),
    spec(period="30m", grace="5m", failureThreshold=2, successThreshold=2),
    spec(period="1d", grace="1h", maxRuntime="2h", minRuntime="1m", failureThreshold=3),
    spec(schedule="*/15 * * * *", grace="5m", maxRuntime="10m"),
    spec(schedule="* * * * *", grace="30s"),
    spec(schedule="0 2 * * *", timeZone="Europe/Berlin", grace="30m", failureThreshold=2),
    spec(schedule="30 1 * * *", timeZone="America/New_York", grace="20m"),
    spec(schedule="0 * * * *", timeZone="America/New_York", grace="10m", minRuntime="30s"),
]
NAMES = ["success", "start", "fail", "log", "exit", "pause", "resume"]

specs = st.sampled_from(SPECS)
starts = st.sampled_from(
    [T0, T("2026-10-24T00:00:00Z"), T("2026-10-31T00:00:00Z"), T("2026-03-07T00:00:00Z")]
)


@st.composite
def events(draw: st.DrawFn, created: datetime) -> list[Event]:
    n = draw(st.integers(0, 25))
    out = []
    for line in range(n):
        offset = draw(st.integers(0, WINDOW_S))
        name = draw(st.sampled_from(NAMES))
        rid = None if name in ("pause", "resume") else draw(st.sampled_from([None, None, "a", "b"]))
        code = draw(st.integers(0, 3)) if name == "exit" else None
        out.append(Event(created + timedelta(seconds=offset), name, rid, code, line + 1))
    return out


def stepwise(s: MonitorSpec, created: datetime, inputs: list[Input], until: datetime):  # type: ignore[no-untyped-def]
    """Fold deadline by deadline, yielding (view before, transitions, record after)."""
    rec = Record.new(created)
    queue = sorted(inputs, key=lambda i: i.time)
    i = 0
    while True:
        before = view(s, rec, rec.last_transition_time)
        nxt = before.next_change_at
        item_time = queue[i].time if i < len(queue) else None
        if nxt is not None and nxt < until and (item_time is None or nxt < item_time):
            rec, out = apply(s, rec, Tick(nxt + US), nxt)
            yield before, out, rec
            continue
        if item_time is None:
            return
        rec, out = apply(s, rec, queue[i], queue[i].time)
        i += 1
        yield before, out, rec


@settings(max_examples=60, deadline=None)
@given(s=specs, created=starts, data=st.data())
def test_a_success_in_every_slot_never_leaves_healthy(
    s: MonitorSpec, created: datetime, data: st.DataObject
) -> None:
    rec = Record.new(created)
    transitions: list[Transition] = []
    for _ in range(data.draw(st.integers(1, 40))):
        v = view(s, rec, rec.reference_time)
        assert v.next_due_time is not None
        room = (v.next_due_time - rec.reference_time).total_seconds()
        # Anywhere in the slot up to its due time (cron: as early as 60 s before the tick).
        back = data.draw(st.floats(0, min(room, 60.0) if s.is_cron else room - 0.001))
        t = v.next_due_time - timedelta(seconds=back)
        rec, out = apply(s, rec, Ping(t, "success"), t)
        transitions.extend(out)
    assert [(tr.state, tr.event_reason) for tr in transitions] == [("Healthy", "FirstPing")]


@settings(max_examples=60, deadline=None)
@given(s=specs, created=starts, data=st.data())
def test_same_inputs_same_output(s: MonitorSpec, created: datetime, data: st.DataObject) -> None:
    evs = data.draw(events(created))
    until = created + timedelta(seconds=WINDOW_S + 3600)
    first = simulate(s, created, evs, until)
    second = simulate(s, created, list(evs), until)
    assert first == second
    a = list(stepwise(s, created, [e.to_input() for e in sorted(evs, key=Event.sort_key)], until))
    b = list(stepwise(s, created, [e.to_input() for e in sorted(evs, key=Event.sort_key)], until))
    assert [(x[1], x[2].to_status()) for x in a] == [(x[1], x[2].to_status()) for x in b]


@settings(max_examples=60, deadline=None)
@given(s=specs, created=starts, data=st.data())
def test_events_in_any_order_give_the_same_result(
    s: MonitorSpec, created: datetime, data: st.DataObject
) -> None:
    evs = data.draw(events(created))
    shuffled = data.draw(st.permutations(evs))
    until = created + timedelta(seconds=WINDOW_S)
    assert simulate(s, created, evs, until) == simulate(s, created, shuffled, until)


@settings(max_examples=100, deadline=None)
@given(s=specs, created=starts, data=st.data())
def test_invariants_along_any_history(
    s: MonitorSpec, created: datetime, data: st.DataObject
) -> None:
    evs = sorted(data.draw(events(created)), key=Event.sort_key)
    until = created + timedelta(seconds=WINDOW_S + 86400)
    for before, out, rec in stepwise(s, created, [e.to_input() for e in evs], until):
        for tr in out:
            # Nothing turns Down while paused (the only transition into Paused is Pause).
            if before.state == "Paused":
                assert tr.event_reason == "Resumed", tr
            # Down for silence never happens before alertTime.
            if tr.event_reason in ("Missed", "NeverPinged"):
                assert before.alert_time is not None and tr.time >= before.alert_time
        if rec.paused_since is not None:
            assert rec.state == "Paused"
            assert not any(tr.state == "Down" for tr in out)
        v = view(s, rec, rec.last_transition_time)
        if rec.paused_since is None and v.next_due_time is not None:
            # nextDueTime is always after the reference time, alertTime never before it.
            assert v.next_due_time > rec.reference_time
            assert v.alert_time is not None and v.alert_time >= v.next_due_time + s.grace
        if rec.state == "Down":
            assert rec.consecutive_failures >= s.failure_threshold
        assert len(rec.recent_transitions) <= 10 and len(rec.open_runs) <= 20
        times = [t.time for t in rec.recent_transitions]
        assert times == sorted(times, reverse=True)
