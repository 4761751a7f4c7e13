"""The ping journal against the real control plane (DESIGN 10.7, 10.8.10-12; issue 15).

Every operator here runs with ``--journal``: a ``200`` means the ping is stored in the
replica's journal Secret (``kubectl get secret -l heartbeat.dev/journal``), and the
monitor's status absorbs it behind the reply.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.integration.operator_process import Monitors, at, http, isolated
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

JOURNAL = "--journal"


@pytest.fixture
def monitors(api_client, namespace):
    return Monitors(api_client, namespace)


def journals(api_client: k8s.ApiClient, namespace: str) -> dict[str, list[list[Any]]]:
    """Every journal Secret in ``namespace`` (as ``kubectl get secret -l
    heartbeat.dev/journal`` lists them): identity -> its entries, each a list
    ``[sequence, namespace, name, uid, microseconds, kind, ...]`` (docs/operating.md)."""
    found = k8s.CoreV1Api(api_client).list_namespaced_secret(
        namespace, label_selector="heartbeat.dev/journal"
    )
    out: dict[str, list[list[Any]]] = {}
    for secret in found.items:
        assert secret.type == "heartbeat.dev/journal"
        assert secret.metadata.labels["app.kubernetes.io/managed-by"] == "heartbeat-operator"
        raw = (secret.data or {}).get("pings")
        entries = json.loads(base64.b64decode(raw)) if raw else []
        out.setdefault(secret.metadata.labels["heartbeat.dev/journal"], []).extend(entries)
    return out


def journal_secret_names(api_client: k8s.ApiClient, namespace: str) -> list[str]:
    found = k8s.CoreV1Api(api_client).list_namespaced_secret(
        namespace, label_selector="heartbeat.dev/journal"
    )
    return sorted(secret.metadata.name for secret in found.items)


def entry_names(api_client: k8s.ApiClient, namespace: str) -> list[str]:
    return [e[2] for entries in journals(api_client, namespace).values() for e in entries]


def test_a_ping_answered_200_is_journaled_then_absorbed_and_leaves_the_journal(
    operator_factory, monitors, namespace, api_client
):
    op = operator_factory.start(*isolated(namespace, JOURNAL))
    monitors.create("first", {"period": "1h"})
    monitors.create("second", {"period": "1h"})
    first, second = monitors.url("first"), monitors.url("second")
    before = time.time()
    assert http(first + "?rid=r1", method="POST", data=b"backup done").status == 200
    # Stored before the reply: the journal holds the ping now.
    assert entry_names(api_client, namespace) == ["first"]
    status = wait_for(
        lambda: (s := monitors.status("first")).get("pingCount") == 1 and s,
        timeout=10,
        interval=0.05,
        what="the ping absorbed into status",
    )
    absorbed_after = time.time() - before
    assert status["recentPings"][0]["body"] == "backup done"
    assert status["lastPingTime"] is not None
    marks = status["journalAbsorbed"]
    assert [m["sequence"] for m in marks] == [1]
    # The next flush (another monitor's ping) drops the absorbed entry: no extra write.
    assert http(second).status == 200
    assert entry_names(api_client, namespace) == ["second"]
    wait_for(lambda: monitors.status("second").get("pingCount") == 1, timeout=10, what="second")
    assert monitors.status("first")["pingCount"] == 1  # never twice
    print(f"first ping absorbed after {absorbed_after:.2f} s")
    # SIGTERM: the replica absorbs what it holds and deletes its journal.
    assert op.stop() == 0
    assert journals(api_client, namespace) == {}


def test_a_sigkilled_replicas_journal_is_absorbed_by_the_leader(
    operator_factory, monitors, namespace, api_client
):
    leader = operator_factory.start(*isolated(namespace, JOURNAL), name="leader")
    monitors.create("m", {"period": "1h"})
    url = monitors.url("m")
    wait_for(lambda: monitors.status("m").get("state"), timeout=10, what="leader writes")
    # A replica that absorbs its first ping at once, then none for ten minutes.
    follower = operator_factory.start(
        *isolated(namespace, JOURNAL, "--absorb-interval", "600"), name="follower"
    )
    url = url.replace(leader.url, follower.url)
    assert http(url).status == 200
    wait_for(lambda: monitors.status("m").get("pingCount") == 1, timeout=10, what="absorbed")
    for _ in range(2):
        assert http(url).status == 200
    # The job's output: log lines, stored deflated (docs/operating.md), read back whole
    # by another process.
    output = "".join(
        f"2026-12-07T02:00:{i:02d}Z backup: copied chunk {i} of 40\n" for i in range(40)
    )
    assert http(url, method="POST", data=output.encode()).status == 200
    (stored,) = [e for es in journals(api_client, namespace).values() for e in es if len(e) == 10]
    assert stored[8] is None and len(stored[9]) < len(output) / 3
    assert len(entry_names(api_client, namespace)) >= 3  # stored, not absorbed
    follower.kill()
    # Its replica Lease expires (8 s); the leader absorbs the journal, then deletes it.
    wait_for(lambda: monitors.status("m").get("pingCount") == 4, timeout=40, what="absorbed")
    wait_for(lambda: journals(api_client, namespace) == {}, timeout=10, what="journal deleted")
    status = monitors.status("m")
    assert status["pingCount"] == 4  # the first one is not counted again
    assert status["lastOutput"]["body"] == output
    assert status["recentPings"][0]["body"] == output[:256]


def test_a_ping_acknowledged_just_before_alert_time_is_never_judged_missed(
    operator_factory, monitors, namespace, api_client
):
    leader = operator_factory.start(*isolated(namespace, JOURNAL), name="leader")
    monitors.create("tight", {"period": "6s", "grace": "3s"})
    url = monitors.url("tight")
    follower = operator_factory.start(
        *isolated(namespace, JOURNAL, "--absorb-interval", "600"), name="follower"
    )
    url = url.replace(leader.url, follower.url)
    assert http(url).status == 200  # absorbed at once: the first of this interval
    status = wait_for(
        lambda: (s := monitors.status("tight")).get("pingCount") == 1 and s,
        timeout=10,
        what="first ping absorbed",
    )
    alert = at(status["alertTime"]).timestamp()
    wait_for(lambda: time.time() >= alert - 0.7, timeout=15, interval=0.01, what="0.7 s left")
    assert http(url).status == 200  # journaled; its replica will not absorb it for 10 min
    acked = time.time()
    assert acked < alert
    # The leader judges the alertTime at +0.5 s, folding the journals first.
    wait_for(lambda: time.time() >= alert + 2, timeout=10, interval=0.05, what="judged")
    status = monitors.status("tight")
    assert status["state"] != "Down", status.get("conditions")
    assert "Missed" not in monitors.event_reasons("tight")
    assert status["pingCount"] == 2  # absorbed in the same write as the judgement
    assert at(status["lastPingTime"]).timestamp() < alert


def test_a_full_journal_answers_503_and_loses_no_acknowledged_ping(
    operator_factory, monitors, namespace, api_client
):
    # Room for about ten GET pings per Secret, two Secrets; each monitor absorbed once,
    # then not for ten minutes: the journal fills up.
    small = ("--journal-max-bytes", "6000", "--journal-max-secrets", "2")
    op = operator_factory.start(*isolated(namespace, JOURNAL, *small, "--absorb-interval", "600"))
    monitors.create("busy", {"period": "1h"})
    url = monitors.url("busy")
    assert http(url).status == 200
    wait_for(lambda: monitors.status("busy").get("pingCount") == 1, timeout=10, what="absorbed")
    acknowledged = 1
    refused = None
    for _ in range(49):  # under the 50 unabsorbed pings that would give 429
        reply = http(url)
        if reply.status != 200:
            refused = reply
            break
        acknowledged += 1
    assert refused is not None, "the journal never filled up"
    assert refused.status == 503
    assert refused.headers["Retry-After"] == "1"
    assert "journal is full" in refused.body
    # The replica started a second Secret when the first was full (DESIGN 10.8.12).
    identity = next(iter(journals(api_client, namespace)))
    assert journal_secret_names(api_client, namespace) == [
        f"heartbeat-journal-{identity}",
        f"heartbeat-journal-{identity}-2",
    ]
    # Every acknowledged ping is stored (the first may already be dropped: absorbed).
    assert acknowledged - 1 <= len(entry_names(api_client, namespace)) <= acknowledged
    # On SIGTERM the replica absorbs what it holds and deletes every Secret it wrote.
    assert op.stop() == 0
    assert monitors.status("busy")["pingCount"] == acknowledged
    assert journal_secret_names(api_client, namespace) == []
