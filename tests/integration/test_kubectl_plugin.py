"""``kubectl heartbeat`` against the real control plane and a real operator (issue 16
item 1, "Tests"): each verb's output and exit status, its one-sentence errors, the ``run``
wrapper against the receiver (a failing command, 50 KB of output, a receiver that refuses
connections), and a timed pause resuming at its time (status and Event)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from heartbeat_operator.domain.timefmt import format_local
from tests.integration.operator_process import Monitors, at, condition, isolated
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

PLUGIN = Path(sys.executable).parent / "kubectl-heartbeat"
WRITE_WINDOW = 3.0  # s: DESIGN 9.16, the one timed assertion the tests make


@pytest.fixture
def monitors(api_client, namespace):
    return Monitors(api_client, namespace)


@pytest.fixture
def operator(operator_factory, namespace):
    return operator_factory.start(*isolated(namespace))


@pytest.fixture
def plugin(kubeconfig, namespace):
    """``plugin("list")``: run kubectl-heartbeat in the test namespace; never checks."""

    def run(
        *args: str, input: str | None = None, config: Path | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECONFIG": str(config or kubeconfig), "NO_COLOR": "1"}
        env.pop("HEARTBEAT_URL", None)
        return subprocess.run(
            # -n goes before run's "--"; elsewhere last.
            [str(PLUGIN), *args[:2], "-n", namespace, *args[2:]]
            if args[0] == "run"
            else [str(PLUGIN), *args, "-n", namespace],
            input=input,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )

    return run


def rows(output: str) -> dict[str, list[str]]:
    """``list`` output as {name: cells} (cells split on the table's 3-space gaps)."""
    lines = output.strip().splitlines()
    return {cells[0]: cells for cells in (re.split(r"\s{3,}", ln.strip()) for ln in lines[1:])}


def test_list_describe_url_ping_and_their_exit_statuses(
    operator, monitors, plugin, namespace, kubeconfig
):
    monitors.create(
        "nightly",
        {"schedule": "30 9 * * 1-5", "timeZone": "America/New_York", "grace": "5m"},
        labels={"team": "ops"},
    )
    monitors.create("minutely", {"period": "1m", "grace": "30s"})
    url = monitors.url("nightly")
    monitors.wait_ready("minutely")

    listed = plugin("list")
    assert listed.returncode == 0, listed.stderr
    table = rows(listed.stdout)
    assert listed.stdout.split()[:6] == ["NAME", "STATE", "REASON", "LAST", "PING", "NEXT"]
    assert table["nightly"][1:4] == ["New", "AwaitingFirstPing", "-"]
    # The next due time in the monitor's own zone, with its date: 09:30 New York time.
    assert re.fullmatch(r"(Mon|Tue|Wed|Thu|Fri) \d{4}-\d\d-\d\d 09:30 E[SD]T", table["nightly"][4])
    assert table["nightly"][5] == "30 9 * * 1-5 (America/New_York)"
    assert table["minutely"][5] == "every 1m"

    shown = plugin("url", "nightly")
    assert (shown.returncode, shown.stdout.strip()) == (0, url)

    pinged = plugin("ping", "nightly", "--fail", "--body", "-", input="disk full\nsecond line\n")
    assert pinged.returncode == 0, pinged.stderr
    assert pinged.stdout.strip() == "nightly: fail ping recorded"
    assert monitors.absorbed("nightly", 1)["state"] == "Down"  # behind the 200 (DESIGN 10.7)
    assert plugin("ping", "minutely", "--exit", "0").returncode == 0
    monitors.absorbed("minutely", 1)

    listed = plugin("list")
    assert listed.returncode == 1  # scriptable: a Down monitor is listed
    table = rows(listed.stdout)
    assert table["nightly"][1:4] == ["Down", "Failed", table["nightly"][3]]
    assert re.fullmatch(r"\d+s ago", table["nightly"][3])
    assert table["minutely"][1:3] == ["Healthy", "PingReceived"]

    selected = plugin("list", "-l", "team!=ops")
    assert (selected.returncode, list(rows(selected.stdout))) == (0, ["minutely"])
    everywhere = plugin("list", "-A", "-l", "team=ops")
    assert everywhere.stdout.split()[:2] == ["NAMESPACE", "NAME"]
    ours = [
        re.split(r"\s{3,}", line.strip())[:3]
        for line in everywhere.stdout.splitlines()
        if line.startswith(namespace + " ")
    ]
    assert ours == [[namespace, "nightly", "Down"]]  # other namespaces may hold more

    described = plugin("describe", "nightly")
    assert described.returncode == 0, described.stderr
    text = described.stdout
    assert "State:         Down (Failed)" in text
    assert "Schedule:      30 9 * * 1-5 (America/New_York), grace 5m" in text
    assert re.search(r"Next due:      \w{3} \d{4}-\d\d-\d\d 09:30 E[SD]T \(1[34]:30 UTC\)", text)
    pings = text.split("Recent pings:")[1].split("Recent transitions:")[0]
    assert re.search(r"TIME\s+AGE\s+KIND\s+EXIT\s+DURATION\s+RUN ID\s+BODY", pings)
    assert re.search(r"\d+s ago\s+fail\s+disk full", pings)  # first line of the body only
    assert "second line" not in pings
    transitions = text.split("Recent transitions:")[1].split("Last output")[0]
    assert re.search(r"Down\s+Failed\s+run failed at", transitions)
    assert text.rstrip().endswith("  disk full\n  second line")  # the last output, whole

    # kubectl itself finds the plugin on PATH (krew-style name).
    kubectl = Path(sys.executable).parent / "kubectl"
    via_kubectl = subprocess.run(
        [str(kubectl), "heartbeat", "list", "-n", namespace],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "PATH": f"{PLUGIN.parent}:{os.environ['PATH']}",
            "KUBECONFIG": str(kubeconfig),
        },
        timeout=60,
    )
    assert via_kubectl.returncode == 1, via_kubectl.stderr
    assert "nightly" in via_kubectl.stdout


def test_errors_are_one_sentence_with_exit_status_2(
    monitors, plugin, dev_cluster, namespace, tmp_path
):
    missing = plugin("describe", "nope")
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"error: no HeartbeatMonitor 'nope' in namespace '{namespace}'"
    assert missing.stdout == ""

    # No operator runs here: the monitor never gets its Secret.
    monitors.create("tokenless", {"period": "1h"})
    no_secret = plugin("url", "tokenless")
    assert no_secret.returncode == 2
    assert no_secret.stderr.startswith(
        f"error: no Secret 'tokenless-heartbeat' in namespace '{namespace}': the monitor has "
        "no token yet"
    )

    nobody = dev_cluster.service_account_kubeconfig(namespace, "nobody", tmp_path / "nobody")
    denied = plugin("list", config=nobody)
    assert denied.returncode == 2
    assert denied.stderr.startswith(
        f"error: no permission to list heartbeatmonitors in namespace '{namespace}': "
    )
    assert "cannot list resource" in denied.stderr
    denied = plugin("pause", "tokenless", config=nobody)
    assert (
        denied.returncode == 2 and "error: no permission to get heartbeatmonitor" in denied.stderr
    )

    # run puts the job first: no URL to read (no monitor, no permission) still runs the
    # command, unpinged, with its own exit status and one warning saying why.
    lost = plugin("run", "nope", "--", "sh", "-c", "echo ran; exit 4")
    assert (lost.returncode, lost.stdout) == (4, "ran\n")
    assert lost.stderr.strip() == (
        f"warning: nope: cannot read the ping URL: no HeartbeatMonitor 'nope' in namespace "
        f"'{namespace}'; running the command anyway, without pings"
    )
    denied = plugin("run", "tokenless", "--", "sh", "-c", "echo ran", config=nobody)
    assert (denied.returncode, denied.stdout) == (0, "ran\n")
    assert "cannot read the ping URL: no permission to get heartbeatmonitor" in denied.stderr

    for verb in ("list", "describe", "url", "ping", "pause", "resume", "run"):
        helped = subprocess.run([str(PLUGIN), verb, "--help"], capture_output=True, text=True)
        assert helped.returncode == 0 and helped.stdout.startswith("usage: kubectl heartbeat")


def test_run_sends_exit_code_and_output_and_keeps_the_commands_status(operator, monitors, plugin):
    monitors.create("job", {"period": "1h"})
    url = monitors.url("job")

    failing = plugin("run", "job", "--", "sh", "-c", "echo working; echo broken >&2; exit 3")
    assert failing.returncode == 3
    assert (failing.stdout, failing.stderr) == ("working\n", "broken\n")  # passed through
    status = monitors.absorbed("job", 2)  # the start and the finish
    start, finish = status["recentPings"][1], status["recentPings"][0]
    assert (start["kind"], finish["kind"], finish["exitCode"]) == ("start", "fail", 3)
    assert start["runId"] == finish["runId"] and "durationSeconds" in finish
    assert status["state"] == "Down" and status["lastExitCode"] == 3
    assert sorted(status["lastOutput"]["body"].splitlines()) == ["broken", "working"]

    # 50 KB of output: the whole of it passes through, the last 10,000 bytes are sent.
    digits = "0123456789" * 4
    script = f"for i in $(seq 1 1000); do printf 'line %04d %s\\n' $i {digits}; done"
    big = plugin("run", "job", "--url", url, "--", "sh", "-c", script)
    assert big.returncode == 0, big.stderr
    assert len(big.stdout) == 1000 * 51
    status = monitors.absorbed("job", 4)
    body = status["lastOutput"]["body"]
    assert len(body.encode()) == 10_000
    assert big.stdout.endswith(body)
    assert body.endswith("line 1000 0123456789012345678901234567890123456789\n")
    assert (status["recentPings"][0]["kind"], status["recentPings"][0]["exitCode"]) == (
        "success",
        0,
    )


def test_run_never_changes_the_exit_status_when_the_receiver_refuses(plugin):
    with socket.socket() as sock:  # a port nobody listens on: connections are refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    refused = f"http://127.0.0.1:{port}/ping/{'x' * 43}"
    started = time.monotonic()
    done = plugin(
        "run", "job", "--url", refused, "--retries", "3", "--", "sh", "-c", "echo out; exit 7"
    )
    assert done.returncode == 7
    assert done.stdout == "out\n"
    warnings = done.stderr.strip().splitlines()
    assert warnings == [
        "warning: job: start ping failed after 3 attempts: connection refused; running the "
        "command anyway",
        "warning: job: exit code 7 ping failed after 3 attempts: connection refused",
    ]
    assert "x" * 43 not in done.stderr  # never the token
    assert time.monotonic() - started >= 2 * (1 + 2)  # backed off: 1 s, then 2 s, per ping

    ok = plugin("run", "job", "--url", refused, "--retries", "1", "--", "true")
    assert ok.returncode == 0


def test_run_still_runs_the_command_when_the_api_server_is_unreachable(plugin, tmp_path):
    """The ping URL comes from the API server: unreachable, it is asked again with the
    pings' backoff, then the command runs unpinged with its own exit status."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = tmp_path / "unreachable"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: c, cluster: {{server: 'https://127.0.0.1:{port}', "
        "insecure-skip-tls-verify: true}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    started = time.monotonic()
    done = plugin(
        "run", "job", "--retries", "2", "--", "sh", "-c", "echo out; exit 5", config=config
    )
    assert (done.returncode, done.stdout) == (5, "out\n")
    (warning,) = done.stderr.strip().splitlines()
    assert warning.startswith(
        f"warning: job: cannot read the ping URL: cannot reach the API server at "
        f"https://127.0.0.1:{port}: "
    )
    assert warning.endswith("; running the command anyway, without pings")
    assert time.monotonic() - started >= 1  # asked twice, 1 s apart


def test_timed_pause_resumes_by_itself_at_its_time(operator, monitors, plugin):
    monitors.create("deploy", {"period": "1h"})
    monitors.wait_ready("deploy")

    paused = plugin("pause", "deploy", "--for", "6s")
    assert paused.returncode == 0, paused.stderr
    assert re.fullmatch(
        r"heartbeatmonitor.heartbeat.dev/deploy paused until \w{3} \d{4}-\d\d-\d\d "
        r"\d\d:\d\d(:\d\d)? UTC\n",  # seconds only when not zero
        paused.stdout,
    )
    spec = monitors.get("deploy")["spec"]
    status, _ = monitors.wait_state("deploy", "Paused", timeout=10)
    assert status["pausedUntil"] == spec["pausedUntil"]
    assert status["pauseCause"] == "spec.pausedUntil"
    assert "paused until" in rows(plugin("list").stdout)["deploy"][4]
    until = at(spec["pausedUntil"])

    status, seen = monitors.wait_state("deploy", "New", timeout=15)
    resumed = status["recentTransitions"][0]
    assert resumed["time"] == spec["pausedUntil"]  # at its time exactly, written promptly
    assert seen - until.timestamp() <= WRITE_WINDOW
    assert "pausedUntil" not in status and "pausedSince" not in status
    assert at(status["nextDueTime"]) - until == timedelta(hours=1)  # counted from the end
    assert condition(status, "Healthy")["reason"] == "AwaitingFirstPing"
    events = wait_for(
        lambda: [e for e in monitors.events("deploy") if e.reason == "Resumed"] or None,
        timeout=10,
        what="Resumed Event",
    )
    # Times people read (issue 16 item 3): the end in the monitor's zone (UTC here).
    assert events[0].message.startswith(f"resumed (spec.pausedUntil {format_local(until)} reached)")
    assert [e.reason for e in monitors.events("deploy")] == ["Paused", "Resumed"]

    # A pause with no end lasts until resume.
    assert plugin("pause", "deploy").stdout == (
        "heartbeatmonitor.heartbeat.dev/deploy paused (until resumed)\n"
    )
    status, _ = monitors.wait_state("deploy", "Paused", timeout=10)
    assert status["pauseCause"] == "spec.paused" and "pausedUntil" not in status
    assert plugin("resume", "deploy").stdout == "heartbeatmonitor.heartbeat.dev/deploy resumed\n"
    assert monitors.get("deploy")["spec"].get("paused") is False
    monitors.wait_state("deploy", "New", timeout=10)
