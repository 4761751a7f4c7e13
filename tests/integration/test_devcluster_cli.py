"""``heartbeat-operator dev up|status|env|down`` as a user runs them (DESIGN 9.5), and the
sharing rule of the test fixture, on a second control plane in a private state directory
(the session's own control plane is left alone)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from heartbeat_operator import devcluster
from heartbeat_operator.devcluster import pki


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


def strip_key_identifiers(cert_path: Path, ca_key_path: Path) -> None:
    """Re-sign a certificate as ``dev up`` wrote them before issue 13 item 13: no SKI/AKI."""
    ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), None)
    old = x509.load_pem_x509_certificate(cert_path.read_bytes())
    builder = (
        x509.CertificateBuilder()
        .subject_name(old.subject)
        .issuer_name(old.issuer)
        .public_key(old.public_key())
        .serial_number(old.serial_number)
        .not_valid_before(old.not_valid_before_utc)
        .not_valid_after(old.not_valid_after_utc)
    )
    for extension in old.extensions:
        if not isinstance(extension.value, x509.SubjectKeyIdentifier | x509.AuthorityKeyIdentifier):
            builder = builder.add_extension(extension.value, extension.critical)
    cert = builder.sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def test_dev_up_replaces_a_control_plane_whose_certificates_python_313_refuses(
    tmp_path: Path,
) -> None:
    state_dir = tmp_path / "dev"
    try:
        first = dev(state_dir, "up")
        assert first.returncode == 0, first.stderr
        keys = pki.Pki(state_dir / "pki")
        strip_key_identifiers(keys.admin_cert, keys.ca_key)
        old = devcluster.status(state_dir=state_dir)
        assert old is not None  # still a healthy control plane, only its certificates are old

        again = dev(state_dir, "up")
        assert again.returncode == 0, again.stderr
        assert "certificates lack key identifiers" in again.stderr
        assert "reusing" not in again.stderr
        new = devcluster.status(state_dir=state_dir)
        assert new is not None and new.processes != old.processes
        assert pki.is_current(state_dir / "pki")
        assert again.stdout == first.stdout  # the same kubeconfig path, now with new certs
        # Started by hand, replaced: still pinned, a test session never stops it.
        with devcluster.shared(state_dir=state_dir) as reused:
            assert not reused.started
        assert devcluster.status(state_dir=state_dir) is not None
    finally:
        dev(state_dir, "down")
    assert processes_mentioning(str(state_dir)) == []
