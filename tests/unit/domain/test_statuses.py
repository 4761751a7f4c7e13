"""render_status: conditions (fine print 4, DESIGN 9.7), stable lastTransitionTime, formats."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from heartbeat_operator.domain.inputs import Pause, Ping, Tick
from heartbeat_operator.domain.machine import apply
from heartbeat_operator.domain.records import Record
from heartbeat_operator.domain.specs import SpecError, parse_spec
from heartbeat_operator.domain.statuses import READY_TOKEN, Ready, render_status

from .helpers import T, fold, spec

T0 = T("2026-03-01T00:00:00Z")
S = spec(period="1h", grace="10m")


def cond(status: dict[str, Any], kind: str) -> dict[str, Any]:
    found = [c for c in status["conditions"] if c["type"] == kind]
    assert len(found) == 1
    return found[0]


def render(
    rec: Record, now: str, previous: dict[str, Any] | None = None, **kw: Any
) -> dict[str, Any]:
    args: dict[str, Any] = {
        "spec": S,
        "record": rec,
        "now": T(now),
        "generation": 3,
        "ready": READY_TOKEN,
        "previous": previous,
        "token_hash": "sha256:" + "0" * 64,
        "token_secret_name": "m-heartbeat",
    }
    args.update(kw)
    return render_status(**args)


@pytest.mark.parametrize(
    ("inputs", "until", "state", "healthy"),
    [
        ([], "2026-03-01T00:30:00Z", "New", ("Unknown", "AwaitingFirstPing")),
        (["00:10 success"], "2026-03-01T00:30:00Z", "Healthy", ("True", "PingReceived")),
        (["00:10 success"], "2026-03-01T01:15:00Z", "Grace", ("True", "Late")),
        (["00:10 success"], "2026-03-01T01:25:00Z", "Down", ("False", "Missed")),
        (["00:10 fail"], "2026-03-01T00:30:00Z", "Down", ("False", "Failed")),
        (["00:10 pause"], "2026-03-01T00:30:00Z", "Paused", ("Unknown", "Paused")),
    ],
)
def test_healthy_condition_per_state(
    inputs: list[str], until: str, state: str, healthy: tuple[str, str]
) -> None:
    items: list[Any] = []
    for text in inputs:
        hhmm, kind = text.split()
        t = T(f"2026-03-01T{hhmm}:00Z")
        items.append(Pause(t) if kind == "pause" else Ping(t, kind))  # type: ignore[arg-type]
    rec, _ = fold(S, T0, items, until=T(until))
    status = render(rec, until)
    assert status["state"] == state
    h = cond(status, "Healthy")
    assert (h["status"], h["reason"]) == healthy
    assert cond(status, "Ready")["status"] == "True"
    assert cond(status, "Ready")["reason"] == "TokenReady"
    for c in status["conditions"]:
        assert c["observedGeneration"] == 3 and c["message"]
    assert status["observedGeneration"] == 3
    assert status["tokenHash"].startswith("sha256:") and status["tokenSecretName"] == "m-heartbeat"
    assert "phase" not in status
    if state == "Paused":
        assert "nextDueTime" not in status and "alertTime" not in status
        assert status["pausedSince"] == "2026-03-01T00:10:00Z"
    else:
        assert "nextDueTime" in status and "alertTime" in status


def test_transition_time_is_the_rules_time_and_stays_stable() -> None:
    rec, _ = fold(S, T0, [Ping(T("2026-03-01T00:10:00Z"), "success")])
    first = render(rec, "2026-03-01T00:10:00.300Z")
    assert cond(first, "Healthy")["lastTransitionTime"] == "2026-03-01T00:10:00Z"
    assert cond(first, "Ready")["lastTransitionTime"] == "2026-03-01T00:10:00.300Z"
    # Written half a second after the alert time: the condition says the alert time.
    rec, _ = apply(S, rec, Tick(T("2026-03-01T01:20:00.500Z")), T0)
    down = render(rec, "2026-03-01T01:20:00.500Z", previous=first)
    h = cond(down, "Healthy")
    assert (h["status"], h["reason"], h["lastTransitionTime"]) == (
        "False",
        "Missed",
        "2026-03-01T01:20:00Z",
    )
    assert cond(down, "Ready")["lastTransitionTime"] == "2026-03-01T00:10:00.300Z"  # kept
    # Grace(Late) -> Healthy keeps the True condition's time even though the reason changed.
    rec2, _ = fold(
        S, T0, [Ping(T("2026-03-01T00:10:00Z"), "success")], until=T("2026-03-01T01:15:00Z")
    )
    late = render(rec2, "2026-03-01T01:15:00Z", previous=first)
    assert cond(late, "Healthy")["reason"] == "Late"
    assert cond(late, "Healthy")["lastTransitionTime"] == "2026-03-01T00:10:00Z"


def test_running_condition() -> None:
    rec, _ = fold(S, T0, [Ping(T("2026-03-01T00:10:00Z"), "start")])
    status = render(rec, "2026-03-01T00:11:00Z")
    r = cond(status, "Running")
    assert (r["status"], r["reason"], r["lastTransitionTime"]) == (
        "True",
        "Started",
        "2026-03-01T00:10:00Z",
    )
    rec, _ = apply(S, rec, Ping(T("2026-03-01T00:20:00Z"), "success"), T0)
    r2 = cond(render(rec, "2026-03-01T00:21:00Z", previous=status), "Running")
    assert (r2["status"], r2["reason"], r2["lastTransitionTime"]) == (
        "False",
        "Idle",
        "2026-03-01T00:20:00Z",
    )


def test_invalid_spec_keeps_state_hides_deadlines_and_healthy_is_unknown() -> None:
    rec, _ = fold(S, T0, [Ping(T("2026-03-01T00:10:00Z"), "success")])
    with pytest.raises(SpecError) as caught:
        parse_spec({"schedule": "0 2 * * *", "timeZone": "Mars/Olympus"})
    error = caught.value
    status = render(rec, "2026-03-01T00:30:00Z", spec=error, ready=Ready.from_spec_error(error))
    assert status["state"] == "Healthy"
    assert "nextDueTime" not in status and "alertTime" not in status
    ready = cond(status, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidTimeZone")
    assert "Mars/Olympus" in ready["message"]
    h = cond(status, "Healthy")
    assert (h["status"], h["reason"]) == ("Unknown", "InvalidSpec")
    paused = render(
        Record.new(T0),
        "2026-03-01T00:30:00Z",
        spec=error,
        ready=Ready.from_spec_error(error),
        paused=True,
    )
    assert paused["state"] == "Paused"
    assert cond(paused, "Healthy")["reason"] == "InvalidSpec"
    new = render(
        Record.new(T0), "2026-03-01T00:30:00Z", spec=error, ready=Ready.from_spec_error(error)
    )
    assert new["state"] == "New"


def test_ready_false_for_a_token_problem_with_a_valid_spec() -> None:
    rec = Record.new(T0)
    status = render(
        rec, "2026-03-01T00:00:01Z", ready=Ready("False", "TokenConflict", "token in use")
    )
    assert "nextDueTime" not in status
    assert cond(status, "Healthy")["reason"] == "InvalidSpec"
    assert cond(status, "Ready")["reason"] == "TokenConflict"


def test_record_survives_a_render_and_read_back() -> None:
    rec, _ = fold(S, T0, [Ping(T("2026-03-01T00:10:00Z"), "start", run_id="x")])
    status = render(rec, "2026-03-01T00:11:00Z")
    back = Record.from_status(status)
    assert back == rec
    assert status["nextDueTime"] == "2026-03-01T01:10:00Z"
    assert status["alertTime"] == "2026-03-01T01:20:00Z"
    later = T("2026-03-01T00:11:00Z") + timedelta(hours=2)
    assert apply(S, back, Tick(later), later)[1] == apply(S, rec, Tick(later), later)[1]


def test_render_shows_the_record_as_it_stands() -> None:
    # Settled 0.5 s short of the alert (the writers' settle delay): the status must not
    # show a Down that its record (and recentTransitions) does not hold yet.
    rec, _ = fold(S, T0, [Ping(T("2026-03-01T00:10:00Z"), "success")])
    rec, _ = apply(S, rec, Tick(T("2026-03-01T01:19:59.800Z")), T0)
    status = render(rec, "2026-03-01T01:20:00.300Z")
    assert status["state"] == "Grace" == status["recentTransitions"][0]["state"]
    assert status["alertTime"] == "2026-03-01T01:20:00Z"


def test_paused_while_invalid_is_shown_but_not_folded() -> None:
    rec, _ = fold(S, T0, [Ping(T("2026-03-01T00:10:00Z"), "success")])
    error = SpecError("InvalidSchedule", "spec.schedule", "bad")
    shown = render(
        rec, "2026-03-01T00:30:00Z", spec=error, ready=Ready.from_spec_error(error), paused=True
    )
    assert shown["state"] == "Paused"
    back = Record.from_status(shown)
    assert back.state == "Healthy" and back.paused_since is None
