"""The ``run`` wrapper's pure parts (issue 16 item 1); the retries against a receiver
that refuses connections are in tests/integration/test_kubectl_plugin.py."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import pytest

from heartbeat_operator.plugin import pinging


def test_ping_urls_follow_the_receivers_routes() -> None:
    base = "https://hb.example.com/ping/TOKEN"
    assert pinging.ping_url(base) == base
    assert pinging.ping_url(base + "/", "start", rid="r 1") == base + "/start?rid=r+1"
    assert pinging.ping_url(base, "fail") == base + "/fail"
    assert pinging.ping_url(base, "log") == base + "/log"
    assert pinging.ping_url(base, exit_code=7, rid="abc") == base + "/7?rid=abc"


def test_the_tail_keeps_the_last_bytes_and_never_starts_inside_a_character() -> None:
    tail = pinging._Tail(10)
    tail.add(b"0123456789abc")
    assert tail.value() == b"3456789abc"
    tail = pinging._Tail(4)
    tail.add("xé€".encode())  # x, 2 bytes, 3 bytes: the last 4 bytes cut é in two
    assert tail.value() == "€".encode()
    many = pinging._Tail(pinging.OUTPUT_TAIL_BYTES)
    for i in range(5000):
        many.add(f"line {i:04d}\n".encode())
    assert many.value().endswith(b"line 4999\n") and len(many.value()) == 10_000


def test_failures_are_told_without_the_url() -> None:
    refused = pinging.Outcome(False, 0, "connection refused", 5)
    assert pinging.describe_outcome("job: start", refused) == (
        "job: start ping failed after 5 attempts: connection refused"
    )
    gone = pinging.Outcome(False, 404, "not found", 1)
    assert "no such token (404" in pinging.describe_outcome("job: success", gone)


TOKEN = "Tok3n_" + "x" * 37


def test_a_url_that_is_not_one_fails_at_once_without_quoting_it() -> None:
    # A CronJob given the Secret's `token` key as HEARTBEAT_URL, or a URL without its
    # scheme: one final outcome, no retries, and the token is not in the words.
    slept: list[float] = []
    for url in (TOKEN, f"{TOKEN}/start?rid=1", f"127.0.0.1:8080/ping/{TOKEN}", "http:///x"):
        outcome = pinging.send(url, attempts=5, sleep=slept.append)
        assert (outcome.ok, outcome.attempts) == (False, 1)
        told = pinging.describe_outcome("job: start", outcome)
        assert TOKEN[:12] not in told and "not an http:// or https:// URL" in told
    assert slept == []
    assert pinging.url_problem(f"https://hb.example.com/ping/{TOKEN}") is None
    # A URL that parses but cannot be sent (a space, a control character): also final.
    for url in (f"http://127.0.0.1:9/ping/{TOKEN} x", f"http://127.0.0.1:9/ping/{TOKEN}\x01"):
        outcome = pinging.send(url, attempts=5, sleep=slept.append)
        assert (outcome.ok, outcome.attempts, slept) == (False, 1, [])
        assert TOKEN[:12] not in pinging.describe_outcome("job: start", outcome)


def test_run_runs_its_command_when_the_url_is_not_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    warnings: list[str] = []
    code = pinging.run_command(
        TOKEN,
        [sys.executable, "-c", "print('ran'); raise SystemExit(4)"],
        name="job",
        warn=warnings.append,
    )
    assert code == 4
    assert len(warnings) == 2 and not any(TOKEN[:12] in w for w in warnings)


def test_run_exits_as_a_shell_would_when_the_command_cannot_run(tmp_path: Path) -> None:
    script = tmp_path / "backup.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)  # not executable
    run = functools.partial(pinging.run_command, None, name="job", warn=lambda _: None)
    assert run([str(tmp_path / "missing.sh")]) == 127
    assert run([str(script)]) == 126
