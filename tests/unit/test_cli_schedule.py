"""``heartbeat-operator schedule``: next due times in UTC and local time (issue 3)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from heartbeat_operator.__main__ import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["schedule", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_fall_back_in_berlin(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys,
        "0 2 * * *",
        "--tz",
        "Europe/Berlin",
        "--next",
        "3",
        "--after",
        "2026-10-23T12:00:00Z",
    )
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "2026-10-24T00:00:00Z  2026-10-24 02:00:00 CEST (+02:00)",
        "2026-10-25T00:00:00Z  2026-10-25 02:00:00 CEST (+02:00)  repeated local time: "
        "alert counted from its second occurrence 2026-10-25T01:00:00Z",
        "2026-10-26T01:00:00Z  2026-10-26 02:00:00 CET (+01:00)",
    ]


def test_spring_forward_in_new_york_skips_the_missing_day(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(
        capsys,
        "30 2 * * *",
        "--tz",
        "America/New_York",
        "--next",
        "2",
        "--after",
        "2026-03-07T12:00:00Z",
    )
    assert code == 0
    assert out.splitlines() == [
        "2026-03-09T06:30:00Z  2026-03-09 02:30:00 EDT (-04:00)",
        "2026-03-10T06:30:00Z  2026-03-10 02:30:00 EDT (-04:00)",
    ]


def test_defaults_utc_and_five(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "@hourly", "--after", "2026-01-01T00:30:00Z")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 5
    assert lines[0] == "2026-01-01T01:00:00Z  2026-01-01 01:00:00 UTC (+00:00)"


def test_without_after_it_counts_from_now(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "* * * * *", "--next", "2")
    assert code == 0 and len(out.splitlines()) == 2


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["0 2 * *"], "schedule:"),
        (["0 2 * * * *"], "has 6 fields"),
        (["0 2 * * *", "--tz", "Europe/Atlantis"], "--tz: unknown time zone 'Europe/Atlantis'"),
        (["0 2 * * *", "--next", "0"], "--next"),
        (["0 2 * * *", "--after", "tomorrow"], "--after"),
        (["@often"], "unknown schedule macro"),
    ],
)
def test_bad_input_exits_2_with_nothing_on_stdout(
    capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    code, out, err = run(capsys, *args)
    assert (code, out) == (2, "")
    assert needle in err


def test_installed_command() -> None:
    exe = Path(sys.executable).parent / "heartbeat-operator"
    done = subprocess.run(
        [
            str(exe),
            "schedule",
            "0 2 * * *",
            "--tz",
            "Europe/Berlin",
            "--next",
            "5",
            "--after",
            "2026-03-26T12:00:00Z",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 5
    assert [line.split()[0] for line in lines[:3]] == [
        "2026-03-27T01:00:00Z",
        "2026-03-28T01:00:00Z",
        "2026-03-30T00:00:00Z",
    ]
