#!/usr/bin/env bash
# The end-to-end suite against the local control plane, with the operator running out of
# cluster (a local process, watching every namespace) — what this project's development
# machines can do without Docker. `make e2e-kind` runs the same suite on kind with the
# operator installed from the chart.
#
#   tests/e2e/run-local.sh [pytest args...]
#
# Starts the control plane if none is running (and leaves it running: `heartbeat-operator
# dev down` stops it), runs `heartbeat-operator run` with its Lease in namespace
# heartbeat-e2e, runs pytest tests/e2e, and stops the operator by its PID.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
venv=$root/.venv/bin
kubeconfig=$("$venv/heartbeat-operator" dev up)
export KUBECONFIG=$kubeconfig
kubectl=$venv/kubectl  # the control plane's own version, linked by `make test`/`make run`
[[ -x $kubectl ]] || kubectl=$(command -v kubectl)
lease_namespace=heartbeat-e2e
"$kubectl" get namespace "$lease_namespace" > /dev/null 2>&1 \
  || "$kubectl" create namespace "$lease_namespace" > /dev/null

ports=$("$venv/python" -c 'import socket
socks = [socket.socket() for _ in range(2)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
read -r port metrics_port <<< "$ports"
log=$(mktemp -t heartbeat-e2e-operator.XXXXXX.log)
"$venv/heartbeat-operator" run --host 127.0.0.1 --port "$port" --metrics-port "$metrics_port" \
  --external-url "http://127.0.0.1:$port" --lease-namespace "$lease_namespace" \
  > "$log" 2>&1 &
operator=$!
stop() {
  kill -TERM "$operator" 2> /dev/null || true
  wait "$operator" 2> /dev/null || true
  echo "operator log: $log" >&2
}
trap stop EXIT

for _ in $(seq 300); do
  curl -fsS -o /dev/null "http://127.0.0.1:$metrics_port/readyz" 2> /dev/null && break
  kill -0 "$operator" 2> /dev/null || { cat "$log" >&2; exit 1; }
  sleep 0.1
done
curl -fsS -o /dev/null "http://127.0.0.1:$metrics_port/readyz"

export HEARTBEAT_E2E_LEASE_NAMESPACE=$lease_namespace
"$venv/pytest" tests/e2e -v -p no:cacheprovider "$@"
