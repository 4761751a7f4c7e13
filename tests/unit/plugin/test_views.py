"""What ``kubectl heartbeat list`` and ``describe`` print (issue 16 item 1), with ``now``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from heartbeat_operator.plugin import views

NOW = datetime(2026, 12, 6, 20, 0, tzinfo=UTC)


def monitor(name: str = "nightly", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ops"},
        "spec": {"schedule": "30 9 * * 1-5", "timeZone": "America/New_York", "grace": "5m"},
        "status": {
            "state": "Healthy",
            "conditions": [{"type": "Healthy", "status": "True", "reason": "PingReceived"}],
            "lastPingTime": "2026-12-06T19:57:00Z",
            "nextDueTime": "2026-12-07T14:30:00Z",
            "alertTime": "2026-12-07T14:35:00Z",
            **status,
        },
    }


def test_ago_reads_like_kubectls_age() -> None:
    assert views.ago("2026-12-06T19:57:00Z", NOW) == "3m ago"
    assert views.ago("2026-12-06T19:59:18Z", NOW) == "42s ago"
    assert views.ago("2026-12-06T17:55:00Z", NOW) == "2h5m ago"
    assert views.ago("2026-12-02T20:00:00Z", NOW) == "4d ago"
    assert views.ago("2026-12-06T20:30:00Z", NOW) == "in 30m"
    assert views.ago(None, NOW) == "-"


def test_local_time_has_the_date_and_zone_and_utc_on_request() -> None:
    due = datetime(2026, 12, 7, 14, 30, tzinfo=UTC)
    assert views.local_time(due, "America/New_York") == "Mon 2026-12-07 09:30 EST"
    assert views.local_time(due, "America/New_York", utc_too=True) == (
        "Mon 2026-12-07 09:30 EST (14:30 UTC)"
    )
    assert views.local_time(due, None, utc_too=True) == "Mon 2026-12-07 14:30 UTC"
    summer = datetime(2026, 7, 6, 13, 30, 5, tzinfo=UTC)
    assert views.local_time(summer, "America/New_York") == "Mon 2026-07-06 09:30:05 EDT"


def test_list_shows_state_reason_last_ping_local_next_due_and_schedule() -> None:
    down = monitor(
        "backup",
        state="Down",
        conditions=[{"type": "Healthy", "status": "False", "reason": "Missed"}],
    )
    down["spec"] = {"period": "1h"}
    text = views.list_table([monitor(), down], NOW, all_namespaces=False, colour=False)
    assert text.splitlines() == [
        "NAME      STATE     REASON         LAST PING   NEXT DUE                   SCHEDULE",
        "nightly   Healthy   PingReceived   3m ago      Mon 2026-12-07 09:30 EST   "
        "30 9 * * 1-5 (America/New_York)",
        "backup    Down      Missed         3m ago      Mon 2026-12-07 14:30 UTC   every 1h",
    ]
    coloured = views.list_table([down], NOW, all_namespaces=True, colour=True)
    assert "\x1b[31;1mDown\x1b[0m" in coloured
    assert coloured.splitlines()[0].startswith("NAMESPACE   NAME")


def test_a_timed_pause_shows_until_when() -> None:
    paused = monitor(state="Paused", pausedSince="2026-12-06T19:00:00Z")
    paused["status"].pop("nextDueTime")
    paused["status"]["pausedUntil"] = "2026-12-06T21:00:00Z"
    assert views.next_due_text(paused) == "paused until Sun 2026-12-06 16:00 EST"
    text = views.describe_text(paused, NOW, colour=False)
    assert "Paused until:  Sun 2026-12-06 16:00 EST (21:00 UTC) (in 1h)" in text


def test_describe_tables_pings_and_transitions_and_shows_the_last_output() -> None:
    failed = monitor(
        state="Down",
        conditions=[
            {"type": "Healthy", "status": "False", "reason": "Failed", "message": "run failed"}
        ],
        pingCount=2,
        recentPings=[
            {
                "time": "2026-12-06T19:57:00Z",
                "kind": "fail",
                "exitCode": 3,
                "durationSeconds": 412.5,
                "runId": "r1",
                "body": "disk full\nmore",
            },
            {"time": "2026-12-06T19:50:07Z", "kind": "start", "runId": "r1"},
        ],
        recentTransitions=[
            {"time": "2026-12-06T19:57:00Z", "state": "Down", "reason": "Failed", "message": "m"}
        ],
        lastOutput={"time": "2026-12-06T19:57:00Z", "kind": "fail", "body": "disk full\nmore\n"},
    )
    text = views.describe_text(failed, NOW, colour=False)
    assert "State:         Down (Failed)" in text
    assert "Message:       run failed" in text
    assert "Next due:      Mon 2026-12-07 09:30 EST (14:30 UTC) (in 18h30m)" not in text
    assert "Next due:      Mon 2026-12-07 09:30 EST (14:30 UTC) (in 18h)" in text
    assert "Then:          Tue 2026-12-08 09:30 EST, Wed 2026-12-09 09:30 EST" in text
    lines = text.splitlines()
    header = lines.index("Recent pings:") + 1
    assert lines[header].split() == ["TIME", "AGE", "KIND", "EXIT", "DURATION", "RUN", "ID", "BODY"]
    assert lines[header + 1].split()[-7:] == ["ago", "fail", "3", "6m52s", "r1", "disk", "full"]
    assert lines[-3:] == [
        "Last output (fail, Sun 2026-12-06 14:57 EST, 3m ago):",
        "  disk full",
        "  more",
    ]
