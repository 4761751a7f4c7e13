#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-controller-manager and kubectl from Go modules into a
# cache outside the work tree, keyed by version. A second run finds the binaries and
# touches no network. Prints the bin directory as its only line on stdout.
#
# Versions: Kubernetes v1.34.4 with etcd v3.6.5, the pair Kubernetes' own
# build/dependencies.yaml names for that release. Change both go.mod files together.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
k8s_version=v1.34.4
etcd_version=v3.6.5
cache_root=${HEARTBEAT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/heartbeat-operator}
bin=$cache_root/controlplane/k8s-$k8s_version-etcd-$etcd_version/bin

need=()
for b in etcd kube-apiserver kube-controller-manager kubectl; do
  [[ -x $bin/$b ]] || need+=("$b")
done
if ((${#need[@]} == 0)); then
  echo "$bin"
  exit 0
fi

# Parallel `make` runs (two work trees, a test session and `make run`) share this cache:
# the first builds, the others wait for it and then find the binaries.
mkdir -p "$bin"
exec 9>"$bin/../.build.lock"
if ! flock -n 9; then
  echo "control plane: another build holds $bin/../.build.lock; waiting for it" >&2
  flock 9
fi
need=()
for b in etcd kube-apiserver kube-controller-manager kubectl; do
  [[ -x $bin/$b ]] || need+=("$b")
done

export CGO_ENABLED=0 GOFLAGS=-trimpath
minor=${k8s_version#v1.}; minor=${minor%%.*}
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$k8s_version \
 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor \
 -X k8s.io/client-go/pkg/version.gitVersion=$k8s_version \
 -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"

# A first build takes minutes per binary with no output from go: say what is being built,
# which of how many, and every 20 s that it still is (issue 17 item 6).
build() {
  if [[ $1 == etcd ]]; then
    (cd "$here/etcd" && go build -ldflags "-s -w" -o "$bin/.etcd.tmp" go.etcd.io/etcd/server/v3)
  else
    (cd "$here/controlplane" && go build -ldflags "$ldflags" -o "$bin/.$1.tmp" "k8s.io/kubernetes/cmd/$1")
  fi
}
n=0
for b in "${need[@]}"; do
  n=$((n + 1))
  start=$SECONDS
  echo "control plane: building $b ($n of ${#need[@]}; first time only, cached in $bin)" >&2
  build "$b" &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    for _ in {1..20}; do
      kill -0 "$pid" 2>/dev/null || break 2
      sleep 1
    done
    echo "control plane: still building $b ($((SECONDS - start)) s)" >&2
  done
  wait "$pid"
  mv "$bin/.$b.tmp" "$bin/$b"
  echo "control plane: built $b in $((SECONDS - start)) s" >&2
done
echo "$bin"
