#!/usr/bin/env bash
# Pause a HeartbeatMonitor, run a deploy command, resume the monitor — also when the
# deploy fails or is interrupted — and exit with the deploy's status.
#
#   ./deploy-paused.sh [-n NAMESPACE] MONITOR -- COMMAND [ARG...]
#   ./deploy-paused.sh -n prod queue-worker -- kubectl -n prod rollout restart deploy/queue-worker
#
# While paused, pings are still recorded but nothing alerts (DESIGN 2). On resume the
# next slot is counted from the resume time, never from before the pause, so a deploy
# that took longer than the period does not cause a missed run.
#
# Needs kubectl with `patch` on heartbeatmonitors (the `edit` role has it).
set -euo pipefail

namespace=()
if [[ ${1:-} == -n ]]; then
  namespace=(-n "$2")
  shift 2
fi
monitor=${1:?usage: deploy-paused.sh [-n NAMESPACE] MONITOR -- COMMAND [ARG...]}
shift
[[ ${1:-} == -- ]] && shift
(($# > 0)) || { echo "deploy-paused.sh: no command given" >&2; exit 2; }

set_paused() {
  kubectl "${namespace[@]}" patch heartbeatmonitor "$monitor" --type=merge \
    -p "{\"spec\":{\"paused\":$1}}" >&2
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

set_paused true
# Resume on every way out: normal exit, failure, Ctrl-C, SIGTERM. A failed resume makes
# the script fail (status 3) even when the deploy succeeded.
trap 'resume || exit 3' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# The operator shows the pause in status within a moment; don't hold the deploy for it.
kubectl "${namespace[@]}" wait "heartbeatmonitor/$monitor" \
  --for=jsonpath='{.status.state}'=Paused --timeout=15s >&2 \
  || echo "deploy-paused.sh: status not Paused yet (is the operator running?); deploying anyway" >&2

status=0
"$@" || status=$?
exit "$status"
