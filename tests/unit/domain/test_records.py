"""Record <-> status: DESIGN 9.4 fields, 9.18 formats, the 16 KiB budget (9.8)."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest

from heartbeat_operator.domain.inputs import Pause, Ping
from heartbeat_operator.domain.machine import apply
from heartbeat_operator.domain.records import Record
from heartbeat_operator.domain.statuses import Ready, render_status

from .helpers import T, fold, spec

T0 = T("2026-03-01T00:00:00Z")
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$")
TIME_KEYS = {"time", "startTime"}


def walk(value: Any, path: str = "status") -> list[tuple[str, Any]]:
    out = [(path, value)]
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(walk(v, f"{path}.{k}"))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(walk(v, f"{path}[{i}]"))
    return out


def busy_record() -> Record:
    s = spec(period="1h", grace="10m", maxRuntime="20m", failureThreshold=3)
    inputs = [
        Ping(T("2026-03-01T00:05:00.250Z"), "start", run_id="a", job=("uid-a", "start")),
        Ping(T("2026-03-01T00:06:00Z"), "start"),
        Ping(T("2026-03-01T00:07:00Z"), "success", run_id="a", exit_code=0, body="ok\nall fine"),
        Ping(T("2026-03-01T00:08:00Z"), "log", body="é" * 300),
        Ping(T("2026-03-01T00:40:00Z"), "fail", body="boom"),
        Pause(T("2026-03-01T05:00:00Z")),
    ]
    rec, _ = fold(s, T0, inputs)
    return rec


def test_round_trip_is_exact() -> None:
    rec = busy_record()
    status = rec.to_status()
    back = Record.from_status(json.loads(json.dumps(status)))
    assert back.to_status() == status
    assert back == rec


def test_formats_no_nulls_no_empty_strings_and_utc_times() -> None:
    status = busy_record().to_status()
    for path, value in walk(status):
        assert value is not None, path
        assert value != "", path
        key = path.rsplit(".", 1)[-1]
        if key.endswith("Time") or key in TIME_KEYS or key in ("activeSince", "pausedSince"):
            assert isinstance(value, str) and TIME.match(value), (path, value)
    assert status["activeSince"] == "2026-03-01T00:00:00Z"
    assert "openRuns" not in status  # pausing forgot the open runs
    assert status["recentPings"][-1]["time"] == "2026-03-01T00:05:00.250Z"
    assert status["pausedSince"] == "2026-03-01T05:00:00Z"
    assert status["pingCounts"] == {"fail": 1, "log": 1, "start": 2, "success": 1}
    assert "phase" not in status


def test_unset_fields_are_absent() -> None:
    status = Record.new(T0).to_status()
    for absent in (
        "lastPingTime",
        "lastExitCode",
        "lastDurationSeconds",
        "openRuns",
        "lastOutput",
        "pausedSince",
        "recentPings",
        "pingCounts",
    ):
        assert absent not in status
    assert status["pingCount"] == 0 and status["state"] == "New"


def test_recent_ping_bodies_cut_to_256_bytes_without_splitting_characters() -> None:
    rec = busy_record()
    log = next(p for p in rec.recent_pings if p.kind == "log")
    assert log.body is not None
    assert len(log.body.encode()) <= 256 and log.body == "é" * 128
    assert rec.last_output is None or rec.last_output.kind in ("fail", "log", "success")


def test_worst_case_status_apart_from_last_output_stays_under_16_kib() -> None:
    # Every list at its cap, every id at its longest, every body and message full of
    # 4-byte characters: the whole rendered status, minus lastOutput.
    s = spec(period="1h", grace="10m", maxRuntime="1h", failureThreshold=100000)
    rec = Record.new(T0)
    t = T0
    for i in range(30):
        t += timedelta(seconds=1, milliseconds=123)
        job = (f"{i:08d}-0000-0000-0000-000000000000", "start")
        rec, _ = apply(s, rec, Ping(t, "start", run_id=f"{'r' * 61}{i:03d}", job=job), t)
    emoji_lines = ("\U0001f525" * 100 + "\n") * 50
    for _ in range(15):
        t += timedelta(seconds=1, milliseconds=456)
        rec, _ = apply(s, rec, Ping(t, "fail", exit_code=255, run_id="r" * 64, body=emoji_lines), t)
    assert len(rec.open_runs) == 20 and len(rec.recent_transitions) == 10
    status = render_status(
        spec=s,
        record=rec,
        now=t,
        generation=2**40,
        ready=Ready("False", "TokenConflict", "\U0001f525" * 5000),
        token_hash="sha256:" + "f" * 64,
        token_secret_name="n" * 253,
    )
    status.pop("lastOutput")
    size = len(json.dumps(status, ensure_ascii=False).encode())
    assert size < 16 * 1024, size
    for transition in status["recentTransitions"]:
        assert "of failureThreshold 100000" in transition["message"]  # cut after the count


def test_from_status_of_a_never_written_monitor_uses_the_creation_time() -> None:
    rec = Record.from_status({}, active_since=T0)
    assert rec.active_since == rec.reference_time == T0 and rec.state == "New"
    with pytest.raises(ValueError):
        Record.from_status(None)


def test_apply_never_mutates_its_input() -> None:
    s = spec(period="1h", grace="10m", maxRuntime="5m")
    rec, _ = fold(s, T0, [Ping(T("2026-03-01T00:01:00Z"), "start")])
    before = rec.to_status()
    apply(s, rec, Ping(T("2026-03-01T00:30:00Z"), "success", body="x"), T0)
    assert rec.to_status() == before
