#!/usr/bin/env bash
# Builds the helm CLI from its Go module (hack/helm/go.mod pins helm.sh/helm/v3) into a
# cache outside the work tree, keyed by version, like build-controlplane.sh does for the
# control plane. A second run finds the binary and touches no network. Prints the helm
# binary's path as its only line on stdout.
#
# The chart tests (tests/unit/test_chart.py) run `helm lint` and `helm template` with it.
# Change the version here and in hack/helm/go.mod together.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
helm_version=v3.19.5
cache_root=${HEARTBEAT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/heartbeat-operator}
# "-k8s": built with the Kubernetes version of its client-go as its default (below); a
# cached binary from before that has its own directory and is left alone.
bin=$cache_root/helm-$helm_version-k8s/bin

if [[ -x $bin/helm ]]; then
  echo "$bin/helm"
  exit 0
fi

# Parallel `make` runs share this cache: the first builds, the others wait and find it.
mkdir -p "$bin"
exec 9>"$bin/../.build.lock"
flock 9
if [[ -x $bin/helm ]]; then
  echo "$bin/helm"
  exit 0
fi
export CGO_ENABLED=0 GOFLAGS=-trimpath
start=$SECONDS
echo "building helm $helm_version (first time only; cached in $bin)" >&2
# Without -X the binary calls itself a development version, and `helm version` and the
# chart's kubeVersion checks would see the wrong Helm version. Helm's own release build
# also sets the Kubernetes version `helm template` and `helm lint` assume without a
# cluster (else v1.20, below the chart's kubeVersion >= 1.29, so every render needed
# --kube-version; issue 17 item 7): the version of its client-go, v0.X.Y -> 1.X, as
# Helm's Makefile derives it.
client_go=$(cd "$here/helm" && go list -m -f '{{.Version}}' k8s.io/client-go)
k8s_minor=$(echo "$client_go" | cut -d. -f2)
k8s_flags=""
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  k8s_flags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
done
(cd "$here/helm" && go build \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version$k8s_flags" \
  -o "$bin/.helm.tmp" helm.sh/helm/v3/cmd/helm)
mv "$bin/.helm.tmp" "$bin/helm"
echo "built helm in $((SECONDS - start)) s" >&2
echo "$bin/helm"
