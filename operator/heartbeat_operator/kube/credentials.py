"""Who the operator is to the API server: its ServiceAccount in a pod, else the kubeconfig.

Credentials are read again whenever they are asked for, never kept from start-up (issue 13
item 11): the kubelet rotates a pod's projected ServiceAccount token file (hourly), and the
token read at start-up stops working. Kopf asks (its login handler) at start-up, after a
401 and when credentials expire; ``KubeClient`` asks after a 401 and at expiry.

Out of cluster, a kubeconfig user may name an ``exec`` credential plugin (EKS
``aws eks get-token``, GKE ``gke-gcloud-auth-plugin``, AKS ``kubelogin``; issue 13 item
12). It is run as client-go runs it (``client.authentication.k8s.io`` ``v1`` and
``v1beta1``: ``KUBERNETES_EXEC_INFO`` in, an ``ExecCredential`` on stdout), never
interactively, and its answer is kept until its ``expirationTimestamp`` (then the
``ConnectionInfo`` carries that expiration) or until the API server refuses it. Neither
the token nor the plugin's output ever reaches a log line or an error message.
"""

from __future__ import annotations

import base64
import datetime
import json
import logging
import os
import subprocess
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kopf
import yaml

from heartbeat_operator.domain.timefmt import parse_time

logger = logging.getLogger(__name__)

#: Where Kubernetes mounts a pod's ServiceAccount (token, ca.crt, namespace).
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
#: The API versions of ExecCredential we speak (client-go's; v1alpha1 was removed in 1.24).
EXEC_API_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")
#: Seconds an exec plugin may take: cloud plugins call a token service (a few seconds);
#: one that waits for a human would hang the operator's start-up instead.
EXEC_TIMEOUT = 60.0


class CredentialsError(kopf.LoginError):
    """No credentials, or an exec plugin that failed; the message never holds a secret."""


@dataclass(frozen=True)
class _Issued:
    """What an exec plugin answered, kept until it expires or is refused."""

    token: str | None
    certificate: str | None
    key: str | None
    expiration: datetime.datetime | None


class Credentials:
    """``get()`` gives the credentials to use now; thread-safe (kopf asks from its threads).

    ``get(refresh=True)`` means the last ones were refused: an exec plugin runs again even
    if its answer has not expired.
    """

    def __init__(
        self,
        *,
        service_account_dir: Path = SERVICE_ACCOUNT_DIR,
        environ: Mapping[str, str] | None = None,
        now: Callable[[], datetime.datetime] | None = None,
        kubeconfig_first: bool = False,
        context: str | None = None,
    ) -> None:
        # kubectl's order (``kubectl heartbeat``, issue 16): a kubeconfig wins over the
        # Pod's ServiceAccount, and ``--context`` picks a context other than the current.
        self._kubeconfig_first = kubeconfig_first
        self._context = context
        self._service_account_dir = service_account_dir
        self._environ = environ
        self._now = now or (lambda: datetime.datetime.now(datetime.UTC))
        self._lock = threading.Lock()
        self._issued: dict[str, _Issued] = {}  # by the exec stanza (JSON), one per user

    def get(self, *, refresh: bool = False) -> kopf.ConnectionInfo:
        with self._lock:
            if self._kubeconfig_first:
                info = self._kubeconfig(refresh=refresh) or self._service_account()
            else:
                info = self._service_account() or self._kubeconfig(refresh=refresh)
        if info is None:
            raise CredentialsError("no ServiceAccount token and no kubeconfig found")
        return info

    def kopf_login(self) -> Callable[..., kopf.ConnectionInfo]:
        """A kopf login handler: the first call may use what ``get`` already fetched; kopf
        calls again only after a 401 or at expiry, so later calls fetch anew."""
        calls = 0

        def login(**_: Any) -> kopf.ConnectionInfo:
            nonlocal calls
            calls += 1
            return self.get(refresh=calls > 1)

        return login

    # --- in a pod -----------------------------------------------------------------------

    def _service_account(self) -> kopf.ConnectionInfo | None:
        directory = self._service_account_dir
        try:
            token = (directory / "token").read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        try:
            namespace = (directory / "namespace").read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            namespace = ""
        ca = directory / "ca.crt"
        return kopf.ConnectionInfo(
            server=self._in_cluster_server(),
            ca_path=str(ca) if ca.exists() else None,
            token=token or None,
            default_namespace=namespace or None,
        )

    def _in_cluster_server(self) -> str:
        # As client-go's rest.InClusterConfig: the Service's address from the environment
        # Kubernetes gives every container, else the Service's name (kopf's default).
        environ = self._env()
        host = environ.get("KUBERNETES_SERVICE_HOST", "")
        port = environ.get("KUBERNETES_SERVICE_PORT", "")
        if not host or not port:
            return "https://kubernetes.default.svc"
        return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"

    def _env(self) -> Mapping[str, str]:
        return os.environ if self._environ is None else self._environ

    # --- out of cluster -----------------------------------------------------------------

    def _kubeconfig(self, *, refresh: bool) -> kopf.ConnectionInfo | None:
        config = _load_kubeconfig(self._env(), context_name=self._context)
        if config is None:
            return None
        context, cluster, user = config
        fields: dict[str, Any] = {
            "server": cluster.get("server"),
            "ca_path": _path(cluster, "certificate-authority"),
            "ca_data": cluster.get("certificate-authority-data"),
            "insecure": cluster.get("insecure-skip-tls-verify"),
            "proxy_url": cluster.get("proxy-url"),
            "certificate_path": _path(user, "client-certificate"),
            "certificate_data": user.get("client-certificate-data"),
            "private_key_path": _path(user, "client-key"),
            "private_key_data": user.get("client-key-data"),
            "username": user.get("username"),
            "password": user.get("password"),
            "token": user.get("token") or _token_file(user),
            "default_namespace": context.get("namespace"),
        }
        if not fields["token"]:  # an old-style auth-provider's cached token, as kopf reads it
            fields["token"] = ((user.get("auth-provider") or {}).get("config") or {}).get(
                "access-token"
            )
        if user.get("exec"):
            issued = self._exec(user["exec"], user["_dir"], cluster, refresh=refresh)
            if issued.token:
                fields["token"] = issued.token
            if issued.certificate and issued.key:
                fields.update(
                    certificate_path=None,
                    private_key_path=None,
                    certificate_data=issued.certificate,
                    private_key_data=issued.key,
                )
            fields["expiration"] = issued.expiration
        return kopf.ConnectionInfo(**fields)

    def _exec(
        self, stanza: Mapping[str, Any], base: Path, cluster: Mapping[str, Any], *, refresh: bool
    ) -> _Issued:
        cache_key = json.dumps(stanza, sort_keys=True, default=str)
        issued = self._issued.get(cache_key)
        if issued is not None and not refresh and not self._expired(issued):
            return issued
        issued = run_exec_plugin(stanza, base, cluster, environ=self._env())
        self._issued[cache_key] = issued
        return issued

    def _expired(self, issued: _Issued) -> bool:
        return issued.expiration is not None and self._now() >= issued.expiration


def run_exec_plugin(
    stanza: Mapping[str, Any],
    base: Path,
    cluster: Mapping[str, Any],
    *,
    environ: Mapping[str, str],
) -> _Issued:
    """Run a kubeconfig user's ``exec`` plugin once; what its ExecCredential says."""
    api_version = str(stanza.get("apiVersion") or "")
    if api_version not in EXEC_API_VERSIONS:
        raise CredentialsError(
            f"exec plugin apiVersion {api_version!r} is not one of {', '.join(EXEC_API_VERSIONS)}"
        )
    if stanza.get("interactiveMode") == "Always":
        raise CredentialsError(
            "exec plugin needs interactiveMode Always; the operator never prompts: "
            "log in beforehand or use a plugin mode that needs no terminal"
        )
    command = str(stanza.get("command") or "")
    if not command:
        raise CredentialsError("exec plugin without a command")
    if os.sep in command and not os.path.isabs(command):
        command = str(base / command)  # client-go: relative to the kubeconfig's directory
    spec: dict[str, Any] = {"interactive": False}
    if stanza.get("provideClusterInfo"):
        spec["cluster"] = _cluster_info(cluster)
    env = dict(environ)
    for item in stanza.get("env") or ():
        env[str(item["name"])] = str(item["value"])
    env["KUBERNETES_EXEC_INFO"] = json.dumps(
        {"apiVersion": api_version, "kind": "ExecCredential", "spec": spec}
    )
    argv = [command, *(str(a) for a in stanza.get("args") or ())]
    try:
        done = subprocess.run(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=EXEC_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        hint = stanza.get("installHint")
        raise CredentialsError(
            f"exec plugin {command!r} not found" + (f": {hint}" if hint else "")
        ) from None
    except subprocess.TimeoutExpired:
        raise CredentialsError(
            f"exec plugin {command!r} did not answer within {EXEC_TIMEOUT:g} s"
        ) from None
    if done.returncode != 0:
        # Its stderr is for humans (and holds no credential by the protocol); stdout may.
        detail = done.stderr.decode(errors="replace").strip()[-500:]
        raise CredentialsError(
            f"exec plugin {command!r} exited {done.returncode}" + (f": {detail}" if detail else "")
        )
    try:
        answer = json.loads(done.stdout)
    except ValueError:
        raise CredentialsError(f"exec plugin {command!r} printed no JSON") from None
    if not isinstance(answer, dict) or answer.get("kind") != "ExecCredential":
        raise CredentialsError(f"exec plugin {command!r} printed no ExecCredential")
    if answer.get("apiVersion") != api_version:
        raise CredentialsError(
            f"exec plugin {command!r} answered {answer.get('apiVersion')!r}, "
            f"asked for {api_version!r}"
        )
    status = answer.get("status") or {}
    token = status.get("token") or None
    certificate = status.get("clientCertificateData") or None
    key = status.get("clientKeyData") or None
    if not token and not (certificate and key):
        raise CredentialsError(f"exec plugin {command!r} returned neither a token nor a cert")
    expiration = None
    if status.get("expirationTimestamp"):
        try:
            expiration = parse_time(str(status["expirationTimestamp"]))
        except ValueError:
            raise CredentialsError(
                f"exec plugin {command!r} returned an unreadable expirationTimestamp"
            ) from None
    return _Issued(token, certificate, key, expiration)


def _cluster_info(cluster: Mapping[str, Any]) -> dict[str, Any]:
    """The ``spec.cluster`` of KUBERNETES_EXEC_INFO (provideClusterInfo: true)."""
    info: dict[str, Any] = {"server": cluster.get("server")}
    ca_data = cluster.get("certificate-authority-data")
    ca_path = _path(cluster, "certificate-authority")
    if not ca_data and ca_path:
        ca_data = base64.b64encode(Path(ca_path).read_bytes()).decode()
    if ca_data:
        info["certificate-authority-data"] = ca_data
    for key in ("tls-server-name", "insecure-skip-tls-verify", "proxy-url"):
        if cluster.get(key) is not None:
            info[key] = cluster[key]
    extension = next(
        (
            e.get("extension")
            for e in cluster.get("extensions") or ()
            if e.get("name") == "client.authentication.k8s.io/exec"
        ),
        None,
    )
    if extension is not None:
        info["config"] = extension
    return info


def _load_kubeconfig(
    environ: Mapping[str, str], *, context_name: str | None = None
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]] | None:
    """The current context, its cluster and user, merged from ``KUBECONFIG`` as kubectl
    merges (the first file to set a value wins). Each cluster and user remembers the
    directory of the file that defined it (``_dir``): relative paths count from there."""
    paths_text = environ.get("KUBECONFIG", "")
    if not paths_text:
        default = Path(environ.get("HOME") or os.path.expanduser("~")) / ".kube" / "config"
        if not default.exists():
            return None
        paths_text = str(default)
    paths = [Path(os.path.expanduser(p.strip())) for p in paths_text.split(os.pathsep) if p.strip()]
    current: str | None = None
    contexts: dict[str, dict[str, Any]] = {}
    clusters: dict[str, dict[str, Any]] = {}
    users: dict[str, dict[str, Any]] = {}
    for path in paths:
        try:
            config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            continue  # kubectl skips missing files of a KUBECONFIG list
        current = current or config.get("current-context")
        for table, entries, field in (
            (contexts, config.get("contexts"), "context"),
            (clusters, config.get("clusters"), "cluster"),
            (users, config.get("users"), "user"),
        ):
            for item in entries or ():
                if item.get("name") not in table:
                    table[item["name"]] = {**(item.get(field) or {}), "_dir": path.parent}
    current = context_name or current
    if not current:
        raise CredentialsError("the kubeconfig sets no current context")
    try:
        context = contexts[current]
        return context, clusters[context["cluster"]], users[context.get("user", "")]
    except KeyError as missing:
        raise CredentialsError(f"kubeconfig context {current!r}: {missing} not found") from None


def _path(entry: Mapping[str, Any], key: str) -> str | None:
    value = entry.get(key)
    if not value:
        return None
    path = Path(os.path.expanduser(str(value)))
    return str(path if path.is_absolute() else Path(entry["_dir"]) / path)


def _token_file(user: Mapping[str, Any]) -> str | None:
    path = _path(user, "tokenFile")
    if path is None:
        return None
    return Path(path).read_text(encoding="utf-8").strip() or None
