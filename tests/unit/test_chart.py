"""The Helm chart, rendered by the pinned helm binary, and the Dockerfile it runs.

What a user of the chart would notice: `helm lint`/`helm template` are clean with the
defaults and with every option on; a misspelled value fails; the operator Pods are
hardened; the flags the Deployment passes are flags the operator accepts and mean what the
values say; RBAC is exactly DESIGN 9.17; the chart's copies of the CRDs and alert rules are
the sources in deploy/; the default image is the one the Dockerfile builds.

helm comes from hack/build-helm.sh (tests/support/charts.py): built from its Go module and
cached outside the tree; the first build takes about a minute, later runs find the binary.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import subprocess
import tomllib
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from tests.support.charts import (
    ALL_ON,
    CHART,
    CLUSTER_GRANTS,
    EXIT_CODE_GRANTS,
    JOURNAL_GRANTS,
    KUBE_VERSION,
    LEASE_GRANTS,
    LOG_GRANTS,
    NAMESPACED_GRANTS,
    PAUSE_API_GRANTS,
    ROOT,
    HelmError,
    grants,
    helm_binary,
    one,
    render,
    run_helm,
)

from heartbeat_operator.admission.app import PATH
from heartbeat_operator.settings import add_arguments, build_settings


@pytest.fixture(scope="module", autouse=True)
def helm() -> str:
    """Build (first time only) the pinned helm before any test renders."""
    return helm_binary()


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = one(docs, "Deployment")
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    assert isinstance(c, dict)
    return c


def settings_from(c: dict[str, Any], env: Mapping[str, str] | None = None) -> Any:
    """Parse the container's args with the operator's own flags, as `run` would."""
    assert c["args"][0] == "run"
    parser = argparse.ArgumentParser(prog="heartbeat-operator run", exit_on_error=False)
    add_arguments(parser)
    args = parser.parse_args(c["args"][1:])
    return build_settings(args, dict(env or {}), namespace_file=Path("/nonexistent"))


# --- helm lint and template -------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [{}, ALL_ON, {**ALL_ON, "watchNamespaces": ["team-a", "team-b"], "jobExitCodes": False}],
    ids=["defaults", "all-on", "all-on-namespaced"],
)
def test_lint_is_clean(values: dict[str, Any]) -> None:
    out = run_helm("lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION, values=values)
    assert "1 chart(s) linted, 0 chart(s) failed" in out
    # Not even INFO lines (a missing icon, say): clean means clean.
    assert not re.search(r"\[(INFO|WARNING|ERROR)\]", out), out


def test_defaults_render_the_core_objects_and_nothing_optional() -> None:
    kinds = sorted(d["kind"] for d in render())
    assert kinds == sorted(
        [
            "CustomResourceDefinition",
            "ServiceAccount",
            "ClusterRole",  # the operator's
            "ClusterRole",  # aggregated to view
            "ClusterRole",  # aggregated to edit
            "ClusterRoleBinding",
            "Role",  # the Lease
            "RoleBinding",
            "Role",  # the journal's Secrets, in the operator's namespace (DESIGN 10.7)
            "RoleBinding",
            "Service",  # pings
            "Service",  # metrics
            "Deployment",
            "PodDisruptionBudget",
            "Secret",  # the admission webhook's generated certificate
            "Service",  # the admission webhook
            "ValidatingWebhookConfiguration",
        ]
    )


@pytest.mark.parametrize(
    ("release_namespace", "values", "expected"),
    [
        ("default", {}, "heartbeat-system"),  # `helm install` without -n (DESIGN 10.8.17)
        ("ops", {}, "ops"),
        ("default", {"namespace": "default"}, "default"),
        ("default", {"namespace": "monitoring"}, "monitoring"),
    ],
)
def test_the_operator_gets_a_namespace_of_its_own(
    release_namespace: str, values: dict[str, Any], expected: str
) -> None:
    docs = render(values, namespace=release_namespace)
    namespaces = {d["metadata"]["namespace"] for d in docs if "namespace" in d["metadata"]}
    assert namespaces == {expected}
    created = [d["metadata"]["name"] for d in docs if d["kind"] == "Namespace"]
    assert created == ([] if expected == release_namespace else [expected])
    settings = settings_from(container(docs), {"POD_NAMESPACE": expected})
    assert settings.watching.lease_namespace == expected
    assert f".{expected}.svc:" in settings.server.external_url


def test_every_option_renders() -> None:
    kinds = {d["kind"] for d in render(ALL_ON)}
    assert {"ServiceMonitor", "PrometheusRule", "ConfigMap", "Ingress", "NetworkPolicy"} <= kinds


def test_chart_needs_kubernetes_1_29() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["kubeVersion"] == ">=1.29.0-0"
    with pytest.raises(HelmError, match="kubeVersion"):
        run_helm("template", "hb", str(CHART), "--kube-version", "1.28.9")


def test_helm_template_needs_no_kube_version_flag() -> None:
    # Issue 17 item 7: the helm `make helm` builds assumes its client-go's Kubernetes
    # (1.34), as a released helm does, not v1.20 below the chart's kubeVersion.
    text = run_helm("template", "hb", str(CHART), values={"image": {"repository": "r/hb"}})
    assert "kind: Deployment" in text


# --- values and their schema ------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"replicaCont": 3}, "replicaCont"),
        ({"image": {"repository": "x", "tagg": "1"}}, "tagg"),
        ({"serviceMonitor": {"enabeld": True}}, "enabeld"),
        ({"monitorMetrics": "some"}, "monitorMetrics"),
        ({"externalURL": "heartbeat.example.com"}, "externalURL"),
        ({"replicaCount": "two"}, "replicaCount"),
        ({"captureLogs": "yes"}, "captureLogs"),
        ({"autoWireNamespaceSelector": ["team=a"]}, "autoWireNamespaceSelector"),
    ],
)
def test_schema_rejects_misspelled_and_invalid_values(
    values: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(HelmError, match=complaint):
        render(values)


def _leaf_paths(lines: list[str]) -> Iterator[tuple[str, bool]]:
    """(dotted key, documented) for every leaf key in values.yaml: documented when a
    comment sits right above the key or above one of its parents."""
    stack: list[tuple[int, str, bool]] = []  # (indent, key, documented)
    previous = ""
    entries: list[tuple[str, bool, int]] = []
    for line in lines:
        match = re.match(r"^(\s*)([A-Za-z_][A-Za-z0-9_]*):", line)
        if match:
            indent = len(match.group(1))
            while stack and stack[-1][0] >= indent:
                stack.pop()
            documented = previous.lstrip().startswith("#") or any(d for _, _, d in stack)
            path = ".".join([k for _, k, _ in stack] + [match.group(2)])
            entries.append((path, documented, indent))
            stack.append((indent, match.group(2), documented))
        if line.strip():
            previous = line
    for i, (path, documented, indent) in enumerate(entries):
        has_children = i + 1 < len(entries) and entries[i + 1][2] > indent
        if not has_children:  # a leaf: the value a user sets
            yield path, documented


def test_every_value_is_commented() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    undocumented = [path for path, documented in _leaf_paths(lines) if not documented]
    assert undocumented == []


def test_schema_and_values_name_the_same_keys() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())

    def walk(v: Mapping[str, Any], s: Mapping[str, Any], where: str) -> None:
        assert s.get("additionalProperties") is False, f"{where or 'top'} accepts unknown keys"
        props = s["properties"]
        assert set(v) == set(props), where
        for key, value in v.items():
            sub = props[key]
            assert "description" in sub, f"{where}{key} has no description"
            if isinstance(value, dict) and sub.get("additionalProperties") is False:
                walk(value, sub, f"{where}{key}.")

    walk(values, schema, "")


# --- the Deployment ---------------------------------------------------------------------


def test_deployment_is_hardened() -> None:
    docs = render()
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert one(docs, "Deployment")["spec"]["replicas"] == 2
    # Only runAsNonRoot and seccomp (issue 17 item 3): OpenShift's restricted-v2 refuses a
    # fixed runAsUser, runAsGroup or fsGroup and assigns its own.
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["serviceAccountName"] == "hb-heartbeat-operator"
    c = container(docs)
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert c["resources"]["requests"].keys() >= {"cpu", "memory"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {
        "ping": 8080,
        "metrics": 8081,
        "webhook": 9443,
    }
    env = {e["name"]: e for e in c["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


# --- rollouts and drains (DESIGN 10.6, fine print 10.8.15) ------------------------------


def test_probes_never_use_the_capped_ping_port() -> None:
    """The ping port's connection cap answers 503 under load: a probe there would restart
    (liveness) or unlist (readiness) a busy replica."""
    c = container(render())
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"]["port"] == "metrics"


def test_prestop_drains_on_the_metrics_port_for_the_delay_before_sigterm() -> None:
    docs = render()
    c = container(docs)
    assert c["lifecycle"]["preStop"] == {"httpGet": {"path": "/drain", "port": "metrics"}}
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    settings = settings_from(c)
    assert settings.server.drain_delay == 10
    assert pod["terminationGracePeriodSeconds"] >= settings.server.drain_delay + 15
    assert settings.server.metrics_port == 8081  # the port the hook and probes name

    longer = render({"preStopDelaySeconds": 30, "terminationGracePeriodSeconds": 45})
    assert settings_from(container(longer)).server.drain_delay == 30
    longer_pod = one(longer, "Deployment")["spec"]["template"]["spec"]
    assert longer_pod["terminationGracePeriodSeconds"] == 45


def test_grace_shorter_than_the_delay_plus_15_s_is_refused() -> None:
    with pytest.raises(HelmError, match=r"at least preStopDelaySeconds \(30\) \+ 15"):
        render({"preStopDelaySeconds": 30, "terminationGracePeriodSeconds": 44})
    with pytest.raises(HelmError, match="terminationGracePeriodSeconds"):
        render({"terminationGracePeriodSeconds": 14})  # the schema's floor


def test_no_prestop_hook_with_a_zero_delay() -> None:
    c = container(render({"preStopDelaySeconds": 0, "terminationGracePeriodSeconds": 15}))
    assert "lifecycle" not in c
    assert settings_from(c).server.drain_delay == 0


@pytest.mark.parametrize(
    ("values", "rendered"),
    [
        ({}, True),  # two replicas by default
        ({"replicaCount": 3}, True),
        ({"replicaCount": 1}, False),  # it would block every node drain
        ({"podDisruptionBudget": {"enabled": False}}, False),
    ],
    ids=["default", "three", "one-replica", "disabled"],
)
def test_pod_disruption_budget_only_with_more_than_one_replica(
    values: dict[str, Any], rendered: bool
) -> None:
    docs = render(values)
    pdbs = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    assert len(pdbs) == int(rendered)
    if rendered:
        assert pdbs[0]["spec"]["minAvailable"] == 1
        replicas = one(docs, "Deployment")["spec"]["replicas"]
        assert replicas > pdbs[0]["spec"]["minAvailable"]


def test_default_flags_point_pings_at_the_service() -> None:
    settings = settings_from(container(render()), {"POD_NAMESPACE": "heartbeat-system"})
    service_url = "http://hb-heartbeat-operator.heartbeat-system.svc:8080"
    assert settings.server.external_url == service_url
    assert settings.server.internal_url == service_url
    assert (settings.server.host, settings.server.port) == ("0.0.0.0", 8080)
    assert settings.server.metrics_port == 8081
    assert settings.watching.namespaces == ()
    assert settings.watching.lease_namespace == "heartbeat-system"
    assert settings.jobs.exit_codes is True
    assert settings.jobs.capture_logs is False
    assert settings.jobs.namespace_selector is None
    assert not any("namespace-selector" in arg for arg in container(render())["args"])
    assert settings.metrics.monitor_metrics == "full"


def test_values_become_the_operators_settings() -> None:
    values = {
        **ALL_ON,
        "watchNamespaces": ["team-a", "team-b"],
        "leaseNamespace": "ops",
        "jobExitCodes": False,
        "monitorMetrics": "minimal",
    }
    settings = settings_from(container(render(values)))
    assert settings.server.external_url == "https://heartbeat.example.com"
    assert settings.server.internal_url == "http://hb-heartbeat-operator.heartbeat-system.svc:8080"
    assert settings.watching.namespaces == ("team-a", "team-b")
    assert settings.watching.lease_namespace == "ops"
    assert settings.jobs.exit_codes is False
    assert settings.metrics.monitor_metrics == "minimal"
    assert settings.metrics.label_allowlist == ("team",)
    assert settings.jobs.capture_logs is True
    selector = settings.jobs.namespace_selector
    assert str(selector) == "team in (payments,billing),!legacy"
    assert selector.matches({"team": "billing"})
    assert not selector.matches({"team": "billing", "legacy": "yes"})


@pytest.mark.parametrize(
    "selector",
    ["heartbeat.dev/monitor-cronjobs=true", "!legacy", "team notin (a, b), tier", "a=b,c!=d"],
)
def test_namespace_selector_reaches_the_operator_intact(selector: str) -> None:
    # YAML-special characters (!, commas, parentheses, spaces) survive the template's quoting
    settings = settings_from(container(render({"autoWireNamespaceSelector": selector})))
    assert str(settings.jobs.namespace_selector) == selector


def test_services_for_pings_and_metrics() -> None:
    docs = render()
    ping = one(docs, "Service", "hb-heartbeat-operator")
    metrics = one(docs, "Service", "hb-heartbeat-operator-metrics")
    assert [(p["port"], p["targetPort"]) for p in ping["spec"]["ports"]] == [(8080, "ping")]
    assert [(p["port"], p["targetPort"]) for p in metrics["spec"]["ports"]] == [(8081, "metrics")]
    pod_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    for service in (ping, metrics):
        assert service["spec"]["selector"].items() <= pod_labels.items()
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


# --- RBAC, exactly DESIGN 9.17 ----------------------------------------------------------


def test_cluster_role_is_exactly_the_design() -> None:
    docs = render()
    role = one(docs, "ClusterRole", "hb-heartbeat-operator")
    assert (
        grants(role["rules"])
        == NAMESPACED_GRANTS | EXIT_CODE_GRANTS | CLUSTER_GRANTS | PAUSE_API_GRANTS
    )
    binding = one(docs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == "hb-heartbeat-operator"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "hb-heartbeat-operator", "namespace": "heartbeat-system"}
    ]


def test_no_pods_grant_without_exit_codes() -> None:
    role = one(render({"jobExitCodes": False}), "ClusterRole", "hb-heartbeat-operator")
    assert grants(role["rules"]) == NAMESPACED_GRANTS | CLUSTER_GRANTS | PAUSE_API_GRANTS


def test_pods_log_granted_only_with_capture_logs() -> None:
    role = one(render({"captureLogs": True}), "ClusterRole", "hb-heartbeat-operator")
    assert grants(role["rules"]) == (
        NAMESPACED_GRANTS | EXIT_CODE_GRANTS | LOG_GRANTS | CLUSTER_GRANTS | PAUSE_API_GRANTS
    )
    docs = render({"captureLogs": True, "watchNamespaces": ["team-a"]})
    cluster_role = one(docs, "ClusterRole", "hb-heartbeat-operator")
    assert grants(cluster_role["rules"]) == CLUSTER_GRANTS | PAUSE_API_GRANTS
    role = one(docs, "Role", "hb-heartbeat-operator")
    assert grants(role["rules"]) == NAMESPACED_GRANTS | EXIT_CODE_GRANTS | LOG_GRANTS
    default = one(render(), "ClusterRole", "hb-heartbeat-operator")
    assert not any(resource == "pods/log" for _, resource, _ in grants(default["rules"]))


def test_journal_secrets_granted_only_in_the_lease_namespace_and_only_with_the_journal() -> None:
    docs = render()  # the journal is on by default (DESIGN 10.7)
    role = one(docs, "Role", "hb-heartbeat-operator-journal")
    assert role["metadata"]["namespace"] == "heartbeat-system"
    assert grants(role["rules"]) == JOURNAL_GRANTS
    cluster_role = one(docs, "ClusterRole", "hb-heartbeat-operator")
    assert grants(cluster_role["rules"]) == (
        NAMESPACED_GRANTS | EXIT_CODE_GRANTS | CLUSTER_GRANTS | PAUSE_API_GRANTS
    )
    deployment = one(docs, "Deployment", "hb-heartbeat-operator")
    assert "--journal" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    off = render({"journal": False})
    assert not [d for d in off if d["metadata"]["name"].endswith("-journal")]
    (container,) = one(off, "Deployment", "hb-heartbeat-operator")["spec"]["template"]["spec"][
        "containers"
    ]
    assert "--no-journal" in container["args"]


def test_namespace_selector_needs_no_grant_beyond_the_namespace_watch() -> None:
    # coverage by policy watches Namespaces: the cluster-scoped read kopf already has
    for values in ({"autoWireNamespaceSelector": "team=a"}, {}):
        role = one(render(values), "ClusterRole", "hb-heartbeat-operator")
        assert ("", "namespaces", "watch") in grants(role["rules"])
        assert (
            grants(role["rules"])
            == NAMESPACED_GRANTS | EXIT_CODE_GRANTS | CLUSTER_GRANTS | PAUSE_API_GRANTS
        )


def test_lease_role_in_the_release_or_lease_namespace() -> None:
    for values, namespace in (({}, "heartbeat-system"), ({"leaseNamespace": "ops"}, "ops")):
        docs = render(values)
        role = one(docs, "Role", "hb-heartbeat-operator-leader-election")
        assert role["metadata"]["namespace"] == namespace
        assert grants(role["rules"]) == LEASE_GRANTS
        binding = one(docs, "RoleBinding", "hb-heartbeat-operator-leader-election")
        assert binding["metadata"]["namespace"] == namespace


def test_watch_namespaces_switch_to_roles() -> None:
    docs = render({"watchNamespaces": ["team-a", "team-b"]})
    cluster_role = one(docs, "ClusterRole", "hb-heartbeat-operator")
    assert grants(cluster_role["rules"]) == CLUSTER_GRANTS | PAUSE_API_GRANTS
    roles = [
        d for d in docs if d["kind"] == "Role" and d["metadata"]["name"] == "hb-heartbeat-operator"
    ]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    for role in roles:
        assert grants(role["rules"]) == NAMESPACED_GRANTS | EXIT_CODE_GRANTS
    bindings = [
        d
        for d in docs
        if d["kind"] == "RoleBinding" and d["metadata"]["name"] == "hb-heartbeat-operator"
    ]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]


def test_no_wildcards_and_no_secret_listing_anywhere() -> None:
    # DESIGN 9.9, 10.7: Secrets are listed and watched only by the journal's Role, in the
    # operator's own namespace; nowhere else and never cluster-wide.
    docs = render({**ALL_ON, "watchNamespaces": ["team-a"]}) + render(ALL_ON)
    for doc in docs:
        if doc["kind"] in ("ClusterRole", "Role"):
            journal = doc["kind"] == "Role" and doc["metadata"]["name"].endswith("-journal")
            if journal:
                assert doc["metadata"]["namespace"] == "heartbeat-system"
            for group, resource, verb in grants(doc["rules"]):
                assert "*" not in (group, resource, verb), doc["metadata"]["name"]
                if not journal:
                    assert not (resource == "secrets" and verb in ("list", "watch"))


def test_aggregated_roles_never_grant_status() -> None:
    docs = render()
    view = one(docs, "ClusterRole", "hb-heartbeat-operator-view")
    edit = one(docs, "ClusterRole", "hb-heartbeat-operator-edit")
    assert view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert grants(view["rules"]) == {
        ("heartbeat.dev", "heartbeatmonitors", v) for v in ("get", "list", "watch")
    }
    assert {r for _, r, _ in grants(edit["rules"])} == {"heartbeatmonitors"}
    off = render({"rbac": {"create": True, "aggregateToDefaultRoles": False}})
    assert [d for d in off if d["kind"] == "ClusterRole"] == [
        one(off, "ClusterRole", "hb-heartbeat-operator")
    ]


# --- optional monitoring objects and their copies ---------------------------------------


def test_service_monitor_honors_labels() -> None:
    docs = render(ALL_ON)
    monitor = one(docs, "ServiceMonitor")
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["honorLabels"] is True
    assert endpoint["port"] == "metrics"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    metrics = one(docs, "Service", "hb-heartbeat-operator-metrics")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= metrics["metadata"]["labels"].items()
    )


def test_prometheus_rule_holds_the_shipped_rules() -> None:
    rule = one(render(ALL_ON), "PrometheusRule")
    shipped = yaml.safe_load((CHART / "files" / "heartbeat-rules.yaml").read_text())
    assert rule["spec"]["groups"] == shipped["groups"]
    alerts = {r.get("alert") for g in rule["spec"]["groups"] for r in g["rules"]}
    assert {"HeartbeatMonitorDown", "HeartbeatMonitorLate", "HeartbeatOperatorAbsent"} <= alerts


@pytest.mark.parametrize("name", ["heartbeat-rules.yaml", "heartbeat-dashboard.json"])
def test_chart_monitoring_files_are_copies_of_deploy_prometheus(name: str) -> None:
    source = ROOT / "deploy" / "prometheus" / name
    copy = CHART / "files" / name
    assert copy.read_text() == source.read_text(), (
        f"the chart's {name} differs from its source: cp {source.relative_to(ROOT)} "
        f"{copy.relative_to(ROOT)}"
    )


def test_chart_crds_are_copies_of_deploy_crds() -> None:
    sources = sorted((ROOT / "deploy" / "crds").glob("*.yaml"))
    copies = sorted((CHART / "files" / "crds").glob("*.yaml"))
    assert sources, "deploy/crds/ holds no CRD"
    assert [p.name for p in copies] == [p.name for p in sources]
    for source, copy in zip(sources, copies, strict=True):
        assert copy.read_text() == source.read_text(), (
            f"{copy.relative_to(ROOT)} differs from its source: cp deploy/crds/*.yaml "
            f"{(CHART / 'files' / 'crds').relative_to(ROOT)}/"
        )
    # Helm's crds/ directory is installed once and never upgraded (issue 17 item 2).
    assert not (CHART / "crds").exists()


# --- the CRD as a template (issue 17 item 2) ----------------------------------------------


def crds_of(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == "CustomResourceDefinition"]


def test_crd_is_a_template_kept_on_uninstall_by_default() -> None:
    # A template, not crds/: rendered without --include-crds.
    text = run_helm("template", "hb", str(CHART), "--kube-version", KUBE_VERSION, values={})
    (crd,) = crds_of([d for d in yaml.safe_load_all(text) if d])
    source = yaml.safe_load(
        (ROOT / "deploy" / "crds" / f"{crd['metadata']['name']}.yaml").read_text()
    )
    assert crd["spec"] == source["spec"]
    assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert crd["metadata"]["labels"]["app.kubernetes.io/instance"] == "hb"
    assert crd["metadata"]["labels"].items() >= source["metadata"]["labels"].items()


def test_crd_can_be_left_out_or_uninstalled_with_the_release() -> None:
    assert crds_of(render({"crds": {"enabled": False}})) == []
    (crd,) = crds_of(render({"crds": {"keep": False}}))
    assert "helm.sh/resource-policy" not in crd["metadata"].get("annotations", {})


def test_grafana_dashboard_is_valid_json() -> None:
    config_map = one(render(ALL_ON), "ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config_map["data"]["heartbeat-operator.json"])
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert any("heartbeat_monitor_up" in e for e in exprs)
    assert any("heartbeat_leader" in e for e in exprs)


def test_ingress_routes_only_pings() -> None:
    ingress = one(render(ALL_ON), "Ingress")
    (rule,) = ingress["spec"]["rules"]
    paths = {p["path"] for p in rule["http"]["paths"]}
    assert paths == {"/ping/", "/hb/", "/v1/heartbeats/"}
    assert ingress["spec"]["ingressClassName"] == "nginx"


def test_network_policy_admits_pings_and_scrapes_only() -> None:
    policy = one(render(ALL_ON), "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    by_port = {r["ports"][0]["port"]: r for r in policy["spec"]["ingress"]}
    assert set(by_port) == {"ping", "metrics", "webhook"}
    assert "from" not in by_port["ping"]  # pings come from anywhere
    assert "from" not in by_port["webhook"]  # the API server is no Pod a selector matches
    assert by_port["metrics"]["from"]  # scrapes only from the monitoring peers


# --- the admission webhook (DESIGN 10.4) -------------------------------------------------


def _certificate(pem_b64: str) -> Any:
    return x509.load_pem_x509_certificate(base64.b64decode(pem_b64))


def test_webhook_is_served_with_a_generated_ca_by_default() -> None:
    docs = render()
    secret = one(docs, "Secret", "hb-heartbeat-operator-webhook-tls")
    assert secret["type"] == "kubernetes.io/tls"
    config = one(docs, "ValidatingWebhookConfiguration", "hb-heartbeat-operator")
    (hook,) = config["webhooks"]
    assert hook["failurePolicy"] == "Ignore"  # a stopped operator never blocks an apply
    assert hook["sideEffects"] == "None" and hook["admissionReviewVersions"] == ["v1"]
    assert hook["timeoutSeconds"] == 5
    assert hook["rules"] == [
        {
            "apiGroups": ["heartbeat.dev"],
            "apiVersions": ["*"],
            "operations": ["CREATE", "UPDATE"],
            "resources": ["heartbeatmonitors"],  # never /status: pings' writes skip it
            "scope": "Namespaced",
        }
    ]
    assert "namespaceSelector" not in hook
    service_ref = hook["clientConfig"]["service"]
    assert service_ref == {
        "name": "hb-heartbeat-operator-webhook",
        "namespace": "heartbeat-system",
        "path": PATH,
        "port": 443,
    }
    # The caBundle is the CA in the Secret, and it signed a certificate for the Service.
    assert hook["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]
    ca = _certificate(secret["data"]["ca.crt"])
    cert = _certificate(secret["data"]["tls.crt"])
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "hb-heartbeat-operator-webhook.heartbeat-system.svc" in names.get_values_for_type(
        x509.DNSName
    )
    assert base64.b64decode(secret["data"]["tls.key"]).startswith(b"-----BEGIN")

    service = one(docs, "Service", "hb-heartbeat-operator-webhook")
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(443, "webhook")]
    c = container(docs)
    settings = settings_from(c)
    assert settings.webhook.enabled and settings.webhook.port == 9443
    assert {p["name"]: p["containerPort"] for p in c["ports"]}["webhook"] == 9443
    (mount,) = [m for m in c["volumeMounts"] if m["name"] == "webhook-tls"]
    assert mount["readOnly"] is True
    assert settings.webhook.cert_file == Path(mount["mountPath"]) / "tls.crt"
    assert settings.webhook.key_file == Path(mount["mountPath"]) / "tls.key"
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "webhook-tls"]
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]


def test_webhook_can_be_turned_off() -> None:
    docs = render({"webhook": {"enabled": False}})
    kinds = [d["kind"] for d in docs]
    assert "ValidatingWebhookConfiguration" not in kinds and "Secret" not in kinds
    assert not any(d["metadata"]["name"].endswith("-webhook") for d in docs)
    c = container(docs)
    assert not settings_from(c).webhook.enabled
    assert "webhook" not in {p["name"] for p in c["ports"]}


def test_webhook_certificate_from_cert_manager() -> None:
    docs = render({"webhook": {"certManager": {"enabled": True}}})
    assert "Secret" not in [d["kind"] for d in docs]  # cert-manager writes it
    issuer = one(docs, "Issuer", "hb-heartbeat-operator-webhook")
    assert issuer["spec"] == {"selfSigned": {}}
    certificate = one(docs, "Certificate", "hb-heartbeat-operator-webhook")
    assert certificate["spec"]["secretName"] == "hb-heartbeat-operator-webhook-tls"
    assert certificate["spec"]["issuerRef"] == {
        "kind": "Issuer",
        "name": "hb-heartbeat-operator-webhook",
    }
    assert "hb-heartbeat-operator-webhook.heartbeat-system.svc" in certificate["spec"]["dnsNames"]
    config = one(docs, "ValidatingWebhookConfiguration")
    assert config["metadata"]["annotations"] == {
        "cert-manager.io/inject-ca-from": "heartbeat-system/hb-heartbeat-operator-webhook"
    }
    (hook,) = config["webhooks"]
    assert "caBundle" not in hook["clientConfig"]  # cert-manager's cainjector fills it in
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "webhook-tls"]
    assert volume["secret"]["secretName"] == certificate["spec"]["secretName"]


def test_webhook_certificate_from_the_users_issuer() -> None:
    issuer = {"kind": "ClusterIssuer", "name": "corp-ca"}
    docs = render({"webhook": {"certManager": {"enabled": True, "issuerRef": issuer}}})
    assert "Issuer" not in [d["kind"] for d in docs]
    assert one(docs, "Certificate")["spec"]["issuerRef"] == issuer


def test_webhook_only_for_watched_namespaces() -> None:
    docs = render({"watchNamespaces": ["team-a", "team-b"]})
    (hook,) = one(docs, "ValidatingWebhookConfiguration")["webhooks"]
    assert hook["namespaceSelector"] == {
        "matchExpressions": [
            {
                "key": "kubernetes.io/metadata.name",
                "operator": "In",
                "values": ["team-a", "team-b"],
            }
        ]
    }


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"webhook": {"enabeld": False}}, "enabeld"),
        ({"webhook": {"timeoutSeconds": 31}}, "timeoutSeconds"),
        ({"webhook": {"certManager": {"issuerRef": {"nam": "x"}}}}, "nam"),
    ],
)
def test_schema_rejects_bad_webhook_values(values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(HelmError, match=complaint):
        render(values)


# --- the image ----------------------------------------------------------------------------


@cache
def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def test_dockerfile_passes_hadolint() -> None:
    hadolint = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "hadolint"
    exe = str(hadolint) if hadolint.exists() else "hadolint"
    done = subprocess.run(
        [exe, str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_is_pinned_multi_stage_and_non_root() -> None:
    text = dockerfile()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert base, "the base image is one pinned ARG"
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", base.group(1))
    assert len(re.findall(r"^FROM ", text, re.M)) == 2
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and not users[-1].startswith(("0", "root"))
    assert re.search(r'^ENTRYPOINT \["heartbeat-operator"\]$', text, re.M)
    assert re.search(r'^CMD \["run"\]$', text, re.M)


def test_chart_default_tag_is_the_dockerfiles() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    label = re.search(r'org\.opencontainers\.image\.version="([^"]+)"', dockerfile())
    assert label and label.group(1) == project["version"] == chart["appVersion"]
    assert re.search(
        r"docker build -t heartbeat-operator:" + re.escape(label.group(1)), dockerfile()
    )
    image = container(render({"image": {"repository": "registry.example.com/hb"}}))["image"]
    assert image == f"registry.example.com/hb:{chart['appVersion']}"
    # The chart sets no runAsUser (OpenShift): the image's user must be numeric, or the
    # kubelet cannot check runAsNonRoot and refuses to start the container.
    assert re.search(r"^USER [1-9][0-9]*:[0-9]+$", dockerfile(), re.M)


def test_install_without_an_image_says_which_value_to_set() -> None:
    """Issue 17 item 1: no default image that resolves to someone else's Docker Hub name."""
    with pytest.raises(HelmError) as raised:
        run_helm("template", "hb", str(CHART), "--kube-version", KUBE_VERSION)
    assert "image.repository is required" in str(raised.value)
    assert "docs/install.md" in str(raised.value)


DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("values", "image"),
    [
        ({"image": {"repository": "team/hb", "tag": "1.2"}}, "team/hb:1.2"),
        ({"image": {"repository": "team/hb", "digest": DIGEST}}, f"team/hb@{DIGEST}"),
        (
            {"image": {"repository": "team/hb", "tag": "1.2", "digest": DIGEST}},
            f"team/hb:1.2@{DIGEST}",
        ),
        (
            {
                "image": {"repository": "team/hb", "tag": "1.2"},
                "global": {"imageRegistry": "r.example.com/"},
            },
            "r.example.com/team/hb:1.2",
        ),
    ],
    ids=["tag", "digest", "tag-and-digest", "global-registry"],
)
def test_image_reference_from_repository_tag_digest_and_global_registry(
    values: dict[str, Any], image: str
) -> None:
    assert container(render(values))["image"] == image


def test_schema_rejects_a_digest_that_is_not_one() -> None:
    with pytest.raises(HelmError, match="digest"):
        render({"image": {"repository": "x", "digest": "latest"}})


# --- chart conventions (issue 17 item 4) --------------------------------------------------


def test_helm_show_readme_and_chart_metadata() -> None:
    readme = run_helm("show", "readme", str(CHART))
    assert "image.repository" in readme and "crds.keep" in readme
    chart = yaml.safe_load(run_helm("show", "chart", str(CHART)))
    assert chart["home"].startswith("https://")
    assert chart["sources"] == [chart["home"]]
    annotations = chart["annotations"]
    crds = yaml.safe_load(annotations["artifacthub.io/crds"])
    assert [c["name"] for c in crds] == ["heartbeatmonitors.heartbeat.dev"]
    (example,) = yaml.safe_load(annotations["artifacthub.io/crdsExamples"])
    assert example["kind"] == "HeartbeatMonitor"
    assert annotations["artifacthub.io/license"] == "Apache-2.0"
    for link in yaml.safe_load(annotations["artifacthub.io/links"]):
        assert link["url"].startswith(chart["home"] + "/")


def test_common_labels_reach_every_object() -> None:
    for doc in render(ALL_ON):
        assert doc["metadata"]["labels"]["team"] == "platform", doc["kind"]


def test_deployment_annotations_strategy_history_and_extra_volumes() -> None:
    deployment = one(render(ALL_ON), "Deployment")
    assert deployment["metadata"]["annotations"] == {"example.com/owner": "platform"}
    assert "annotations" not in deployment["spec"]["template"]["metadata"]
    assert deployment["spec"]["strategy"] == ALL_ON["strategy"]
    assert deployment["spec"]["revisionHistoryLimit"] == 5
    pod = deployment["spec"]["template"]["spec"]
    assert {"name": "ca", "configMap": {"name": "corporate-ca"}} in pod["volumes"]
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}} in pod["volumes"]
    mounts = pod["containers"][0]["volumeMounts"]
    assert {"name": "ca", "mountPath": "/etc/ssl/corporate", "readOnly": True} in mounts
    defaults = one(render(), "Deployment")
    assert defaults["spec"]["revisionHistoryLimit"] == 3
    assert "strategy" not in defaults["spec"]


def test_pod_disruption_budget_with_max_unavailable() -> None:
    pdb = one(render({"podDisruptionBudget": {"maxUnavailable": "50%"}}), "PodDisruptionBudget")
    # One of the two: the API server refuses a PDB that sets both.
    assert pdb["spec"]["maxUnavailable"] == "50%"
    assert "minAvailable" not in pdb["spec"]


def test_service_monitor_relabelings_and_sample_limit() -> None:
    relabel = [{"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"}]
    drop = [{"sourceLabels": ["__name__"], "regex": "python_gc_.*", "action": "drop"}]
    values = {
        "serviceMonitor": {
            "enabled": True,
            "relabelings": relabel,
            "metricRelabelings": drop,
            "sampleLimit": 500000,
        }
    }
    monitor = one(render(values), "ServiceMonitor")
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["relabelings"] == relabel
    assert endpoint["metricRelabelings"] == drop
    assert monitor["spec"]["sampleLimit"] == 500000
    plain = one(render({"serviceMonitor": {"enabled": True}}), "ServiceMonitor")
    assert "sampleLimit" not in plain["spec"]
    assert "relabelings" not in plain["spec"]["endpoints"][0]


def test_pause_api_reviews_granted_only_while_it_is_on() -> None:
    # Issue 16 item 2: the pause API asks the API server about a caller's token
    # (TokenReview) and rights (SubjectAccessReview); off, the operator may do neither.
    on = render()
    assert grants(one(on, "ClusterRole", "hb-heartbeat-operator")["rules"]) >= PAUSE_API_GRANTS
    (container,) = one(on, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert "--pause-api" in container["args"]
    assert "--pause-api-audience=heartbeat-operator" in container["args"]
    assert "--no-badges" in container["args"]
    off = render({"pauseApi": {"enabled": False}, "badges": {"enabled": True}})
    role = one(off, "ClusterRole", "hb-heartbeat-operator")
    assert grants(role["rules"]) == NAMESPACED_GRANTS | EXIT_CODE_GRANTS | CLUSTER_GRANTS
    (container,) = one(off, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert "--no-pause-api" in container["args"]
    assert "--badges" in container["args"]
