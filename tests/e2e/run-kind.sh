#!/usr/bin/env bash
# `make e2e-kind`: the end-to-end suite against a kind cluster running the real image.
#
#   1. kind create cluster (reused if it exists; KIND_CLUSTER_NAME, default heartbeat-e2e)
#   2. docker build the repository's Dockerfile as heartbeat-operator:<version>
#   3. kind load the image (no registry needed)
#   4. helm upgrade --install the chart from deploy/helm/heartbeat-operator
#   5. pytest tests/e2e against that cluster, pings through a port-forward to the Service
#
# Needs Docker, kind and kubectl on PATH (helm is built by hack/build-helm.sh). The cluster
# is deleted at the end unless KEEP_CLUSTER=1. Docker can't run on the project's own
# development machines; there, run tests/e2e/run-local.sh (same suite, local control plane).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
cluster=${KIND_CLUSTER_NAME:-heartbeat-e2e}
release=heartbeat-operator
namespace=heartbeat-system

for tool in docker kind kubectl; do
  command -v "$tool" > /dev/null || { echo "e2e-kind: $tool is not on PATH" >&2; exit 1; }
done
helm=$(bash hack/build-helm.sh)
version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' deploy/helm/heartbeat-operator/Chart.yaml)
image=heartbeat-operator:$version

workdir=$(mktemp -d)
export KUBECONFIG=$workdir/kubeconfig
cleanup() {
  if [[ ${KEEP_CLUSTER:-} == 1 ]]; then
    kind export kubeconfig --name "$cluster" --kubeconfig "$KUBECONFIG" > /dev/null
    echo "e2e-kind: cluster $cluster kept; KUBECONFIG=$KUBECONFIG" >&2
  else
    kind delete cluster --name "$cluster" || true
    rm -rf "$workdir"
  fi
}
trap cleanup EXIT

if kind get clusters 2> /dev/null | grep -qx "$cluster"; then
  kind export kubeconfig --name "$cluster" --kubeconfig "$KUBECONFIG"
else
  kind create cluster --name "$cluster" --kubeconfig "$KUBECONFIG" --wait 180s
fi

docker build -t "$image" .
kind load docker-image "$image" --name "$cluster"

"$helm" upgrade --install "$release" deploy/helm/heartbeat-operator \
  --namespace "$namespace" --create-namespace \
  --set image.repository=heartbeat-operator --set image.pullPolicy=Never \
  --wait --timeout 5m

# The suite pings through a port-forward to the ping Service (the Secrets' URLs name the
# in-cluster address, which the host can't reach).
export HEARTBEAT_E2E_SERVICE=$namespace/$release  # the release name is the full name
export HEARTBEAT_E2E_LEASE_NAMESPACE=$namespace
"$root/.venv/bin/pytest" tests/e2e -v -p no:cacheprovider "$@"
