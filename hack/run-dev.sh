#!/usr/bin/env bash
# `make run`: the local control plane (with the CRD), examples/ applied, then the operator
# in the foreground against it. Ports: HEARTBEAT_PORT (8080), HEARTBEAT_METRICS_PORT (8081),
# and the admission webhook on 9443, where `dev up` registered it (docs/decisions.md).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv/bin
kubeconfig=$("$venv/heartbeat-operator" dev up)
export KUBECONFIG=$kubeconfig
port=${HEARTBEAT_PORT:-8080}
metrics_port=${HEARTBEAT_METRICS_PORT:-8081}
# `dev up` wrote the webhook's serving pair beside the kubeconfig, in the state directory.
webhook_dir=$(dirname "$kubeconfig")/webhook

# Each example folder is one idea, in a namespace of its own: its namespace.yaml first, then
# its other manifests into that namespace, as its README does (issue 17 item 6). A manifest
# that cannot be applied is reported, not fatal: the operator still runs.
for folder in examples/*/; do
  folder=${folder%/}
  ns_args=()
  if [[ -f $folder/namespace.yaml ]]; then
    if ns=$("$venv/kubectl" apply -f "$folder/namespace.yaml" -o name) ; then
      ns_args=(-n "${ns#namespace/}")
    else
      echo "run: could not apply $folder/namespace.yaml (see above)" >&2
      continue
    fi
  fi
  while IFS= read -r manifest; do
    if ! "$venv/kubectl" apply "${ns_args[@]}" -f "$manifest" >&2; then
      echo "run: could not apply $manifest (see above)" >&2
    fi
  done < <(find "$folder" -maxdepth 1 -type f \( -name '*.yaml' -o -name '*.yml' \) \
    ! -name 'namespace.yaml' ! -name 'values*.y*ml' ! -name 'kustomization.y*ml' | sort)
done

cat >&2 <<HINT

  The local control plane is up (kubeconfig: $kubeconfig).
  Point kubectl at it from another shell:
      eval "\$(.venv/bin/heartbeat-operator dev env)"
      kubectl get hbm -A -w
  Ping receiver: http://127.0.0.1:$port   metrics: http://127.0.0.1:$metrics_port/metrics
  (bound to 127.0.0.1 only; HEARTBEAT_PORT / HEARTBEAT_METRICS_PORT move them)
  Admission webhook: https://127.0.0.1:9443 (kubectl apply refuses a bad schedule in a sentence)
  A monitor's ping URL is in its Secret:
      kubectl get secret <monitor>-heartbeat -o jsonpath='{.data.url}' | base64 -d
      curl -fsS "\$(kubectl get secret <monitor>-heartbeat -o jsonpath='{.data.url}' | base64 -d)"
  Stop the operator with Ctrl-C; stop the control plane with:
      .venv/bin/heartbeat-operator dev down

HINT

# Bound to 127.0.0.1, where the hint above points (issue 17 item 6): a development
# operator on a laptop is not a ping receiver for the whole network.
exec "$venv/heartbeat-operator" run --host 127.0.0.1 --port "$port" --metrics-port "$metrics_port" \
  --external-url "http://127.0.0.1:$port" \
  --webhook-port 9443 --webhook-cert-file "$webhook_dir/tls.crt" --webhook-key-file "$webhook_dir/tls.key"
