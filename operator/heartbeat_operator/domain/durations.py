"""Durations as users write them (``30s``, ``5m``, ``1h30m``, ``2d``, ``1w``) and back."""

from __future__ import annotations

import re
from datetime import timedelta

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_TERM = re.compile(r"([0-9]+)([smhdw])")
_WHOLE = re.compile(r"(?:[0-9]+[smhdw])+")


class DurationError(ValueError):
    """The text is not a positive duration in the DESIGN's grammar."""


def parse_duration(text: str) -> timedelta:
    """``"1h30m"`` -> ``timedelta(hours=1, minutes=30)``.

    One or more ``<digits><unit>`` terms with unit ``s``, ``m``, ``h``, ``d`` or ``w``
    (the CRD's pattern, DESIGN 9.15). The total must be positive: ``0s`` and ``-5m`` are
    rejected, ``5m0s`` is accepted. Raises ``DurationError``.
    """
    if not isinstance(text, str) or not _WHOLE.fullmatch(text):
        raise DurationError(f"{text!r} is not a duration like 30s, 5m, 1h30m, 2d or 1w")
    seconds = sum(int(n) * _UNIT_SECONDS[u] for n, u in _TERM.findall(text))
    if seconds <= 0:
        raise DurationError(f"{text!r} is not a positive duration")
    return timedelta(seconds=seconds)


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
