"""Events that repeat aggregate (DESIGN 10.8.13; issue 13 item 7).

While a monitor is Down, each further failed slot moves the Event of the transition into
Down — ``count`` (consecutiveFailures − failureThreshold + 1) and ``lastTimestamp`` —
instead of posting a Warning of its own; every transition still posts its own Event once.
The writer runs here against our fake ``KubeClient`` (an in-memory API), with the clock
passed in.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.unit.kube.fakes import FakeKube

from heartbeat_operator.domain.inputs import Ping, Tick
from heartbeat_operator.domain.machine import apply
from heartbeat_operator.domain.records import Record
from heartbeat_operator.domain.specs import parse_spec
from heartbeat_operator.domain.timefmt import format_time
from heartbeat_operator.domain.tokens import token_hash
from heartbeat_operator.engine import events
from heartbeat_operator.engine.api import monitor_path
from heartbeat_operator.engine.cronjobs import Owner, mirrored_events
from heartbeat_operator.engine.folding import Change
from heartbeat_operator.engine.monitors import MonitorTable
from heartbeat_operator.engine.writing import Writer, WriterConfig

T0 = datetime(2026, 1, 1, 2, 0, tzinfo=UTC)
TOKEN = "t" * 43
PATH = monitor_path("ns", "m")
OBJ = events.InvolvedObject("ns", "m", "uid-1")
MINUTE = timedelta(minutes=1)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def setup(**spec: Any) -> tuple[FakeKube, Writer, Clock]:
    fake = FakeKube()
    table = MonitorTable()
    body = {
        "apiVersion": "heartbeat.dev/v1alpha1",
        "kind": "HeartbeatMonitor",
        "metadata": {
            "name": "m",
            "namespace": "ns",
            "uid": "uid-1",
            "generation": 1,
            "creationTimestamp": format_time(T0),
        },
        "spec": {"period": "1m", "grace": "30s", **spec},
        "status": {
            "tokenHash": token_hash(TOKEN),
            "tokenSecretName": "m-heartbeat",
            "observedGeneration": 1,
        },
    }
    table.upsert(fake.add(PATH, body))
    clock = Clock()
    writer = Writer(fake, table, WriterConfig(deadline_delay=0), now=clock)  # type: ignore[arg-type]
    return fake, writer, clock


def posted(fake: FakeKube) -> list[dict[str, Any]]:
    found = [o for p, o in fake.objects.items() if "/events/" in p]
    return sorted(found, key=lambda e: (e["firstTimestamp"], e["reason"]))


async def at(writer: Writer, clock: Clock, when: datetime, *pings: Ping) -> None:
    """The writer at ``when``: the leader's settling write, or pings' write."""
    clock.now = when
    await writer.submit(("ns", "m"), Change(inputs=pings))
    await writer.drain(timeout=5)


async def test_a_monitor_down_for_many_slots_has_one_warning_whose_count_grows():
    fake, writer, clock = setup()
    await at(writer, clock, T0 + timedelta(seconds=10), Ping(T0 + timedelta(seconds=10), "success"))
    # Due 02:01:10, missed at 02:01:40; then every minute.
    for n in range(1, 6):
        await at(writer, clock, T0 + timedelta(minutes=n, seconds=41))
    status = fake.objects[PATH]["status"]
    assert (status["state"], status["consecutiveFailures"], status["missedRuns"]) == ("Down", 5, 5)

    warnings = [e for e in posted(fake) if e["type"] == "Warning"]
    assert len(warnings) == 1  # not one per missed slot
    (down,) = warnings
    assert down["reason"] == "Missed"
    assert down["count"] == 5
    assert down["firstTimestamp"] == "2026-01-01T02:01:40Z"  # the transition into Down
    assert down["lastTimestamp"] == "2026-01-01T02:05:40Z"  # the latest failed slot
    assert "5 of failureThreshold 1" in down["message"]
    # Named as DESIGN 9.6 names the Event of the transition into Down.
    name = events.event_name(OBJ, "2026-01-01T02:01:40Z", "Missed")
    assert down["metadata"]["name"] == name
    # Transitions still post their own Event, exactly once; the slot that turned Late and
    # then failed posts its Late then, with the time it turned Late (DESIGN 9.7, 10.8.13).
    assert [e["reason"] for e in posted(fake)] == ["FirstPing", "Late", "Missed"]
    late = posted(fake)[1]
    assert (late["type"], late["firstTimestamp"]) == ("Normal", "2026-01-01T02:01:10Z")

    # Back up, then down again: a new transition into Down, a new Event.
    await at(writer, clock, T0 + timedelta(minutes=6), Ping(T0 + timedelta(minutes=6), "success"))
    await at(writer, clock, T0 + timedelta(minutes=7, seconds=31))
    await at(writer, clock, T0 + timedelta(minutes=8, seconds=31))
    reasons = [(e["reason"], e["count"]) for e in posted(fake)]
    assert reasons == [
        ("FirstPing", 1),
        ("Late", 1),
        ("Missed", 5),
        ("Recovered", 1),  # out of Down: a Recovered even from a ping (10.8.13 is lateness)
        ("Late", 1),
        ("Missed", 2),
    ]


async def test_failures_below_the_threshold_post_their_own_events_then_aggregate():
    fake, writer, clock = setup(failureThreshold=3)
    await at(writer, clock, T0 + timedelta(seconds=10), Ping(T0 + timedelta(seconds=10), "success"))
    for n in range(1, 7):
        when = T0 + timedelta(minutes=n, seconds=20)
        await at(writer, clock, when, Ping(when, "fail"))
    status = fake.objects[PATH]["status"]
    assert (status["state"], status["consecutiveFailures"]) == ("Down", 6)
    failed = [e for e in posted(fake) if e["reason"] == "Failed"]
    # 1 and 2 of 3 (Grace) and 3 of 3 (into Down) each post; 4, 5, 6 move the third.
    assert [e["count"] for e in failed] == [1, 1, 4]
    assert failed[2]["firstTimestamp"] == "2026-01-01T02:03:20Z"
    assert failed[2]["lastTimestamp"] == "2026-01-01T02:06:20Z"
    assert "6 of failureThreshold 3" in failed[2]["message"]


async def test_failures_and_the_recovery_in_one_write_count_the_failures():
    """Pings that arrive together are written together: two failures while Down and the
    success after them. The anchor counts the two (the status written says 0 by then)."""
    fake, writer, clock = setup()
    await at(writer, clock, T0 + timedelta(seconds=10), Ping(T0 + timedelta(seconds=10), "success"))
    when = T0 + timedelta(seconds=20)
    await at(
        writer,
        clock,
        when,
        Ping(when, "exit", exit_code=255),
        Ping(when, "exit", exit_code=7),
        Ping(when, "success"),
    )
    assert fake.objects[PATH]["status"]["consecutiveFailures"] == 0
    reasons = [(e["reason"], e["count"]) for e in posted(fake)]
    assert reasons == [("FirstPing", 1), ("Failed", 2), ("Recovered", 1)]
    failed = posted(fake)[1]
    assert "2 of failureThreshold 1" in failed["message"]


async def test_a_catch_up_write_of_several_slots_posts_the_down_event_once_with_its_count():
    """A new leader settling several missed slots in one write: one Event, counted."""
    fake, writer, clock = setup()
    await at(writer, clock, T0 + timedelta(seconds=10), Ping(T0 + timedelta(seconds=10), "success"))
    await at(writer, clock, T0 + timedelta(minutes=4, seconds=41))
    (down,) = [e for e in posted(fake) if e["type"] == "Warning"]
    assert (down["count"], down["lastTimestamp"]) == (4, "2026-01-01T02:04:40Z")
    assert fake.writes.count(("POST", "events")) == 3  # FirstPing, Late, Missed
    assert not [w for w in fake.writes if w[0] == "PATCH"]


async def test_an_expired_down_event_is_made_again_with_its_count():
    """Events expire an hour after their last write (the API server's TTL); an hourly
    monitor's next failure finds none: it creates the Event of the transition into Down
    again, counted, rather than losing the warning."""
    fake, writer, clock = setup()
    await at(writer, clock, T0 + timedelta(seconds=10), Ping(T0 + timedelta(seconds=10), "success"))
    await at(writer, clock, T0 + timedelta(minutes=1, seconds=41))
    for path in [p for p in fake.objects if "/events/" in p]:
        del fake.objects[path]
    await at(writer, clock, T0 + timedelta(minutes=2, seconds=41))
    (down,) = posted(fake)
    assert (down["reason"], down["count"]) == ("Missed", 2)
    assert down["metadata"]["name"] == events.event_name(OBJ, "2026-01-01T02:01:40Z", "Missed")


# --- the anchor when its transition has left recentTransitions ---------------------------


def down_for(slots: int, first_reason: str = "Missed") -> dict[str, Any]:
    """The status of a one-minute monitor Down for ``slots`` failed slots, folded by the
    domain; the first failure is a fail ping when ``first_reason`` is ``Failed``."""
    spec = parse_spec({"period": "1m", "grace": "30s"}, name="m")
    record, _ = apply(spec, Record.new(T0), Ping(T0 + timedelta(seconds=10), "success"), T0)
    first = T0 + timedelta(minutes=1, seconds=20)
    if first_reason == "Failed":
        record, _ = apply(spec, record, Ping(first, "fail"), first)
    for n in range(1, slots + 1):
        now = T0 + timedelta(minutes=n, seconds=41)
        record, _ = apply(spec, record, Tick(now), now)
    return record.to_status()


def test_the_anchor_is_read_from_recent_transitions_while_listed():
    status = down_for(5)
    assert events.down_anchor(status) == (T0 + timedelta(minutes=1, seconds=40), ("Missed",))


def test_a_scrolled_out_anchor_is_found_at_state_since_trying_the_likeliest_reason_first():
    status = down_for(14, first_reason="Failed")
    assert status["consecutiveFailures"] > 10  # more than recentTransitions holds
    when, reasons = events.down_anchor(status) or (None, ())
    assert when == T0 + timedelta(minutes=1, seconds=20)  # stateSince: the fail ping
    assert reasons[0] == "Missed"  # the oldest failures still listed
    assert set(reasons) == set(events.FAILURE_REASONS)


async def test_the_patch_finds_the_anchor_under_whichever_reason_it_has():
    fake = FakeKube()
    anchor_time = T0 + timedelta(minutes=1, seconds=20)
    anchor = events.build_event(
        OBJ, time=anchor_time, reason="Failed", event_type="Warning", message="1 of 1"
    )
    await events.apply_event(fake, anchor)  # type: ignore[arg-type]
    repeat = events.Repeat(
        time=T0 + timedelta(minutes=14, seconds=40),
        state="Down",
        message="14 of failureThreshold 1",
        event_reason="Missed",
        event_type="Warning",
        anchor_time=anchor_time,
        anchor_reasons=("Missed", "Failed", "NotStarted"),
        count=14,
    )
    (action,) = events.event_posts(OBJ, [repeat])
    assert isinstance(action, events.Aggregate)
    assert await events.apply_event(fake, action)  # type: ignore[arg-type]
    (event,) = posted(fake)
    assert (event["reason"], event["count"]) == ("Failed", 14)
    assert event["lastTimestamp"] == "2026-01-01T02:14:40Z"
    assert event["message"] == "14 of failureThreshold 1"
    assert [w[0] for w in fake.writes] == ["POST", "PATCH", "PATCH"]  # Missed: 404, Failed: ok


# --- a new leader's catch-up and the CronJob's mirror -----------------------------------


def test_catch_up_posts_no_event_for_a_failure_while_down_and_counts_the_anchor():
    status = down_for(5)
    now = T0 + timedelta(minutes=6)
    made = events.missing_events(OBJ, status, now, failure_threshold=1)
    assert [(e["reason"], e["count"]) for e in made] == [
        ("Missed", 5),
        ("FirstPing", 1),
    ]
    down = made[0]
    assert down["firstTimestamp"] == "2026-01-01T02:01:40Z"
    assert down["lastTimestamp"] == "2026-01-01T02:05:40Z"
    # Without the threshold (the CronJob's catch-up) the anchor is still posted, uncounted.
    plain = events.missing_events(OBJ, status, now)
    assert [(e["reason"], e["count"]) for e in plain] == [
        ("Missed", 1),
        ("FirstPing", 1),
    ]


def test_catch_up_of_a_long_down_period_posts_nothing_for_its_listed_repeats():
    status = down_for(14)
    made = events.missing_events(OBJ, status, T0 + timedelta(minutes=15), failure_threshold=1)
    assert made == []  # every listed entry is a repeat; the anchor is no longer listed


def test_the_cronjob_mirror_aggregates_like_the_monitor():
    owner = Owner(cronjob="nightly", cronjob_uid="cj-uid", monitor_uid="uid-1")
    repeat = events.Repeat(
        time=T0 + timedelta(minutes=3, seconds=40),
        state="Down",
        message="3 of failureThreshold 1",
        event_reason="Missed",
        event_type="Warning",
        anchor_time=T0 + timedelta(minutes=1, seconds=40),
        anchor_reasons=("Missed",),
        count=3,
    )
    (action,) = mirrored_events(owner, "ns", [repeat])
    assert isinstance(action, events.Aggregate)
    cronjob = events.InvolvedObject("ns", "nightly", "cj-uid")
    assert action.names == (events.event_name(cronjob, "2026-01-01T02:01:40Z", "Missed"),)
    assert action.patch == {
        "count": 3,
        "lastTimestamp": "2026-01-01T02:03:40Z",
        "message": "3 of failureThreshold 1",
    }
    assert action.create["involvedObject"]["kind"] == "CronJob"


def test_a_new_leader_posts_a_failed_slots_late_with_its_failure_whatever_the_grace():
    # Grace 30m: the Late entry is 30 minutes old when the slot fails and its writer dies;
    # the catch-up window counts from the failure's write, when the Late was posted.
    late = {
        "time": "2026-01-01T02:00:00Z",
        "state": "Grace",
        "reason": "Late",
        "message": "expected by 02:00 + grace 30m",
        "eventReason": "Late",
    }
    missed = {
        "time": "2026-01-01T02:30:00Z",
        "state": "Down",
        "reason": "Missed",
        "message": "1 of failureThreshold 1",
        "eventReason": "Missed",
    }
    status = {"state": "Down", "consecutiveFailures": 1, "recentTransitions": [missed, late]}
    now = datetime(2026, 1, 1, 2, 31, tzinfo=UTC)
    bodies = events.missing_events(OBJ, status, now, failure_threshold=1)
    assert [(b["reason"], b["firstTimestamp"]) for b in bodies] == [
        ("Missed", "2026-01-01T02:30:00Z"),
        ("Late", "2026-01-01T02:00:00Z"),
    ]
    # Checked up to the Late's own time (the leader saw it turn Late): still posted.
    since = datetime(2026, 1, 1, 2, 0, tzinfo=UTC)
    bodies = events.missing_events(OBJ, status, now, failure_threshold=1, since=since)
    assert [b["reason"] for b in bodies] == ["Missed", "Late"]
