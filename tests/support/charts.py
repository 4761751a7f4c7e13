"""The Helm chart as tests see it: the pinned helm binary, rendering, and RBAC grants.

helm comes from hack/build-helm.sh: built from its Go module once (about a minute), then
found in the cache outside the tree.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "heartbeat-operator"
KUBE_VERSION = "1.34.4"  # the local control plane's; the chart needs >= 1.29

# The chart has no default image (issue 17 item 1): every render and install names one.
IMAGE: dict[str, Any] = {"repository": "registry.example.com/heartbeat-operator"}

# Every optional object on, plus values that change what the Deployment and RBAC say.
ALL_ON: dict[str, Any] = {
    "image": IMAGE,
    "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
    "prometheusRule": {"enabled": True},
    "grafanaDashboard": {"enabled": True},
    "ingress": {
        "enabled": True,
        "className": "nginx",
        "tls": [{"secretName": "heartbeat-tls", "hosts": ["heartbeat.example.com"]}],
    },
    "networkPolicy": {"enabled": True},
    "externalURL": "https://heartbeat.example.com",
    "metricsLabels": ["team"],
    "captureLogs": True,
    "autoWireNamespaceSelector": "team in (payments,billing),!legacy",
    "commonLabels": {"team": "platform"},
    "deploymentAnnotations": {"example.com/owner": "platform"},
    "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
    "revisionHistoryLimit": 5,
    "extraVolumes": [{"name": "ca", "configMap": {"name": "corporate-ca"}}],
    "extraVolumeMounts": [{"name": "ca", "mountPath": "/etc/ssl/corporate", "readOnly": True}],
    "podDisruptionBudget": {"maxUnavailable": 1},
}

Grant = tuple[str, str, str]  # (apiGroup, resource, verb)

# DESIGN 9.17: what the operator may do in a namespace it watches...
NAMESPACED_GRANTS: frozenset[Grant] = frozenset(
    {
        *(
            ("heartbeat.dev", "heartbeatmonitors", v)
            for v in ("get", "list", "watch", "create", "patch", "delete")
        ),
        *(("heartbeat.dev", "heartbeatmonitors/status", v) for v in ("get", "update", "patch")),
        *(("", "secrets", v) for v in ("get", "create", "patch")),
        *(("batch", r, v) for r in ("cronjobs", "jobs") for v in ("get", "list", "watch")),
        # create: one per transition; patch: while Down (DESIGN 10.8.13); list: a Job's
        # FailedCreate Events (DESIGN 10.8.3)
        *(("", "events", v) for v in ("create", "list", "patch")),
    }
)
# ...plus this while exit codes are enabled (`jobExitCodes`)...
EXIT_CODE_GRANTS: frozenset[Grant] = frozenset({("", "pods", "list")})
# ...and this only while log capture is on (`captureLogs`, issue 12)...
LOG_GRANTS: frozenset[Grant] = frozenset({("", "pods/log", "get")})
# ...the cluster-scoped reads kopf needs...
CLUSTER_GRANTS: frozenset[Grant] = frozenset(
    {
        *(("apiextensions.k8s.io", "customresourcedefinitions", v) for v in ("list", "watch")),
        *(("", "namespaces", v) for v in ("list", "watch")),
    }
)
# ...the pause API's reviews while `pauseApi.enabled` (the default; issue 16)...
PAUSE_API_GRANTS: frozenset[Grant] = frozenset(
    {
        ("authentication.k8s.io", "tokenreviews", "create"),
        ("authorization.k8s.io", "subjectaccessreviews", "create"),
    }
)
# ...and the leader-election Lease, in its namespace only.
LEASE_GRANTS: frozenset[Grant] = frozenset(
    {("coordination.k8s.io", "leases", v) for v in ("get", "list", "create", "update", "delete")}
)

# ...and with the journal on (`journal`, DESIGN 10.7), Secrets in that namespace only.
JOURNAL_GRANTS: frozenset[Grant] = frozenset(
    {("", "secrets", v) for v in ("get", "list", "watch", "create", "update", "delete")}
)


class HelmError(Exception):
    """helm exited non-zero; the message is its output."""


@cache
def helm_binary() -> str:
    """The pinned helm, built by hack/build-helm.sh if it is not cached yet."""
    done = subprocess.run(
        ["bash", str(ROOT / "hack" / "build-helm.sh")],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if done.returncode != 0:
        raise HelmError(f"hack/build-helm.sh failed:\n{done.stderr}")
    return done.stdout.strip().splitlines()[-1]


def run_helm(*args: str, values: Mapping[str, Any] | None = None, timeout: float = 120) -> str:
    """Run helm; ``values`` go in as a values file on stdin. Returns stdout + stderr."""
    cmd = [helm_binary(), *args]
    if values is not None and "image" not in values:
        values = {**values, "image": IMAGE}
    if values is not None:
        cmd += ["--values", "-"]
    done = subprocess.run(
        cmd,
        input=json.dumps(values) if values is not None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise HelmError(done.stdout + done.stderr)
    return done.stdout + done.stderr


def render_text(
    values: Mapping[str, Any] | None = None,
    *,
    release: str = "hb",
    namespace: str = "heartbeat-system",
    include_crds: bool = True,
) -> str:
    """``helm template`` output, as a YAML stream; ``include_crds=False`` sets
    ``crds.enabled: false``."""
    args = ["template", release, str(CHART), "--namespace", namespace]
    args += ["--kube-version", KUBE_VERSION]
    values = dict(values or {})
    if not include_crds:
        # The CRD is a template of the chart (crds.enabled, issue 17 item 2): leaving it
        # out is a value, not --skip-crds.
        values["crds"] = {**values.get("crds", {}), "enabled": False}
    return run_helm(*args, values=values)


def render(
    values: Mapping[str, Any] | None = None,
    *,
    release: str = "hb",
    namespace: str = "heartbeat-system",
    include_crds: bool = True,
) -> list[dict[str, Any]]:
    """The rendered objects."""
    text = render_text(values, release=release, namespace=namespace, include_crds=include_crds)
    return [doc for doc in yaml.safe_load_all(text) if doc]


def one(docs: Iterable[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def grants(rules: Iterable[Mapping[str, Any]]) -> set[Grant]:
    """Every (apiGroup, resource, verb) a list of PolicyRules grants."""
    out: set[Grant] = set()
    for rule in rules:
        assert not rule.get("resourceNames"), rule
        assert not rule.get("nonResourceURLs"), rule
        for group in rule.get("apiGroups") or ():
            for resource in rule.get("resources") or ():
                for verb in rule.get("verbs") or ():
                    out.add((group, resource, verb))
    return out
