"""The dev control plane's own pieces that need no control plane: the certificates it
hands out, and the rule that a recorded PID is signalled only if it is still the same
process."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from heartbeat_operator.devcluster import kubeconfigs, pki, processes


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_certificates_carry_the_identities_the_components_rely_on(tmp_path: Path) -> None:
    keys = pki.generate(tmp_path)
    ca = load(keys.ca_cert)
    admin = load(keys.admin_cert)
    serving = load(keys.serving_cert)
    kcm = load(keys.controller_manager_cert)

    for cert in (admin, serving, kcm):
        cert.verify_directly_issued_by(ca)
    # The admin is a cluster admin through its group (RBAC's system:masters).
    orgs = admin.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    assert [o.value for o in orgs] == ["system:masters"]
    assert (
        ExtendedKeyUsageOID.CLIENT_AUTH
        in admin.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    )
    # kube-controller-manager gets the user its bootstrap ClusterRole is bound to.
    cn = kcm.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == "system:kube-controller-manager"
    # Clients reach the API server as 127.0.0.1 or localhost, Pods as kubernetes.default.
    names = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} == {
        "127.0.0.1",
        "10.0.0.1",
    }
    assert {"localhost", "kubernetes.default.svc"} <= set(names.get_values_for_type(x509.DNSName))
    # Private keys are readable by their owner only.
    for key in (keys.ca_key, keys.admin_key, keys.serving_key, keys.sa_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_a_token_kubeconfig_is_private_and_names_the_namespace(tmp_path: Path) -> None:
    keys = pki.generate(tmp_path / "pki")
    path = kubeconfigs.write_token_kubeconfig(
        tmp_path / "sa.yaml",
        server="https://127.0.0.1:6443",
        ca_cert=keys.ca_cert,
        token="not-a-real-token",
        user="system:serviceaccount:ops:op",
        namespace="ops",
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert "namespace: ops" in text and "token: not-a-real-token" in text


def test_stop_never_signals_a_process_that_only_shares_the_pid(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        real = processes.ProcessRecord(
            name="sleeper", pid=child.pid, start_ticks=processes.start_ticks(child.pid), log=""
        )
        stranger = processes.ProcessRecord(
            name="old", pid=child.pid, start_ticks=real.start_ticks - 1, log=""
        )
        assert processes.is_running(real)
        assert not processes.is_running(stranger)
        assert processes.stop(stranger) is False
        assert child.poll() is None  # untouched

        assert processes.stop(real) is True
        assert child.wait(timeout=5) is not None
        assert not processes.is_running(real)
        assert processes.stop(real) is False  # idempotent
    finally:
        if child.poll() is None:
            child.kill()


def test_free_ports_are_distinct_unprivileged_ports() -> None:
    ports = processes.free_ports(4)
    assert len(set(ports)) == 4
    assert all(1024 <= p <= 65535 for p in ports)
