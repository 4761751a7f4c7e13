#!/bin/sh
# Run a command between a start ping and an exit-code ping whose body is the command's
# last output. The ping never fails the job: when the receiver can't be reached, the
# command still runs and the script exits with the command's own status.
#
#   PING_URL=... ./ping.sh ./generate-report.sh --daily
#
# Plain POSIX sh and curl, so it works in small images (busybox, alpine).

ping_heartbeat() {  # ping_heartbeat SUFFIX [BODY_FILE]
  if [ -z "${PING_URL:-}" ]; then
    echo "ping.sh: PING_URL is not set; not pinging" >&2
    return 0
  fi
  if [ -n "${2:-}" ]; then
    set -- "$1" --data-binary "@$2"
  fi
  url="$PING_URL$1"
  shift
  # -m 10: never hang the job; --retry: ride out a receiver restart ($PING_ATTEMPTS tries).
  curl -fsS -m 10 --retry "$((${PING_ATTEMPTS:-5} - 1))" --retry-connrefused -o /dev/null "$@" "$url" \
    || echo "ping.sh: heartbeat ping failed; the job goes on" >&2
}

[ $# -gt 0 ] || { echo "usage: ping.sh COMMAND [ARG...]" >&2; exit 2; }

if ! work=$(mktemp -d 2>/dev/null); then
  # No writable temporary directory (a read-only root filesystem, say): the job still
  # runs, and its pings go without the output.
  echo "ping.sh: no temporary directory to keep the output in; pinging without it" >&2
  ping_heartbeat /start
  "$@"
  status=$?
  ping_heartbeat "/$status"
  exit "$status"
fi
trap 'rm -rf "$work"' EXIT

ping_heartbeat /start
# The output streams to the job's log as usual and is kept for the ping's body.
{ "$@" 2>&1; echo $? > "$work/status"; } | tee "$work/output"
status=$(cat "$work/status")
# The receiver keeps the first 10,000 bytes of a body: send the end, where errors are.
tail -c 10000 "$work/output" > "$work/body"
ping_heartbeat "/$status" "$work/body"
exit "$status"
