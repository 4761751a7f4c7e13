"""The token life cycle's order of writes (DESIGN 9.9): hash first, then the Secret, then
the Secret's name in status."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import pytest
from tests.unit.kube.fakes import FakeKube

from heartbeat_operator.domain.timefmt import format_time
from heartbeat_operator.domain.tokens import token_hash
from heartbeat_operator.engine import secrets
from heartbeat_operator.engine.api import monitor_path, secret_path
from heartbeat_operator.engine.events import InvolvedObject
from heartbeat_operator.engine.monitors import MonitorTable
from heartbeat_operator.engine.tokens import TokenKeeper, Urls
from heartbeat_operator.engine.writing import Writer, WriterConfig

PATH = monitor_path("ops", "m")


def setup(status=None):
    fake, table = FakeKube(), MonitorTable()
    body = {
        "metadata": {
            "name": "m",
            "namespace": "ops",
            "uid": "uid-1",
            "generation": 1,
            "creationTimestamp": format_time(datetime.now(UTC)),
        },
        "spec": {"period": "1h"},
        "status": status or {},
    }
    table.upsert(fake.add(PATH, body))
    writer = Writer(fake, table, WriterConfig())  # type: ignore[arg-type]
    keeper = TokenKeeper(fake, table, writer, Urls("https://hb.example"))  # type: ignore[arg-type]
    return fake, table, keeper


async def test_a_new_monitor_gets_its_hash_before_its_secret_and_its_name_after():
    fake, table, keeper = setup()
    entry = table.get(("ops", "m"))
    assert keeper.needs_work(entry)
    await keeper.reconcile(entry)
    assert fake.writes == [
        ("PUT", "heartbeatmonitors/status"),
        ("POST", "secrets"),
        ("PUT", "heartbeatmonitors/status"),
    ]
    secret = fake.objects[secret_path("ops", "m-heartbeat")]
    token = secret["stringData"]["token"]
    assert secret["stringData"]["url"] == f"https://hb.example/ping/{token}"
    status = fake.objects[PATH]["status"]
    assert status["tokenHash"] == token_hash(token)
    assert status["tokenSecretName"] == "m-heartbeat"
    assert token not in str(status)
    assert not keeper.needs_work(table.get(("ops", "m")))


async def test_after_a_crash_between_hash_and_secret_the_next_leader_finishes():
    fake, table, keeper = setup(status={"tokenHash": token_hash("lost" * 10)})
    entry = table.get(("ops", "m"))
    assert keeper.needs_work(entry)  # no tokenSecretName: the Secret may not exist
    await keeper.reconcile(entry)
    token = fake.objects[secret_path("ops", "m-heartbeat")]["stringData"]["token"]
    assert fake.objects[PATH]["status"]["tokenHash"] == token_hash(token)


async def test_a_users_secret_without_a_token_is_a_conflict_and_is_left_alone():
    fake, table, keeper = setup()
    fake.add(secret_path("ops", "m-heartbeat"), {"metadata": {"name": "m-heartbeat"}, "data": {}})
    await keeper.reconcile(table.get(("ops", "m")))
    conditions = fake.objects[PATH]["status"]["conditions"]
    ready = next(c for c in conditions if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "SecretConflict")
    assert ("POST", "secrets") not in fake.writes
    assert not keeper.needs_work(table.get(("ops", "m")))  # reported once per generation


async def test_an_adopted_secret_only_gains_its_urls():
    fake, table, keeper = setup()
    token = "U" * 40
    data = {"token": base64.b64encode(token.encode()).decode()}
    fake.add(secret_path("ops", "m-heartbeat"), {"metadata": {"name": "m-heartbeat"}, "data": data})
    await keeper.reconcile(table.get(("ops", "m")))
    secret = fake.objects[secret_path("ops", "m-heartbeat")]
    assert "ownerReferences" not in secret["metadata"]
    assert secret["stringData"] == {"url": f"https://hb.example/ping/{token}"}
    assert fake.objects[PATH]["status"]["tokenHash"] == token_hash(token)


async def test_the_sweep_finds_a_deleted_secret_and_reconcile_makes_a_new_token():
    """DESIGN 10.8.14: a deleted token Secret is read as missing by the sweep (a read by
    name, never a list), handed to the leader's reconcile, and created again with a new
    token whose hash replaces the old one; a TokenRotated Warning says why."""
    fake, table, keeper = setup()
    table.synced = True  # the initial list is in
    poked: list[tuple[str, str]] = []
    keeper.poke = poked.append
    await keeper.reconcile(table.get(("ops", "m")))
    old = fake.objects[secret_path("ops", "m-heartbeat")]["stringData"]["token"]
    assert await keeper.sweep(lambda: True, 1000) == 0  # present: nothing to do
    assert poked == [] and not keeper.needs_work(table.get(("ops", "m")))

    del fake.objects[secret_path("ops", "m-heartbeat")]
    assert await keeper.sweep(lambda: True, 1000) == 1
    assert poked == [("ops", "m")]
    entry = table.get(("ops", "m"))
    assert keeper.needs_work(entry)
    await keeper.reconcile(entry)
    await keeper.writer.drain(timeout=1)

    new = fake.objects[secret_path("ops", "m-heartbeat")]["stringData"]["token"]
    assert new != old
    status = fake.objects[PATH]["status"]
    assert status["tokenHash"] == token_hash(new) and status["tokenSecretName"] == "m-heartbeat"
    (event,) = [o for p, o in fake.objects.items() if "/events/" in p]
    assert (event["reason"], event["type"]) == ("TokenRotated", "Warning")
    assert "m-heartbeat was deleted" in event["message"]
    assert old not in str(event) and new not in str(event)
    assert not keeper.needs_work(table.get(("ops", "m")))


async def test_an_auto_wired_monitors_token_rotated_warning_is_on_its_cronjob_too():
    fake, table, keeper = setup()
    table.synced = True  # the initial list is in
    cronjob = InvolvedObject("ops", "m", "cj-uid", kind="CronJob", api_version="batch/v1")
    keeper.targets = lambda entry: [InvolvedObject(entry.namespace, entry.name, entry.uid), cronjob]
    await keeper.reconcile(table.get(("ops", "m")))
    del fake.objects[secret_path("ops", "m-heartbeat")]
    assert await keeper.sweep(lambda: True, 1000) == 1
    await keeper.reconcile(table.get(("ops", "m")))
    await keeper.writer.drain(timeout=1)
    posted = [o for p, o in fake.objects.items() if "/events/" in p]
    assert sorted(e["involvedObject"]["kind"] for e in posted) == ["CronJob", "HeartbeatMonitor"]
    assert {e["reason"] for e in posted} == {"TokenRotated"}


async def test_the_sweep_leaves_alone_a_monitor_deleted_during_its_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake, table, keeper = setup()
    table.synced = True
    poked: list[tuple[str, str]] = []
    keeper.poke = poked.append
    await keeper.reconcile(table.get(("ops", "m")))
    read = secrets.read_secret

    async def read_after_the_deletion(client: Any, namespace: str, name: str) -> Any:
        table.remove("ops", "m", table.get(("ops", "m")).uid)  # the watch saw it go
        del fake.objects[secret_path("ops", "m-heartbeat")]  # and the GC its Secret
        return await read(client, namespace, name)

    monkeypatch.setattr(secrets, "read_secret", read_after_the_deletion)
    assert await keeper.sweep(lambda: True, 1000) == 0
    assert poked == []


async def test_the_sweep_stops_when_leadership_is_lost():
    fake, table, keeper = setup()
    table.synced = True
    await keeper.reconcile(table.get(("ops", "m")))
    del fake.objects[secret_path("ops", "m-heartbeat")]
    assert await keeper.sweep(lambda: False, 1000) == 0
    assert not keeper.needs_work(table.get(("ops", "m")))


async def test_a_replica_that_leads_again_does_not_rotate_a_handled_rotation_again():
    # A handles rotation "1", loses the lead; B handles the user's "2" and the user copies
    # the new URL; A leads again: rotating once more on its old memory would 404 that URL.
    fake, table, a = setup()
    b = TokenKeeper(fake, table, a.writer, Urls("https://hb.example"))  # type: ignore[arg-type]
    await a.reconcile(table.get(("ops", "m")))

    def annotate(value: str):
        body = fake.objects[PATH]
        body["metadata"]["annotations"] = {secrets.ROTATE_ANNOTATION: value}
        body["metadata"]["resourceVersion"] = str(int(body["metadata"]["resourceVersion"]) + 1)
        table.upsert(body)
        return table.get(("ops", "m"))

    def token() -> str:
        return fake.objects[secret_path("ops", "m-heartbeat")]["stringData"]["token"]

    entry = annotate("1")
    assert a.needs_work(entry)
    await a.reconcile(entry)
    first = token()
    assert not b.needs_work(table.get(("ops", "m")))  # b, a new leader: "1" is handled
    entry = annotate("2")
    assert b.needs_work(entry)
    await b.reconcile(entry)
    copied = token()

    assert copied != first

    a.leading_again()
    assert not a.needs_work(table.get(("ops", "m")))
    assert token() == copied


async def test_the_newer_monitor_gets_token_conflict_whichever_is_adopted_first():
    # Two monitors applied together with one user token, reconciled newer first: the
    # newer kept Ready=True while every ping went to the older (DESIGN 9.9).
    fake, table = FakeKube(), MonitorTable()
    token = "S" * 40
    for name, created, uid in (
        ("older", "2026-12-07T10:00:00Z", "u-old"),
        ("newer", "2026-12-07T10:00:05Z", "u-new"),
    ):
        body = {
            "metadata": {
                "name": name,
                "namespace": "ops",
                "uid": uid,
                "generation": 1,
                "creationTimestamp": created,
            },
            "spec": {"period": "1h", "tokenSecretName": f"{name}-token"},
            "status": {},
        }
        table.upsert(fake.add(monitor_path("ops", name), body))
        data = {"token": base64.b64encode(token.encode()).decode()}
        fake.add(
            secret_path("ops", f"{name}-token"),
            {"metadata": {"name": f"{name}-token"}, "data": data},
        )
    writer = Writer(fake, table, WriterConfig())  # type: ignore[arg-type]
    poked: list[tuple[str, str]] = []
    keeper = TokenKeeper(fake, table, writer, Urls("https://hb.example"), poke=poked.append)  # type: ignore[arg-type]

    def ready(name: str) -> tuple[str, str]:
        conditions = fake.objects[monitor_path("ops", name)]["status"].get("conditions") or []
        found = next(c for c in conditions if c["type"] == "Ready")
        return (found["status"], found["reason"])

    await keeper.reconcile(table.get(("ops", "newer")))
    await keeper.reconcile(table.get(("ops", "older")))
    assert poked == [("ops", "newer")]  # the older's adoption asks for the newer again
    newer = table.get(("ops", "newer"))
    assert keeper.needs_work(newer)
    await keeper.reconcile(newer)
    assert (ready("older"), ready("newer")) == (("True", "TokenReady"), ("False", "TokenConflict"))
    assert table.owner_of(token_hash(token)).name == "older"
    assert not keeper.needs_work(table.get(("ops", "newer")))  # reported once
    keeper.leading_again()
    assert not keeper.needs_work(table.get(("ops", "newer")))  # also by a new leader
