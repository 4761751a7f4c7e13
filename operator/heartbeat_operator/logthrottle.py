"""Log lines that repeat under a fault: at most one per interval per kind (issue 18 item 6).

A fuzzer sending garbage, or an API-server outage failing every status write, made one
log line (with a traceback) per event: 15,321 in four minutes. ``Throttle.log`` lets the
first line of a kind through, holds back the same kind for ``interval`` seconds, and
says on the next line it lets through how many it held back::

    throttle = Throttle(logger)
    throttle.log("status write", logging.WARNING, "status write for %s failed: %s", key, exc)
    # ... 10 s later, after 240 more failures:
    # "status write for ns/b failed: 0 Unreachable: ... (240 more like this in 10 s)"

The count of a burst that ends is told with the next line of its kind. Kinds are a small
fixed set chosen by the callers (never a token, a name or anything a client chooses).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

#: Seconds between two lines of one kind: a line every 10 s tells an operator reading the
#: log that the fault goes on, without burying everything else (issue 18 item 6).
LOG_INTERVAL = 10.0


@dataclasses.dataclass
class _Kind:
    since: float
    held: int = 0


class Throttle:
    def __init__(
        self,
        logger: logging.Logger,
        interval: float = LOG_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval = interval
        self._clock = clock
        self._kinds: dict[str, _Kind] = {}

    def log(self, kind: str, level: int, msg: str, *args: object) -> bool:
        """Log ``msg % args`` at ``level`` unless a line of ``kind`` went out less than
        ``interval`` s ago (then count it). Returns whether the line was written."""
        if not self.logger.isEnabledFor(level):
            return False
        now = self._clock()
        state = self._kinds.get(kind)
        if state is not None and now - state.since < self.interval:
            state.held += 1
            return False
        held = state.held if state is not None else 0
        elapsed = now - state.since if state is not None else 0.0
        self._kinds[kind] = _Kind(since=now)
        if held:
            msg = f"{msg} (%d more like this in %.0f s)"
            args = (*args, held, elapsed)
        self.logger.log(level, msg, *args)
        return True
