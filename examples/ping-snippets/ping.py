"""Ping a heartbeat monitor from Python without ever failing the job.

Copy `ping` into your job (standard library only), or run a command under it:

    PING_URL=... python3 ping.py ./generate-report.sh --daily

`ping()` returns False instead of raising when the receiver can't be reached, retries a
few times within a bounded time, and never blocks a job for long.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

BODY_LIMIT = 10_000  # the receiver keeps the first 10,000 bytes of a body


def ping(suffix: str = "", body: bytes | None = None, *, attempts: int | None = None) -> bool:
    """POST (with a body) or GET ``$PING_URL + suffix``; True when the receiver said 200.

    ``suffix``: "" for success, "/start", "/fail", "/log", or "/<exit code>".
    ``attempts``: tries before giving up (default ``$PING_ATTEMPTS``, else 5).
    """
    if attempts is None:
        attempts = max(1, int(os.environ.get("PING_ATTEMPTS") or 5))
    url = os.environ.get("PING_URL")
    if not url:
        print("ping.py: PING_URL is not set; not pinging", file=sys.stderr)
        return False
    for attempt in range(attempts):
        try:
            request = urllib.request.Request(
                url + suffix, data=body, method="POST" if body is not None else "GET"
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                return bool(response.status == 200)
        except urllib.error.HTTPError as error:
            if 400 <= error.code < 500 and error.code not in (408, 429):
                break  # a bad URL or token: retrying won't help
        except (OSError, ValueError):
            pass  # unreachable, timed out, or a malformed URL: retry, then give up
        if attempt + 1 < attempts:
            time.sleep(min(2**attempt, 10))
    print("ping.py: heartbeat ping failed; the job goes on", file=sys.stderr)
    return False


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: ping.py COMMAND [ARG...]", file=sys.stderr)
        return 2
    ping("/start")
    try:
        result = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except OSError as error:  # the command itself could not start
        print(f"ping.py: {error}", file=sys.stderr)
        ping("/127", str(error).encode())
        return 127
    sys.stdout.buffer.write(result.stdout)
    sys.stdout.flush()
    # A signal's death is reported like a shell does: 128 + the signal number.
    status = result.returncode if result.returncode >= 0 else 128 - result.returncode
    ping(f"/{status}", result.stdout[-BODY_LIMIT:])
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
