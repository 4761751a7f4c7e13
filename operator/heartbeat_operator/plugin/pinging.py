"""Sending pings from the terminal or a job: ``kubectl heartbeat ping`` and ``run``.

A ping is retried with exponential backoff on what a retry can fix: a refused or reset
connection, a timeout, ``429`` and ``5xx`` (the receiver answers ``503`` while it cannot
store a ping and ``429`` when a monitor is flooded, both with ``Retry-After``; DESIGN
9.8, 9.13, 10.5: "clients retry"). A ``4xx`` other than ``429`` is final (``404``: no
such token). The token is part of the URL and so never printed: messages name the
monitor and the route only.

``run`` is the seeds' ``run-with-heartbeat.sh`` done right (issue 16 item 1): a start
ping with a fresh run id, the command run with its output passed through untouched, then
its exit code with the last 10,000 bytes of its output (DESIGN 3's body limit) on the same
run id. A ping that fails is reported on stderr and never changes the command's exit
status.
"""

from __future__ import annotations

import http.client
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

#: Bytes of output a finish ping carries: the receiver keeps the first 10,000 bytes of a
#: body (DESIGN section 3), so the last 10,000 of the output are the ones that survive.
OUTPUT_TAIL_BYTES = 10_000
#: Attempts per ping by default: with the backoff below, about 15 s of retrying, past the
#: 10 s a receiver outage must last before it counts (DESIGN 10.5).
DEFAULT_ATTEMPTS = 5
#: First retry delay in seconds, doubled after each attempt, capped at ``MAX_DELAY``.
FIRST_DELAY = 1.0
MAX_DELAY = 8.0
#: Seconds one attempt may take: a stored ping answers within 5 s (DESIGN 9.13: else 503).
ATTEMPT_TIMEOUT = 10.0
#: The longest ``Retry-After`` honoured; a longer one is capped (the job should not hang).
MAX_RETRY_AFTER = 10.0

ROUTES = {"success": "", "start": "/start", "fail": "/fail", "log": "/log"}


@dataclass(frozen=True)
class Outcome:
    """How a ping ended: ``ok`` with the receiver's answer, or why not."""

    ok: bool
    status: int  # the HTTP status, 0 when no answer came
    detail: str
    attempts: int


def ping_url(
    base: str, kind: str = "success", exit_code: int | None = None, rid: str | None = None
) -> str:
    """``base`` (the Secret's ``url``) plus the route of ``kind`` (DESIGN section 3)."""
    url = base.rstrip("/")
    url += f"/{exit_code}" if exit_code is not None else ROUTES[kind]
    if rid:
        url += "?" + urllib.parse.urlencode({"rid": rid})
    return url


def send(
    url: str,
    body: bytes | None = None,
    *,
    attempts: int = DEFAULT_ATTEMPTS,
    first_delay: float = FIRST_DELAY,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """POST ``body`` (GET without one) to ``url`` with retries; never raises."""
    problem = url_problem(url)
    if problem is not None:  # final: no retry makes it a URL
        return Outcome(False, 0, problem, 1)
    delay = first_delay
    status, detail = 0, ""
    for attempt in range(1, max(1, attempts) + 1):
        request = urllib.request.Request(
            url,
            data=body,
            method="POST" if body is not None else "GET",
            headers={
                "User-Agent": "kubectl-heartbeat",
                "Content-Type": "text/plain; charset=utf-8",
            },
        )
        retry_after: float | None = None
        try:
            with urllib.request.urlopen(request, timeout=ATTEMPT_TIMEOUT) as answer:
                text = answer.read(200).decode("utf-8", "replace").strip()
                return Outcome(True, answer.status, text, attempt)
        except urllib.error.HTTPError as exc:
            status = exc.code
            detail = exc.read(200).decode("utf-8", "replace").strip() or str(exc.reason)
            if status != 429 and status < 500:
                return Outcome(False, status, detail, attempt)
            retry_after = _retry_after(exc.headers.get("Retry-After"))
        except urllib.error.URLError as exc:
            status, detail = 0, _reason(exc.reason)
        except (TimeoutError, OSError) as exc:
            status, detail = 0, _reason(exc)
        except (http.client.HTTPException, ValueError) as exc:
            # e.g. InvalidURL for a space or control character: final, and its text
            # quotes the path, which holds the token.
            return Outcome(False, 0, f"the ping URL is not usable ({type(exc).__name__})", attempt)
        if attempt < attempts:
            sleep(min(MAX_RETRY_AFTER, retry_after) if retry_after is not None else delay)
            delay = min(MAX_DELAY, delay * 2)
    return Outcome(False, status, detail, max(1, attempts))


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a ping URL, in words that do not quote it (it holds the
    token), or None. A job given the Secret's ``token`` key instead of its ``url``, or a
    URL without its scheme, is told so at once instead of after 15 s of retries."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname
    except ValueError:
        host = None
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not host:
        return (
            "the ping URL is not an http:// or https:// URL (give --url or HEARTBEAT_URL "
            "the token Secret's url key)"
        )
    return None


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _reason(reason: object) -> str:
    """An error without the URL (it holds the token): ``connection refused``, ``timed out``."""
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, TimeoutError):
        return "timed out"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower()
    return type(reason).__name__ if not isinstance(reason, str) else reason


def describe_outcome(what: str, outcome: Outcome) -> str:
    """One sentence for stderr; never the URL."""
    tries = f"after {outcome.attempts} attempt{'s' if outcome.attempts != 1 else ''}"
    if outcome.status == 404:
        return f"{what} ping refused: the receiver knows no such token (404; rotated?)"
    if outcome.status:
        return f"{what} ping failed {tries}: HTTP {outcome.status} {outcome.detail}"
    return f"{what} ping failed {tries}: {outcome.detail}"


class _Tail:
    """The last ``limit`` bytes written to it, from both streams in arrival order."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._data = bytearray()
        self._lock = threading.Lock()

    def add(self, chunk: bytes) -> None:
        with self._lock:
            self._data += chunk
            if len(self._data) > 2 * self.limit:
                del self._data[: -self.limit]

    def value(self) -> bytes:
        with self._lock:
            data = bytes(self._data[-self.limit :])
        # A cut in the middle of a UTF-8 character: drop its continuation bytes.
        start = 0
        while start < min(4, len(data)) and data[start] & 0xC0 == 0x80:
            start += 1
        return data[start:]


def _pump(source: BinaryIO, sink: BinaryIO, tail: _Tail) -> None:
    while True:
        chunk = source.read1(65536) if hasattr(source, "read1") else source.read(65536)
        if not chunk:
            return
        tail.add(chunk)
        try:
            sink.write(chunk)
            sink.flush()
        except (BrokenPipeError, ValueError):
            pass  # our own stdout went away; the command's output is still captured


def run_command(
    base_url: str | None,
    argv: Sequence[str],
    *,
    name: str,
    attempts: int = DEFAULT_ATTEMPTS,
    warn: Callable[[str], None],
    first_delay: float = FIRST_DELAY,
) -> int:
    """Ping start, run ``argv``, ping its exit code with its output's tail; return the
    command's exit status (128 + N for a signal; as a shell, 127 when it is not found and
    126 when it cannot be executed). Without
    a ``base_url`` (it could not be read) the command runs unpinged."""
    rid = uuid.uuid4().hex
    if base_url is not None:
        started = send(
            ping_url(base_url, "start", rid=rid), attempts=attempts, first_delay=first_delay
        )
        if not started.ok:
            warn(describe_outcome(f"{name}: start", started) + "; running the command anyway")
    tail = _Tail(OUTPUT_TAIL_BYTES)
    try:
        child = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as exc:
        code = 127 if isinstance(exc, FileNotFoundError) else 126
        message = f"kubectl-heartbeat: cannot run {argv[0]!r}: {exc.strerror or exc}\n"
        sys.stderr.write(message)
        tail.add(message.encode())
    else:
        assert child.stdout is not None and child.stderr is not None
        pumps = [
            threading.Thread(target=_pump, args=(child.stdout, sys.stdout.buffer, tail)),
            threading.Thread(target=_pump, args=(child.stderr, sys.stderr.buffer, tail)),
        ]
        for pump in pumps:
            pump.start()
        try:
            returned = child.wait()
        except KeyboardInterrupt:
            child.terminate()
            returned = child.wait()
        for pump in pumps:
            pump.join()
        code = 128 - returned if returned < 0 else returned  # killed by a signal: 128 + N
    if base_url is None:
        return code
    finished = send(
        ping_url(base_url, exit_code=min(code, 255), rid=rid),
        tail.value(),
        attempts=attempts,
        first_delay=first_delay,
    )
    if not finished.ok:
        warn(describe_outcome(f"{name}: exit code {code}", finished))
    return code
