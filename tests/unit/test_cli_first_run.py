"""What a first run shows (issue 17 item 6): `--version`, and a taken port as one line
naming the variable that moves it, from the installed command as a user runs it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "heartbeat_operator", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_version_is_the_projects() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    done = cli("--version")
    assert (done.returncode, done.stdout) == (0, f"heartbeat-operator {version}\n")


def test_a_busy_ping_port_is_one_line_naming_heartbeat_port() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = cli("run", "--host", "127.0.0.1", env={"HEARTBEAT_PORT": str(port)})
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.splitlines()
    assert f"port {port} (127.0.0.1) is already in use" in line
    assert "HEARTBEAT_PORT=<port>" in line


def test_a_busy_metrics_port_names_heartbeat_metrics_port() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = cli("run", "--host", "127.0.0.1", "--port", "0", "--metrics-port", str(port))
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert "HEARTBEAT_METRICS_PORT=<port>" in line and "--metrics-port" in line
