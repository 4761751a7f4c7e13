"""The /metrics text for scripted monitor tables (DESIGN section 5, section 9 item 14).

Statuses here are written the way the operator writes them (DESIGN section 2 field names,
9.18 time format); each test reads the exposition text back with prometheus_client's own
parser, as a scrape would.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from heartbeat_operator.metrics import (
    CONTENT_TYPE,
    MONITOR_STATES,
    Metrics,
    MonitorCollector,
    MonitorSnapshot,
    info_label_name,
    make_metrics_handler,
)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

PER_MONITOR = {
    "heartbeat_monitor_state",
    "heartbeat_monitor_up",
    "heartbeat_monitor_ready",
    "heartbeat_monitor_last_ping_timestamp_seconds",
    "heartbeat_monitor_last_success_timestamp_seconds",
    "heartbeat_monitor_last_failure_timestamp_seconds",
    "heartbeat_monitor_next_due_timestamp_seconds",
    "heartbeat_monitor_last_duration_seconds",
    "heartbeat_monitor_last_exit_code",
    "heartbeat_monitor_consecutive_failures",
    "heartbeat_pings_total",
    "heartbeat_missed_runs_total",
    "heartbeat_monitor_info",
}


def parse(text: str | bytes) -> Samples:
    if isinstance(text, bytes):
        text = text.decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in samples, f"duplicate series {key}"
            samples[key] = sample.value
    return samples


def series(samples: Samples, metric: str, /, **labels: str) -> float | None:
    return samples.get((metric, frozenset(labels.items())))


def names(samples: Samples) -> set[str]:
    return {name for name, _ in samples}


def ts(text: str) -> float:
    return datetime.fromisoformat(text).astimezone(UTC).timestamp()


class Table:
    """A stand-in for the kube side's monitor table: rows the test edits between scrapes."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], MonitorSnapshot] = {}
        self.leader = True

    def put(
        self,
        name: str,
        status: dict[str, Any],
        *,
        namespace: str = "ops",
        labels: dict[str, str] | None = None,
        spec: dict[str, Any] | None = None,
    ) -> None:
        self.rows[namespace, name] = MonitorSnapshot(
            namespace, name, labels or {}, spec or {"period": "1h"}, status
        )

    def __call__(self) -> Iterable[MonitorSnapshot]:
        return list(self.rows.values())


def scrape(metrics: Metrics) -> Samples:
    body, content_type = metrics.render()
    assert content_type == CONTENT_TYPE
    return parse(body)


@pytest.fixture
def table() -> Table:
    return Table()


@pytest.fixture
def metrics(table: Table) -> Metrics:
    return Metrics(table, lambda: table.leader, label_keys=["team", "app.kubernetes.io/part-of"])


def test_scripted_life_of_a_monitor(table: Table, metrics: Metrics) -> None:
    """New -> start -> success -> late -> missed (Down) -> success (Healthy)."""
    ident = {"namespace": "ops", "name": "backup"}

    def state_of(samples: Samples) -> str:
        hot = [
            s
            for s in MONITOR_STATES
            if series(samples, "heartbeat_monitor_state", **ident, state=s) == 1
        ]
        assert len(hot) == 1, hot
        for s in MONITOR_STATES:
            assert series(samples, "heartbeat_monitor_state", **ident, state=s) in (0, 1)
        return hot[0]

    # Created: New, nothing recorded yet.
    table.put(
        "backup", {"state": "New", "nextDueTime": "2026-11-25T05:00:00Z", "consecutiveFailures": 0}
    )
    s = scrape(metrics)
    assert state_of(s) == "New"
    assert series(s, "heartbeat_monitor_up", **ident) == 1
    assert series(s, "heartbeat_monitor_next_due_timestamp_seconds", **ident) == ts(
        "2026-11-25T05:00:00Z"
    )
    for absent in (
        "heartbeat_monitor_last_ping_timestamp_seconds",
        "heartbeat_monitor_last_success_timestamp_seconds",
        "heartbeat_monitor_last_failure_timestamp_seconds",
        "heartbeat_monitor_last_duration_seconds",
        "heartbeat_monitor_last_exit_code",
        "heartbeat_pings_total",
        "heartbeat_missed_runs_total",
    ):
        assert absent not in names(s), absent

    # A start ping: still New, one ping of kind start.
    table.put(
        "backup",
        {
            "state": "New",
            "nextDueTime": "2026-11-25T05:00:00Z",
            "lastPingTime": "2026-11-25T04:59:30Z",
            "lastStartTime": "2026-11-25T04:59:30Z",
            "pingCount": 1,
            "pingCounts": {"start": 1},
            "consecutiveFailures": 0,
            "missedRuns": 0,
        },
    )
    s = scrape(metrics)
    assert state_of(s) == "New"
    assert series(s, "heartbeat_pings_total", **ident, kind="start") == 1
    assert series(s, "heartbeat_pings_total", **ident, kind="success") is None
    assert series(s, "heartbeat_monitor_last_ping_timestamp_seconds", **ident) == ts(
        "2026-11-25T04:59:30Z"
    )
    assert series(s, "heartbeat_missed_runs_total", **ident) == 0

    # The success finishes the run: Healthy, with duration and exit code.
    table.put(
        "backup",
        {
            "state": "Healthy",
            "nextDueTime": "2026-11-25T06:06:42.500Z",
            "lastPingTime": "2026-11-25T05:06:42.500Z",
            "lastSuccessTime": "2026-11-25T05:06:42.500Z",
            "lastStartTime": "2026-11-25T04:59:30Z",
            "lastDurationSeconds": 432.5,
            "lastExitCode": 0,
            "pingCount": 2,
            "pingCounts": {"start": 1, "exit": 1},
            "consecutiveFailures": 0,
            "missedRuns": 0,
        },
    )
    s = scrape(metrics)
    assert state_of(s) == "Healthy"
    assert series(s, "heartbeat_monitor_last_success_timestamp_seconds", **ident) == 1795583202.5
    assert series(s, "heartbeat_monitor_last_duration_seconds", **ident) == 432.5
    assert series(s, "heartbeat_monitor_last_exit_code", **ident) == 0
    assert series(s, "heartbeat_pings_total", **ident, kind="exit") == 1
    assert "heartbeat_monitor_last_failure_timestamp_seconds" not in names(s)

    # Late: Grace, still up.
    table.put("backup", {**table.rows["ops", "backup"].status, "state": "Grace"})
    s = scrape(metrics)
    assert state_of(s) == "Grace"
    assert series(s, "heartbeat_monitor_up", **ident) == 1

    # Missed at alertTime: Down, up 0, the miss counted, next slot due.
    table.put(
        "backup",
        {
            **table.rows["ops", "backup"].status,
            "state": "Down",
            "nextDueTime": "2026-11-25T07:06:42.500Z",
            "consecutiveFailures": 1,
            "missedRuns": 1,
        },
    )
    s = scrape(metrics)
    assert state_of(s) == "Down"
    assert series(s, "heartbeat_monitor_up", **ident) == 0
    assert series(s, "heartbeat_monitor_consecutive_failures", **ident) == 1
    assert series(s, "heartbeat_missed_runs_total", **ident) == 1
    assert series(s, "heartbeat_monitor_next_due_timestamp_seconds", **ident) == ts(
        "2026-11-25T07:06:42.5Z"
    )

    # A fail ping with exit code 3 while Down: still Down, failure time and code follow.
    table.put(
        "backup",
        {
            **table.rows["ops", "backup"].status,
            "lastPingTime": "2026-11-25T06:30:00Z",
            "lastFailureTime": "2026-11-25T06:30:00Z",
            "lastExitCode": 3,
            "consecutiveFailures": 2,
            "pingCount": 3,
            "pingCounts": {"start": 1, "exit": 2},
        },
    )
    s = scrape(metrics)
    assert state_of(s) == "Down"
    assert series(s, "heartbeat_monitor_last_exit_code", **ident) == 3
    assert series(s, "heartbeat_monitor_last_failure_timestamp_seconds", **ident) == ts(
        "2026-11-25T06:30:00Z"
    )
    assert series(s, "heartbeat_pings_total", **ident, kind="exit") == 2

    # A success: Healthy again, up 1, counters kept.
    table.put(
        "backup",
        {
            **table.rows["ops", "backup"].status,
            "state": "Healthy",
            "lastPingTime": "2026-11-25T06:40:00Z",
            "lastSuccessTime": "2026-11-25T06:40:00Z",
            "consecutiveFailures": 0,
            "pingCount": 4,
            "pingCounts": {"start": 1, "exit": 2, "success": 1},
        },
    )
    s = scrape(metrics)
    assert state_of(s) == "Healthy"
    assert series(s, "heartbeat_monitor_up", **ident) == 1
    assert series(s, "heartbeat_missed_runs_total", **ident) == 1
    assert series(s, "heartbeat_monitor_consecutive_failures", **ident) == 0
    assert series(s, "heartbeat_pings_total", **ident, kind="success") == 1


@pytest.mark.parametrize("state", MONITOR_STATES)
def test_state_is_one_hot_and_up_is_zero_only_when_down(
    table: Table, metrics: Metrics, state: str
) -> None:
    table.put("m", {"state": state})
    s = scrape(metrics)
    for candidate in MONITOR_STATES:
        expected = 1 if candidate == state else 0
        assert (
            series(s, "heartbeat_monitor_state", namespace="ops", name="m", state=candidate)
            == expected
        )
    assert series(s, "heartbeat_monitor_up", namespace="ops", name="m") == (
        0 if state == "Down" else 1
    )


def test_down_with_an_unevaluable_spec_does_not_alert(table: Table, metrics: Metrics) -> None:
    """DESIGN 9.7: while Ready=False the state keeps its last value and nothing alerts."""
    conditions = [{"type": "Ready", "status": "False", "reason": "InvalidSchedule"}]
    table.put("m", {"state": "Down", "conditions": conditions})
    s = scrape(metrics)
    assert series(s, "heartbeat_monitor_state", namespace="ops", name="m", state="Down") == 1
    assert series(s, "heartbeat_monitor_up", namespace="ops", name="m") == 1
    # ...but it is not silent: DESIGN 10.4's HeartbeatMonitorInvalid reads this series.
    assert series(s, "heartbeat_monitor_ready", namespace="ops", name="m") == 0

    table.put("m", {"state": "Down", "conditions": [{"type": "Ready", "status": "True"}]})
    assert series(scrape(metrics), "heartbeat_monitor_up", namespace="ops", name="m") == 0


@pytest.mark.parametrize(
    ("ready", "expected"),
    [("True", 1), ("False", 0), ("Unknown", 0), (None, None)],
)
def test_ready_is_one_only_while_the_ready_condition_is_true(
    table: Table, metrics: Metrics, ready: str | None, expected: int | None
) -> None:
    """DESIGN 10.4: heartbeat_monitor_ready is 0 while Ready=False (an invalid schedule,
    time zone or duration, a token conflict), and absent before Ready is set at all."""
    conditions = [{"type": "Healthy", "status": "Unknown", "reason": "AwaitingFirstPing"}]
    if ready is not None:
        conditions.insert(0, {"type": "Ready", "status": ready, "reason": "X"})
    table.put("m", {"state": "New", "conditions": conditions})
    s = scrape(metrics)
    assert series(s, "heartbeat_monitor_ready", namespace="ops", name="m") == expected


def test_a_spec_fixed_turns_ready_back_to_one(table: Table, metrics: Metrics) -> None:
    bad = [{"type": "Ready", "status": "False", "reason": "InvalidTimeZone"}]
    table.put("m", {"state": "Healthy", "conditions": bad})
    assert series(scrape(metrics), "heartbeat_monitor_ready", namespace="ops", name="m") == 0
    good = [{"type": "Ready", "status": "True", "reason": "TokenReady"}]
    table.put("m", {"state": "Healthy", "conditions": good})
    assert series(scrape(metrics), "heartbeat_monitor_ready", namespace="ops", name="m") == 1


def test_monitor_without_a_state_yet_has_no_state_series(table: Table, metrics: Metrics) -> None:
    table.put("fresh", {})
    s = scrape(metrics)
    assert "heartbeat_monitor_state" not in names(s)
    assert "heartbeat_monitor_up" not in names(s)
    assert series(s, "heartbeat_monitor_info", namespace="ops", name="fresh", mode="period",
                  label_team="", label_app_kubernetes_io_part_of="") == 1  # fmt: skip


def test_info_carries_mode_and_only_allow_listed_labels(table: Table, metrics: Metrics) -> None:
    table.put(
        "nightly",
        {"state": "Healthy"},
        labels={"team": "storage", "app.kubernetes.io/part-of": "backups", "secret-ish": "x"},
        spec={"schedule": "0 2 * * *", "timeZone": "Europe/Berlin"},
    )
    table.put("hourly", {"state": "New"}, namespace="web", labels={"team": "web"})
    s = scrape(metrics)
    info = {
        labels: value for (name, labels), value in s.items() if name == "heartbeat_monitor_info"
    }
    assert info == {
        frozenset(
            {
                "namespace": "ops",
                "name": "nightly",
                "mode": "cron",
                "label_team": "storage",
                "label_app_kubernetes_io_part_of": "backups",
            }.items()
        ): 1,
        frozenset(
            {
                "namespace": "web",
                "name": "hourly",
                "mode": "period",
                "label_team": "web",
                "label_app_kubernetes_io_part_of": "",
            }.items()
        ): 1,
    }


def test_label_keys_are_sanitized_and_collisions_keep_the_first() -> None:
    assert info_label_name("app.kubernetes.io/team") == "label_app_kubernetes_io_team"
    assert info_label_name("Owner-Email") == "label_Owner_Email"
    table = Table()
    table.put("m", {"state": "New"}, labels={"a.b": "first", "a/b": "second"})
    s = scrape(Metrics(table, lambda: True, label_keys=["a.b", "a/b"]))
    assert (
        series(
            s, "heartbeat_monitor_info", namespace="ops", name="m", mode="period", label_a_b="first"
        )
        == 1
    )


def test_minimal_mode_keeps_only_state_up_ready_and_next_due(table: Table) -> None:
    table.put(
        "m",
        {
            "state": "Healthy",
            "conditions": [{"type": "Ready", "status": "False", "reason": "InvalidSchedule"}],
            "nextDueTime": "2026-11-25T05:00:00Z",
            "lastPingTime": "2026-11-25T04:00:00Z",
            "lastSuccessTime": "2026-11-25T04:00:00Z",
            "lastDurationSeconds": 3.0,
            "lastExitCode": 0,
            "consecutiveFailures": 0,
            "pingCounts": {"success": 4},
            "missedRuns": 0,
        },
        labels={"team": "a"},
    )
    s = scrape(Metrics(table, lambda: True, label_keys=["team"], monitor_metrics="minimal"))
    assert names(s) & PER_MONITOR == {
        "heartbeat_monitor_state",
        "heartbeat_monitor_up",
        "heartbeat_monitor_ready",
        "heartbeat_monitor_next_due_timestamp_seconds",
    }
    # an invalid monitor still alerts in minimal mode (DESIGN 10.4)
    assert series(s, "heartbeat_monitor_ready", namespace="ops", name="m") == 0
    with pytest.raises(ValueError):
        MonitorCollector(table, lambda: True, mode="compact")  # type: ignore[arg-type]


def test_follower_exports_no_per_monitor_series(table: Table, metrics: Metrics) -> None:
    table.put("m", {"state": "Down", "pingCounts": {"fail": 1}})
    s = scrape(metrics)
    assert series(s, "heartbeat_leader") == 1
    assert "heartbeat_monitor_up" in names(s)

    table.leader = False
    s = scrape(metrics)
    assert series(s, "heartbeat_leader") == 0
    assert names(s) & PER_MONITOR == set()


def test_no_token_or_free_text_reaches_the_output(table: Table, metrics: Metrics) -> None:
    secret = "Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4cXV1eHF1dXg"
    table.put(
        "m",
        {
            "state": "Down",
            "tokenHash": "sha256:0123abcd",
            "recentPings": [
                {"time": "2026-11-25T04:00:00Z", "kind": "fail", "body": "disk full " + secret}
            ],
            "lastOutput": {"time": "2026-11-25T04:00:00Z", "kind": "fail", "body": "disk full"},
            "conditions": [
                {"type": "Healthy", "status": "False", "reason": "Failed", "message": "no ping"}
            ],
            # a corrupt pingCounts key must not become a label value
            "pingCounts": {"fail": 1, 'x"} 1\nevil': 2, "with space": 3},
        },
        spec={"period": "1h", "tokenSecretName": secret},
    )
    body, _ = metrics.render()
    text = body.decode()
    for needle in (secret, "sha256", "disk full", "no ping", "evil", "with space"):
        assert needle not in text
    assert series(parse(body), "heartbeat_pings_total", namespace="ops", name="m", kind="fail") == 1


def test_tuples_and_bad_fields_are_tolerated() -> None:
    rows = [
        ("ops", "t", None, None, {"state": "Grace", "lastPingTime": "not a time",
                                  "lastDurationSeconds": "12", "consecutiveFailures": True}),
    ]  # fmt: skip
    s = scrape(Metrics(lambda: rows, lambda: True))
    assert series(s, "heartbeat_monitor_state", namespace="ops", name="t", state="Grace") == 1
    assert names(s) & PER_MONITOR == {
        "heartbeat_monitor_state",
        "heartbeat_monitor_up",
        "heartbeat_monitor_info",
    }


def test_receiver_counters_by_route_class_and_code(metrics: Metrics) -> None:
    metrics.observe("ping", 200, 0.012)
    metrics.observe("ping", 200, 0.3)
    metrics.observe("hb", 404, 0.001)
    metrics.observe("/ping/abc", 200, 0.001)  # never a path: counted as other
    metrics.observe("probe", "weird code", 0.0)
    s = scrape(metrics)
    assert series(s, "heartbeat_http_requests_total", route="ping", code="200") == 2
    assert series(s, "heartbeat_http_requests_total", route="hb", code="404") == 1
    assert series(s, "heartbeat_http_requests_total", route="other", code="200") == 1
    assert series(s, "heartbeat_http_requests_total", route="probe", code="other") == 1
    assert series(s, "heartbeat_http_request_duration_seconds_count", route="ping", code="200") == 2
    assert (
        series(
            s,
            "heartbeat_http_request_duration_seconds_bucket",
            route="ping",
            code="200",
            le="0.025",
        )
        == 1
    )
    assert series(
        s, "heartbeat_http_request_duration_seconds_sum", route="ping", code="200"
    ) == pytest.approx(0.312)
    assert not any("abc" in str(key) for key in s)


def test_api_write_counts_and_errors(metrics: Metrics) -> None:
    metrics.api_write("update", "heartbeatmonitors/status", 200)
    metrics.api_write("update", "heartbeatmonitors/status", 409)
    metrics.api_write("create", "events", 201)
    metrics.api_write("create", "events", "timeout")
    s = scrape(metrics)
    writes = "heartbeat_kube_api_writes_total"
    errors = "heartbeat_kube_api_write_errors_total"
    assert series(s, writes, verb="update", resource="heartbeatmonitors/status", code="200") == 1
    assert series(s, writes, verb="update", resource="heartbeatmonitors/status", code="409") == 1
    assert series(s, errors, verb="update", resource="heartbeatmonitors/status", code="409") == 1
    assert series(s, errors, verb="update", resource="heartbeatmonitors/status", code="200") is None
    assert series(s, errors, verb="create", resource="events", code="timeout") == 1
    assert series(s, errors, verb="create", resource="events", code="201") is None


def test_collector_in_a_standard_registry_matches_the_fast_text(table: Table) -> None:
    table.put(
        "m",
        {"state": "Grace", "lastPingTime": "2026-11-25T04:00:00.250Z", "pingCounts": {"log": 2},
         "missedRuns": 1, "lastDurationSeconds": 1.5},
        labels={"team": "a"},
    )  # fmt: skip
    collector = MonitorCollector(table, lambda: True, label_keys=["team"])
    registry = CollectorRegistry()
    registry.register(collector)
    assert parse(generate_latest(registry)) == parse(collector.text())


async def test_aiohttp_handler_serves_the_text(table: Table, metrics: Metrics) -> None:
    from aiohttp import web

    table.put("m", {"state": "Healthy"})
    app = web.Application()
    app.router.add_get("/metrics", make_metrics_handler(metrics))
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/metrics")
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        s = parse(await response.text())
    assert series(s, "heartbeat_monitor_up", namespace="ops", name="m") == 1


async def test_a_large_table_is_streamed_whole_and_head_gets_no_body(
    table: Table, metrics: Metrics
) -> None:
    """/metrics is streamed in pieces (never built whole); what arrives is exactly what
    render() builds, every family once with all its monitors."""
    from aiohttp import web

    from heartbeat_operator.metrics import STREAM_ROWS

    for i in range(2 * STREAM_ROWS + 7):
        table.put(f"m{i}", {"state": "Down", "missedRuns": i})
    app = web.Application()
    app.router.add_route("*", "/metrics", make_metrics_handler(metrics))
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/metrics")
        body = await response.read()
        assert response.headers.get("Transfer-Encoding") == "chunked"
        head = await client.head("/metrics")
        assert head.status == 200 and await head.read() == b""
        assert head.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    s = parse(body)
    ups = [v for (name, _), v in s.items() if name == "heartbeat_monitor_up"]
    assert len(ups) == 2 * STREAM_ROWS + 7 and not any(ups)
    assert series(s, "heartbeat_missed_runs_total", namespace="ops", name="m2006") == 2006
    assert body.count(b"# TYPE heartbeat_monitor_up gauge") == 1
    own = b"heartbeat_http_requests"  # this replica's counters come after the monitors'
    assert body.index(b"heartbeat_monitor_info{") < body.index(own)
    assert body.split(b"\nprocess_")[0] == metrics.render()[0].split(b"\nprocess_")[0]


def test_reads_the_kube_monitor_table_and_skips_monitors_being_deleted() -> None:
    """Seam 3 with the kube side's own rows (engine.monitors.MonitorEntry)."""
    from heartbeat_operator.engine.monitors import MonitorTable

    table = MonitorTable()
    for name, deleting in (("kept", False), ("leaving", True)):
        metadata: dict[str, Any] = {
            "namespace": "ops",
            "name": name,
            "uid": f"uid-{name}",
            "resourceVersion": "1",
            "labels": {"team": "storage"},
        }
        if deleting:
            metadata["deletionTimestamp"] = "2026-11-25T04:00:00Z"
        table.upsert(
            {"metadata": metadata, "spec": {"schedule": "@daily"}, "status": {"state": "Down"}}
        )
    s = scrape(Metrics(table.snapshots, lambda: True, label_keys=["team"]))
    assert series(s, "heartbeat_monitor_up", namespace="ops", name="kept") == 0
    assert series(s, "heartbeat_monitor_info", namespace="ops", name="kept", mode="cron",
                  label_team="storage") == 1  # fmt: skip
    assert not any(("name", "leaving") in labels for _, labels in s)


def test_unchanged_rows_are_reused_and_changes_and_removals_show() -> None:
    """The scrape cache: the same row object renders once; a replaced row re-renders; a
    row gone from the table leaves no series behind."""
    rows = [
        MonitorSnapshot("ops", "a", {}, {"period": "1h"}, {"state": "Healthy", "missedRuns": 1}),
        MonitorSnapshot("ops", "b", {}, {"period": "1h"}, {"state": "Healthy"}),
    ]
    metrics = Metrics(lambda: list(rows), lambda: True)
    first, _ = metrics.render()
    assert metrics.render()[0] == first

    rows[0] = rows[0]._replace(status={"state": "Down", "missedRuns": 2})
    s = scrape(metrics)
    assert series(s, "heartbeat_monitor_up", namespace="ops", name="a") == 0
    assert series(s, "heartbeat_missed_runs_total", namespace="ops", name="a") == 2

    del rows[1]
    s = scrape(metrics)
    assert series(s, "heartbeat_monitor_up", namespace="ops", name="b") is None
    assert series(s, "heartbeat_monitor_up", namespace="ops", name="a") == 0


class CountingTable(Table):
    """A table that counts how often the collector reads a row's status (renders it)."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def put(self, name: str, status: dict[str, Any], **kwargs: Any) -> None:
        table = self

        class Counted(dict[str, Any]):
            def get(self, key: str, default: Any = None) -> Any:
                if key == "state":  # read once per render
                    table.reads += 1
                return super().get(key, default)

        super().put(name, Counted(status), **kwargs)


async def test_a_new_leader_renders_every_monitor_before_its_first_scrape() -> None:
    """warm(): the first scrape after leading renders nothing (issue 6: every scrape of
    10,000 monitors is a warm one) and shows the same series as a cold scrape."""
    table = CountingTable()
    for i in range(600):  # more than one slice
        table.put(f"m{i}", {"state": "Healthy", "missedRuns": i})
    metrics = Metrics(table, lambda: table.leader)
    await metrics.monitors.warm()
    assert table.reads == 600
    warm = scrape(metrics)
    assert table.reads == 600  # the scrape rendered no monitor again
    cold = scrape(Metrics(table, lambda: True))
    assert {k: v for k, v in warm.items() if k[0] in PER_MONITOR} == {
        k: v for k, v in cold.items() if k[0] in PER_MONITOR
    }
    assert series(warm, "heartbeat_missed_runs_total", namespace="ops", name="m599") == 599

    before = table.reads
    table.put("m7", {"state": "Down"})  # changed after the warm pass: rendered anew
    s = scrape(metrics)
    assert table.reads == before + 1
    assert series(s, "heartbeat_monitor_up", namespace="ops", name="m7") == 0


async def test_warming_yields_to_the_event_loop_and_stops_when_leadership_is_lost() -> None:
    """A warm pass holds the loop (the pings on it) for one slice at a time, and a replica
    that stops leading stops rendering (followers export no per-monitor series)."""
    import asyncio

    from heartbeat_operator.metrics import WARM_SLICE

    table = CountingTable()
    for i in range(3 * WARM_SLICE):
        table.put(f"m{i}", {"state": "Healthy"})
    metrics = Metrics(table, lambda: table.leader)
    seen: list[int] = []

    async def meanwhile() -> None:
        seen.append(table.reads)  # a ping handled while the warm pass runs
        table.leader = False

    warming = asyncio.create_task(metrics.monitors.warm())
    other = asyncio.create_task(meanwhile())
    await asyncio.gather(warming, other)
    assert seen and 0 < seen[0] < 3 * WARM_SLICE
    assert table.reads == seen[0]  # nothing rendered after leadership went


async def test_a_scrape_during_the_warm_pass_renders_the_rest_and_ends_the_pass() -> None:
    import asyncio

    from heartbeat_operator.metrics import WARM_SLICE

    table = CountingTable()
    for i in range(3 * WARM_SLICE):
        table.put(f"m{i}", {"state": "Healthy", "missedRuns": i})
    metrics = Metrics(table, lambda: table.leader)
    scraped: list[Samples] = []

    async def prometheus() -> None:
        scraped.append(scrape(metrics))

    await asyncio.gather(metrics.monitors.warm(), prometheus())
    last = f"m{3 * WARM_SLICE - 1}"
    assert series(scraped[0], "heartbeat_missed_runs_total", namespace="ops", name=last) == (
        3 * WARM_SLICE - 1
    )
    assert table.reads <= 4 * WARM_SLICE  # the pass stopped after the scrape: one slice
    reads = table.reads
    scrape(metrics)
    assert table.reads == reads  # and the scrape's lines are kept


async def test_metrics_are_gzipped_when_the_scraper_asks(table: Table, metrics: Metrics) -> None:
    """Issue 17 item 5: Prometheus sends `Accept-Encoding: gzip`; at 10,000 monitors the
    body is 16 MB plain and a twentieth of that gzipped."""
    import gzip

    from aiohttp import web

    for i in range(500):
        table.put(f"m{i}", {"state": "Healthy", "missedRuns": i})
    app = web.Application()
    app.router.add_get("/metrics", make_metrics_handler(metrics))
    async with TestClient(TestServer(app), auto_decompress=False) as client:
        zipped = await client.get("/metrics", headers={"Accept-Encoding": "gzip"})
        assert zipped.headers["Content-Encoding"] == "gzip"
        body = gzip.decompress(await zipped.read())
        plain = await client.get("/metrics", headers={"Accept-Encoding": "identity"})
        assert "Content-Encoding" not in plain.headers
        plain_body = await plain.read()
    # The same monitors' series either way (process_* values move between scrapes).
    assert body.split(b"\nprocess_")[0] == plain_body.split(b"\nprocess_")[0]
    assert series(parse(body), "heartbeat_missed_runs_total", namespace="ops", name="m499") == 499
    assert len(body) > 10 * len(gzip.compress(body))


def test_no_created_series(metrics: Metrics) -> None:
    """Issue 17 item 5: counters and histograms export no `*_created` timestamps."""
    metrics.observe("ping", 200, 0.01)
    metrics.api_write("update", "heartbeatmonitors/status", 500)
    body, _ = metrics.render()
    assert b"heartbeat_http_requests_total{" in body
    assert b"_created" not in body


def test_the_journal_series_say_its_backlog_secrets_flushes_and_status_lag() -> None:
    from heartbeat_operator.metrics.replica import Metrics

    metrics = Metrics(lambda: [], lambda: False)
    backlog = [3]
    metrics.track_journal(lambda: backlog[0], lambda: 2)
    metrics.journal_flushed(0.02)
    metrics.status_lag(42.0)
    backlog[0] = 7
    text = metrics.render()[0].decode()
    assert "heartbeat_journal_backlog_pings 7.0" in text
    assert "heartbeat_journal_secrets 2.0" in text
    assert 'heartbeat_journal_flush_duration_seconds_bucket{le="0.025"} 1.0' in text
    assert 'heartbeat_journal_status_lag_seconds_bucket{le="30.0"} 0.0' in text
    assert 'heartbeat_journal_status_lag_seconds_bucket{le="60.0"} 1.0' in text
