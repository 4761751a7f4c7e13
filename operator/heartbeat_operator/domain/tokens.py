"""Ping tokens (DESIGN section 3 and 9.9): generation, hashing, validation of users' tokens.

``new_token`` is the domain's only source of randomness (not a clock, so purity holds).
"""

from __future__ import annotations

import hashlib
import re
import secrets

_USER_TOKEN = re.compile(r"[A-Za-z0-9_-]{32,128}")


def new_token() -> str:
    """A fresh token: 256 bits from ``secrets``, URL-safe (43 characters)."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """``"sha256:<64 hex>"`` of the token: the only form that ever reaches status."""
    return "sha256:" + hashlib.sha256(token.encode("utf-8")).hexdigest()


def is_valid_user_token(token: str) -> bool:
    """Whether a user-supplied token matches ``^[A-Za-z0-9_-]{32,128}$`` (else ``WeakToken``)."""
    return isinstance(token, str) and _USER_TOKEN.fullmatch(token) is not None


#: What a token found in a ping body or a Job's output is replaced with (issue 18 item 5).
REDACTED = "<redacted>"

#: A ping URL's token segment: ``/ping/``, ``/hb/`` or ``/v1/heartbeats/`` (``/`` also
#: percent-encoded, as in a URL passed as a query value) and a run of 32 or more URL-safe
#: characters — any monitor's token, not only the pinging one's.
_PING_URL_TOKEN = re.compile(
    r"((?:/|%2[Ff])(?:ping|hb|v1(?:/|%2[Ff])heartbeats)(?:/|%2[Ff]))[A-Za-z0-9_-]{32,}"
)
#: A whole run of URL-safe characters as long as a token can be (32-128).
_TOKEN_SIZED_RUN = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{32,128}(?![A-Za-z0-9_-])")


def redact_tokens(
    text: str, *, token: str | None = None, hashed: str | None = None, cut: int | None = None
) -> str:
    """``text`` (a ping body, a Job's failure message or log tail) with no ping token left.

    A job's output often holds its own ping URL (``curl -v``, ``wget`` traces, ``set -x``)
    and the body lands in status, Events and ``recentPings``, readable by whoever may
    view the monitor, which need not read Secrets (issue 18 item 5). Replaced with
    ``REDACTED``:

    - ``token``: every occurrence of it (the receiver knows the token it was pinged with);
    - ``hashed``: a ``sha256:`` token hash (``status.tokenHash``): every standalone run of
      32-128 URL-safe characters whose hash it is (the Job mirror knows only the hash);
    - the token segment of anything shaped like a ping URL, whoever's token it is.

    Other long runs (hashes, ids, base64) are kept: they are the job's output.

    ``cut``: keep only the first ``cut`` characters of ``text``, a token that starts before
    the cut redacted whole. ``text`` should run on past the cut by the longest token, so
    that a token straddling the cut is seen whole: redacting after cutting would leave its
    first part, and cutting after redacting would keep text from beyond the cut.
    """
    kept: list[str] = []
    end = len(text) if cut is None else min(cut, len(text))
    position = 0
    for start, stop in _token_spans(text, token=token, hashed=hashed):
        if start >= end:
            break
        kept += (text[position:start], REDACTED)
        position = stop
    if position < end:
        kept.append(text[position:end])
    return "".join(kept)


def _token_spans(text: str, *, token: str | None, hashed: str | None) -> list[tuple[int, int]]:
    """Where ``redact_tokens``' tokens are in ``text``: sorted, overlaps merged."""
    spans: list[tuple[int, int]] = []
    if token and is_valid_user_token(token):
        at = text.find(token)
        while at >= 0:
            spans.append((at, at + len(token)))
            at = text.find(token, at + len(token))
    spans += [(found.end(1), found.end()) for found in _PING_URL_TOKEN.finditer(text)]
    if hashed:
        runs = _TOKEN_SIZED_RUN.finditer(text)
        spans += [run.span() for run in runs if token_hash(run[0]) == hashed]
    merged: list[tuple[int, int]] = []
    for start, stop in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], stop))
        else:
            merged.append((start, stop))
    return merged
