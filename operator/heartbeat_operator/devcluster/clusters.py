"""Bring the local control plane up, find it, share it, tear it down.

The Python API every tool uses (the ``dev`` CLI, the pytest fixture, benchmarks)::

    from heartbeat_operator import devcluster
    cluster = devcluster.up()            # reuses a healthy one; else starts etcd,
                                         # kube-apiserver, kube-controller-manager
    cluster.kubeconfig, cluster.kubectl("get", "ns")
    devcluster.status()                  # Cluster or None
    devcluster.down()                    # idempotent
    with devcluster.shared() as cluster: # for test sessions: stops it at the end only if
        ...                              # this session started it and nobody else uses it

Everything lives in one state directory outside the work tree (``$HEARTBEAT_DEV_DIR``,
default ``~/.cache/heartbeat-operator/dev``): ``state.json`` (PIDs, ports), ``pki/``,
``kubeconfig`` (admin), ``etcd/`` (data), ``logs/``. One lock file beside it serialises
``up``/``down`` across processes, so parallel test sessions share one control plane.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from heartbeat_operator.devcluster import kubeconfigs, pki, processes
from heartbeat_operator.devcluster.processes import ProcessRecord

# The repository this package was installed from (editable install): hack/ and deploy/.
REPO_ROOT = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = REPO_ROOT / "hack" / "build-controlplane.sh"
DEFAULT_CRDS_DIR = REPO_ROOT / "deploy" / "crds"

SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
# kube-controller-manager's controllers: the ones DESIGN 8 names (garbage collector, CronJob,
# Job, ServiceAccount tokens) plus what namespaces, ServiceAccounts and the chart's
# aggregated ClusterRoles need to behave as on a real cluster. Nothing needs nodes here.
CONTROLLERS = (
    "garbage-collector-controller",
    "cronjob-controller",
    "job-controller",
    "ttl-after-finished-controller",
    "pod-garbage-collector-controller",
    "serviceaccount-token-controller",
    "serviceaccount-controller",
    "root-ca-certificate-publisher-controller",
    "namespace-controller",
    "clusterrole-aggregation-controller",
    "replicaset-controller",
    "deployment-controller",
    "resourcequota-controller",
)

# Deadlines for the steps of `up` (generous: two shared cores; the usual total is ~10 s).
ETCD_TIMEOUT = 30.0
APISERVER_TIMEOUT = 90.0
CONTROLLER_MANAGER_TIMEOUT = 60.0
CRD_TIMEOUT = 30.0


class DevClusterError(RuntimeError):
    """The control plane could not be started or reached; the message says why."""


def default_state_dir() -> Path:
    explicit = os.environ.get("HEARTBEAT_DEV_DIR")
    if explicit:
        return Path(explicit).expanduser().resolve()
    cache = os.environ.get("HEARTBEAT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "heartbeat-operator"
    )
    return (Path(cache) / "dev").resolve()


def _say(message: str) -> None:
    print(f"dev: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Cluster:
    """A running local control plane.

    ``kubeconfig`` authenticates as a cluster admin (client cert in ``system:masters``).
    ``started`` is True only for the ``up()`` call that started these processes.
    """

    state_dir: Path
    kubeconfig: Path
    bin_dir: Path
    server: str
    ca_cert: Path
    processes: tuple[ProcessRecord, ...] = field(default=())
    started: bool = False

    @property
    def kubectl_path(self) -> Path:
        return self.bin_dir / "kubectl"

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run the matching kubectl against this cluster; output captured as text."""
        result = subprocess.run(
            [str(self.kubectl_path), "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise DevClusterError(
                f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}"
            )
        return result

    def service_account_kubeconfig(
        self,
        namespace: str,
        name: str,
        path: Path,
        *,
        duration: str = "1h",
        create: bool = True,
    ) -> Path:
        """Mint a token for ServiceAccount ``namespace/name`` (TokenRequest API) into a kubeconfig.

        With ``create``, the ServiceAccount (not the namespace) is created when missing.
        The token is never printed; it lives only in the returned file (mode 0600).
        """
        if create:
            exists = self.kubectl("get", "serviceaccount", name, "-n", namespace, check=False)
            if exists.returncode != 0:
                self.kubectl("create", "serviceaccount", name, "-n", namespace)
        token = self.kubectl(
            "create", "token", name, "-n", namespace, f"--duration={duration}"
        ).stdout.strip()
        return kubeconfigs.write_token_kubeconfig(
            path,
            server=self.server,
            ca_cert=self.ca_cert,
            token=token,
            user=f"system:serviceaccount:{namespace}:{name}",
            namespace=namespace,
        )


# --- state on disk ---------------------------------------------------------------------


def _state_file(state_dir: Path) -> Path:
    return state_dir / "state.json"


def _read_state(state_dir: Path) -> dict[str, object] | None:
    try:
        raw = json.loads(_state_file(state_dir).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return raw if isinstance(raw, dict) else None


def _write_state(state_dir: Path, state: dict[str, object]) -> None:
    tmp = state_dir / ".state.json.tmp"
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(_state_file(state_dir))


def _records(state: dict[str, object]) -> list[ProcessRecord]:
    raw = state.get("processes", [])
    assert isinstance(raw, list)
    return [ProcessRecord.from_json(r) for r in raw]


def _cluster_from_state(state_dir: Path, state: dict[str, object], started: bool) -> Cluster:
    return Cluster(
        state_dir=state_dir,
        kubeconfig=state_dir / "kubeconfig",
        bin_dir=Path(str(state["binDir"])),
        server=str(state["server"]),
        ca_cert=state_dir / "pki" / "ca.crt",
        processes=tuple(_records(state)),
        started=started,
    )


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    """Hold the cross-process lock for this state directory (blocks until free)."""
    state_dir.parent.mkdir(parents=True, exist_ok=True)
    lock = state_dir.parent / f"{state_dir.name}.lock"
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# --- probes ----------------------------------------------------------------------------


def _admin_ssl_context(state_dir: Path) -> ssl.SSLContext:
    keys = pki.Pki(state_dir / "pki")
    context = ssl.create_default_context(cafile=str(keys.ca_cert))
    context.load_cert_chain(str(keys.admin_cert), str(keys.admin_key))
    return context


def _get(url: str, context: ssl.SSLContext | None = None, timeout: float = 2.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, context=context, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def _readyz_ok(server: str, context: ssl.SSLContext) -> bool:
    try:
        status, body = _get(f"{server}/readyz", context)
    except (OSError, ssl.SSLError):
        return False
    return status == 200 and body.strip() == "ok"


def _healthy(state_dir: Path, state: dict[str, object], patience: float = 15.0) -> bool:
    """Every recorded process runs and the API server's /readyz says ok.

    While every process runs, /readyz gets ``patience`` seconds to say ok: on two busy
    cores a slow answer must not make ``up`` replace a control plane others are using.
    """
    records = _records(state)
    if not records or not all(processes.is_running(r) for r in records):
        return False
    try:
        context = _admin_ssl_context(state_dir)
    except (OSError, ssl.SSLError):
        return False
    deadline = time.monotonic() + patience
    while not _readyz_ok(str(state["server"]), context):
        if time.monotonic() >= deadline or not all(processes.is_running(r) for r in records):
            return False
        time.sleep(0.5)
    return True


def _wait(
    what: str,
    probe: Callable[[], bool],
    timeout: float,
    watched: Sequence[ProcessRecord],
) -> None:
    """Poll ``probe`` until True; fail early, with its log, when a watched process exits."""
    deadline = time.monotonic() + timeout
    while not probe():
        for record in watched:
            if not processes.is_running(record):
                raise DevClusterError(
                    f"{record.name} exited while waiting for {what}; last lines of "
                    f"{record.log}:\n{processes.tail(record.log)}"
                )
        if time.monotonic() >= deadline:
            logs = "\n".join(f"--- {r.log}\n{processes.tail(r.log, 15)}" for r in watched)
            raise DevClusterError(f"timed out after {timeout:.0f}s waiting for {what}\n{logs}")
        time.sleep(0.1)


# --- binaries and CRDs -----------------------------------------------------------------


def resolve_bin_dir(*, build: bool = True) -> Path:
    """Where etcd, kube-apiserver, kube-controller-manager and kubectl are.

    ``$HEARTBEAT_CONTROLPLANE_BIN`` if set; else whatever ``hack/build-controlplane.sh``
    prints (it builds what is missing into the cache, and returns at once when cached).
    """
    explicit = os.environ.get("HEARTBEAT_CONTROLPLANE_BIN")
    if explicit:
        bin_dir = Path(explicit).expanduser().resolve()
    elif BUILD_SCRIPT.is_file():
        if not build:
            raise DevClusterError("control plane binaries are not built")
        result = subprocess.run(
            ["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, stderr=None, text=True
        )
        if result.returncode != 0:
            raise DevClusterError(f"{BUILD_SCRIPT} failed with exit status {result.returncode}")
        bin_dir = Path(result.stdout.strip().splitlines()[-1])
    else:
        raise DevClusterError(
            "cannot find hack/build-controlplane.sh (not an editable install): "
            "set HEARTBEAT_CONTROLPLANE_BIN to the directory holding the binaries"
        )
    missing = [
        b
        for b in ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl")
        if not os.access(bin_dir / b, os.X_OK)
    ]
    if missing:
        raise DevClusterError(f"missing in {bin_dir}: {', '.join(missing)}")
    return bin_dir


def install_crds(cluster: Cluster, crds_dir: Path, timeout: float = CRD_TIMEOUT) -> list[str]:
    """Server-side apply every CRD manifest in ``crds_dir``; wait until each is Established."""
    files = sorted(p for p in crds_dir.glob("*.y*ml") if p.is_file()) if crds_dir.is_dir() else []
    if not files:
        return []
    args = ["apply", "--server-side", "--force-conflicts", "--field-manager=heartbeat-dev"]
    for f in files:
        args += ["-f", str(f)]
    applied = cluster.kubectl(*args, "-o", "name").stdout.split()
    cluster.kubectl(
        "wait",
        "--for=condition=Established",
        f"--timeout={int(timeout)}s",
        *applied,
        timeout=timeout + 10,
    )
    return applied


# --- up / down / status ----------------------------------------------------------------


def _etcd_argv(bin_dir: Path, state_dir: Path, client: int, peer: int) -> list[str]:
    return [
        str(bin_dir / "etcd"),
        "--name=dev",
        f"--data-dir={state_dir / 'etcd'}",
        f"--listen-client-urls=http://127.0.0.1:{client}",
        f"--advertise-client-urls=http://127.0.0.1:{client}",
        f"--listen-peer-urls=http://127.0.0.1:{peer}",
        f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
        f"--initial-cluster=dev=http://127.0.0.1:{peer}",
        "--unsafe-no-fsync=true",  # test data only: never for data that must survive
        "--log-level=warn",
    ]


def _apiserver_argv(
    bin_dir: Path, state_dir: Path, keys: pki.Pki, etcd_port: int, port: int
) -> list[str]:
    return [
        str(bin_dir / "kube-apiserver"),
        f"--etcd-servers=http://127.0.0.1:{etcd_port}",
        f"--cert-dir={state_dir / 'apiserver'}",
        f"--tls-cert-file={keys.serving_cert}",
        f"--tls-private-key-file={keys.serving_key}",
        f"--client-ca-file={keys.ca_cert}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={port}",
        f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
        "--allow-privileged=true",
        "--authorization-mode=RBAC",
        f"--service-account-issuer=https://127.0.0.1:{port}",
        f"--service-account-key-file={keys.sa_pub}",
        f"--service-account-signing-key-file={keys.sa_key}",
        # No nodes: the `kubernetes` Service's endpoints would point at loopback, which
        # the API rejects every few seconds in the log. Nothing here needs them.
        "--endpoint-reconciler-type=none",
        "--profiling=false",
    ]


def _controller_manager_argv(
    bin_dir: Path, state_dir: Path, keys: pki.Pki, kubeconfig: Path, port: int
) -> list[str]:
    return [
        str(bin_dir / "kube-controller-manager"),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        f"--cert-dir={state_dir / 'controller-manager'}",
        "--leader-elect=false",  # one instance: no Lease wait at start-up
        f"--controllers={','.join(CONTROLLERS)}",
        f"--service-account-private-key-file={keys.sa_key}",
        f"--root-ca-file={keys.ca_cert}",
        "--use-service-account-credentials=true",  # per-controller identities, as kubeadm
        f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
        "--profiling=false",
    ]


def _stop_all(records: Sequence[ProcessRecord]) -> list[str]:
    """Stop in reverse start order (clients before the store); names of those that ran."""
    return [r.name for r in reversed(records) if processes.stop(r)]


def _clear(state_dir: Path) -> None:
    if state_dir.exists():
        shutil.rmtree(state_dir)


def _start(state_dir: Path, bin_dir: Path) -> Cluster:
    began = time.monotonic()
    _clear(state_dir)
    logs = state_dir / "logs"
    logs.mkdir(parents=True)
    etcd_client, etcd_peer, api_port, kcm_port = processes.free_ports(4)
    server = f"https://127.0.0.1:{api_port}"
    state: dict[str, object] = {
        "binDir": str(bin_dir),
        "server": server,
        "ports": {
            "etcd": etcd_client,
            "etcdPeer": etcd_peer,
            "apiserver": api_port,
            "controllerManager": kcm_port,
        },
        "processes": [],
        "pinned": False,
    }
    records: list[ProcessRecord] = []

    def launch(name: str, argv: list[str]) -> ProcessRecord:
        record = processes.spawn(name, argv, logs / f"{name}.log")
        records.append(record)
        state["processes"] = [r.to_json() for r in records]
        _write_state(state_dir, state)  # written at once: `down` finds it even if we crash
        return record

    try:
        _say(f"starting etcd on 127.0.0.1:{etcd_client}")
        etcd = launch("etcd", _etcd_argv(bin_dir, state_dir, etcd_client, etcd_peer))
        keys = pki.generate(state_dir / "pki")
        admin = kubeconfigs.write_client_cert_kubeconfig(
            state_dir / "kubeconfig",
            server=server,
            ca_cert=keys.ca_cert,
            cert=keys.admin_cert,
            key=keys.admin_key,
            user="heartbeat-dev-admin",
        )
        kcm_config = kubeconfigs.write_client_cert_kubeconfig(
            state_dir / "controller-manager.kubeconfig",
            server=server,
            ca_cert=keys.ca_cert,
            cert=keys.controller_manager_cert,
            key=keys.controller_manager_key,
            user="system:kube-controller-manager",
        )

        def etcd_healthy() -> bool:
            try:
                status, body = _get(f"http://127.0.0.1:{etcd_client}/health", timeout=1.0)
            except OSError:
                return False
            return status == 200 and '"true"' in body

        _wait("etcd /health", etcd_healthy, ETCD_TIMEOUT, [etcd])
        _say(f"starting kube-apiserver on {server}")
        apiserver = launch(
            "kube-apiserver", _apiserver_argv(bin_dir, state_dir, keys, etcd_client, api_port)
        )
        context = _admin_ssl_context(state_dir)
        _wait(
            "kube-apiserver /readyz",
            lambda: _readyz_ok(server, context),
            APISERVER_TIMEOUT,
            [etcd, apiserver],
        )

        # Only now: before the RBAC bootstrap roles exist it exits at once (forbidden).
        _say(f"starting kube-controller-manager on 127.0.0.1:{kcm_port}")
        kcm = launch(
            "kube-controller-manager",
            _controller_manager_argv(bin_dir, state_dir, keys, kcm_config, kcm_port),
        )
        insecure = ssl.create_default_context()
        insecure.check_hostname = False  # its self-signed serving cert: a local liveness probe
        insecure.verify_mode = ssl.CERT_NONE

        def kcm_healthy() -> bool:
            try:
                status, body = _get(f"https://127.0.0.1:{kcm_port}/healthz", insecure)
            except (OSError, ssl.SSLError):
                return False
            return status == 200 and body.strip() == "ok"

        _wait(
            "kube-controller-manager /healthz",
            kcm_healthy,
            CONTROLLER_MANAGER_TIMEOUT,
            [etcd, apiserver, kcm],
        )
        cluster = Cluster(
            state_dir=state_dir,
            kubeconfig=admin,
            bin_dir=bin_dir,
            server=server,
            ca_cert=keys.ca_cert,
            processes=tuple(records),
            started=True,
        )

        # The ServiceAccount controller made `default` in namespace default: Pods and
        # TokenRequests work from here on, as on a real cluster.
        def default_service_account() -> bool:
            return (
                cluster.kubectl(
                    "get", "serviceaccount", "default", "-n", "default", check=False
                ).returncode
                == 0
            )

        _wait(
            "the default ServiceAccount",
            default_service_account,
            CONTROLLER_MANAGER_TIMEOUT,
            [etcd, apiserver, kcm],
        )
    except BaseException:
        stopped = _stop_all(records)
        if stopped:
            _say(f"start-up failed; stopped {', '.join(stopped)}; logs kept in {logs}")
        raise
    _say(f"control plane up in {time.monotonic() - began:.1f}s (logs in {logs})")
    return cluster


def up(
    *,
    state_dir: Path | None = None,
    crds_dir: Path | None = DEFAULT_CRDS_DIR,
    pin: bool = False,
) -> Cluster:
    """Return the running control plane, starting it first if none is healthy.

    The CRDs in ``crds_dir`` are (re)applied on every call, so a reused control plane has
    the work tree's CRDs. ``pin`` marks it as started by hand (``dev up``): a test
    session that later reuses it never stops it (DESIGN 9.5).
    """
    state_dir = state_dir or default_state_dir()
    with _locked(state_dir):
        return _up_locked(state_dir, crds_dir, pin=pin)


def _up_locked(state_dir: Path, crds_dir: Path | None, *, pin: bool) -> Cluster:
    """The body of ``up``; the caller holds the lock."""
    state = _read_state(state_dir)
    healthy = state is not None and _healthy(state_dir, state)
    renew_pinned = False  # a `dev up` replaced for its certificates stays pinned
    if healthy and not pki.is_current(state_dir / "pki"):
        # Started before the certificates had key identifiers: Python 3.13 refuses them
        # (issue 13 item 13). Replaced once nobody else uses it; until then, say so.
        if _other_users(state_dir):
            _say(
                "the running control plane's certificates lack key identifiers (Python 3.13 "
                "refuses them); once no session uses it, `heartbeat-operator dev down` and "
                "`dev up` make new ones"
            )
        else:
            _say("replacing the running control plane: its certificates lack key identifiers")
            healthy = False
            renew_pinned = bool(state and state.get("pinned"))
    if healthy:
        assert state is not None
        cluster = _cluster_from_state(state_dir, state, started=False)
        _say(f"reusing the running control plane at {cluster.server}")
    else:
        if state is not None:
            leftovers = _stop_all(_records(state))
            if leftovers:
                _say(f"stopped an unhealthy control plane's {', '.join(leftovers)}")
        cluster = _start(state_dir, resolve_bin_dir())
        state = _read_state(state_dir)
        assert state is not None
        pin = pin or renew_pinned
    if pin and not state.get("pinned"):
        state["pinned"] = True
        _write_state(state_dir, state)
    try:
        if crds_dir is not None:
            crds = install_crds(cluster, crds_dir)
            if crds:
                _say(f"CRDs established: {', '.join(crds)}")
        if not _readyz_ok(cluster.server, _admin_ssl_context(state_dir)):
            raise DevClusterError("kube-apiserver /readyz is not ok")
    except BaseException:
        if cluster.started:
            _stop_all(cluster.processes)
        raise
    return cluster


def status(*, state_dir: Path | None = None) -> Cluster | None:
    """The running control plane if it is up and /readyz is ok, else None (never starts one)."""
    state_dir = state_dir or default_state_dir()
    state = _read_state(state_dir)
    if state is None or not _healthy(state_dir, state):
        return None
    return _cluster_from_state(state_dir, state, started=False)


def down(*, state_dir: Path | None = None) -> list[str]:
    """Stop every process ``up`` started (by PID) and remove its data. Idempotent.

    Returns the names of the processes that were still running.
    """
    state_dir = state_dir or default_state_dir()
    with _locked(state_dir):
        return _down_locked(state_dir)


def _down_locked(state_dir: Path) -> list[str]:
    state = _read_state(state_dir)
    stopped = _stop_all(_records(state)) if state is not None else []
    _clear(state_dir)
    return stopped


def restart_process(
    name: str, *, state_dir: Path | None = None, argv: Sequence[str] | None = None
) -> ProcessRecord:
    """Start the control plane's process ``name`` again, with the argv it was started with.

    For the fault suite (tests/faults, issue 18), which kills the kube-apiserver under load
    and starts it again: if the recorded process still runs it is SIGKILLed first (no
    graceful stop, as in a crash); if it is gone already, pass the ``argv`` read before
    (``processes.argv``). The new PID is recorded, so ``down`` stops it. Only ever on a
    control plane of your own: the default one is shared by other sessions.
    """
    state_dir = state_dir or default_state_dir()
    with _locked(state_dir):
        state = _read_state(state_dir)
        if state is None:
            raise DevClusterError(f"no control plane in {state_dir}")
        records = _records(state)
        old = next((r for r in records if r.name == name), None)
        if old is None:
            raise DevClusterError(f"no process {name!r} in {state_dir}")
        if processes.is_running(old):
            argv = argv or processes.argv(old)
            processes.kill(old)
        if not argv:
            raise DevClusterError(f"{name} is gone and no argv was given to start it again")
        new = processes.spawn(name, argv, Path(old.log))
        state["processes"] = [(new if r == old else r).to_json() for r in records]
        _write_state(state_dir, state)
        return new


# --- sharing between test sessions ------------------------------------------------------


def _user_file(state_dir: Path) -> Path:
    pid = os.getpid()
    return state_dir / "users" / f"{pid}-{processes.start_ticks(pid)}"


def _other_users(state_dir: Path) -> list[str]:
    """Live sessions, other than this process, registered as using the control plane."""
    users_dir = state_dir / "users"
    mine = _user_file(state_dir).name
    alive = []
    for entry in users_dir.glob("*-*") if users_dir.is_dir() else []:
        pid, _, ticks = entry.name.partition("-")
        if entry.name == mine or not (pid.isdigit() and ticks.isdigit()):
            continue
        record = ProcessRecord(name="user", pid=int(pid), start_ticks=int(ticks), log="")
        if processes.is_running(record):
            alive.append(entry.name)
    return alive


@contextlib.contextmanager
def shared(
    *, state_dir: Path | None = None, crds_dir: Path | None = DEFAULT_CRDS_DIR
) -> Iterator[Cluster]:
    """Use the control plane for the length of the block (a test session).

    Reuses a running one or starts one. At the end it is stopped only if this block
    started it, nobody pinned it with ``dev up``, and no other live session registered
    itself meanwhile — a control plane someone else started is never stopped.
    """
    state_dir = state_dir or default_state_dir()
    with _locked(state_dir):  # one lock for both: no session can stop it in between
        cluster = _up_locked(state_dir, crds_dir, pin=False)
        me = _user_file(state_dir)
        me.parent.mkdir(exist_ok=True)
        me.touch()
    try:
        yield cluster
    finally:
        with _locked(state_dir):
            me.unlink(missing_ok=True)
            state = _read_state(state_dir)
            if (
                cluster.started
                and state is not None
                and not state.get("pinned")
                and _records(state) == list(cluster.processes)
            ):
                others = _other_users(state_dir)
                if others:
                    _say(f"leaving the control plane running for {len(others)} other session(s)")
                else:
                    stopped = _down_locked(state_dir)
                    _say(f"stopped {', '.join(stopped) or 'nothing (already gone)'}")
