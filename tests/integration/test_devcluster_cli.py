"""``heartbeat-operator dev up|status|env|down`` as a user runs them (DESIGN 9.5), and the
sharing rule of the test fixture, on a second control plane in a private state directory
(the session's own control plane is left alone)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from heartbeat_operator import devcluster


def processes_mentioning(text: str) -> list[int]:
    """PIDs of live processes whose command line mentions ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if text in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def dev(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "heartbeat_operator", "dev", *args],
        env={**os.environ, "HEARTBEAT_DEV_DIR": str(state_dir)},
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_dev_up_status_env_down(tmp_path: Path) -> None:
    state_dir = tmp_path / "dev"
    try:
        up = dev(state_dir, "up")
        assert up.returncode == 0, up.stderr
        lines = up.stdout.splitlines()
        assert len(lines) == 1  # exactly the kubeconfig path; progress went to stderr
        kubeconfig = Path(lines[0])
        assert kubeconfig.is_absolute() and kubeconfig.is_file()
        assert "starting kube-apiserver" in up.stderr

        cluster = devcluster.status(state_dir=state_dir)
        assert cluster is not None
        readyz = cluster.kubectl("get", "--raw", "/readyz").stdout
        assert readyz.strip() == "ok"
        assert "namespace/kube-system" in cluster.kubectl("get", "ns", "-o", "name").stdout
        crd = cluster.kubectl("get", "crd", "heartbeatmonitors.heartbeat.dev", "-o", "name")
        assert (
            crd.stdout.strip()
            == "customresourcedefinition.apiextensions.k8s.io/heartbeatmonitors.heartbeat.dev"
        )

        again = dev(state_dir, "up")  # reuses: same kubeconfig, same processes
        assert again.returncode == 0 and again.stdout == up.stdout
        assert "reusing" in again.stderr
        assert devcluster.status(state_dir=state_dir) == cluster

        status = dev(state_dir, "status")
        assert (status.returncode, status.stdout) == (0, up.stdout)
        env = dev(state_dir, "env")
        assert env.returncode == 0
        assert env.stdout == (f'export KUBECONFIG={kubeconfig} PATH={cluster.bin_dir}:"$PATH"\n')
        assert processes_mentioning(str(state_dir))
    finally:
        down = dev(state_dir, "down")
    assert down.returncode == 0, down.stderr
    assert "stopped kube-controller-manager, kube-apiserver, etcd" in down.stderr
    assert processes_mentioning(str(state_dir)) == []
    assert not state_dir.exists()

    down_again = dev(state_dir, "down")  # idempotent
    assert down_again.returncode == 0
    assert "nothing was running" in down_again.stderr
    gone = dev(state_dir, "status")
    assert (gone.returncode, gone.stdout) == (1, "")
    assert dev(state_dir, "env").returncode == 1


def test_a_session_stops_only_the_control_plane_it_started(tmp_path: Path) -> None:
    state_dir = tmp_path / "dev"
    with devcluster.shared(state_dir=state_dir) as outer:
        assert outer.started
        with devcluster.shared(state_dir=state_dir) as inner:
            assert not inner.started
            assert inner.server == outer.server
        # The inner session did not start it, so it left it running.
        assert devcluster.status(state_dir=state_dir) is not None
    # The outer session started it and nobody else uses it: stopped, nothing left.
    assert devcluster.status(state_dir=state_dir) is None
    assert processes_mentioning(str(state_dir)) == []

    pinned = dev(state_dir, "up")  # started by hand ...
    assert pinned.returncode == 0, pinned.stderr
    try:
        with devcluster.shared(state_dir=state_dir) as reused:
            assert not reused.started
        # ... so a test session never stops it.
        assert devcluster.status(state_dir=state_dir) is not None
    finally:
        dev(state_dir, "down")
    assert processes_mentioning(str(state_dir)) == []
