"""Reads about a Job's run that ``causes.py`` turns into words: its Events, a container's log.

Thin and async over ``KubeClient`` (DESIGN 10.1, 10.8.3; issue 12). The operator only
reads here, never writes (DESIGN 9.12). Callers decide when a read is worth it: the
leader lists a slot's Job Events once before judging it ``NotStarted``, and reads a
failing container's log only with ``--capture-logs`` (RBAC ``pods/log get``).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from heartbeat_operator.engine.api import ApiError, KubeApi

logger = logging.getLogger(__name__)

LOG_TAIL_BYTES = 10_000
"""The most of a log the fail ping's body takes (issue 12, item 4)."""

LOG_FETCH_CAP = 256 * 1024
"""``limitBytes`` of one log read: what one read may hold in memory, whatever the lines'
length (a job printing one 1 GB line must not cost the operator 1 GB)."""

_LOG_READS = 3
"""Reads of one log at most (see ``read_log_tail``)."""


async def list_job_events(client: KubeApi, namespace: str, job_uid: str) -> list[dict[str, Any]]:
    """The core/v1 Events about the Job with ``job_uid`` (its ``FailedCreate`` says why no
    Pod exists: quota, admission webhooks), listed once by ``involvedObject.uid``.

    Raises ``ApiError`` (e.g. 403 without the chart's ``events list`` rule).
    """
    answer = await client.get(
        f"/api/v1/namespaces/{namespace}/events",
        params={"fieldSelector": f"involvedObject.uid={job_uid}"},
        kind="events",
    )
    items = answer.get("items") or []
    return [item for item in items if isinstance(item, dict)]


#: How long a token can be (DESIGN 9.9: 32-128 URL-safe characters).
TOKEN_MIN_CHARS, TOKEN_MAX_CHARS = 32, 128

_URL_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _url_safe(byte: int) -> bool:
    return byte in _URL_SAFE


def tail_text(data: bytes, limit_bytes: int = LOG_TAIL_BYTES) -> str:
    """The last ``limit_bytes`` of ``data`` or fewer, starting on a UTF-8 character boundary
    (never half a character) and never inside a run of URL-safe characters (never part
    of a token); bytes that are not UTF-8 become U+FFFD."""
    tail = data[-limit_bytes:] if limit_bytes > 0 else b""
    start = 0
    cut = len(data) - len(tail)
    if tail and cut > 0 and _url_safe(data[cut - 1]) and _url_safe(tail[0]):
        # The cut fell inside a run of URL-safe characters. If the run is sized like a
        # token (issue 18 item 5), the part kept could not be recognised and redacted as
        # one any more: drop it.
        before = cut
        while before > 0 and _url_safe(data[before - 1]):
            before -= 1
        after = 0
        while after < len(tail) and _url_safe(tail[after]):
            after += 1
        if TOKEN_MIN_CHARS <= cut - before + after <= TOKEN_MAX_CHARS:
            start = after
    # A UTF-8 character is at most 4 bytes: at most 3 continuation bytes (10xxxxxx) to skip.
    while start < min(3, len(tail)) and tail[start] & 0xC0 == 0x80:
        start += 1
    return tail[start:].decode("utf-8", errors="replace")


async def read_log_tail(
    client: KubeApi,
    namespace: str,
    pod: str,
    container: str,
    limit_bytes: int = LOG_TAIL_BYTES,
    *,
    previous: bool = False,
) -> str | None:
    """The last ``limit_bytes`` (or fewer) of the container's log; None when it cannot be
    read (403: no ``pods/log get``; 404: the Pod is gone; 400: no log, e.g. the container
    never ran or its node is gone). Other errors raise ``ApiError``.

    ``previous``: the log of the container's previous run (a failure in ``lastState``,
    ``restartPolicy: OnFailure``).

    The pods/log API gives the end of a log with ``tailLines`` only: ``limitBytes`` counts
    from the start of what it returns. So each read asks for a number of lines, capped at
    ``LOG_FETCH_CAP`` bytes, and the end is cut here. The first asks for one line per 40
    bytes wanted (log lines are mostly 40-200 bytes: one read, a few times what is kept);
    lines shorter than that give too little and the next read asks for more, lines so long
    that the cap was hit give the start of the window and the next read asks for fewer,
    each sized on the lines just read. Only a last line longer than the cap comes back cut
    short: the end of its first ``LOG_FETCH_CAP`` bytes.
    """
    path = f"/api/v1/namespaces/{namespace}/pods/{pod}/log"
    lines = max(1, limit_bytes // 40)
    data = b""
    for _ in range(_LOG_READS):
        params = {
            "container": container,
            "tailLines": str(lines),
            "limitBytes": str(LOG_FETCH_CAP),
        }
        if previous:
            params["previous"] = "true"
        try:
            data = await client.get_bytes(path, params=params, kind="pods/log")
        except ApiError as exc:
            if exc.status in (400, 403, 404):
                logger.info("no log of %s/%s container %s: %s", namespace, pod, container, exc)
                return None
            raise
        newlines = data.count(b"\n")
        per_line = max(1, len(data) // max(1, newlines))
        wanted = 2 * math.ceil(limit_bytes / per_line)
        if len(data) >= LOG_FETCH_CAP and lines > 1:
            lines = max(1, min(lines // 2, wanted))  # long lines: the window's start came back
        elif len(data) < limit_bytes and newlines >= lines:
            lines = max(lines * 2, wanted)  # short lines: the log may hold more
        else:
            break
    return tail_text(data, limit_bytes)
