"""``heartbeat-operator simulate``: a user's dry run, and its error cases (issue 3)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from heartbeat_operator.__main__ import main

MONITOR = """\
apiVersion: heartbeat.dev/v1alpha1
kind: HeartbeatMonitor
metadata:
  name: nightly-backup
  namespace: ops
  creationTimestamp: "2026-03-27T12:00:00Z"
spec:
  schedule: "0 2 * * *"
  timeZone: Europe/Berlin
  grace: 30m
  failureThreshold: 2
"""

EVENTS = """\
# the backup ran on Saturday night, then nothing until Wednesday
2026-03-28T01:00:00Z start rid=sat
2026-03-28T01:20:00Z success rid=sat

2026-04-01T00:10:00Z exit 3
2026-04-01T00:15:00Z success
"""


def run(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    *extra: str,
    monitor: str = MONITOR,
    events: str = EVENTS,
) -> tuple[int, list[dict[str, Any]], str]:
    (tmp_path / "monitor.yaml").write_text(monitor)
    (tmp_path / "events.txt").write_text(events)
    code = main(
        [
            "simulate",
            str(tmp_path / "monitor.yaml"),
            "--events",
            str(tmp_path / "events.txt"),
            *extra,
        ]
    )
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    return code, lines, captured.err


def test_prints_each_state_change_from_creation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines, err = run(tmp_path, capsys)
    assert (code, err) == (0, "")
    assert lines == [
        {
            "time": "2026-03-27T12:00:00Z",
            "state": "New",
            "reason": "AwaitingFirstPing",
            "nextDueTime": "2026-03-28T01:00:00Z",
            "alertTime": "2026-03-28T01:30:00Z",
        },
        # The start at exactly the due time is on time; Sunday 02:00 does not exist.
        {
            "time": "2026-03-28T01:20:00Z",
            "state": "Healthy",
            "reason": "PingReceived",
            "nextDueTime": "2026-03-30T00:00:00Z",
            "alertTime": "2026-03-30T00:30:00Z",
        },
        {
            "time": "2026-03-30T00:00:00Z",
            "state": "Grace",
            "reason": "Late",
            "nextDueTime": "2026-03-30T00:00:00Z",
            "alertTime": "2026-03-30T00:30:00Z",
        },
        {
            "time": "2026-03-30T00:30:00Z",
            "state": "Grace",
            "reason": "Missed",
            "nextDueTime": "2026-03-31T00:00:00Z",
            "alertTime": "2026-03-31T00:30:00Z",
        },
        {
            "time": "2026-03-31T00:30:00Z",
            "state": "Down",
            "reason": "Missed",
            "nextDueTime": "2026-04-01T00:00:00Z",
            "alertTime": "2026-04-01T00:30:00Z",
        },
        {
            "time": "2026-04-01T00:10:00Z",
            "state": "Down",
            "reason": "Failed",
            "nextDueTime": "2026-04-02T00:00:00Z",
            "alertTime": "2026-04-02T00:30:00Z",
        },
        {
            "time": "2026-04-01T00:15:00Z",
            "state": "Healthy",
            "reason": "PingReceived",
            "nextDueTime": "2026-04-02T00:00:00Z",
            "alertTime": "2026-04-02T00:30:00Z",
        },
    ]


def test_until_goes_past_the_last_event(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, _ = run(tmp_path, capsys, "--until", "2026-04-02T00:31:00Z")
    assert code == 0
    assert [(x["time"], x["state"], x["reason"]) for x in lines[-2:]] == [
        ("2026-04-02T00:00:00Z", "Grace", "Late"),
        ("2026-04-02T00:30:00Z", "Grace", "Missed"),
    ]


def test_from_overrides_creation_and_one_line_per_instant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monitor = MONITOR.replace('  creationTimestamp: "2026-03-27T12:00:00Z"\n', "")
    events = "2026-05-01T10:00:00Z start\n2026-05-01T10:00:00Z success\n2026-05-01T10:00:00Z log\n"
    spec_period = monitor.replace(
        '  schedule: "0 2 * * *"\n  timeZone: Europe/Berlin\n', "  period: 1h\n"
    )
    code, lines, _ = run(
        tmp_path, capsys, "--from", "2026-05-01T09:30:00Z", monitor=spec_period, events=events
    )
    assert code == 0
    assert [(x["time"], x["state"]) for x in lines] == [
        ("2026-05-01T09:30:00Z", "New"),
        ("2026-05-01T10:00:00Z", "Healthy"),
    ]


def test_paused_spec_starts_paused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    monitor = MONITOR.replace("  failureThreshold: 2\n", "  paused: true\n")
    code, lines, _ = run(
        tmp_path,
        capsys,
        "--until",
        "2026-04-10T00:00:00Z",
        monitor=monitor,
        events="2026-04-05T00:00:00Z resume\n",
    )
    assert code == 0
    assert lines[0] == {"time": "2026-03-27T12:00:00Z", "state": "Paused", "reason": "Paused"}
    assert (lines[1]["time"], lines[1]["state"]) == ("2026-04-05T00:00:00Z", "New")


def test_a_timed_pause_resumes_by_itself(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    # issue 16: spec.pausedUntil pauses from creation and ends at that instant.
    monitor = MONITOR.replace("  failureThreshold: 2\n", '  pausedUntil: "2026-04-05T00:00:00Z"\n')
    code, lines, _ = run(
        tmp_path, capsys, "--until", "2026-04-10T00:00:00Z", monitor=monitor, events=""
    )
    assert code == 0
    assert lines[0] == {"time": "2026-03-27T12:00:00Z", "state": "Paused", "reason": "Paused"}
    assert (lines[1]["time"], lines[1]["state"]) == ("2026-04-05T00:00:00Z", "New")


@pytest.mark.parametrize(
    ("monitor", "events", "needle"),
    [
        (MONITOR, "2026-03-28T01:00:00Z start\nyesterday success\n", "events.txt:2"),
        (MONITOR, "\n# c\n2026-03-28T01:00:00Z sucess\n", "events.txt:3: unknown event 'sucess'"),
        (MONITOR, "2026-03-28T01:00:00Z exit 256\n", "events.txt:1: 'exit' needs a code"),
        (MONITOR, "2026-03-28T01:00:00Z exit\n", "events.txt:1: 'exit' needs a code"),
        (MONITOR, "2026-03-28T01:00:00Z success rid=a/b\n", "events.txt:1: rid"),
        (MONITOR, "2026-03-28T01:00:00Z success now\n", "events.txt:1: unexpected 'now'"),
        (MONITOR, "2026-03-28T01:00:00 success\n", "events.txt:1"),
        (MONITOR, "2026-03-28T01:00:00Z\n", "events.txt:1: missing event"),
        (MONITOR, "2026-03-20T01:00:00Z success\n", "events.txt:1: 2026-03-20T01:00:00Z is before"),
        (MONITOR.replace("Europe/Berlin", "Europe/Atlantis"), "", "spec.timeZone"),
        (MONITOR.replace('"0 2 * * *"', '"0 25 * * *"'), "", "spec.schedule"),
        (MONITOR.replace("grace: 30m", "grace: 30 minutes"), "", "spec.grace"),
        (MONITOR.replace("kind: HeartbeatMonitor", "kind: CronJob"), "", "kind"),
        (
            MONITOR.replace('  creationTimestamp: "2026-03-27T12:00:00Z"\n', ""),
            "",
            "metadata.creationTimestamp",
        ),
        ("spec: [", "", "monitor.yaml: not valid YAML"),
        (MONITOR + "---\n" + MONITOR, "", "2 HeartbeatMonitor documents; expected one"),
        ("kind: CronJob\n---\nkind: Service\n", "", "expected one HeartbeatMonitor manifest"),
    ],
)
def test_bad_input_exits_2_naming_the_line_or_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monitor: str, events: str, needle: str
) -> None:
    code, lines, err = run(tmp_path, capsys, monitor=monitor, events=events)
    assert code == 2
    assert lines == []
    assert needle in err


def test_bad_until_and_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, err = run(tmp_path, capsys, "--until", "soon")
    assert (code, lines) == (2, []) and "--until" in err
    code = main(["simulate", str(tmp_path / "nope.yaml"), "--events", str(tmp_path / "x")])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == "" and "nope.yaml" in captured.err


def test_installed_command(tmp_path: Path) -> None:
    (tmp_path / "monitor.yaml").write_text(MONITOR)
    (tmp_path / "events.txt").write_text(EVENTS)
    exe = Path(sys.executable).parent / "heartbeat-operator"
    ok = subprocess.run(
        [
            str(exe),
            "simulate",
            str(tmp_path / "monitor.yaml"),
            "--events",
            str(tmp_path / "events.txt"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert len(ok.stdout.splitlines()) == 7
    assert json.loads(ok.stdout.splitlines()[-1])["state"] == "Healthy"
    (tmp_path / "events.txt").write_text("2026-03-28T01:00:00Z explode\n")
    bad = subprocess.run(
        [
            str(exe),
            "simulate",
            str(tmp_path / "monitor.yaml"),
            "--events",
            str(tmp_path / "events.txt"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2 and bad.stdout == "" and "events.txt:1" in bad.stderr


def test_a_deadline_at_exactly_until_is_shown(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    monitor = MONITOR.replace('schedule: "0 2 * * *"\n  timeZone: Europe/Berlin\n', "period: 1h\n")
    # Created 12:00, due 13:00, alert 13:30: "up to 13:30" includes the miss at 13:30.
    code, lines, _ = run(
        tmp_path, capsys, "--until", "2026-03-27T13:30:00Z", monitor=monitor, events=""
    )
    assert code == 0
    assert [(x["time"], x["state"], x["reason"]) for x in lines][-1] == (
        "2026-03-27T13:30:00Z",
        "Grace",
        "NeverPinged",
    )


def test_a_monitor_beside_its_cronjob_in_one_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 17 item 6: examples/cron-monitor/cron-monitor.yaml holds a monitor and its
    CronJob; simulate takes the one HeartbeatMonitor and ignores the rest."""
    cronjob = "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: nightly-backup}\n"
    both = f"# the two together\n{cronjob}---\n{MONITOR}---\n"
    _, alone, _ = run(tmp_path, capsys)
    code, lines, err = run(tmp_path, capsys, monitor=both)
    assert (code, err) == (0, "")
    assert lines == alone and lines


def test_the_cron_monitor_example_simulates_as_written(tmp_path: Path) -> None:
    example = (
        Path(__file__).resolve().parents[2] / "examples" / "cron-monitor" / "cron-monitor.yaml"
    )
    (tmp_path / "events.txt").write_text("")
    done = subprocess.run(
        [sys.executable, "-m", "heartbeat_operator", "simulate", str(example),
         "--events", str(tmp_path / "events.txt"), "--from", "2026-03-28T01:00:00Z",
         "--until", "2026-03-28T01:20:00Z"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert '"state": "Down"' in done.stdout or '"state":"Down"' in done.stdout
