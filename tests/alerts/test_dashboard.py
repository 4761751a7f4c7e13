"""The Grafana dashboard (deploy/prometheus/heartbeat-dashboard.json) is valid and true.

Every panel's query must parse as PromQL (checked by promtool, as recording rules) and
name only series the operator really exports (rendered by heartbeat_operator.metrics for
a monitor with every status field set), and the dashboard shows what issue 6 asks for:
monitors by state, recent transitions, pings per second and run durations.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from heartbeat_operator.metrics import Metrics, MonitorSnapshot

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "prometheus" / "heartbeat-dashboard.json"

# Grafana's template variables, replaced by values a query could take.
VARIABLES = {"$namespace": ".*", "$monitor": ".*", "$__rate_interval": "1m", "$__range": "6h"}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return document


def queries(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def exported_series() -> set[str]:
    status = {
        "state": "Down",
        "lastPingTime": "2026-11-25T04:00:00Z",
        "lastSuccessTime": "2026-11-25T03:00:00Z",
        "lastFailureTime": "2026-11-25T04:00:00Z",
        "nextDueTime": "2026-11-25T05:00:00Z",
        "lastDurationSeconds": 12.5,
        "lastExitCode": 1,
        "consecutiveFailures": 1,
        "pingCounts": {"success": 1, "fail": 1},
        "missedRuns": 0,
    }
    row = MonitorSnapshot("ops", "m", {"team": "a"}, {"period": "1h"}, status)
    metrics = Metrics(lambda: [row], lambda: True, label_keys=["team"])
    metrics.observe("ping", 200, 0.01)
    metrics.api_write("update", "heartbeatmonitors/status", 409)
    body, _ = metrics.render()
    return {
        sample.name
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def test_panels_are_well_formed(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] and dashboard["title"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["description"], panel["title"]


def test_shows_states_transitions_pings_and_durations(dashboard: dict[str, Any]) -> None:
    by_title = {panel["title"].lower(): panel for panel in dashboard["panels"]}

    def exprs_of(words: str) -> str:
        found = [t for title, panel in by_title.items() if words in title for t in panel["targets"]]
        assert found, f"no panel titled with {words!r}"
        return " ".join(target["expr"] for target in found)

    assert "heartbeat_monitor_state" in exprs_of("by state")
    assert "heartbeat_monitor_state" in exprs_of("transitions")
    assert "rate(heartbeat_pings_total" in exprs_of("pings per second")
    assert "heartbeat_monitor_last_duration_seconds" in exprs_of("run durations")


def test_queries_name_only_exported_series(dashboard: dict[str, Any]) -> None:
    exported = exported_series()
    for expr in queries(dashboard):
        for name in re.findall(r"\bheartbeat_[a-z_]+", expr):
            assert name in exported, f"{name} (in {expr!r}) is not exported by the operator"


def test_queries_parse_as_promql(dashboard: dict[str, Any], tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found: run hack/install-test-deps.sh (Debian package prometheus)")
    rules = []
    for index, expr in enumerate(queries(dashboard)):
        for variable, value in VARIABLES.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, f"unknown dashboard variable in {expr!r}"
        rules.append({"record": f"dashboard:query_{index}", "expr": expr})
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_per_monitor_timeline_shows_state_and_runs_with_durations(
    dashboard: dict[str, Any],
) -> None:
    # Issue 16 item 4: pick one monitor, see its state over time and its runs.
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert "heartbeat_monitor_up" in variables["monitor"]["query"]["query"]
    timeline = [p for p in dashboard["panels"] if "$monitor" in p["title"]]
    kinds = {p["type"]: p for p in timeline}
    state = kinds["state-timeline"]["targets"][0]["expr"]
    assert "heartbeat_monitor_state" in state and 'name=~"$monitor"' in state
    runs = [t["expr"] for t in kinds["timeseries"]["targets"]]
    assert any("heartbeat_monitor_last_duration_seconds" in e for e in runs)
    assert any("heartbeat_pings_total" in e for e in runs)
    assert kinds["timeseries"]["fieldConfig"]["defaults"]["custom"]["drawStyle"] == "bars"
