#!/usr/bin/env bash
# Pause a HeartbeatMonitor, run a deploy command, resume the monitor — also when the
# deploy fails or is interrupted — and exit with the deploy's status.
#
#   ./deploy-paused.sh [-n NAMESPACE] [--for DURATION] MONITOR -- COMMAND [ARG...]
#   ./deploy-paused.sh -n prod queue-worker -- kubectl -n prod rollout restart deploy/queue-worker
#
# Two ways to pause:
# - kubectl (the default): needs `patch` on heartbeatmonitors (the `edit` role has it).
# - the operator's pause API, when HEARTBEAT_API is set to the receiver's base URL (e.g.
#   http://heartbeat-operator.heartbeat-system:8080): for a deploy job in a Pod, with no
#   kubectl. It sends the Pod's projected ServiceAccount token (audience
#   heartbeat-operator) from HEARTBEAT_TOKEN_FILE (default
#   /var/run/secrets/heartbeat.dev/token); the account needs `patch` on the monitor.
#   The namespace is -n, else POD_NAMESPACE, else "default". --for DURATION (e.g. 30m)
#   pauses with spec.pausedUntil, so a deploy killed without a chance to resume (SIGKILL)
#   does not leave the monitor paused past that time.
#
# While paused, pings are still recorded but nothing alerts (DESIGN 2). On resume the
# next slot is counted from the resume time, never from before the pause, so a deploy
# that took longer than the period does not cause a missed run.
set -euo pipefail

usage="usage: deploy-paused.sh [-n NAMESPACE] [--for DURATION] MONITOR -- COMMAND [ARG...]"
namespace=${POD_NAMESPACE:-}
kubectl_namespace=()
for_duration=
while (($# > 0)); do
  case $1 in
    -n) namespace=${2:?$usage}; kubectl_namespace=(-n "$2"); shift 2 ;;
    --for) for_duration=${2:?$usage}; shift 2 ;;
    *) break ;;
  esac
done
monitor=${1:?$usage}
shift
[[ ${1:-} == -- ]] && shift
(($# > 0)) || { echo "deploy-paused.sh: no command given" >&2; exit 2; }

api=${HEARTBEAT_API:-}
token_file=${HEARTBEAT_TOKEN_FILE:-/var/run/secrets/heartbeat.dev/token}

# The pause API: POST .../pause or .../resume; the reply (a sentence) goes to stderr.
# The token is read from the file at each call (kubelet rotates projected tokens) and
# handed to curl on stdin, so it never appears in a process listing.
call_api() {
  local action=$1 query=
  [[ $action == pause && -n $for_duration ]] && query="?for=$for_duration"
  local url="${api%/}/api/v1/namespaces/${namespace:-default}/heartbeatmonitors/$monitor/$action$query"
  if printf 'Authorization: Bearer %s\n' "$(cat "$token_file")" \
    | curl -sS --fail-with-body -m 20 --retry 3 --retry-connrefused -X POST -H @- "$url" >&2; then
    echo >&2
    return 0
  fi
  echo >&2
  return 1
}

set_paused() {
  if [[ -n $api ]]; then
    if [[ $1 == true ]]; then call_api pause; else call_api resume; fi
    return
  fi
  local patch="{\"spec\":{\"paused\":$1}}"
  if [[ $1 == true && -n $for_duration ]]; then
    local until
    until=$(date -u -d "now + $(to_seconds "$for_duration") seconds" +%Y-%m-%dT%H:%M:%SZ)
    patch="{\"spec\":{\"paused\":true,\"pausedUntil\":\"$until\"}}"
  elif [[ $1 == false ]]; then
    patch='{"spec":{"paused":false,"pausedUntil":null}}'
  fi
  kubectl "${kubectl_namespace[@]}" patch heartbeatmonitor "$monitor" --type=merge -p "$patch" >&2
}

# 1h30m -> 5400 (the DESIGN's duration units).
to_seconds() {
  local rest=$1 total=0 n unit
  while [[ $rest =~ ^([0-9]+)([smhdw])(.*)$ ]]; do
    n=${BASH_REMATCH[1]} unit=${BASH_REMATCH[2]} rest=${BASH_REMATCH[3]}
    case $unit in
      s) total=$((total + n)) ;;
      m) total=$((total + n * 60)) ;;
      h) total=$((total + n * 3600)) ;;
      d) total=$((total + n * 86400)) ;;
      w) total=$((total + n * 604800)) ;;
    esac
  done
  [[ -z $rest && $total -gt 0 ]] || { echo "deploy-paused.sh: bad duration $1" >&2; exit 2; }
  echo "$total"
}

# shellcheck disable=SC2329  # called from the EXIT trap below
resume() {
  # Retry: a monitor left paused would never alert again.
  for attempt in 1 2 3 4 5; do
    if set_paused false; then
      return 0
    fi
    echo "deploy-paused.sh: resume failed (attempt $attempt), retrying" >&2
    sleep "$attempt"
  done
  echo "deploy-paused.sh: could not resume heartbeatmonitor/$monitor: resume it by hand" >&2
  return 1
}

[[ -z $for_duration ]] || to_seconds "$for_duration" >/dev/null
if ! set_paused true; then
  echo "deploy-paused.sh: could not pause heartbeatmonitor/$monitor; not deploying" >&2
  exit 4
fi
# Resume on every way out: normal exit, failure, Ctrl-C, SIGTERM. A failed resume makes
# the script fail (status 3) even when the deploy succeeded.
trap 'resume || exit 3' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if [[ -z $api ]]; then
  # The operator shows the pause in status within a moment; don't hold the deploy for it.
  kubectl "${kubectl_namespace[@]}" wait "heartbeatmonitor/$monitor" \
    --for=jsonpath='{.status.state}'=Paused --timeout=15s >&2 \
    || echo "deploy-paused.sh: status not Paused yet (is the operator running?); deploying anyway" >&2
fi

status=0
"$@" || status=$?
exit "$status"
