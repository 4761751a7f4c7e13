"""Durations as users write them (``30s``, ``5m``, ``1h30m``, ``2d``, ``1w``) and back."""

from __future__ import annotations

import re
from datetime import timedelta

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

#: The longest duration a spec may hold (DESIGN 10.8.16: no duration above 10 years; the
#: CRD's CEL rules refuse longer ones with the same bound). Unbounded, ``500000w`` or
#: ``99999999h`` pushed slot and deadline math past year 9999 (OverflowError, issue 13
#: item 3); at 10 years every time the domain computes stays below year 2100 + 20.
MAX_DURATION = timedelta(days=3650)
MAX_DURATION_TEXT = "10 years (3650d)"
_TERM = re.compile(r"([0-9]+)([smhdw])")
_WHOLE = re.compile(r"(?:[0-9]+[smhdw])+")


class DurationError(ValueError):
    """The text is not a positive duration in the DESIGN's grammar."""


def parse_duration(text: str) -> timedelta:
    """``"1h30m"`` -> ``timedelta(hours=1, minutes=30)``.

    One or more ``<digits><unit>`` terms with unit ``s``, ``m``, ``h``, ``d`` or ``w``
    (the CRD's pattern, DESIGN 9.15). The total must be positive: ``0s`` and ``-5m`` are
    rejected, ``5m0s`` is accepted; and at most ``MAX_DURATION`` (10 years). Raises
    ``DurationError``, never OverflowError, however many digits the text has.
    """
    if not isinstance(text, str) or not _WHOLE.fullmatch(text):
        raise DurationError(f"{text!r} is not a duration like 30s, 5m, 1h30m, 2d or 1w")
    seconds = sum(int(n) * _UNIT_SECONDS[u] for n, u in _TERM.findall(text))
    if seconds <= 0:
        raise DurationError(f"{text!r} is not a positive duration")
    # Compared as an int before any timedelta exists: timedelta itself overflows past
    # 999,999,999 days.
    if seconds > MAX_DURATION.days * 86400:
        raise DurationError(f"{_shown(text)} is longer than {MAX_DURATION_TEXT}")
    return timedelta(seconds=seconds)


def _shown(text: str, limit: int = 40) -> str:
    """The text for a message, cut: the CRD allows 64 characters, a file any number."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def format_duration(value: timedelta) -> str:
    """``timedelta(hours=1, minutes=30)`` -> ``"1h30m"``; the inverse of ``parse_duration``.

    Whole seconds only (sub-second parts are dropped); weeks are not used, days are
    (``"2d"``, ``"14d"``), since ``7d`` reads better in a message than ``1w``.
    """
    total = int(value.total_seconds())
    if total <= 0:
        return "0s"
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        n, total = divmod(total, size)
        if n:
            out.append(f"{n}{unit}")
    return "".join(out)
