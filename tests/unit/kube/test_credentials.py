"""Credentials read anew when asked (issue 13 item 11) and kubeconfig exec plugins (item 12).

The exec plugins here are small Python scripts run as real processes, as client-go runs
them: ``KUBERNETES_EXEC_INFO`` in, an ``ExecCredential`` out.
"""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kopf
import pytest
import yaml
from kopf._cogs.structs.credentials import Vault  # kopf's own vault, as the operator runs it
from kopf._core.intents.causes import Activity

from heartbeat_operator.engine.monitors import MonitorTable
from heartbeat_operator.kube import watching
from heartbeat_operator.kube.credentials import Credentials, CredentialsError

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


# --- in a pod: the ServiceAccount's token file ------------------------------------------


def service_account(directory: Path, token: str) -> Path:
    directory.mkdir(exist_ok=True)
    (directory / "token").write_text(token + "\n")
    (directory / "namespace").write_text("heartbeat-system")
    return directory


def test_a_rotated_service_account_token_is_read_again(tmp_path: Path) -> None:
    directory = service_account(tmp_path / "sa", "first-token")
    credentials = Credentials(
        service_account_dir=directory,
        environ={"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"},
    )
    info = credentials.get()
    assert (info.server, info.token, info.default_namespace) == (
        "https://10.0.0.1:443",
        "first-token",
        "heartbeat-system",
    )
    (directory / "token").write_text("second-token\n")  # what the kubelet does, hourly
    assert credentials.get().token == "second-token"


async def test_kopf_takes_the_rotated_token_after_a_401(tmp_path: Path) -> None:
    """Kopf's vault keeps refused credentials out: a login handler that returned the
    start-up ones again made kopf stop with "Ran out of valid credentials" (item 11)."""
    directory = service_account(tmp_path / "sa", "first-token")
    login = Credentials(service_account_dir=directory, environ={}).kopf_login()
    vault = Vault()
    await vault.populate({"credentials": login()})
    (key, item) = vault.select()
    (directory / "token").write_text("second-token\n")

    async def reauthenticate() -> None:  # kopf's authentication activity, in short
        await vault.wait_for_emptiness()
        await vault.populate({"credentials": login()})

    activity = asyncio.create_task(reauthenticate())
    await vault.invalidate(key, item.info, exc=RuntimeError("401"))
    await activity
    assert vault.select()[1].info.token == "second-token"


def test_the_operators_kopf_login_handler_reads_the_token_again(tmp_path: Path) -> None:
    directory = service_account(tmp_path / "sa", "first-token")
    login = Credentials(service_account_dir=directory, environ={}).kopf_login()
    registry = watching.build_registry(MonitorTable(), login)
    (handler,) = registry._activities.get_handlers(activity=Activity.AUTHENTICATION)
    assert handler.fn().token == "first-token"
    (directory / "token").write_text("second-token\n")
    assert handler.fn().token == "second-token"


# --- out of cluster: kubeconfig, exec plugins --------------------------------------------


PLUGIN = """\
#!{python}
import json, os, sys
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "runs.jsonl"), "a") as log:
    log.write(os.environ["KUBERNETES_EXEC_INFO"] + "\\n")
settings = json.load(open(os.path.join(here, "answer.json")))
if settings.get("fail"):
    print("token service unreachable", file=sys.stderr)
    sys.exit(3)
info = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
status = {{"token": open(os.path.join(here, "token")).read().strip()}}
if settings.get("expires"):
    status["expirationTimestamp"] = settings["expires"]
print(json.dumps({{"apiVersion": info["apiVersion"], "kind": "ExecCredential",
                  "status": status}}))
"""


class Plugin:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        script = self.dir / "plugin.py"
        script.write_text(PLUGIN.format(python=sys.executable))
        script.chmod(0o755)
        self.answer()
        self.token("token-1")

    def token(self, value: str) -> None:
        (self.dir / "token").write_text(value)

    def answer(self, **settings: Any) -> None:
        (self.dir / "answer.json").write_text(json.dumps(settings))

    @property
    def runs(self) -> list[dict[str, Any]]:
        path = self.dir / "runs.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        return [json.loads(line) for line in lines]


def kubeconfig(path: Path, exec_stanza: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "eks",
                "contexts": [{"name": "eks", "context": {"cluster": "c", "user": "u"}}],
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {
                            "server": "https://api.example:6443",
                            "certificate-authority": "ca.crt",  # relative to the file
                        },
                    }
                ],
                "users": [{"name": "u", "user": {"exec": exec_stanza}}],
            }
        )
    )
    return path


@pytest.fixture
def plugin(tmp_path: Path) -> Plugin:
    return Plugin(tmp_path / "kube" / "bin")


def exec_credentials(tmp_path: Path, now: list[datetime], **stanza: Any) -> Credentials:
    config = kubeconfig(
        tmp_path / "kube" / "config",
        {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": "./bin/plugin.py",  # relative: from the kubeconfig's directory
            "interactiveMode": "Never",
            **stanza,
        },
    )
    return Credentials(
        service_account_dir=tmp_path / "no-sa",
        environ={"KUBECONFIG": str(config), "PATH": "/usr/bin:/bin"},
        now=lambda: now[0],
    )


@pytest.mark.parametrize(
    "api_version", ["client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"]
)
def test_an_exec_plugins_token_is_used(tmp_path: Path, plugin: Plugin, api_version: str) -> None:
    credentials = exec_credentials(tmp_path, [NOW], apiVersion=api_version)
    info = credentials.get()
    assert info.token == "token-1"
    assert info.server == "https://api.example:6443"
    assert info.ca_path == str(tmp_path / "kube" / "ca.crt")
    assert info.as_http_headers()["Authorization"] == "Bearer token-1"
    (run,) = plugin.runs
    assert run == {
        "apiVersion": api_version,
        "kind": "ExecCredential",
        "spec": {"interactive": False},
    }


def test_the_token_is_kept_until_it_expires(tmp_path: Path, plugin: Plugin) -> None:
    now = [NOW]
    plugin.answer(expires="2026-12-04T12:15:00Z")
    credentials = exec_credentials(tmp_path, now)
    first = credentials.get()
    assert first.expiration == datetime(2026, 12, 4, 12, 15, tzinfo=UTC)  # kopf re-logs then
    plugin.token("token-2")
    assert credentials.get().token == "token-1"  # cached: one run
    assert len(plugin.runs) == 1
    now[0] = NOW + timedelta(minutes=15)
    assert credentials.get().token == "token-2"  # expired: run again
    assert len(plugin.runs) == 2


def test_a_refused_token_runs_the_plugin_again(tmp_path: Path, plugin: Plugin) -> None:
    plugin.answer(expires="2026-12-04T13:00:00Z")
    credentials = exec_credentials(tmp_path, [NOW])
    login = credentials.kopf_login()
    assert login().token == "token-1"  # kopf's first login shares get()'s cache
    plugin.token("token-2")
    assert credentials.get(refresh=True).token == "token-2"  # after a 401
    plugin.token("token-3")
    assert login().token == "token-3"  # kopf asks again only after a 401 or at expiry
    assert len(plugin.runs) == 3


def test_cluster_info_and_env_reach_the_plugin(tmp_path: Path, plugin: Plugin) -> None:
    (tmp_path / "kube" / "ca.crt").write_bytes(b"CA PEM")
    credentials = exec_credentials(
        tmp_path,
        [NOW],
        provideClusterInfo=True,
        env=[{"name": "AWS_PROFILE", "value": "prod"}],
        args=["--region", "eu-west-1"],
    )
    credentials.get()
    (run,) = plugin.runs
    cluster = run["spec"]["cluster"]
    assert cluster["server"] == "https://api.example:6443"
    assert cluster["certificate-authority-data"] == "Q0EgUEVN"  # base64 of the file


def test_a_failing_plugin_says_why_without_its_output(tmp_path: Path, plugin: Plugin) -> None:
    plugin.answer(fail=True)
    credentials = exec_credentials(tmp_path, [NOW])
    with pytest.raises(CredentialsError, match="exited 3: token service unreachable"):
        credentials.get()
    assert isinstance(CredentialsError("x"), kopf.LoginError)


def test_a_missing_plugin_shows_its_install_hint(tmp_path: Path) -> None:
    credentials = exec_credentials(
        tmp_path, [NOW], command="aws-iam-nowhere", installHint="install the AWS CLI"
    )
    with pytest.raises(CredentialsError, match="not found: install the AWS CLI"):
        credentials.get()


def test_an_interactive_only_plugin_is_refused(tmp_path: Path, plugin: Plugin) -> None:
    credentials = exec_credentials(tmp_path, [NOW], interactiveMode="Always")
    with pytest.raises(CredentialsError, match="never prompts"):
        credentials.get()
    assert plugin.runs == []


def test_a_static_token_kubeconfig_still_works(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text(
        textwrap.dedent(
            """\
            apiVersion: v1
            kind: Config
            current-context: dev
            contexts: [{name: dev, context: {cluster: c, user: u, namespace: ns}}]
            clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
            users: [{name: u, user: {tokenFile: token}}]
            """
        )
    )
    (tmp_path / "token").write_text("file-token\n")
    credentials = Credentials(
        service_account_dir=tmp_path / "no-sa", environ={"KUBECONFIG": str(config)}
    )
    info = credentials.get()
    assert (info.token, info.default_namespace) == ("file-token", "ns")
    (tmp_path / "token").write_text("rotated\n")
    assert credentials.get().token == "rotated"


def test_kubectl_order_prefers_the_kubeconfig_and_honours_context(tmp_path: Path) -> None:
    """``kubectl heartbeat`` (issue 16) reads credentials as kubectl does: in a Pod with a
    kubeconfig the kubeconfig wins, and ``--context`` picks another context."""
    config = tmp_path / "config"
    config.write_text(
        textwrap.dedent(
            """\
            apiVersion: v1
            kind: Config
            current-context: dev
            contexts:
            - {name: dev, context: {cluster: c, user: u, namespace: ns}}
            - {name: prod, context: {cluster: c, user: p, namespace: ops}}
            clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
            users: [{name: u, user: {token: dev-token}}, {name: p, user: {token: prod-token}}]
            """
        )
    )
    directory = service_account(tmp_path / "sa", "pod-token")
    environ = {"KUBECONFIG": str(config)}
    operator = Credentials(service_account_dir=directory, environ=environ)
    assert operator.get().token == "pod-token"
    kubectl = Credentials(service_account_dir=directory, environ=environ, kubeconfig_first=True)
    assert kubectl.get().token == "dev-token"
    prod = Credentials(
        service_account_dir=directory, environ=environ, kubeconfig_first=True, context="prod"
    )
    assert (prod.get().token, prod.get().default_namespace) == ("prod-token", "ops")
    in_pod = Credentials(service_account_dir=directory, environ={}, kubeconfig_first=True)
    in_pod._env = lambda: {"HOME": str(tmp_path)}  # type: ignore[method-assign]
    assert in_pod.get().token == "pod-token"  # no kubeconfig: the Pod's ServiceAccount
