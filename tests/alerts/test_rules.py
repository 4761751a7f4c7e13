"""The shipped alert rules under promtool (Debian's ``prometheus`` package).

``promtool check rules`` must be clean and every ``*.test.yaml`` here must pass
``promtool test rules``; every alert in deploy/prometheus/heartbeat-rules.yaml must have
a unit test that expects it to fire (with its labels) and one that expects it quiet.
hack/install-test-deps.sh installs promtool.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RULES = ROOT / "deploy" / "prometheus" / "heartbeat-rules.yaml"
TESTS = sorted(HERE.glob("*.test.yaml"))


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: run hack/install-test-deps.sh (Debian package prometheus)")
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, cwd=HERE, timeout=120)


def test_rules_pass_promtool_check(promtool: str) -> None:
    result = run(promtool, "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize("test_file", TESTS, ids=[p.name for p in TESTS])
def test_promtool_unit_tests_pass(promtool: str, test_file: Path) -> None:
    result = run(promtool, "test", "rules", test_file.name)
    assert result.returncode == 0, result.stdout + result.stderr


def alerts_in(document: dict[str, Any]) -> set[str]:
    return {
        rule["alert"] for group in document["groups"] for rule in group["rules"] if "alert" in rule
    }


def test_every_alert_is_tested_firing_and_quiet() -> None:
    shipped = alerts_in(yaml.safe_load(RULES.read_text()))
    assert {
        "HeartbeatMonitorDown",
        "HeartbeatMonitorLate",
        "HeartbeatMonitorInvalid",
        "HeartbeatOperatorAbsent",
        "HeartbeatOperatorAPIWriteErrors",
        "HeartbeatOperatorWatchesFailing",
    } <= shipped
    firing: set[str] = set()
    quiet: set[str] = set()
    for test_file in TESTS:
        document = yaml.safe_load(test_file.read_text())
        rule_files = {(test_file.parent / f).resolve() for f in document["rule_files"]}
        assert rule_files == {RULES}, f"{test_file.name} must test the shipped rule file"
        for test in document["tests"]:
            for case in test.get("alert_rule_test", []):
                if case["exp_alerts"]:
                    for alert in case["exp_alerts"]:
                        assert alert["exp_labels"]["severity"] in ("critical", "warning")
                    firing.add(case["alertname"])
                else:
                    quiet.add(case["alertname"])
    assert shipped <= firing, f"never tested firing: {shipped - firing}"
    assert shipped <= quiet, f"never tested quiet: {shipped - quiet}"


def test_every_alert_names_the_monitor_and_what_was_expected() -> None:
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            annotations = rule["annotations"]
            assert {"summary", "description"} <= annotations.keys(), rule["alert"]
            assert "expected" in annotations["description"], rule["alert"]
            if rule["alert"].startswith("HeartbeatMonitor"):
                for text in (annotations["summary"], annotations["description"]):
                    assert "$labels.namespace" in text and "$labels.name" in text, rule["alert"]


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces
    to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_rule_links_a_runbook_that_exists() -> None:
    """Issue 17 item 5: each alert's runbook_url is a section of docs/operating.md, under
    the project's home (the chart's `home`)."""
    operating = ROOT / "docs" / "operating.md"
    anchors = {
        github_anchor(m.group(1)) for m in re.finditer(r"^#+ (.+)$", operating.read_text(), re.M)
    }
    home = yaml.safe_load(
        (ROOT / "deploy" / "helm" / "heartbeat-operator" / "Chart.yaml").read_text()
    )["home"]
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    assert rules
    for rule in rules:
        url = rule["annotations"]["runbook_url"]
        page, _, anchor = url.partition("#")
        assert page == f"{home}/blob/main/docs/operating.md", rule["alert"]
        assert anchor in anchors, f"{rule['alert']}: docs/operating.md has no #{anchor}"
