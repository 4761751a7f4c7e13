"""The ping journal: entries, flushes, absorption, replay (DESIGN 10.7, 10.8.10-12)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import random
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from tests.support.waiting import async_wait_for
from tests.unit.kube.fakes import FakeKube

from heartbeat_operator.domain.inputs import Ping
from heartbeat_operator.domain.timefmt import format_time
from heartbeat_operator.domain.tokens import token_hash
from heartbeat_operator.engine import journal as jr
from heartbeat_operator.engine.api import ApiError, secret_path
from heartbeat_operator.engine.folding import Change
from heartbeat_operator.engine.journaled import JournalPings, absorb, absorbed_marks
from heartbeat_operator.engine.monitors import MonitorTable
from heartbeat_operator.engine.writing import Writer, WriterConfig
from heartbeat_operator.recording import JournalFull, Overloaded, WriteTimeout

NS = "heartbeat-system"
T0 = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


async def _true(value: bool) -> bool:
    return value


def monitor(name: str, token: str) -> dict:
    return {
        "apiVersion": "heartbeat.dev/v1alpha1",
        "kind": "HeartbeatMonitor",
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": f"uid-{name}",
            "generation": 1,
            "creationTimestamp": format_time(datetime.now(UTC) - timedelta(minutes=1)),
        },
        "spec": {"period": "1h", "grace": "5m"},
        "status": {"tokenHash": token_hash(token), "observedGeneration": 1},
    }


TOKENS = {"a": "a" * 43, "b": "b" * 43}


def setup(**journal_config):
    fake = FakeKube()
    table = MonitorTable()
    for name, token in TOKENS.items():
        table.upsert(
            fake.add(
                f"/apis/heartbeat.dev/v1alpha1/namespaces/ns/heartbeatmonitors/{name}",
                monitor(name, token),
            )
        )
    table.synced = True
    writer = Writer(fake, table, WriterConfig(deadline_delay=0))
    journal = jr.Journal(fake, namespace=NS, identity="pod-1-abc", **journal_config)
    return fake, table, writer, journal


def mpath(name: str) -> str:
    return f"/apis/heartbeat.dev/v1alpha1/namespaces/ns/heartbeatmonitors/{name}"


def noise(size: int, seed: int = 0) -> str:
    """A body of ``size`` characters that deflate cannot shrink (the journal stores it as
    it came, so it takes its size in room)."""
    return base64.b64encode(random.Random(seed).randbytes(size))[:size].decode()


def ping(at: datetime | None = None, body: str | None = None) -> Ping:
    return Ping(time=at or datetime.now(UTC), kind="success", body=body)


def stored(fake: FakeKube) -> list[jr.Entry]:
    body = fake.objects.get(secret_path(NS, "heartbeat-journal-pod-1-abc"))
    return jr.decode_entries(body) if body else []


def ping_count(fake: FakeKube, name: str) -> int:
    return int(fake.objects[mpath(name)]["status"].get("pingCount", 0))


# --- pure parts --------------------------------------------------------------------------


def test_an_entry_survives_its_encoding():
    entry = jr.Entry(7, "ns", "m", "uid-1", Ping(T0, "fail", exit_code=3, run_id="r1", body="é"))
    body = jr.journal_body("pod-1", NS, "heartbeat-journal-pod-1", [jr.encode_entry(entry)], None)
    assert jr.decode_entries(body) == [entry]
    assert body["type"] == "heartbeat.dev/journal"
    assert body["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "heartbeat-operator",
        "heartbeat.dev/journal": "pod-1",
    }


def test_a_success_ping_is_a_short_list_and_the_first_cuts_objects_still_read():
    entry = jr.Entry(1234567, "bench", "m-000123", "3f2b" * 9, Ping(T0, "success"))
    encoded = jr.encode_entry(entry)
    assert encoded.startswith(b'[1234567,"bench","m-000123",') and len(encoded) < 100
    assert jr.decode_entry(orjson.loads(encoded)) == entry
    old = {"s": 7, "ns": "ns", "n": "m", "u": "uid-1", "t": format_time(T0), "k": "fail", "x": 3}
    body = {"data": {"entries": base64.b64encode(orjson.dumps([old])).decode()}}
    (decoded,) = jr.decode_entries(body)
    assert (decoded.sequence, decoded.ping.kind, decoded.ping.exit_code) == (7, "fail", 3)


def test_a_body_of_log_lines_is_stored_deflated_and_read_back_whole():
    lines = (f"2026-12-07T10:00:{i:02d}Z pg_dump: dumping table public.t{i}\n" for i in range(20))
    log = "".join(lines)
    entry = jr.Entry(9, "ns", "m", "uid-1", Ping(T0, "fail", exit_code=2, body=log))
    encoded = jr.encode_entry(entry)
    assert len(encoded) < len(log) / 3  # the room a 1 KB body of job output takes
    assert jr.decode_entry(orjson.loads(encoded)) == entry


def test_a_body_that_would_not_shrink_is_stored_as_it_came():
    short = "ok: 12 files copied"  # too short to be worth it
    for body in (noise(600), short):
        entry = jr.Entry(9, "ns", "m", "uid-1", Ping(T0, "success", body=body))
        item = orjson.loads(jr.encode_entry(entry))
        assert item[-1] == body
        assert jr.decode_entry(item) == entry


def test_a_deflated_body_that_does_not_inflate_keeps_its_ping_without_the_body():
    entry = jr.Entry(9, "ns", "m", "uid-1", Ping(T0, "success", body="ab" * 200))
    item = orjson.loads(jr.encode_entry(entry))
    assert item[-2] is None and isinstance(item[-1], str)  # stored deflated
    for broken in (base64.b64encode(b"not deflate").decode(), "not base64 at all!"):
        item[-1] = broken
        decoded = jr.decode_entry(item)
        assert decoded == dataclasses.replace(
            entry, ping=dataclasses.replace(entry.ping, body=None)
        )


def test_size_accounting_matches_the_object_it_writes():
    entries = [jr.encode_entry(jr.Entry(i, "ns", "m", "u", ping(T0, "x" * i))) for i in range(50)]
    body = jr.journal_body("pod-1", NS, "heartbeat-journal-pod-1", entries, None)
    data = len(body["data"][jr.DATA_KEY])
    assert jr.stored_size(sum(map(len, entries)), len(entries)) == data + jr.OVERHEAD


def test_absorbing_folds_only_pings_above_the_mark_and_raises_it():
    pings = JournalPings("r1", ((3, ping(T0)), (1, ping(T0)), (2, ping(T0))))
    fresh, marks = absorb({}, [pings], T0)
    assert len(fresh) == 3
    assert marks is not None
    status = {"journalAbsorbed": marks}
    assert absorbed_marks(status) == {"r1": 3}
    again, unchanged = absorb(status, [pings], T0)  # a replay counts nothing
    assert again == [] and unchanged is None
    more = JournalPings("r1", ((3, ping(T0)), (4, ping(T0))))
    fresh, marks = absorb(status, [more], T0)
    assert len(fresh) == 1 and absorbed_marks({"journalAbsorbed": marks}) == {"r1": 4}


def test_marks_of_journals_that_are_gone_are_dropped():
    status = {"journalAbsorbed": [{"replica": "gone", "sequence": 5}]}
    _, marks = absorb(status, [JournalPings("r1", ((1, ping(T0)),))], T0, live={"r1"})
    assert absorbed_marks({"journalAbsorbed": marks}) == {"r1": 1}


# --- the journal ---------------------------------------------------------------------------


async def test_pings_for_different_monitors_ride_in_one_flush():
    fake, table, _, journal = setup()
    fake.gate = asyncio.Event()
    first = asyncio.create_task(journal.append(table.get(("ns", "a")), ping()))
    await async_wait_for(lambda: _true(len(stored(fake)) == 1), timeout=2, what="created")
    second = asyncio.create_task(journal.append(table.get(("ns", "a")), ping()))
    await async_wait_for(lambda: _true(fake.puts_started == 1), timeout=2, what="PUT sent")
    others = [asyncio.create_task(journal.append(table.get(("ns", "b")), ping())) for _ in range(3)]
    b = ("ns", "b")
    await async_wait_for(lambda: _true(journal.unabsorbed(b) == 3), timeout=2, what="b accepted")
    assert not second.done() and first.done()  # no 200 before its flush succeeded
    fake.gate.set()
    await asyncio.gather(first, second, *others)
    secret_writes = [w for w in fake.writes if w[1] == "secrets"]
    assert secret_writes == [("POST", "secrets"), ("PUT", "secrets"), ("PUT", "secrets")]
    assert [e.sequence for e in stored(fake)] == [1, 2, 3, 4, 5]
    assert journal.unabsorbed(("ns", "b")) == 3


async def test_a_full_journal_refuses_and_stores_nothing():
    fake, table, _, journal = setup(max_bytes=jr.OVERHEAD + 3000, max_segments=1)
    entry = table.get(("ns", "a"))
    await journal.append(entry, ping(body=noise(1000)))
    with pytest.raises(JournalFull):
        await journal.append(entry, ping(body=noise(2000)))
    assert len(stored(fake)) == 1
    assert journal.unabsorbed(("ns", "a")) == 1


async def test_more_than_fifty_unabsorbed_pings_for_one_monitor_is_overloaded():
    fake, table, _, journal = setup(max_unabsorbed=3)
    entry = table.get(("ns", "a"))
    for _ in range(3):
        await journal.append(entry, ping())
    with pytest.raises(Overloaded):
        await journal.append(entry, ping())
    await journal.append(table.get(("ns", "b")), ping())  # another monitor is not held up
    assert len(stored(fake)) == 4


async def test_a_lost_answer_is_resolved_by_reading_the_journal():
    fake, table, _, journal = setup()
    entry = table.get(("ns", "a"))
    await journal.append(entry, ping())
    fake.lose_answers = 1  # applied, answer lost
    await journal.append(entry, ping())
    await journal.append(entry, ping())
    assert [e.sequence for e in stored(fake)] == [1, 2, 3]  # nothing twice


async def test_a_ping_not_stored_in_time_is_503_and_voided_if_its_write_lands_later():
    fake, table, _, journal = setup(write_timeout=0.2)
    entry = table.get(("ns", "a"))
    await journal.append(entry, ping())
    fake.stop()
    with pytest.raises(WriteTimeout):
        await journal.append(entry, ping())
    assert journal.unabsorbed(("ns", "a")) == 1
    fake.resume()  # the PUT queued meanwhile is applied after all
    await async_wait_for(
        lambda: _true([e.sequence for e in stored(fake)] == [1]), timeout=3, what="voided"
    )
    assert journal.stored_for(("ns", "a"))[0].sequence == 1


async def test_a_voided_ping_that_was_never_stored_gives_its_room_back():
    fake, table, _, journal = setup(write_timeout=0.2, max_bytes=jr.OVERHEAD + 1500, max_segments=1)
    entry = table.get(("ns", "a"))
    first, voided, third = noise(300, 1), noise(300, 2), noise(300, 3)
    await journal.append(entry, ping(body=first))  # the journal exists
    fake.stop()
    with pytest.raises(WriteTimeout):
        await journal.append(entry, ping(body=voided))
    fake.resume(apply_queued=False)  # that write was lost with its connection
    await async_wait_for(lambda: _true(not journal.flushing), timeout=2, what="resolved")
    await journal.append(entry, ping(body=third))  # fits: the 503'd ping left no trace
    assert [e.ping.body for e in stored(fake)] == [first, third]


# --- absorption ------------------------------------------------------------------------------


async def test_a_stored_ping_is_absorbed_into_status_and_leaves_with_the_next_flush():
    fake, _, writer, journal = setup()
    absorber = jr.Absorber(journal, writer, interval=0.05)
    lags: list[float] = []
    absorber.on_absorbed.append(lags.append)
    recorder = jr.JournalRecorder(writer, journal)
    await recorder.record(TOKENS["a"], ping())
    await async_wait_for(lambda: _true(ping_count(fake, "a") == 1), timeout=2, what="absorbed")
    status = fake.objects[mpath("a")]["status"]
    assert absorbed_marks(status) == {"pod-1-abc": 1}
    await async_wait_for(lambda: _true(journal.backlog == 0), timeout=2, what="marked")
    assert [e.sequence for e in stored(fake)] == [1]  # no extra write to drop it
    await recorder.record(TOKENS["b"], ping())
    assert [e.sequence for e in stored(fake)] == [2]
    await async_wait_for(lambda: _true(ping_count(fake, "b") == 1), timeout=2, what="b")
    assert ping_count(fake, "a") == 1
    assert len(lags) == 2 and all(0 <= lag < 2 for lag in lags)


async def race_in_one_flush(fake, table, writer, journal, b_ping: Ping) -> None:
    """A routine ping to a, then ``b_ping`` to b, in one flush, with a budget of one
    status write: which monitor the absorber writes first is the test's question."""
    await journal.append(table.get(("ns", "a")), ping())  # the journal exists: PUTs next
    journal.absorbed(journal.stored_for(("ns", "a")))
    jr.Absorber(journal, writer, interval=0.01, writes_per_second=0.001)  # one write
    fake.gate = asyncio.Event()  # both pings ride in one flush: a first, then b
    a_before = journal.unabsorbed(("ns", "a"))
    task_a = asyncio.create_task(journal.append(table.get(("ns", "a")), ping()))
    await async_wait_for(
        lambda: _true(journal.unabsorbed(("ns", "a")) == a_before + 1), timeout=2, what="a"
    )
    task_b = asyncio.create_task(journal.append(table.get(("ns", "b")), b_ping))
    await async_wait_for(lambda: _true(journal.unabsorbed(("ns", "b")) == 1), timeout=2, what="b")
    fake.gate.set()
    await asyncio.gather(task_a, task_b)


async def test_under_the_budget_a_likely_transition_is_absorbed_first():
    fake, table, writer, journal = setup()
    for name in ("a", "b"):  # both Healthy
        await writer.submit(("ns", name), Change(inputs=(ping(),)), timeout=None)
    await race_in_one_flush(
        fake, table, writer, journal, Ping(datetime.now(UTC), "fail", exit_code=2)
    )
    await async_wait_for(lambda: _true(ping_count(fake, "b") == 2), timeout=2, what="b")
    assert ping_count(fake, "a") == 1  # a waits for the budget
    assert fake.objects[mpath("b")]["status"]["state"] == "Down"


async def test_under_the_budget_a_success_that_may_be_too_fast_is_absorbed_first():
    # A Healthy monitor with minRuntime: its success may be a RanTooFast failure, so it
    # does not wait with the routine pings (docs/decisions.md, the leader's view).
    fake, table, writer, journal = setup()
    fake.objects[mpath("b")]["spec"]["minRuntime"] = "1m"
    table.upsert(fake.objects[mpath("b")])
    started = datetime.now(UTC) - timedelta(seconds=5)
    await writer.submit(("ns", "a"), Change(inputs=(ping(),)), timeout=None)
    await writer.submit(
        ("ns", "b"), Change(inputs=(ping(started - timedelta(seconds=1)),)), timeout=None
    )
    await writer.submit(("ns", "b"), Change(inputs=(Ping(started, "start"),)), timeout=None)
    await race_in_one_flush(fake, table, writer, journal, ping())
    await async_wait_for(lambda: _true(ping_count(fake, "b") == 3), timeout=2, what="b")
    assert ping_count(fake, "a") == 1  # a waits for the budget
    status = fake.objects[mpath("b")]["status"]
    healthy = next(c for c in status["conditions"] if c["type"] == "Healthy")
    assert (status["state"], healthy["reason"]) == ("Down", "RanTooFast")


async def test_an_absorbing_write_that_judges_a_deadline_folds_every_journal_first():
    # DESIGN 10.8.11: replica 2 acknowledged a ping before alertTime and has not absorbed
    # it; replica 1 absorbs a ping after alertTime: the slot is not judged missed.
    fake, table, _, mine = setup()
    clock = [T0]
    writer = Writer(fake, table, WriterConfig(deadline_delay=0.5), now=lambda: clock[0])
    key = ("ns", "a")
    body = monitor("a", TOKENS["a"])
    body["spec"] = {"period": "1m", "grace": "1m"}
    body["metadata"]["creationTimestamp"] = format_time(T0)
    table.upsert(fake.add(mpath("a"), body))
    await writer.submit(key, Change(inputs=(ping(T0),)), timeout=None)
    other = jr.Journal(fake, namespace=NS, identity="pod-2-def")
    await other.append(table.get(key), ping(T0 + timedelta(seconds=110)))  # alert: +120 s
    reader = jr.JournalReader(fake, writer, namespace=NS)
    jr.Absorber(mine, writer, reader=reader, now=lambda: clock[0])
    clock[0] = T0 + timedelta(seconds=150)
    await mine.append(table.get(key), ping(clock[0]))
    await async_wait_for(lambda: _true(ping_count(fake, "a") >= 2), timeout=2, what="absorbed")
    status = fake.objects[mpath("a")]["status"]
    assert status["missedRuns"] == 0, status.get("recentTransitions")
    assert status["pingCount"] == 3
    assert absorbed_marks(status) == {"pod-1-abc": 1, "pod-2-def": 1}


async def test_pings_of_a_deleted_monitor_never_reach_one_made_again_with_its_name():
    fake, table, writer, journal = setup()
    await journal.append(table.get(("ns", "a")), ping())
    again = monitor("a", TOKENS["a"])
    again["metadata"]["uid"] = "uid-a-again"
    table.upsert(fake.add(mpath("a"), again))
    jr.Absorber(journal, writer, interval=0.01).stored(journal.stored_for(("ns", "a")))
    await async_wait_for(lambda: _true(journal.backlog == 0), timeout=2, what="dropped")
    assert ping_count(fake, "a") == 0


async def test_replaying_a_journal_never_counts_a_ping_twice():
    fake, table, writer, journal = setup()
    entry = table.get(("ns", "a"))
    await journal.append(entry, ping())
    await journal.append(entry, ping())
    change = Change(absorb=(jr.journal_pings(journal.identity, journal.stored_for(entry.key)),))
    await writer.submit(entry.key, change, timeout=None)
    await writer.submit(entry.key, change, timeout=None)  # the leader, or a lost answer
    assert ping_count(fake, "a") == 2


async def test_pings_absorbed_late_fold_in_acceptance_order():
    fake, table, writer, journal = setup()
    entry = table.get(("ns", "a"))
    early, late = datetime.now(UTC) - timedelta(seconds=2), datetime.now(UTC)
    await writer.submit(entry.key, Change(inputs=(ping(late),)), timeout=None)
    await journal.append(entry, ping(early, body="early"))
    change = Change(absorb=(jr.journal_pings(journal.identity, journal.stored_for(entry.key)),))
    await writer.submit(entry.key, change, timeout=None)
    status = fake.objects[mpath("a")]["status"]
    assert status["pingCount"] == 2
    assert status["lastPingTime"] == format_time(late)


# --- the leader ------------------------------------------------------------------------------


def lease(fake: FakeKube, identity: str, renewed: datetime, *, released: bool = False) -> None:
    fake.add(
        f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases/heartbeat-replica-{identity}",
        {
            "metadata": {"name": f"heartbeat-replica-{identity}"},
            "spec": {
                "holderIdentity": "" if released else identity,
                "renewTime": format_time(renewed),
            },
        },
    )


async def test_the_leader_absorbs_and_deletes_the_journal_of_a_dead_replica():
    fake, table, writer, journal = setup()
    await journal.append(table.get(("ns", "a")), ping())
    await journal.append(table.get(("ns", "b")), ping())
    name = secret_path(NS, journal.name)
    fake.objects[name]["metadata"]["creationTimestamp"] = format_time(
        datetime.now(UTC) - timedelta(minutes=5)
    )
    lease(fake, "pod-1-abc", datetime.now(UTC) - timedelta(seconds=30))  # expired
    live = jr.Journal(fake, namespace=NS, identity="pod-2-def")
    await live.append(table.get(("ns", "a")), ping())
    lease(fake, "pod-2-def", datetime.now(UTC))
    reader = jr.JournalReader(fake, writer, namespace=NS)
    assert await reader.absorb_dead(table.get) == 1
    assert name not in fake.objects
    assert secret_path(NS, live.name) in fake.objects
    assert ping_count(fake, "a") == 1 and ping_count(fake, "b") == 1


async def test_a_released_replica_lease_is_a_replica_gone_at_once():
    # A clean shutdown releases its Lease (kube.replicas) rather than deleting it: what
    # its journal still holds goes to the leader without waiting for the Lease to expire.
    fake, table, writer, journal = setup()
    await journal.append(table.get(("ns", "a")), ping())
    lease(fake, "pod-1-abc", datetime.now(UTC), released=True)
    reader = jr.JournalReader(fake, writer, namespace=NS)
    assert await reader.absorb_dead(table.get) == 1
    assert ping_count(fake, "a") == 1


async def test_one_list_serves_a_batch_of_deadlines():
    fake, table, writer, journal = setup()
    await journal.append(table.get(("ns", "a")), ping())
    reader = jr.JournalReader(fake, writer, namespace=NS, wall=lambda: 100.0)
    gets = fake.gets_started
    lists = await asyncio.gather(*(reader.list_since(99.5) for _ in range(5)))
    assert fake.gets_started == gets + 1
    assert all(len(found.pings_for(table.get(("ns", "a")))) == 1 for found in lists)
    assert lists[0].pings_for(table.get(("ns", "b"))) == ()


async def test_a_secret_write_refused_for_good_is_retried_not_answered():
    fake, table, _, journal = setup(write_timeout=1.5)
    await journal.append(table.get(("ns", "a")), ping())
    fake.fail_with = ApiError(403, "Forbidden", "no")
    with pytest.raises(WriteTimeout):
        await journal.append(table.get(("ns", "a")), ping())
    fake.fail_with = None
    await journal.append(table.get(("ns", "b")), ping())
    assert [e.sequence for e in stored(fake)] == [1, 3]  # the 503'd ping is not stored


# --- more than one Secret (DESIGN 10.8.12) ----------------------------------------------------


def segment(fake: FakeKube, number: int) -> list[jr.Entry]:
    body = fake.objects.get(secret_path(NS, jr.segment_name("pod-1-abc", number)))
    return jr.decode_entries(body) if body else []


async def test_a_full_secret_starts_another_and_a_sealed_one_goes_once_all_it_holds_is_absorbed():
    fake, table, _, journal = setup(max_bytes=jr.OVERHEAD + 2200)
    a, b = table.get(("ns", "a")), table.get(("ns", "b"))
    await journal.append(a, ping(body=noise(600)))
    await journal.append(b, ping(body=noise(600)))
    await journal.append(a, ping(body=noise(600)))  # does not fit with the two: Secret 2
    assert [e.sequence for e in segment(fake, 1)] == [1, 2]
    assert [e.sequence for e in segment(fake, 2)] == [3]
    assert journal.segments == 2
    writes = len(fake.writes)
    journal.absorbed(journal.stored_for(("ns", "a")))  # 1 and 3: Secret 1 still holds 2
    await async_wait_for(lambda: _true(not journal.flushing), timeout=2, what="idle")
    assert len(fake.writes) == writes  # a sealed Secret is never rewritten
    journal.absorbed(journal.stored_for(("ns", "b")))
    await async_wait_for(lambda: _true(journal.segments == 1), timeout=2, what="deleted")
    assert secret_path(NS, jr.segment_name("pod-1-abc", 1)) not in fake.objects
    assert fake.writes[-1][0] == "DELETE"
    await journal.append(b, ping())  # the head drops what was absorbed, as before
    assert [e.sequence for e in segment(fake, 2)] == [4]


async def test_a_slow_delete_of_a_sealed_secret_holds_up_no_ping():
    fake, table, _, journal = setup(max_bytes=jr.OVERHEAD + 2200)
    a = table.get(("ns", "a"))
    await journal.append(a, ping(body=noise(600)))
    await journal.append(a, ping(body=noise(600)))
    await journal.append(a, ping(body=noise(600)))  # Secret 2; Secret 1 is sealed
    fake.delete_gate = asyncio.Event()  # the API server takes its time over deletes
    journal.absorbed(journal.stored_for(("ns", "a")))  # Secret 1 is to be deleted
    await async_wait_for(
        lambda: _true(("DELETE", "secrets") in fake.writes), timeout=2, what="delete sent"
    )
    await asyncio.wait_for(journal.append(a, ping()), timeout=2)  # stored meanwhile
    assert [e.sequence for e in segment(fake, 2)] == [4]
    assert journal.segments == 2  # the sealed one is still there
    fake.delete_gate.set()
    await async_wait_for(lambda: _true(journal.segments == 1), timeout=2, what="deleted")
    assert secret_path(NS, jr.segment_name("pod-1-abc", 1)) not in fake.objects


async def test_with_every_secret_it_may_use_full_a_replica_refuses_pings():
    fake, table, _, journal = setup(max_bytes=jr.OVERHEAD + 2200, max_segments=2)
    a = table.get(("ns", "a"))
    for _ in range(4):
        await journal.append(a, ping(body=noise(600)))
    with pytest.raises(JournalFull):
        await journal.append(a, ping(body=noise(600)))
    assert [len(segment(fake, n)) for n in (1, 2)] == [2, 2]
    journal.absorbed(journal.stored_for(("ns", "a")))
    await async_wait_for(lambda: _true(journal.segments == 1), timeout=2, what="room again")
    await journal.append(a, ping(body=noise(600)))


async def test_the_leader_absorbs_every_secret_of_a_dead_replica_and_deletes_them_all():
    fake, table, writer, journal = setup(max_bytes=jr.OVERHEAD + 2200)
    for name in ("a", "b", "a"):
        await journal.append(table.get(("ns", name)), ping(body=noise(600)))
    for number in (1, 2):
        path = secret_path(NS, jr.segment_name("pod-1-abc", number))
        fake.objects[path]["metadata"]["creationTimestamp"] = format_time(
            datetime.now(UTC) - timedelta(minutes=5)
        )
    lease(fake, "pod-1-abc", datetime.now(UTC) - timedelta(seconds=30))  # expired
    reader = jr.JournalReader(fake, writer, namespace=NS)
    assert await reader.absorb_dead(table.get) == 1
    assert ping_count(fake, "a") == 2 and ping_count(fake, "b") == 1
    assert not [p for p in fake.objects if "/secrets/heartbeat-journal-" in p]


async def test_under_load_monitors_queue_for_the_budget_oldest_ping_first():
    fake, table, writer, journal = setup()
    for name in ("a", "b"):  # both Healthy: no transition to put first
        await writer.submit(("ns", name), Change(inputs=(ping(),)), timeout=None)
    await journal.append(table.get(("ns", "b")), ping())
    await journal.append(table.get(("ns", "a")), ping())
    await journal.append(table.get(("ns", "b")), ping())
    jr.Absorber(journal, writer, interval=0.01, writes_per_second=0.001)  # one write
    journal.on_stored[-1](journal.stored_for(("ns", "a")) + journal.stored_for(("ns", "b")))
    await async_wait_for(lambda: _true(ping_count(fake, "b") == 3), timeout=2, what="b")
    assert journal.unabsorbed(("ns", "b")) == 0  # one write carried both of b's pings
    assert ping_count(fake, "a") == 1 and journal.unabsorbed(("ns", "a")) == 1


async def test_past_half_its_room_the_journal_is_absorbed_without_the_budget():
    fake, table, writer, journal = setup(max_bytes=jr.OVERHEAD + 2200, max_segments=2)
    for name in ("a", "b"):
        await writer.submit(("ns", name), Change(inputs=(ping(),)), timeout=None)
    for name in ("a", "b", "a"):  # a second Secret: more than half of two
        await journal.append(table.get(("ns", name)), ping(body=noise(600)))
    assert journal.segments == 2 and journal.fill > 0.5
    jr.Absorber(journal, writer, interval=0.01, writes_per_second=0.001)  # one write
    journal.on_stored[-1](journal.stored_for(("ns", "a")) + journal.stored_for(("ns", "b")))
    await async_wait_for(
        lambda: _true(ping_count(fake, "a") == 3 and ping_count(fake, "b") == 2),
        timeout=3,
        what="both absorbed",
    )
    await async_wait_for(lambda: _true(journal.segments == 1), timeout=2, what="sealed deleted")


async def test_no_ping_waits_for_the_budget_longer_than_the_max_lag():
    fake, table, writer, journal = setup()
    for name in ("a", "b"):
        await writer.submit(("ns", name), Change(inputs=(ping(),)), timeout=None)
    await journal.append(table.get(("ns", "a")), ping())
    await journal.append(table.get(("ns", "b")), ping())
    # One write's budget; b's ping is absorbed anyway once it is 0.3 s old.
    absorber = jr.Absorber(journal, writer, interval=0.01, writes_per_second=0.001, max_lag=0.3)
    lags: list[float] = []
    absorber.on_absorbed.append(lags.append)
    absorber.stored(journal.stored_for(("ns", "a")) + journal.stored_for(("ns", "b")))
    await async_wait_for(
        # Both written, and both told to the listeners (which hear of a write only after
        # the writer has answered its absorber: the counts alone raced the second lag).
        lambda: _true(ping_count(fake, "a") == 2 and ping_count(fake, "b") == 2 and len(lags) == 2),
        timeout=10,  # a deadline, not a measure: a busy machine stretches the 0.3 s
        what="both absorbed",
    )
    assert max(lags) >= 0.3  # the second waited for its lag, not for the budget (1,000 s)


def test_waiting_monitors_come_most_urgent_first_then_oldest_and_stay_until_taken():
    oldest = {("ns", "old"): 1, ("ns", "new"): 9, ("ns", "mid"): 5, ("ns", "failing"): 7}
    waiting = jr.WaitingMonitors(oldest.__getitem__)
    for key in oldest:
        waiting.add(key, jr.Urgency.ROUTINE)
    waiting.add(("ns", "failing"), jr.Urgency.TRANSITION)  # a failure arrived: it moves up
    waiting.add(("ns", "failing"), jr.Urgency.ROUTINE)  # and does not move back
    waiting.add(("ns", "new"), jr.Urgency.CROWDED)  # near the per-monitor limit: first
    assert list(waiting.scan(jr.Urgency.CROWDED)) == [("ns", "new")]
    assert list(waiting.scan(jr.Urgency.TRANSITION)) == [("ns", "failing")]
    assert list(waiting.scan(jr.Urgency.ROUTINE)) == [("ns", "old"), ("ns", "mid")]

    # A scan stopped early leaves everything it did not take in place, in order.
    for key in waiting.scan(jr.Urgency.ROUTINE):
        waiting.take(key)
        break
    assert ("ns", "old") not in waiting and len(waiting) == 3
    assert list(waiting.scan(jr.Urgency.ROUTINE)) == [("ns", "mid")]
    assert list(waiting.scan(jr.Urgency.TRANSITION)) == [("ns", "failing")]


async def test_a_monitor_near_its_limit_is_absorbed_without_waiting_for_the_budget():
    """DESIGN 10.8.12: more than 50 unabsorbed pings for one monitor is 429. A monitor
    pinged faster than the budget reaches it is written once it holds three quarters of
    that, budget or not: its pings are never refused for the absorber's slowness."""
    fake, table, writer, journal = setup(max_unabsorbed=8)
    key = ("ns", "a")
    # No interval between one monitor's writes: what is tested is the budget alone.
    absorber = jr.Absorber(journal, writer, interval=0.0, writes_per_second=0.001)
    await writer.submit(("ns", "b"), Change(inputs=(ping(),)), timeout=None)
    await journal.append(table.get(("ns", "b")), ping())  # takes the one write's budget
    await async_wait_for(lambda: _true(ping_count(fake, "b") == 2), timeout=2, what="b")
    for _ in range(20):  # 20 pings acknowledged: none refused (Overloaded raises)
        await journal.append(table.get(key), ping())
    # Written whenever 6 waited; the rest (fewer than 6) wait for the budget, as they should.
    await async_wait_for(
        lambda: _true(ping_count(fake, "a") >= 15 and journal.unabsorbed(key) < 6),
        timeout=3,
        what="a's crowded pings absorbed",
    )
    assert absorber.journal is journal


async def test_the_leader_reads_its_own_journal_from_memory_and_lists_the_others():
    fake, table, writer, mine = setup()
    key = ("ns", "a")
    other = jr.Journal(fake, namespace=NS, identity="pod-2-def")
    await mine.append(table.get(key), ping())
    await other.append(table.get(key), ping())
    reader = jr.JournalReader(fake, writer, namespace=NS, own=mine)
    listed = await reader.list_since(0)
    assert listed.identities == ["pod-2-def"]  # its own Secrets are not sent back to it
    found = listed.pings_for(table.get(key))
    assert sorted(p.replica for p in found) == ["pod-1-abc", "pod-2-def"]
    # What its memory holds is what it stored and did not absorb: absorbed, it is gone.
    mine.absorbed(mine.stored_for(key))
    assert [p.replica for p in listed.pings_for(table.get(key))] == ["pod-2-def"]
