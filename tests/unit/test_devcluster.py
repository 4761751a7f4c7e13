"""The dev control plane's own pieces that need no control plane: the certificates it
hands out, and the rule that a recorded PID is signalled only if it is still the same
process."""

from __future__ import annotations

import ssl
import stat
import subprocess
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
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


def _strict(context: ssl.SSLContext) -> ssl.SSLContext:
    # Python 3.13's defaults (issue 13 item 13); the flags exist on 3.11 already.
    context.verify_flags |= ssl.VERIFY_X509_STRICT | ssl.VERIFY_X509_PARTIAL_CHAIN
    return context


def test_the_chain_passes_strict_verification_both_ways(tmp_path: Path) -> None:
    """A TLS handshake in memory: the API server's certificate and a client's (admin,
    kube-controller-manager) each verified against the CA under VERIFY_X509_STRICT, as
    Python 3.13 does by default (without key identifiers: "Missing Authority Key
    Identifier")."""
    keys = pki.generate(tmp_path)
    for client_cert, client_key in (
        (keys.admin_cert, keys.admin_key),
        (keys.controller_manager_cert, keys.controller_manager_key),
    ):
        server_side = _strict(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
        server_side.load_cert_chain(keys.serving_cert, keys.serving_key)
        server_side.load_verify_locations(keys.ca_cert)
        server_side.verify_mode = ssl.CERT_REQUIRED
        client_side = _strict(ssl.create_default_context(cafile=str(keys.ca_cert)))
        client_side.load_cert_chain(client_cert, client_key)
        _handshake(client_side, server_side, "localhost")


def _handshake(client: ssl.SSLContext, server: ssl.SSLContext, hostname: str) -> None:
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client_tls = client.wrap_bio(c_in, c_out, server_hostname=hostname)
    server_tls = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(10):
        for side, tls in (("client", client_tls), ("server", server_tls)):
            if not done[side]:
                try:
                    tls.do_handshake()
                    done[side] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            break
    assert all(done.values()), done
    assert client_tls.getpeercert()["subject"] == ((("commonName", "kube-apiserver"),),)
    assert server_tls.getpeercert() is not None


def test_certificates_without_key_identifiers_are_not_current(tmp_path: Path) -> None:
    keys = pki.generate(tmp_path)
    assert pki.is_current(tmp_path)
    # A control plane started before the identifiers were added: dev up replaces it.
    ca_key = serialization.load_pem_private_key(keys.ca_key.read_bytes(), None)
    old = load(keys.admin_cert)
    builder = (
        x509.CertificateBuilder()
        .subject_name(old.subject)
        .issuer_name(old.issuer)
        .public_key(old.public_key())
        .serial_number(old.serial_number)
        .not_valid_before(old.not_valid_before_utc)
        .not_valid_after(old.not_valid_after_utc)
    )
    cert = builder.sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    keys.admin_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    assert not pki.is_current(tmp_path)
    assert not pki.is_current(tmp_path / "missing")


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
    child = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"])
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


def test_restart_process_starts_the_recorded_process_again_with_its_argv(tmp_path: Path) -> None:
    """The fault suite kills the kube-apiserver and starts it again (issue 18): same argv,
    new PID recorded so that ``down`` stops the new one."""
    import json

    from heartbeat_operator.devcluster import clusters

    argv = [sys.executable, "-c", "import signal; signal.pause()", "marker-arg"]
    first = processes.spawn("sleeper", argv, tmp_path / "sleeper.log")
    state = {
        "binDir": str(tmp_path),
        "server": "https://127.0.0.1:1",
        "processes": [first.to_json()],
    }
    (tmp_path / "state.json").write_text(json.dumps(state))
    second = None
    try:
        assert processes.argv(first) == argv
        second = clusters.restart_process("sleeper", state_dir=tmp_path)
        assert not processes.is_running(first)
        assert processes.is_running(second) and second.pid != first.pid
        assert processes.argv(second) == argv
        recorded = json.loads((tmp_path / "state.json").read_text())["processes"]
        assert recorded == [second.to_json()]
        # Gone already: started again from the argv read before.
        processes.kill(second)
        third = clusters.restart_process("sleeper", state_dir=tmp_path, argv=argv)
        assert processes.is_running(third)
        assert clusters.down(state_dir=tmp_path) == ["sleeper"]
        assert not processes.is_running(third)
    finally:
        for record in (first, second):
            if record is not None:
                processes.kill(record)
