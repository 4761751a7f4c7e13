"""The chart's RBAC, proven against the real API server (DESIGN 9.17; issue 7).

1. What the chart's ServiceAccount may do is exactly the list kept here (tests/support/
   charts.py): the API server's own SelfSubjectRulesReview, asked with a TokenRequest
   token of that account, must answer that set and nothing more, cluster-wide and with
   `watchNamespaces`; and spot checks of what it must not do (list Secrets, ...).
2. The operator runs authenticated as that ServiceAccount (a kubeconfig holding the
   token), with the flags the chart's Deployment gives it, and the operator's main
   scenarios (tests/e2e/scenarios.py) pass under it with no request refused by RBAC in its
   log: cluster-wide (the default), with `watchNamespaces`, and with `jobExitCodes: false`.
   `autoWireNamespaceSelector` under `watchNamespaces`: tests/integration/test_coverage.py.

Only the RBAC objects are applied here (ServiceAccount, roles, bindings): the operator runs
as a local process because the control plane has no kubelet.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from heartbeat_operator import devcluster
from tests.e2e.scenarios import SCENARIOS, Monitors, http
from tests.integration.conftest import KubectlRunner, OperatorFactory, OperatorProcess
from tests.support.charts import (
    CLUSTER_GRANTS,
    EXIT_CODE_GRANTS,
    JOURNAL_GRANTS,
    LEASE_GRANTS,
    LOG_GRANTS,
    NAMESPACED_GRANTS,
    PAUSE_API_GRANTS,
    Grant,
    render_text,
)
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

RBAC_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
# What every authenticated user may do (the built-in system:basic-user role).
BASIC_GRANTS: frozenset[Grant] = frozenset(
    {
        ("authorization.k8s.io", "selfsubjectaccessreviews", "create"),
        ("authorization.k8s.io", "selfsubjectrulesreviews", "create"),
        ("authentication.k8s.io", "selfsubjectreviews", "create"),
    }
)
# Things the operator must never be able to do, as `kubectl auth can-i` arguments.
FORBIDDEN = [
    ("list", "secrets"),
    ("watch", "secrets"),
    ("delete", "secrets"),
    ("update", "secrets"),
    ("get", "pods"),
    ("watch", "pods"),
    ("create", "pods"),
    ("patch", "cronjobs.batch"),
    ("update", "cronjobs.batch"),
    ("create", "jobs.batch"),
    ("delete", "jobs.batch"),
    ("update", "heartbeatmonitors.heartbeat.dev"),
    ("deletecollection", "heartbeatmonitors.heartbeat.dev"),
    ("get", "configmaps"),
    ("create", "customresourcedefinitions.apiextensions.k8s.io"),
    ("delete", "namespaces"),
    ("impersonate", "serviceaccounts"),
    ("create", "serviceaccounts/token"),
]


@dataclass
class Install:
    """The chart's RBAC objects applied for one release, and its ServiceAccount's access."""

    release: str
    namespace: str  # the release's
    kubeconfig: Path  # authenticates as the release's ServiceAccount
    kubectl_path: Path
    operator_args: list[str]  # the chart Deployment's flags that don't concern listening

    @property
    def service_account(self) -> str:
        return f"{self.release}-heartbeat-operator"

    def kubectl(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.kubectl_path), "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def granted(self, namespace: str) -> set[Grant]:
        """What the API server says this account may do in ``namespace``."""
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectRulesReview",
            "spec": {"namespace": namespace},
        }
        done = self.kubectl("create", "-f", "-", "-o", "json", input=json.dumps(review))
        assert done.returncode == 0, done.stderr
        status = json.loads(done.stdout)["status"]
        assert not status.get("incomplete"), status.get("evaluationError")
        out: set[Grant] = set()
        for rule in status["resourceRules"]:
            assert not rule.get("resourceNames"), rule
            for group in rule.get("apiGroups") or ():
                for resource in rule.get("resources") or ():
                    for verb in rule.get("verbs") or ():
                        out.add((group, resource, verb))
        return out - BASIC_GRANTS

    def can(self, verb: str, resource: str, namespace: str | None) -> bool:
        where = ["-n", namespace] if namespace else ["--all-namespaces"]
        done = self.kubectl("auth", "can-i", verb, resource, *where)
        return done.stdout.strip() == "yes"


InstallFactory = Callable[..., Install]


def install_rbac(
    dev_cluster: devcluster.Cluster, namespace: str, directory: Path, **values: Any
) -> Install:
    """Apply the chart's RBAC objects for a new release in ``namespace``; mint a token."""
    release = f"rb{uuid.uuid4().hex[:8]}"
    text = render_text(values, release=release, namespace=namespace, include_crds=False)
    rendered = [d for d in yaml.safe_load_all(text) if d]
    docs = [d for d in rendered if d["kind"] in RBAC_KINDS]
    items = {"apiVersion": "v1", "kind": "List", "items": docs}
    dev_cluster.kubectl("apply", "-f", "-", input=json.dumps(items))
    config = dev_cluster.service_account_kubeconfig(
        namespace,
        f"{release}-heartbeat-operator",
        directory / f"{release}.kubeconfig",
        create=False,
    )
    (deployment,) = [d for d in rendered if d["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"][0] == "run"
    # The operator runs with the chart's own flags, except where it listens and the URL
    # base in the Secrets: a local process, pinged by the tests on 127.0.0.1. (The webhook's
    # certificate is a file mounted in the Pod; its listener is not what RBAC is about.)
    local = ("--host=", "--port=", "--metrics-port=", "--external-url=", "--webhook-")
    args = [a for a in container["args"][1:] if not a.startswith(local)]
    return Install(release, namespace, config, dev_cluster.kubectl_path, args)


def uninstall_rbac(dev_cluster: devcluster.Cluster, release: str) -> None:
    """Delete the release's cluster-scoped objects (its namespace goes with the test's)."""
    dev_cluster.kubectl(
        "delete",
        "clusterrole,clusterrolebinding",
        "-l",
        f"app.kubernetes.io/instance={release}",
        "--ignore-not-found",
        "--wait=false",
    )


@pytest.fixture
def install(dev_cluster: devcluster.Cluster, tmp_path: Path) -> Iterator[InstallFactory]:
    """``install(namespace, **values)``: apply the chart's RBAC for a new release there."""
    made: list[Install] = []

    def make(namespace: str, **values: Any) -> Install:
        made.append(install_rbac(dev_cluster, namespace, tmp_path, **values))
        return made[-1]

    yield make
    for sa in made:
        uninstall_rbac(dev_cluster, sa.release)


def make_namespace(api_client: k8s.ApiClient, stem: str) -> str:
    name = f"t-rbac-{stem}-{uuid.uuid4().hex[:8]}"
    k8s.CoreV1Api(api_client).create_namespace(
        k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name))
    )
    return name


def drop_namespace(api_client: k8s.ApiClient, name: str) -> None:
    k8s.CoreV1Api(api_client).delete_namespace(name, propagation_policy="Background")


@pytest.fixture
def other_namespace(api_client: k8s.ApiClient) -> Iterator[str]:
    name = make_namespace(api_client, "other")
    yield name
    drop_namespace(api_client, name)


# --- 1. exactly the design's grants -------------------------------------------------------


def test_cluster_wide_grants_are_exactly_the_design(
    install: InstallFactory, namespace: str, other_namespace: str
) -> None:
    sa = install(namespace)
    everywhere = NAMESPACED_GRANTS | EXIT_CODE_GRANTS | CLUSTER_GRANTS | PAUSE_API_GRANTS
    # The journal is on by default: its Secrets in the operator's namespace (DESIGN 10.7).
    assert sa.granted(namespace) == everywhere | LEASE_GRANTS | JOURNAL_GRANTS
    assert sa.granted(other_namespace) == everywhere
    for verb, resource in FORBIDDEN:
        for where in (other_namespace, None):
            assert not sa.can(verb, resource, where), f"may {verb} {resource} in {where}"
        if resource != "secrets":
            assert not sa.can(verb, resource, namespace), f"may {verb} {resource} there"
    # The Lease only in its own namespace.
    assert sa.can("update", "leases.coordination.k8s.io", namespace)
    for where in (other_namespace, None):
        assert not sa.can("create", "leases.coordination.k8s.io", where)
    # Cluster-wide reads the operator's watches need.
    assert sa.can("list", "heartbeatmonitors.heartbeat.dev", None)
    assert sa.can("watch", "cronjobs.batch", None)
    assert sa.can("list", "pods", None)


def test_the_journal_adds_secrets_in_the_operator_namespace_only(
    install: InstallFactory, namespace: str, other_namespace: str
) -> None:
    sa = install(namespace)  # the journal is on by default
    for verb in ("list", "watch", "delete", "update"):
        assert sa.can(verb, "secrets", namespace)
        for where in (other_namespace, None):  # DESIGN 10.7: never cluster-wide
            assert not sa.can(verb, "secrets", where), f"may {verb} secrets in {where}"
    # Turned off, no Secrets Role at all; the pause API's reviews stay (issue 16).
    without = install(namespace, journal=False)
    everywhere = NAMESPACED_GRANTS | EXIT_CODE_GRANTS | CLUSTER_GRANTS | PAUSE_API_GRANTS
    assert without.granted(namespace) == everywhere | LEASE_GRANTS
    for verb in ("list", "watch", "delete", "update"):
        assert not without.can(verb, "secrets", namespace), f"may {verb} secrets"


def test_without_exit_codes_no_pods_at_all(
    install: InstallFactory, namespace: str, other_namespace: str
) -> None:
    sa = install(namespace, jobExitCodes=False)
    assert sa.granted(other_namespace) == NAMESPACED_GRANTS | CLUSTER_GRANTS | PAUSE_API_GRANTS
    assert not sa.can("list", "pods", other_namespace)


def test_capture_logs_adds_pods_log_and_nothing_else(
    install: InstallFactory, namespace: str, other_namespace: str
) -> None:
    sa = install(namespace, captureLogs=True)
    assert sa.granted(other_namespace) == (
        NAMESPACED_GRANTS | EXIT_CODE_GRANTS | LOG_GRANTS | CLUSTER_GRANTS | PAUSE_API_GRANTS
    )
    where = ["-n", other_namespace]
    done = sa.kubectl("auth", "can-i", "get", "pods", "--subresource=log", *where)
    assert done.stdout.strip() == "yes"
    assert not sa.can("get", "pods", other_namespace)  # the log, never the Pod itself
    # and without it (the default), no Pod log is readable
    default = install(namespace)
    done = default.kubectl("auth", "can-i", "get", "pods", "--subresource=log", *where)
    assert done.stdout.strip() == "no"


def test_watch_namespaces_grant_only_there(
    install: InstallFactory, namespace: str, other_namespace: str
) -> None:
    sa = install(namespace, watchNamespaces=[namespace])
    assert sa.granted(namespace) == (
        NAMESPACED_GRANTS
        | EXIT_CODE_GRANTS
        | CLUSTER_GRANTS
        | PAUSE_API_GRANTS
        | LEASE_GRANTS
        | JOURNAL_GRANTS
    )
    assert sa.granted(other_namespace) == CLUSTER_GRANTS | PAUSE_API_GRANTS
    assert not sa.can("list", "heartbeatmonitors.heartbeat.dev", None)
    assert not sa.can("get", "secrets", other_namespace)


def test_aggregated_roles_reach_view_and_edit_users(
    kubectl: KubectlRunner, install: InstallFactory, namespace: str
) -> None:
    install(namespace)

    # The built-in roles gain the chart's rules through aggregation (never /status).
    def rules(role: str) -> set[Grant]:
        got = json.loads(kubectl("get", "clusterrole", role, "-o", "json").stdout)
        return {
            (g, r, v)
            for rule in got.get("rules") or ()
            for g in rule.get("apiGroups") or ()
            for r in rule.get("resources") or ()
            for v in rule.get("verbs") or ()
            if g == "heartbeat.dev"
        }

    view = wait_for(lambda: rules("view"), timeout=15, what="view aggregating heartbeatmonitors")
    assert view == {("heartbeat.dev", "heartbeatmonitors", v) for v in ("get", "list", "watch")}
    edit = wait_for(lambda: rules("edit"), timeout=15, what="edit aggregating heartbeatmonitors")
    assert ("heartbeat.dev", "heartbeatmonitors", "patch") in edit
    assert not any(r.endswith("/status") for _, r, _ in view | edit)


# --- 2. the operator under its ServiceAccount -------------------------------------------
#
# One operator per mode, shared by that mode's scenarios (a class), and stopped before the
# other mode starts: two operators with different Leases must never watch the same monitors.


@dataclass
class Running:
    operator: OperatorProcess
    install: Install
    monitors: Callable[[], Monitors]  # a fresh namespace's monitors (or the watched one's)


def forbidden_lines(log: str) -> list[str]:
    """Requests RBAC refused (not other 403s, such as writes into a terminating namespace,
    which a cluster-wide operator meets when other tests' namespaces go away)."""
    return [line for line in log.splitlines() if re.search(r'forbidden: User ".*" cannot', line)]


@contextlib.contextmanager
def operator_as_service_account(
    dev_cluster: devcluster.Cluster,
    api_client: k8s.ApiClient,
    directory: Path,
    *,
    watch_namespace: bool,
    **values: Any,
) -> Iterator[Running]:
    namespaces: list[str] = []

    def namespace(stem: str) -> str:
        namespaces.append(make_namespace(api_client, stem))
        return namespaces[-1]

    release_namespace = namespace("release")
    watched = namespace("watched") if watch_namespace else None
    if watched:
        values["watchNamespaces"] = [watched]
    sa = install_rbac(dev_cluster, release_namespace, directory, **values)
    factory = OperatorFactory(kubeconfig=dev_cluster.kubeconfig, log_dir=directory)
    # --lease-namespace (the release's) and --namespace (watchNamespaces) come from the chart.
    args = sa.operator_args
    assert f"--lease-namespace={release_namespace}" in args

    def monitors() -> Monitors:
        where = watched or namespace("monitors")
        return Monitors(api_client, where, lease_namespace=release_namespace)

    try:
        operator = factory.start(*args, kubeconfig=sa.kubeconfig, name=sa.release)
        yield Running(operator, sa, monitors)
    finally:
        factory.stop_all()
        uninstall_rbac(dev_cluster, sa.release)
        for name in namespaces:
            drop_namespace(api_client, name)


def run_scenario(running: Running, scenario: str) -> None:
    try:
        SCENARIOS[scenario](running.monitors())
    except BaseException:
        print(f"--- operator log (tail)\n{running.operator.log_text()[-6000:]}")
        raise
    assert running.operator.is_running()
    assert forbidden_lines(running.operator.log_text()) == []


@pytest.fixture(scope="class")
def cluster_wide(
    dev_cluster: devcluster.Cluster,
    api_client: k8s.ApiClient,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Running]:
    directory = tmp_path_factory.mktemp("rbac-cluster-wide")
    with operator_as_service_account(
        dev_cluster, api_client, directory, watch_namespace=False
    ) as running:
        yield running


@pytest.fixture(scope="class")
def watching_one_namespace(
    dev_cluster: devcluster.Cluster,
    api_client: k8s.ApiClient,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Running]:
    directory = tmp_path_factory.mktemp("rbac-watch-namespaces")
    with operator_as_service_account(
        dev_cluster, api_client, directory, watch_namespace=True
    ) as running:
        yield running


@pytest.fixture(scope="class")
def without_exit_codes(
    dev_cluster: devcluster.Cluster,
    api_client: k8s.ApiClient,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Running]:
    directory = tmp_path_factory.mktemp("rbac-without-exit-codes")
    with operator_as_service_account(
        dev_cluster, api_client, directory, watch_namespace=False, jobExitCodes=False
    ) as running:
        yield running


class TestClusterWide:
    """The chart's default: every namespace watched. The monitors live outside the
    release's namespace, as users' monitors do."""

    @pytest.mark.parametrize("scenario", sorted(SCENARIOS))
    def test_scenario_as_service_account(self, cluster_wide: Running, scenario: str) -> None:
        run_scenario(cluster_wide, scenario)


class TestWatchNamespaces:
    """`watchNamespaces`: Roles in the watched namespace only; the operator is told the
    same (`--namespace`)."""

    @pytest.mark.parametrize(
        "scenario",
        [
            "token-secret",
            "failures-and-exit-codes",
            "pause-and-resume",
            "annotated-cronjob",
            "one-leader",
        ],
    )
    def test_scenario_as_service_account(
        self, watching_one_namespace: Running, scenario: str
    ) -> None:
        run_scenario(watching_one_namespace, scenario)


class TestWithoutExitCodes:
    """`jobExitCodes: false`: no `pods: list` grant, and the chart tells the operator
    (`--no-exit-codes`) not to look, so a failed Job still reports, without a 403."""

    @pytest.mark.parametrize("scenario", ["annotated-cronjob", "failures-and-exit-codes"])
    def test_scenario_as_service_account(self, without_exit_codes: Running, scenario: str) -> None:
        assert "--no-exit-codes" in without_exit_codes.install.operator_args
        run_scenario(without_exit_codes, scenario)


def test_watches_refused_by_rbac_are_listed_again_until_granted(
    dev_cluster: devcluster.Cluster, api_client: k8s.ApiClient, tmp_path: Path
) -> None:
    """Kopf's list refused with 403 (a `watchNamespaces` RoleBinding applied after the
    Deployment, or re-applied by an upgrade) used to stop the replica: kopf ends every
    watch when one fails, and the process exited with it. Now the replica stays up, says
    so, lists again with backoff, and once the grant is back it turns ready and serves a
    monitor created meanwhile, without a restart."""
    release_namespace = make_namespace(api_client, "release")
    watched = make_namespace(api_client, "watched")
    sa = install_rbac(dev_cluster, release_namespace, tmp_path, watchNamespaces=[watched])
    selector = f"app.kubernetes.io/instance={sa.release}"
    listed = dev_cluster.kubectl("get", "rolebindings", "-n", watched, "-l", selector, "-o", "json")
    bindings = json.loads(listed.stdout)
    assert bindings["items"], "the chart binds the watched namespace's Role"
    for item in bindings["items"]:
        for field in ("resourceVersion", "uid", "creationTimestamp", "managedFields"):
            item["metadata"].pop(field, None)
    dev_cluster.kubectl("delete", "rolebindings", "-n", watched, "-l", selector)
    factory = OperatorFactory(kubeconfig=dev_cluster.kubeconfig, log_dir=tmp_path)
    try:
        operator = factory.start(
            *sa.operator_args, kubeconfig=sa.kubeconfig, name=sa.release, wait_ready=False
        )
        # Kopf retries each request 9 times over ~55 s (its error_backoffs) before its
        # watches end.
        wait_for(
            lambda: "listing and watching again" in operator.log_text(),
            timeout=120,
            what="the replica saying it lists and watches again",
        )
        assert operator.is_running(), operator.log_text()[-3000:]
        assert forbidden_lines(operator.log_text()), "the 403 is what the log names"

        dev_cluster.kubectl("apply", "-f", "-", input=json.dumps(bindings))
        operator.wait_ready(timeout=90)
        monitors = Monitors(api_client, watched, lease_namespace=release_namespace)
        monitors.create("after-grant", {"period": "1h"})
        monitors.wait_ready("after-grant")
        reply = http(monitors.url("after-grant"))
        assert (reply.status, reply.body) == (200, "OK")
        monitors.wait_state("after-grant", "Healthy")

        with urllib.request.urlopen(f"{operator.metrics_url}/metrics", timeout=10) as response:
            text = response.read().decode()
        (line,) = [x for x in text.splitlines() if x.startswith("heartbeat_watch_restarts_total")]
        assert float(line.split()[-1]) >= 1
        assert operator.is_running() and operator.process.returncode is None
    finally:
        factory.stop_all()
        uninstall_rbac(dev_cluster, sa.release)
        for name in (release_namespace, watched):
            drop_namespace(api_client, name)
