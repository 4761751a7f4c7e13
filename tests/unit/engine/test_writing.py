"""The per-monitor writer: group commit, budgets, conflicts (DESIGN 6, 9.3, 9.8, 9.13)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from tests.support.waiting import async_wait_for
from tests.unit.kube.fakes import FakeKube

from heartbeat_operator.domain.inputs import Ping
from heartbeat_operator.domain.timefmt import format_time
from heartbeat_operator.domain.tokens import token_hash
from heartbeat_operator.engine.api import NOT_CONNECTED, ApiError, monitor_path
from heartbeat_operator.engine.folding import Change
from heartbeat_operator.engine.monitors import MonitorTable
from heartbeat_operator.engine.writing import TokenBucket, Writer, WriterConfig
from heartbeat_operator.recording import IndexLoading, Overloaded, UnknownToken, WriteTimeout

TOKEN = "t" * 43
PATH = monitor_path("ns", "m")


def monitor() -> dict:
    return {
        "apiVersion": "heartbeat.dev/v1alpha1",
        "kind": "HeartbeatMonitor",
        "metadata": {
            "name": "m",
            "namespace": "ns",
            "uid": "uid-1",
            "generation": 1,
            "creationTimestamp": format_time(datetime.now(UTC)),
        },
        "spec": {"period": "1h", "grace": "5m"},
        "status": {"tokenHash": token_hash(TOKEN), "observedGeneration": 1},
    }


def setup(clock=None, synced=True, **config) -> tuple[FakeKube, MonitorTable, Writer]:
    fake = FakeKube()
    table = MonitorTable()
    table.upsert(fake.add(PATH, monitor()))
    table.synced = synced
    writer = Writer(
        fake,
        table,
        WriterConfig(deadline_delay=0, **config),  # type: ignore[arg-type]
        **({"clock": clock} if clock else {}),
    )
    return fake, table, writer


def ping() -> Ping:
    return Ping(time=datetime.now(UTC), kind="success")


def ping_count(fake: FakeKube) -> int:
    return int(fake.objects[PATH]["status"].get("pingCount", 0))


async def test_pings_arriving_during_a_write_ride_in_the_next_one():
    fake, _, writer = setup()
    fake.gate = asyncio.Event()
    first = asyncio.create_task(writer.record(TOKEN, ping()))
    await async_wait_for(lambda: _true(fake.puts_started == 1), timeout=2, what="first PUT")
    others = [asyncio.create_task(writer.record(TOKEN, ping())) for _ in range(3)]
    await async_wait_for(lambda: _true(len(_pending(writer)) == 3), timeout=2, what="queued")
    fake.gate.set()
    await asyncio.gather(first, *others)
    assert fake.writes.count(("PUT", "heartbeatmonitors/status")) == 2
    assert ping_count(fake) == 4


async def test_more_than_fifty_waiting_pings_is_overloaded_and_not_counted():
    fake, _, writer = setup()
    fake.gate = asyncio.Event()
    tasks = [asyncio.create_task(writer.record(TOKEN, ping()))]
    await async_wait_for(lambda: _true(fake.puts_started == 1), timeout=2, what="first PUT")
    tasks += [asyncio.create_task(writer.record(TOKEN, ping())) for _ in range(50)]
    await async_wait_for(lambda: _true(len(_pending(writer)) == 50), timeout=2, what="queued")
    with pytest.raises(Overloaded):
        await writer.record(TOKEN, ping())
    fake.gate.set()
    await asyncio.gather(*tasks)
    assert ping_count(fake) == 51


async def test_a_ping_not_written_in_time_is_a_write_timeout_and_never_counted():
    fake, _, writer = setup(write_timeout=0.2)
    fake.gate = asyncio.Event()
    leader = asyncio.create_task(writer.submit(("ns", "m"), Change(), timeout=None))
    await async_wait_for(lambda: _true(fake.puts_started == 1), timeout=2, what="first PUT")
    with pytest.raises(WriteTimeout):
        await writer.record(TOKEN, ping())
    fake.gate.set()
    await leader
    await writer.drain(timeout=1)
    assert ping_count(fake) == 0


async def test_a_ping_answered_503_is_not_counted_by_the_retry_after_a_conflict():
    # Issue 13 item 9: the write carrying the ping outlives its 5 s and then meets a 409;
    # the re-applied write must leave the ping out, and only then is it answered 503
    # (issue 18 item 1: while its write may still land, the ping is not answered).
    fake, _, writer = setup(write_timeout=0.2)
    fake.gate = asyncio.Event()
    fake.conflicts_left = 1
    reply = asyncio.create_task(writer.record(TOKEN, ping()))
    await async_wait_for(lambda: _true(fake.puts_started == 1), timeout=2, what="its PUT")
    with pytest.raises(TimeoutError):  # past its 0.2 s, its write still in flight
        await asyncio.wait_for(asyncio.shield(reply), 0.5)
    fake.gate.set()
    with pytest.raises(WriteTimeout):
        await reply
    await writer.drain(timeout=2)
    assert ping_count(fake) == 0
    assert fake.puts_started == 1  # and nothing was left to write after the conflict


async def test_a_write_whose_answer_is_lost_counts_its_ping_once():
    # Issue 18 item 2: the API server applied the write, its answer never came back.
    fake, _, writer = setup()
    fake.lose_answers = 1
    await writer.record(TOKEN, ping())
    assert ping_count(fake) == 1
    assert fake.puts_started == 1  # the fresh read showed the write's mark: not sent again


async def test_a_write_sent_again_by_the_http_client_counts_its_ping_once():
    # The lossy-proxy fault (tests/faults): the first copy landed, its answer was dropped,
    # aiohttp re-sent the PUT on its own and that copy met a 409.
    fake, _, writer = setup()
    fake.resent_answers = 1
    await writer.record(TOKEN, ping())
    assert ping_count(fake) == 1
    assert fake.puts_started == 1


async def test_a_ping_whose_write_is_held_past_its_deadline_is_answered_when_it_lands():
    # Issue 18 item 1: the API server stopped with the write queued; a 503 at 5 s would
    # be a lie once the queued write is applied on resume.
    fake, _, writer = setup(write_timeout=0.2)
    fake.stop()
    reply = asyncio.create_task(writer.record(TOKEN, ping()))
    await async_wait_for(lambda: _true(fake.gets_started >= 1), timeout=2, what="re-read")
    assert not reply.done()
    fake.resume()
    await reply  # 200: it was stored
    assert ping_count(fake) == 1


async def test_a_ping_whose_held_write_never_lands_gets_its_503_once_that_is_known():
    fake, _, writer = setup(write_timeout=0.2)
    fake.stop()
    reply = asyncio.create_task(writer.record(TOKEN, ping()))
    await async_wait_for(lambda: _true(fake.gets_started >= 1), timeout=2, what="re-read")
    fake.resume(apply_queued=False)  # the write was lost with its connection
    with pytest.raises(WriteTimeout):
        await reply
    assert ping_count(fake) == 0
    # The write that settled it carried only the replica's mark: whatever of ours was
    # still queued against the old version can never apply.
    assert [w["replica"] for w in fake.objects[PATH]["status"]["replicaWrites"]] == [
        writer._replica
    ]


async def test_pings_queued_behind_a_held_write_get_503_at_their_deadline():
    fake, _, writer = setup(write_timeout=0.2)
    fake.stop()
    first = asyncio.create_task(writer.record(TOKEN, ping()))
    await async_wait_for(lambda: _true(fake.puts_started == 1), timeout=2, what="its PUT")
    with pytest.raises(WriteTimeout):  # never sent: nothing is counted
        await writer.record(TOKEN, ping())
    fake.resume()
    await first
    await writer.drain(timeout=2)
    assert ping_count(fake) == 1


async def test_sequential_pings_keep_to_the_write_budget():
    # Issue 13 item 8: a client that waits for each reply empties the monitor's lane
    # between pings; the budget (here burst 2, then one write per 100 s) still holds.
    fake, _, writer = setup(writes_per_second=0.01, write_burst=2, write_timeout=0.3)
    await writer.record(TOKEN, ping())
    await writer.record(TOKEN, ping())
    with pytest.raises(WriteTimeout):
        await writer.record(TOKEN, ping())  # waits for the budget, past its 503
    assert fake.writes.count(("PUT", "heartbeatmonitors/status")) == 2
    assert ping_count(fake) == 2


async def test_a_monitors_write_budget_is_forgotten_once_refilled():
    # The buckets that outlive lanes are bounded: a full one is dropped (issue 13 item 8).
    now = [0.0]
    fake, table, writer = setup(clock=lambda: now[0], writes_per_second=5, write_burst=10)
    other = "o" * 43
    body = monitor()
    body["metadata"].update(name="n", uid="uid-2")
    body["status"]["tokenHash"] = token_hash(other)
    table.upsert(fake.add(monitor_path("ns", "n"), body))
    await writer.record(TOKEN, ping())
    await async_wait_for(lambda: _true(not writer._lanes), timeout=2, what="lane gone")
    assert ("ns", "m") in writer._idle_buckets  # 9 of 10 left: kept
    now[0] += 0.1
    await writer.record(other, ping())
    assert ("ns", "m") in writer._idle_buckets  # not refilled yet
    now[0] += 0.2  # 0.3 s at 5/s refills the one write
    await writer.record(other, ping())
    await async_wait_for(lambda: _true(not writer._lanes), timeout=2, what="lanes gone")
    assert ("ns", "m") not in writer._idle_buckets
    now[0] += 1.0
    await writer.record(TOKEN, ping())
    await async_wait_for(lambda: _true(not writer._lanes), timeout=2, what="lanes gone")
    assert list(writer._idle_buckets) == [("ns", "m")]  # n's bucket refilled and dropped


async def test_a_conflict_is_re_read_and_re_applied():
    fake, _, writer = setup()
    fake.conflicts_left = 2
    await writer.record(TOKEN, ping())
    assert ping_count(fake) == 1
    assert fake.writes.count(("PUT", "heartbeatmonitors/status")) == 3


async def test_unknown_token_after_the_index_miss_wait():
    _, _table, writer = setup(index_miss_wait=0.05)
    with pytest.raises(UnknownToken):
        await writer.record("u" * 43, ping())


async def test_an_unknown_token_before_the_initial_list_is_index_loading_not_unknown():
    # Issue 18 item 4: a replica listening before its index holds the initial list must
    # not call a valid token unknown (404); it says "not yet" (503) instead.
    _, table, writer = setup(synced=False, index_miss_wait=0.05)
    with pytest.raises(IndexLoading):
        await writer.record("u" * 43, ping())
    table.synced = True
    with pytest.raises(UnknownToken):
        await writer.record("u" * 43, ping())


async def test_the_index_wait_limit_before_the_initial_list_is_index_loading_too():
    _, _table, writer = setup(synced=False, index_miss_wait=0.05, max_index_waits=0)
    with pytest.raises(IndexLoading):
        await writer.record("u" * 43, ping())


async def test_a_token_the_loading_index_already_holds_is_recorded():
    fake, _table, writer = setup(synced=False)
    await writer.record(TOKEN, ping())
    assert ping_count(fake) == 1


async def test_an_index_miss_waits_for_a_new_monitor():
    fake, table, writer = setup(index_miss_wait=2.0)
    other = "o" * 43
    waiting = asyncio.create_task(writer.record(other, ping()))
    await async_wait_for(lambda: _true(writer._index_waits == 1), timeout=2, what="a wait")
    body = monitor()
    body["metadata"].update(name="n", uid="uid-2")
    body["status"]["tokenHash"] = token_hash(other)
    table.upsert(fake.add(monitor_path("ns", "n"), body))
    await waiting
    assert fake.objects[monitor_path("ns", "n")]["status"]["pingCount"] == 1


async def test_a_ping_on_a_deleted_monitor_is_unknown():
    fake, _, writer = setup()
    fake.fail_with = ApiError(404, "NotFound", "gone")
    with pytest.raises(UnknownToken):
        await writer.record(TOKEN, ping())


def test_token_bucket_allows_a_burst_then_the_rate():
    now = [0.0]
    bucket = TokenBucket(5, 10, clock=lambda: now[0])
    for _ in range(10):
        assert bucket.delay() == 0
        bucket.take()
    assert bucket.delay() == pytest.approx(0.2)
    now[0] += 0.2
    assert bucket.delay() == 0


def _pending(writer: Writer) -> list:
    return [i for lane in writer._lanes.values() for i in lane.pending]


async def _true(value: bool) -> bool:
    return value


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"period": "500000w"}, "spec.period"),
        ({"period": "99999999h"}, "spec.period"),
        ({"period": "1h", "grace": "500000w"}, "spec.grace"),
        ({"period": "1h", "maxRuntime": "500000w"}, "spec.maxRuntime"),
    ],
)
async def test_a_spec_the_domain_cannot_evaluate_is_never_a_503(spec: dict, field: str):
    """Issue 13 item 3: a stored spec with a duration past 10 years (what the CRD accepted
    before its CEL bound) used to raise OverflowError in the write: every ping 503, every
    /start 503, status still Ready=True. Now the ping is recorded and the monitor says
    Ready=False with a message naming the field."""
    fake, table, writer = setup()
    stored = dict(fake.objects[PATH])
    stored["status"] = dict(stored["status"], tokenSecretName="m-heartbeat")
    table.upsert(fake.add(PATH, stored))
    await writer.record(TOKEN, ping())
    healthy = fake.objects[PATH]
    assert healthy["status"]["state"] == "Healthy"
    assert [c["status"] for c in healthy["status"]["conditions"] if c["type"] == "Ready"] == [
        "True"
    ]
    # the user edits the healthy monitor's spec
    edited = dict(healthy, spec=spec)
    edited["metadata"] = dict(healthy["metadata"], generation=2)
    table.upsert(fake.add(PATH, edited))
    await writer.record(TOKEN, Ping(time=datetime.now(UTC), kind="start"))
    await writer.record(TOKEN, ping())
    status = fake.objects[PATH]["status"]
    assert status["pingCount"] == 3
    (ready,) = [c for c in status["conditions"] if c["type"] == "Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert ready["message"].startswith(f"{field}: '")
    assert "longer than 10 years" in ready["message"]
    assert status["observedGeneration"] == 2


REFUSED = ApiError(0, NOT_CONNECTED, "ClientConnectorError")


class UnreachableKube(FakeKube):
    """The API server is down (connection refused): every read and write fails as the
    client reports it, and nothing was sent (a write whose answer is lost instead is
    held until a read can tell whether it landed: the tests above)."""

    async def get(self, path, **_):  # type: ignore[no-untyped-def, override]
        raise REFUSED


async def test_an_outage_logs_one_warning_line_not_a_traceback_per_failed_write(caplog):
    # Issue 18 item 6: 241 lines (tracebacks among them) in 23 s of an outage.
    fake, table = UnreachableKube(), MonitorTable()
    fake.fail_with = REFUSED
    tokens = [f"{i:02d}" + "t" * 41 for i in range(10)]
    for i, token in enumerate(tokens):
        body = monitor()
        body["metadata"].update(name=f"m{i}", uid=f"uid-{i}")
        body["status"]["tokenHash"] = token_hash(token)
        table.upsert(fake.add(monitor_path("ns", f"m{i}"), body))
    table.synced = True
    writer = Writer(fake, table, WriterConfig(deadline_delay=0, write_timeout=3.0))
    caplog.set_level("DEBUG", logger="heartbeat_operator.engine.writing")
    results = await asyncio.gather(
        *(writer.record(t, ping()) for t in tokens), return_exceptions=True
    )
    assert all(isinstance(r, WriteTimeout) for r in results), results
    assert len(fake.writes) >= 10  # each monitor's write failed, some more than once
    lines = [r for r in caplog.records if r.name == "heartbeat_operator.engine.writing"]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert lines[0].levelname == "WARNING"
    assert lines[0].exc_info is None
    assert NOT_CONNECTED in lines[0].getMessage()


async def test_the_writer_says_when_every_event_of_its_write_is_posted():
    fake, _, writer = setup()
    told: list[str] = []
    writer.on_events_posted.append(lambda entry: told.append(entry.name))
    await writer.record(TOKEN, ping())  # the first ping: FirstPing
    await writer.drain(timeout=2)
    assert [o["reason"] for p, o in fake.objects.items() if "/events/" in p] == ["FirstPing"]
    assert told == ["m"]
    fake.fail_posts = ApiError(500, "InternalError", "no")
    await writer.submit(("ns", "m"), Change(inputs=(Ping(datetime.now(UTC), "fail"),)))
    await writer.drain(timeout=2)
    assert told == ["m"]  # the Failed Event did not go out: the leader checks it later
