"""Ping bodies (DESIGN 3 and 9.13): read under a hard cap, keep the first bytes, redact
any ping token (issue 18 item 5), decode.

A body is read to its end (so the client gets a definite answer) but only its first
``body_limit`` bytes are kept in memory; past ``max_body`` bytes the reply is 413.
"""

from __future__ import annotations

from aiohttp import StreamReader

from heartbeat_operator.domain.tokens import redact_tokens

#: Bytes read past the body limit so that a token starting before the cut is seen whole
#: and redacted, never kept in part: the longest token is 128 characters.
REDACTION_MARGIN = 160


class BodyTooLarge(Exception):
    """The body is larger than the hard cap: HTTP 413."""


async def read_capped(content: StreamReader, *, keep: int, max_body: int) -> bytes:
    """Read the whole body; return its first ``keep`` bytes. Raise ``BodyTooLarge`` past
    ``max_body`` bytes (stopping there: the rest is never read)."""
    kept = bytearray()
    total = 0
    async for chunk in content.iter_any():
        total += len(chunk)
        if total > max_body:
            raise BodyTooLarge(f"body over {max_body} bytes")
        if len(kept) < keep:
            kept += chunk[: keep - len(kept)]
    return bytes(kept)


def _incomplete_tail(data: bytes) -> int:
    """How many bytes at the end of ``data`` are a UTF-8 sequence cut short (0-3)."""
    # Look back at most 3 bytes for the lead byte of the last sequence.
    for back in range(1, min(4, len(data) + 1)):
        byte = data[-back]
        if byte & 0b1100_0000 == 0b1000_0000:  # continuation byte: keep looking
            continue
        if byte & 0b1110_0000 == 0b1100_0000:
            needed = 2
        elif byte & 0b1111_0000 == 0b1110_0000:
            needed = 3
        elif byte & 0b1111_1000 == 0b1111_0000:
            needed = 4
        else:  # ASCII or an invalid lead byte: nothing is cut short
            return 0
        return back if back < needed else 0
    return 0


def decode_body(data: bytes, limit: int) -> str | None:
    """Cut at ``limit`` bytes, drop an incomplete trailing UTF-8 sequence, then decode
    with replacement (DESIGN 9.13). An empty body is ``None`` (the ping carries none)."""
    data = data[:limit]
    data = data[: len(data) - _incomplete_tail(data)]
    if not data:
        return None
    return data.decode("utf-8", errors="replace")


def ping_body(data: bytes, limit: int, token: str) -> str | None:
    """The body a ping carries: its first ``limit`` bytes, tokens redacted (issue 18 item
    5), then decoded as ``decode_body`` does.

    ``data`` holds up to ``REDACTION_MARGIN`` bytes past ``limit``, so a token that starts
    before the cut is redacted whole; nothing past the cut is kept. Redaction works on the
    bytes as they came (as Latin-1, one character per byte, so the cut is a byte offset;
    tokens are ASCII), so a body without a token is cut and decoded exactly as before.
    """
    kept = redact_tokens(data.decode("latin-1"), token=token, cut=limit)
    return decode_body(kept.encode("latin-1"), limit)
