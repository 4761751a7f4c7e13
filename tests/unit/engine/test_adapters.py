"""Pure builders of the kube package: Events, Secrets, the monitor table, folding."""

from __future__ import annotations

import asyncio
import base64
import inspect
from datetime import UTC, datetime, timedelta

from tests.support.waiting import async_wait_for

from heartbeat_operator.domain.inputs import Ping
from heartbeat_operator.domain.tokens import token_hash
from heartbeat_operator.engine import events, folding, secrets
from heartbeat_operator.engine.folding import Change, TokenUpdate
from heartbeat_operator.engine.monitors import MonitorEntry, MonitorTable

T0 = datetime(2026, 1, 1, 2, 0, tzinfo=UTC)
OBJ = events.InvolvedObject("ops", "n" * 250, "uid-1")


def body(name="m", uid="uid-1", rv="10", created="2026-01-01T01:59:00Z", status=None, **spec):
    return {
        "metadata": {
            "name": name,
            "namespace": "ops",
            "uid": uid,
            "generation": 1,
            "resourceVersion": rv,
            "creationTimestamp": created,
        },
        "spec": spec or {"period": "1h"},
        "status": status or {},
    }


# --- Events ---------------------------------------------------------------------------


def test_event_name_is_deterministic_and_cut():
    a = events.build_event(OBJ, time=T0, reason="Missed", event_type="Warning", message="x")
    b = events.build_event(OBJ, time=T0, reason="Missed", event_type="Warning", message="y")
    c = events.build_event(OBJ, time=T0, reason="Failed", event_type="Warning", message="x")
    assert a["metadata"]["name"] == b["metadata"]["name"] != c["metadata"]["name"]
    prefix, digest = a["metadata"]["name"].rsplit(".", 1)
    assert prefix == "n" * 200 and len(digest) == 16
    assert a["source"] == {"component": "heartbeat-operator"}
    assert a["reportingComponent"] == "heartbeat-operator"
    assert a["involvedObject"]["uid"] == "uid-1"
    assert a["firstTimestamp"] == "2026-01-01T02:00:00Z"


def test_long_messages_are_cut_in_the_middle():
    message = "start " + "x" * 5000 + " end"
    cut = events.shorten(message)
    assert len(cut) <= events.MAX_MESSAGE
    assert cut.startswith("start ") and cut.endswith(" end")


def test_catch_up_rebuilds_the_writers_events_for_young_transitions():
    """Exactly the Events the writer posted (eventReason), none for a transition that
    posted none (here a spec edit), and only for transitions younger than 10 minutes."""
    status = {
        "recentTransitions": [
            {"time": "2026-01-01T02:09:00Z", "state": "Healthy", "reason": "PingReceived",
             "eventReason": "Recovered"},
            {"time": "2026-01-01T02:06:00Z", "state": "Grace", "reason": "Missed",
             "message": "spec edited: 1 of failureThreshold 3"},
            {"time": "2026-01-01T02:05:00Z", "state": "Down", "reason": "Missed", "message": "m",
             "eventReason": "Missed"},
            {"time": "2026-01-01T01:00:00Z", "state": "Healthy", "reason": "PingReceived",
             "eventReason": "FirstPing"},
        ]
    }  # fmt: skip
    now = T0 + timedelta(minutes=14, seconds=30)
    made = events.missing_events(OBJ, status, now)
    assert [(e["reason"], e["type"]) for e in made] == [
        ("Recovered", "Normal"),
        ("Missed", "Warning"),
    ]
    same = events.build_event(
        OBJ, time=T0 + timedelta(minutes=5), reason="Missed", event_type="Warning", message="m"
    )
    assert made[1]["metadata"]["name"] == same["metadata"]["name"]


def test_the_writer_keeps_each_transitions_event_in_status():
    entry = MonitorEntry.from_body(body(status=None))
    first = folding.fold(entry, [Change(token=TokenUpdate(secret_name="m-heartbeat"))], T0)
    entry = MonitorEntry.from_body(body(rv="11", status=first.status))
    pinged = folding.fold(entry, [Change(inputs=(Ping(T0, "success"),))], T0)
    assert [t.event_reason for t in pinged.transitions] == ["FirstPing"]
    assert pinged.status["recentTransitions"][0]["eventReason"] == "FirstPing"


# --- Secrets ---------------------------------------------------------------------------


def secret(token=None, owner_uid=None):
    data = {} if token is None else {"token": base64.b64encode(token.encode()).decode()}
    meta = {"name": "s"}
    if owner_uid:
        meta["ownerReferences"] = [{"uid": owner_uid, "controller": True}]
    return {"metadata": meta, "data": data}


def test_judging_a_secret():
    entry = MonitorEntry.from_body(body())
    good = "A" * 43
    assert secrets.judge_secret(secret(good), entry, "s").token == good
    weak = secrets.judge_secret(secret("short"), entry, "s")
    assert (weak.token, weak.reason) == (None, "WeakToken")
    assert "short" not in weak.message
    other = secrets.judge_secret(secret(), entry, "s")
    assert (other.token, other.reason, other.owned) == (None, "SecretConflict", False)
    ours = secrets.judge_secret(secret(None, "uid-1"), entry, "s")
    assert (ours.token, ours.owned) == (None, True)


def test_a_created_secret_is_opaque_owned_and_labelled():
    entry = MonitorEntry.from_body(body())
    urls = secrets.ping_urls("tok", "http://x", "http://svc")
    made = secrets.build_secret(entry, "m-heartbeat", "tok", urls)
    assert made["type"] == "Opaque"
    assert made["stringData"] == {
        "token": "tok",
        "url": "http://x/ping/tok",
        "internal-url": "http://svc/ping/tok",
    }
    (ref,) = made["metadata"]["ownerReferences"]
    assert (ref["uid"], ref["controller"]) == ("uid-1", True)
    assert made["metadata"]["labels"]["heartbeat.dev/monitor"] == "m"
    assert secrets.secret_name_for(entry) == "m-heartbeat"


def test_a_long_monitor_name_still_gives_a_valid_label():
    name = "a" * 62 + "-b" + "c" * 30  # cut at 63 it would end with "-"
    made = secrets.build_secret(MonitorEntry.from_body(body(name)), "s", "tok", {"url": "u"})
    assert made["metadata"]["labels"]["heartbeat.dev/monitor"] == "a" * 62


# --- the table -----------------------------------------------------------------------------


def test_the_table_never_goes_back_to_an_older_version():
    table = MonitorTable()
    table.upsert(body(rv="20", status={"pingCount": 2}))
    table.upsert(body(rv="19", status={"pingCount": 1}))
    assert table.get(("ops", "m")).status == {"pingCount": 2}


def test_the_table_gives_back_a_status_exactly_as_the_api_returned_it():
    status = {
        "state": "Healthy",
        "lastDurationSeconds": 412.5,
        "recentPings": [{"time": "2026-01-01T02:00:00.250Z", "kind": "success", "body": "é✓"}],
        "lastOutput": {"time": "2026-01-01T02:00:00.250Z", "kind": "success", "body": "x" * 10_000},
        "tokenHash": token_hash("C" * 43),
        "observedGeneration": 1,
    }
    table = MonitorTable()
    entry = table.upsert(body(status=status))
    assert entry.status == status
    assert (entry.token_hash, entry.observed_generation) == (status["tokenHash"], 1)
    assert len(entry.packed_histories) < 1_000  # packed: 10 KB of output is held compressed


def test_the_watch_echo_of_a_version_already_held_changes_nothing():
    table = MonitorTable()
    seen = []
    table.subscribe(lambda key, entry: seen.append(entry))
    first = table.upsert(body(rv="20", status={"pingCount": 2}))
    assert table.upsert(body(rv="20", status={"pingCount": 2})) is first
    assert seen == [first]


def test_a_token_belongs_to_the_oldest_monitor_claiming_it():
    table = MonitorTable()
    digest = token_hash("A" * 43)
    table.upsert(body("new", "u2", created="2026-02-01T00:00:00Z", status={"tokenHash": digest}))
    table.upsert(body("old", "u1", created="2026-01-01T00:00:00Z", status={"tokenHash": digest}))
    assert table.owner_of(digest).name == "old"
    table.remove("ops", "old")
    assert table.owner_of(digest).name == "new"


async def _true(value: bool) -> bool:
    return value


async def test_waiting_for_a_token_wakes_when_it_arrives():
    table = MonitorTable()
    digest = token_hash("B" * 43)
    waiter = asyncio.create_task(table.wait_for_owner(digest, 5))
    # The token must arrive while the waiter waits, not before it looked.
    await async_wait_for(
        lambda: _true(inspect.getcoroutinestate(waiter.get_coro()) == inspect.CORO_SUSPENDED),
        timeout=2,
        what="the waiter waiting",
    )
    table.upsert(body(status={"tokenHash": digest}))
    assert (await waiter).name == "m"
    assert await table.wait_for_owner("sha256:none", 0.01) is None


# --- folding -------------------------------------------------------------------------------


def test_first_write_of_a_new_monitor_holds_the_hash_but_no_secret_name_yet():
    entry = MonitorEntry.from_body(body(status=None))
    update = TokenUpdate(token_hash="sha256:abc", secret_name=None)
    folded = folding.fold(entry, [Change(token=update)], T0)
    assert folded.status["tokenHash"] == "sha256:abc"
    assert "tokenSecretName" not in folded.status
    assert folded.status["state"] == "New"
    assert folded.changed
    # Not Ready until the Secret holds the token: `kubectl wait --for=condition=Ready`
    # must mean the URL can be read.
    assert [c["type"] for c in folded.status["conditions"]] == ["Healthy", "Running"]
    entry = MonitorEntry.from_body(body(rv="11", status=folded.status))
    stored = folding.fold(entry, [Change(token=TokenUpdate(secret_name="m-heartbeat"))], T0)
    ready = [c for c in stored.status["conditions"] if c["type"] == "Ready"]
    assert [(c["status"], c["reason"]) for c in ready] == [("True", "TokenReady")]


def test_a_ping_is_folded_and_an_unchanged_status_is_not_rewritten():
    entry = MonitorEntry.from_body(body(status=None))
    first = folding.fold(entry, [], T0)
    entry = MonitorEntry.from_body(body(status=first.status))
    assert not folding.fold(entry, [], T0).changed
    pinged = folding.fold(entry, [Change(inputs=(Ping(T0, "success"),))], T0)
    assert pinged.status["state"] == "Healthy"
    assert [t.event_reason for t in pinged.transitions] == ["FirstPing"]


def test_an_invalid_spec_counts_pings_alerts_never_and_says_so_once_per_generation():
    entry = MonitorEntry.from_body(body(schedule="61 * * * *"))
    folded = folding.fold(entry, [Change(inputs=(Ping(T0, "success"),))], T0)
    ready = folding.ready_condition(folded.status)
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSchedule")
    assert folded.status["pingCount"] == 1
    assert [t.event_reason for t in folded.transitions] == ["InvalidSpec"]
    again = folding.fold(
        MonitorEntry.from_body(body(schedule="61 * * * *", status=folded.status)), [], T0
    )
    assert again.transitions == []


def test_fixing_an_invalid_spec_judges_from_the_fix_so_pings_meanwhile_never_page():
    """Section 2: nothing alerts on a spec that cannot be evaluated; its pings are only
    recorded. The job that pinged during that window must not be paged Missed once the
    spec is fixed (the slot counted from the last ping before it would be)."""

    def at_generation(generation, status, rv, **spec):
        made = body(rv=rv, status=status, **spec)
        made["metadata"]["generation"] = generation
        return MonitorEntry.from_body(made)

    good = {"period": "30m", "grace": "5m"}
    bad = {"period": "30m", "grace": "5m", "minRuntime": "2h", "maxRuntime": "1h"}
    status = folding.fold(at_generation(1, None, "1", **good), [], T0).status
    status = folding.fold(  # 02:00 success: due 02:30, missed after 02:35
        at_generation(1, status, "2", **good), [Change(inputs=(Ping(T0, "success"),))], T0
    ).status
    status = folding.fold(
        at_generation(2, status, "3", **bad), [], T0 + timedelta(minutes=5)
    ).status
    during = T0 + timedelta(minutes=20)
    status = folding.fold(
        at_generation(2, status, "4", **bad), [Change(inputs=(Ping(during, "success"),))], during
    ).status
    assert folding.ready_condition(status)["status"] == "False" and status["pingCount"] == 2

    fixed_at = T0 + timedelta(minutes=25)
    fixed = folding.fold(at_generation(3, status, "5", **good), [], fixed_at, observed_spec=bad)
    assert fixed.status["nextDueTime"] == "2026-01-01T02:55:00Z"  # a period from the fix
    later = folding.fold(
        at_generation(3, fixed.status, "6", **good), [], T0 + timedelta(minutes=40)
    )
    assert later.status["state"] == "Healthy" and not later.transitions


def test_a_job_that_started_while_ready_was_false_still_pages_when_it_fails_after_the_fix():
    """The restart after Ready=False restarts the count, not the monitor: a Job that began
    meanwhile (its start only recorded, so offered again) is still the monitor's run."""
    from heartbeat_operator.domain.statuses import READY_TOKEN, Ready

    weak = Ready("False", "WeakToken", "the token in Secret m-heartbeat is too short")
    entry = MonitorEntry.from_body(body(status=None))  # period 1h, created 01:59
    token = TokenUpdate(token_hash="sha256:abc", secret_name="m-heartbeat", ready=weak)
    failed = folding.fold(entry, [Change(token=token)], T0)
    started = T0 + timedelta(minutes=1)
    start = Ping(started, "start", run_id="j1", job=("j1", "start"), job_created=started)
    failed = folding.fold(
        MonitorEntry.from_body(body(rv="11", status=failed.status)),
        [Change(inputs=(start,))],
        started,
    )
    fixed_at = T0 + timedelta(minutes=10)
    fixed = folding.fold(
        MonitorEntry.from_body(body(rv="12", status=failed.status)),
        [Change(token=TokenUpdate(ready=READY_TOKEN)), Change(inputs=(start,))],
        fixed_at,
    )
    assert not fixed.transitions
    ended = T0 + timedelta(minutes=20)
    fail = Ping(ended, "fail", run_id="j1", exit_code=3, job=("j1", "fail"))
    down = folding.fold(
        MonitorEntry.from_body(body(rv="13", status=fixed.status)), [Change(inputs=(fail,))], ended
    )
    assert [(t.state, t.event_reason) for t in down.transitions] == [("Down", "Failed")]


def test_every_writer_folds_an_unobserved_pause():
    entry = MonitorEntry.from_body(body(status=None))
    status = folding.fold(entry, [Change(inputs=(Ping(T0, "success"),))], T0).status
    edited = body(status=status, period="1h", paused=True)
    edited["metadata"]["generation"] = 2
    folded = folding.fold(MonitorEntry.from_body(edited), [], T0 + timedelta(minutes=1))
    assert folded.status["state"] == "Paused"
    assert folded.status["observedGeneration"] == 2
    assert [t.event_reason for t in folded.transitions] == ["Paused"]


def test_a_new_leader_rebuilds_exactly_the_events_the_writers_posted():
    """Catch-up Events (derived from recentTransitions) have the names the writer used."""
    from heartbeat_operator.domain.inputs import Pause, Resume, Tick
    from heartbeat_operator.domain.machine import apply
    from heartbeat_operator.domain.records import Record
    from heartbeat_operator.domain.specs import parse_spec

    spec = parse_spec({"period": "10m", "grace": "5m"}, name="m")
    record = Record.new(T0)
    posted = []
    steps = [
        Ping(T0 + timedelta(minutes=1), "success"),
        Tick(T0 + timedelta(minutes=12)),
        Tick(T0 + timedelta(minutes=17)),
        Ping(T0 + timedelta(minutes=18), "success"),
        Pause(T0 + timedelta(minutes=19)),
        Resume(T0 + timedelta(minutes=20)),
        Ping(T0 + timedelta(minutes=21), "fail"),
    ]
    for step in steps:
        record, made = apply(spec, record, step, step.time)
        obj = events.InvolvedObject("ops", "m", "uid-1")
        posted += [
            events.build_event(
                obj, time=t.time, reason=t.event_reason, event_type=t.event_type, message=t.message
            )
            for t in made
            if t.event_reason
        ]
    now = T0 + timedelta(minutes=22)  # 02:11 and 02:01 are older than 10 minutes
    rebuilt = events.missing_events(
        events.InvolvedObject("ops", "m", "uid-1"), record.to_status(), now
    )
    posted_young = [e for e in posted if e["firstTimestamp"] >= "2026-01-01T02:12:00Z"]
    key = lambda e: (e["metadata"]["name"], e["reason"], e["type"])  # noqa: E731
    assert sorted(map(key, rebuilt)) == sorted(map(key, posted_young))
    assert len(rebuilt) == 5
    assert {e["reason"] for e in rebuilt} == {"Missed", "Recovered", "Paused", "Resumed", "Failed"}


def test_before_a_spec_edit_time_is_judged_by_the_old_spec():
    created = body(status=None, period="10m", grace="5m")
    created["metadata"]["creationTimestamp"] = "2026-01-01T02:00:00Z"
    status = folding.fold(MonitorEntry.from_body(created), [], T0).status
    created["status"] = status
    pinged = folding.fold(
        MonitorEntry.from_body(created),
        [Change(inputs=(Ping(T0 + timedelta(minutes=1), "success"),))],
        T0 + timedelta(minutes=1),
    ).status
    edited = body(status=pinged, period="1h", grace="5m")
    edited["metadata"].update(generation=2, creationTimestamp="2026-01-01T02:00:00Z")
    entry = MonitorEntry.from_body(edited)
    now = T0 + timedelta(minutes=16, seconds=42)  # alertTime 02:16 passed, not yet written

    judged = folding.fold(
        entry,
        [],
        now,
        settle_delay=timedelta(seconds=0.5),
        observed_spec={"period": "10m", "grace": "5m"},
    )
    missed = [t for t in judged.transitions if t.event_reason == "Missed"]
    assert [t.time for t in missed] == [T0 + timedelta(minutes=16)]
    assert judged.status["observedGeneration"] == 2

    unknown = folding.fold(entry, [], now, settle_delay=timedelta(seconds=0.5))
    assert not [t for t in unknown.transitions if t.event_reason == "Missed"]  # edits never alert


def test_a_status_is_held_as_a_summary_and_its_histories() -> None:
    """The metrics read the summary: every field but the histories, unpacked without them;
    the whole status, packed against the preset dictionary, is smaller than plain zlib."""
    import zlib

    import orjson

    from heartbeat_operator.engine.packing import HISTORY_FIELDS

    status = {
        "observedGeneration": 1,
        "state": "Down",
        "stateReason": "Missed",
        "lastPingTime": "2026-01-01T02:00:00.250Z",
        "pingCounts": {"success": 3, "start": 3},
        "conditions": [{"type": "Ready", "status": "True", "reason": "TokenReady",
                        "message": "the ping token is ready",
                        "lastTransitionTime": "2026-01-01T01:59:00Z", "observedGeneration": 1}],
        "recentPings": [{"time": "2026-01-01T02:00:00.250Z", "kind": "success", "runId": "r1"}],
        "recentTransitions": [{"time": "2026-01-01T03:05:00Z", "state": "Down",
                               "reason": "Missed", "message": "no ping since 02:00:00 UTC"}],
        "openRuns": [{"runId": "r2", "startTime": "2026-01-01T03:00:00Z"}],
        "tokenHash": token_hash("D" * 43),
    }  # fmt: skip
    entry = MonitorTable().upsert(body(status=status))
    assert entry.status == status
    assert entry.summary == {k: v for k, v in status.items() if k not in HISTORY_FIELDS}
    assert "recentPings" not in entry.summary and entry.summary["state"] == "Down"
    packed = len(entry.packed_summary) + len(entry.packed_histories)
    assert packed < 0.8 * len(zlib.compress(orjson.dumps(status), 1))


def test_a_monitor_the_leader_never_wrote_has_no_status() -> None:
    entry = MonitorTable().upsert(body(status=None))
    assert not entry.has_status
    assert entry.status == {} and entry.summary == {}
    only_histories = MonitorTable().upsert(body(status={"recentPings": []}))
    assert only_histories.has_status


def test_nothing_is_judged_while_a_token_failure_holds_ready_false() -> None:
    """DESIGN 9.7: while Ready=False the state keeps its last value and nothing alerts;
    once the token is fixed, judging resumes from then (no burst of missed slots)."""
    from heartbeat_operator.domain.statuses import READY_TOKEN, Ready

    weak = Ready("False", "WeakToken", "the token in Secret m-heartbeat is too short")
    entry = MonitorEntry.from_body(body(status=None))  # period 1h, created 01:59
    token = TokenUpdate(token_hash="sha256:abc", secret_name="m-heartbeat", ready=weak)
    failed = folding.fold(entry, [Change(token=token)], T0)
    assert failed.status["state"] == "New"
    for hours in (2, 30):  # deadlines pass, a day of them
        entry = MonitorEntry.from_body(body(rv=f"1{hours}", status=failed.status))
        failed = folding.fold(entry, [], T0 + timedelta(hours=hours))
        assert failed.status["state"] == "New" and not failed.transitions
        assert "nextDueTime" not in failed.status and failed.status["missedRuns"] == 0
    healthy = [c for c in failed.status["conditions"] if c["type"] == "Healthy"]
    assert (healthy[0]["status"], healthy[0]["reason"]) == ("Unknown", "InvalidSpec")
    ready = [c for c in failed.status["conditions"] if c["type"] == "Ready"]
    assert (ready[0]["status"], ready[0]["reason"]) == ("False", "WeakToken")

    fixed_at = T0 + timedelta(hours=30, minutes=1)
    entry = MonitorEntry.from_body(body(rv="200", status=failed.status))
    fixed = folding.fold(
        entry,
        [Change(token=TokenUpdate(ready=READY_TOKEN))],
        fixed_at,
        observed_spec=entry.spec,  # the leader knows the spec the status was made from
    )
    assert fixed.status["state"] == "New" and not fixed.transitions
    assert fixed.status["nextDueTime"] == "2026-01-02T09:01:00Z"  # a period from the fix
    assert fixed.status["missedRuns"] == 0 and fixed.status["consecutiveFailures"] == 0


def test_a_spec_past_year_9999_is_ready_false_and_its_pings_still_count():
    """Issue 13 item 3: whatever the domain cannot evaluate, a writer folds to Ready=False
    (reason InvalidSpec, with a message), never an exception (which answered every ping
    503). Durations are bounded, so this takes a clock near year 9999: a run started now
    whose maxRuntime deadline would fall past it."""
    now = datetime(9999, 12, 31, 23, 0, tzinfo=UTC)
    spec = {"period": "1h", "maxRuntime": "3650d"}
    entry = MonitorEntry.from_body(body(created="9999-12-31T22:00:00Z", **spec))
    first = folding.fold(entry, [], now)
    entry = MonitorEntry.from_body(
        body(created="9999-12-31T22:00:00Z", status=first.status, **spec)
    )
    folded = folding.fold(entry, [Change(inputs=(Ping(now, "start"),))], now)
    ready = folding.ready_condition(folded.status)
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert "past year 9999" in ready["message"]
    assert folded.status["pingCount"] == 1
    assert "nextDueTime" not in folded.status and "alertTime" not in folded.status
