"""DESIGN 10.5, 10.8.9: our own downtime is not the job's failure. Explicit times, ``now``
passed in; outages are an input of ``apply``/``view`` like any other fact."""

from __future__ import annotations

from datetime import timedelta

from heartbeat_operator.domain.inputs import JobPending, Ping, Tick
from heartbeat_operator.domain.machine import apply, view
from heartbeat_operator.domain.outages import (
    Outage,
    from_json,
    merge,
    overlapping,
    to_json,
    uncovered,
)
from heartbeat_operator.domain.records import Record
from heartbeat_operator.domain.statuses import READY_TOKEN, render_status

from .helpers import T, spec, states

T0 = T("2026-03-01T00:00:00Z")
S = timedelta(seconds=1)


def at(hhmmss: str) -> str:
    return f"2026-03-01T{hhmmss}Z"


def run(s, inputs, until, outages):
    """Fold ``inputs`` then ``Tick(until)`` with ``outages`` known throughout."""
    rec = Record.new(T0)
    out = []
    for item in [*inputs, Tick(until)]:
        rec, made = apply(s, rec, item, item.time, outages=outages)
        out.extend(made)
    return rec, out


def test_a_slot_whose_window_passed_during_an_outage_is_operator_unavailable() -> None:
    """period 1m grace 20s: pinged at 00:00:10, the operator was away from 00:00:30 to
    00:02:00, so the slot 00:01:10..00:01:30 never had a chance: no Late, no Missed, the
    state and counters as they were, one Normal Event naming the outage."""
    s = spec(period="1m", grace="20s")
    outage = Outage(T(at("00:00:30")), T(at("00:02:00")))
    rec, out = run(s, [Ping(T(at("00:00:10")), "success")], T(at("00:02:01")), [outage])
    assert states(out) == [
        (at("00:00:10"), "Healthy", "PingReceived"),
        (at("00:01:30"), "Healthy", "OperatorUnavailable"),
    ]
    event = out[-1]
    assert (event.event_reason, event.event_type) == ("OperatorUnavailable", "Normal")
    assert (
        "unavailable from Sun 2026-03-01 00:00:30 UTC to Sun 2026-03-01 00:02 UTC (1m30s)"
        in event.message
    )
    assert (rec.consecutive_failures, rec.missed_runs, rec.success_streak) == (0, 0, 1)
    # The next slot counts as usual: due one period after the uncounted one's due time.
    v = view(s, rec, T(at("00:02:01")), outages=[outage])
    assert v.next_due_time == T(at("00:02:10"))
    rec, out = apply(s, rec, Tick(T(at("00:02:31"))), T(at("00:02:31")), outages=[outage])
    assert states(out) == [
        (at("00:02:10"), "Grace", "Late"),
        (at("00:02:30"), "Down", "Missed"),
    ]
    assert rec.missed_runs == 1


def test_without_the_outage_the_same_slot_is_missed() -> None:
    """The control: what the monitor said before DESIGN 10.5."""
    s = spec(period="1m", grace="20s")
    rec, out = run(s, [Ping(T(at("00:00:10")), "success")], T(at("00:02:01")), [])
    assert [t.reason for t in out] == ["PingReceived", "Late", "Missed"]
    assert rec.missed_runs == 1


def test_an_overlap_under_ten_seconds_counts_as_usual() -> None:
    """Outages shorter than 10 s, or overlapping the window by less, do not count."""
    s = spec(period="1m", grace="20s")
    pinged = [Ping(T(at("00:00:10")), "success")]
    short = Outage(T(at("00:01:15")), T(at("00:01:24")))  # 9 s, inside the window
    _, out = run(s, pinged, T(at("00:01:31")), [short])
    assert [t.reason for t in out][-1] == "Missed"
    edge = Outage(T(at("00:00:30")), T(at("00:01:19")))  # overlaps the window by 9 s
    _, out = run(s, pinged, T(at("00:01:31")), [edge])
    assert [t.reason for t in out][-1] == "Missed"
    just = Outage(T(at("00:00:30")), T(at("00:01:20")))  # by exactly 10 s
    _, out = run(s, pinged, T(at("00:01:31")), [just])
    assert [t.reason for t in out][-1] == "OperatorUnavailable"


def test_one_event_per_outage_however_many_slots_it_covers() -> None:
    """A 10 s period across a 65 s outage: every slot in it uncounted (a 5 s window wholly
    inside an outage counts as overlapping it), one Event."""
    s = spec(period="10s", grace="5s")
    outage = Outage(T(at("00:00:10")), T(at("00:01:15")))
    rec, out = run(s, [Ping(T(at("00:00:05")), "success")], T(at("00:01:19")), [outage])
    events = [t for t in out if t.event_reason is not None]
    assert [t.event_reason for t in events] == ["FirstPing", "OperatorUnavailable"]
    assert rec.missed_runs == 0 and rec.consecutive_failures == 0
    assert rec.state == "Healthy"


def test_a_down_monitor_stays_down_with_its_counters() -> None:
    s = spec(period="1m", grace="10s", failureThreshold=1)
    outage = Outage(T(at("00:02:00")), T(at("00:04:00")))
    rec, out = run(s, [], T(at("00:04:01")), [outage])
    # 00:01 NeverPinged -> Down; the next slot (due 00:02, alert 00:02:10) is uncounted.
    assert states(out)[:3] == [
        (at("00:01:00"), "Grace", "Late"),
        (at("00:01:10"), "Down", "NeverPinged"),
        (at("00:02:10"), "Down", "OperatorUnavailable"),
    ]
    assert (rec.consecutive_failures, rec.missed_runs) == (1, 1)
    status = render_status(
        spec=s, record=rec, now=T(at("00:04:01")), generation=1, ready=READY_TOKEN
    )
    healthy = next(c for c in status["conditions"] if c["type"] == "Healthy")
    assert (healthy["status"], healthy["reason"]) == ("False", "OperatorUnavailable")


def test_a_run_whose_deadline_fell_in_an_outage_does_not_time_out() -> None:
    """maxRuntime 30s from a start at 00:00:10: the finish may have been lost with us."""
    s = spec(period="1h", grace="1m", maxRuntime="30s")
    outage = Outage(T(at("00:00:30")), T(at("00:01:00")))
    rec, out = run(s, [Ping(T(at("00:00:10")), "start")], T(at("00:01:01")), [outage])
    assert [t.reason for t in out] == ["OperatorUnavailable"]
    assert "run started at Sun 2026-03-01 00:00:10 UTC" in out[0].message
    assert rec.consecutive_failures == 0 and not rec.running
    assert out[0].state == "New"


def test_a_new_monitor_shows_the_reason_on_its_healthy_condition() -> None:
    s = spec(period="1m", grace="20s")
    outage = Outage(T(at("00:00:30")), T(at("00:02:00")))
    rec, out = run(s, [], T(at("00:02:01")), [outage])
    assert [(t.state, t.reason) for t in out] == [("New", "OperatorUnavailable")]
    assert rec.missed_runs == 0
    status = render_status(
        spec=s, record=rec, now=T(at("00:02:01")), generation=1, ready=READY_TOKEN
    )
    healthy = next(c for c in status["conditions"] if c["type"] == "Healthy")
    assert healthy["reason"] == "OperatorUnavailable"


def test_an_auto_wired_job_that_exists_is_still_judged_from_its_objects() -> None:
    """DESIGN 10.8.9: a Job created on time whose Pod never ran is NotStarted."""
    s = spec(period="1m", grace="20s")
    outage = Outage(T(at("00:00:30")), T(at("00:02:00")))
    pending = JobPending(
        T(at("00:01:20")), "uid-1", "job-1", T(at("00:01:05")), "no Pod created yet"
    )
    _, out = run(s, [Ping(T(at("00:00:10")), "success"), pending], T(at("00:02:01")), [outage])
    assert [t.reason for t in out][-1] == "NotStarted"


def test_a_ping_after_the_outage_within_the_window_fulfils_the_slot() -> None:
    """The due time fell in the outage (no Late); the job pinged once we were back."""
    s = spec(period="1m", grace="30s")
    outage = Outage(T(at("00:00:30")), T(at("00:01:20")))
    rec, out = run(
        s,
        [Ping(T(at("00:00:10")), "success"), Ping(T(at("00:01:25")), "success")],
        T(at("00:01:50")),
        [outage],
    )
    assert [t.reason for t in out] == ["PingReceived"]
    assert rec.success_streak == 2


def test_uncovered_gaps_between_renewals_are_the_outages() -> None:
    covered = [
        (T(at("00:00:00")), T(at("00:01:00"))),  # replica a until it stopped
        (T(at("00:00:30")), T(at("00:01:05"))),  # replica b
        (T(at("00:01:20")), T(at("00:01:20"))),  # a point: the leadership Lease renewed
        (T(at("00:03:00")), T(at("00:04:00"))),  # the replica started again
    ]
    assert uncovered(covered) == [
        Outage(T(at("00:01:05")), T(at("00:01:20"))),
        Outage(T(at("00:01:20")), T(at("00:03:00"))),
    ]
    # A gap under 10 s is no outage; nothing before the first renewal is one either.
    assert uncovered([(T0, T0 + 5 * S), (T0 + 14 * S, T0 + 20 * S)]) == []


def test_the_annotation_round_trips_and_tolerates_garbage() -> None:
    outages = [Outage(T0, T0 + 20 * S), Outage(T0 + 15 * S, T0 + 40 * S)]
    assert merge(outages) == [Outage(T0, T0 + 40 * S)]
    assert from_json(to_json(outages)) == outages
    assert to_json(outages).startswith('[{"start":"2026-03-01T00:00:00Z"')
    assert from_json("not json") == []
    assert from_json(
        '[{"start": "x"}, {"start": "2026-03-01T00:00:00Z", "end": "2026-03-01T00:01:00Z"}]'
    ) == [Outage(T0, T0 + 60 * S)]
    assert overlapping(outages, T0 + 30 * S, T0 + 60 * S) == outages[1]


def test_the_next_success_says_ping_received_again_without_an_event() -> None:
    s = spec(period="1m", grace="20s")
    outage = Outage(T(at("00:00:30")), T(at("00:02:00")))
    rec, out = run(
        s,
        [Ping(T(at("00:00:10")), "success"), Ping(T(at("00:02:05")), "success")],
        T(at("00:02:06")),
        [outage],
    )
    assert [(t.reason, t.event_reason) for t in out] == [
        ("PingReceived", "FirstPing"),
        ("OperatorUnavailable", "OperatorUnavailable"),
        ("PingReceived", None),
    ]
    assert (rec.state, rec.state_reason, rec.missed_runs) == ("Healthy", "PingReceived", 0)
