"""The local control plane for development and tests (``heartbeat-operator dev …``).

Builds (via ``hack/build-controlplane.sh``) and runs etcd, kube-apiserver and
kube-controller-manager on 127.0.0.1, the way controller-runtime's envtest does.
Never imported by the operator itself. The API: ``up()``, ``status()``, ``down()``,
``shared()`` and ``Cluster`` (see ``clusters``); ``docs/control-plane.md`` has the rest.
"""

from heartbeat_operator.devcluster.clusters import (
    Cluster,
    DevClusterError,
    default_state_dir,
    down,
    resolve_bin_dir,
    restart_process,
    shared,
    status,
    up,
)

__all__ = [
    "Cluster",
    "DevClusterError",
    "default_state_dir",
    "down",
    "resolve_bin_dir",
    "restart_process",
    "shared",
    "status",
    "up",
]
