"""One vocabulary (issue 14 item 4): the CRD, the metrics and the Events use the domain's.

Each closed set is a ``StrEnum`` in ``domain.vocabulary``; these tests fail when the CRD's
schema, a metric's label values or an Event's type drift from it.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import yaml

from heartbeat_operator import metrics
from heartbeat_operator.domain import vocabulary
from heartbeat_operator.domain.inputs import PING_KINDS, exit_code_kind
from heartbeat_operator.domain.records import STATES
from heartbeat_operator.domain.vocabulary import EventReason, EventType, PingKind, State
from heartbeat_operator.engine import events
from heartbeat_operator.receiver.paths import route_class

CRD = Path(__file__).parents[2] / "deploy" / "crds" / "heartbeatmonitors.heartbeat.dev.yaml"


def status_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["storage"]]
    return version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]


def test_the_crd_lists_the_domains_states() -> None:
    assert status_schema()["state"]["enum"] == [str(s) for s in State]


def test_the_crd_lists_the_domains_ping_kinds() -> None:
    status = status_schema()
    assert status["recentPings"]["items"]["properties"]["kind"]["enum"] == list(PingKind)
    assert status["lastOutput"]["properties"]["kind"]["enum"] == list(PingKind)


def test_metrics_domain_and_receiver_share_the_sets() -> None:
    assert metrics.MONITOR_STATES == STATES == tuple(State)
    assert metrics.PING_KINDS == PING_KINDS == tuple(PingKind)
    assert tuple(vocabulary.RouteClass) == metrics.ROUTE_CLASSES
    paths = ["/ping/x", "/hb/x", "/v1/heartbeats/x/ping", "/api/v1/x", "/healthz", "/metrics"]
    assert [route_class(p) for p in paths] == list(vocabulary.RouteClass)
    assert {exit_code_kind(0), exit_code_kind(3)} == {PingKind.SUCCESS, PingKind.FAIL}


def test_members_are_their_strings() -> None:
    # statuses, label values and Event bodies carry the same text as before the enums
    assert f"{State.DOWN}" == "Down" and State("Down") is State.DOWN
    assert EventType.WARNING == "Warning"


def test_failures_post_warnings_and_every_other_transition_normal() -> None:
    at = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    target = events.InvolvedObject("ns", "m", "uid")
    for reason in EventReason:
        status = {
            "recentTransitions": [
                {
                    "time": "2026-01-01T00:00:00Z",
                    "state": "Grace",
                    "reason": str(reason),
                    "message": "m",
                    "eventReason": str(reason),
                }
            ]
        }
        posts = events.missing_events(target, status, at)
        expected = "Warning" if reason in vocabulary.FAILURE_REASONS else "Normal"
        assert [p["type"] for p in posts] == [expected], reason


def test_a_status_with_enum_kinds_serializes_as_the_api_client_sends_it() -> None:
    # orjson (the API client's and the table's encoder) refuses str-subclass dict keys:
    # pingCounts must be keyed by plain strings whoever made the Ping.
    from heartbeat_operator.domain.inputs import Ping
    from heartbeat_operator.domain.machine import apply, record_ping_only
    from heartbeat_operator.domain.records import Record
    from heartbeat_operator.domain.specs import parse_spec
    from heartbeat_operator.engine.api import dump_json

    at = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    spec = parse_spec({"period": "1h", "grace": "5m"})
    ping = Ping(time=at, kind=exit_code_kind(0))
    record, _ = apply(spec, Record.new(at), ping, at)
    only = record_ping_only(Record.new(at), Ping(time=at, kind=PingKind.FAIL))
    for rec in (record, only):
        status = rec.to_status()
        assert b'"pingCounts":{' in dump_json(status)
        assert all(type(k) is str for k in status["pingCounts"])
