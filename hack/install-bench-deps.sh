#!/usr/bin/env bash
# Debian packages `make bench` needs (issue 8): wrk, the HTTP load generator whose Lua
# scripts in bench/wrk/ spread pings over many monitors' tokens. Idempotent: checks with
# dpkg first, and runs `apt-get update` (once) and `apt-get install` only when missing.
set -euo pipefail

packages=(
  wrk # bench/bench_pings.py: ping throughput and latency (bench/wrk/*.lua)
)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
if ((${#missing[@]} == 0)); then
  echo "bench deps: all installed (${packages[*]})" >&2
  exit 0
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then sudo=(sudo); fi
echo "bench deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
