#!/usr/bin/env bash
# Debian packages the test suite needs. Idempotent: checks each with dpkg first, and runs
# `apt-get update` (once) and `apt-get install` only when something is missing.
set -euo pipefail

packages=(
  curl # the seed's shell ping example is run as written (issue 4)
  prometheus              # promtool (tests/alerts) and the real Prometheus (tests/integration/test_alerting.py)
  prometheus-alertmanager # the real Alertmanager routing to the alerting test's webhook
)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
if ((${#missing[@]} == 0)); then
  echo "test deps: all installed (${packages[*]})" >&2
  exit 0
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then sudo=(sudo); fi
echo "test deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
