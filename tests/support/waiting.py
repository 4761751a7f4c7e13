"""Waiting for a condition with a deadline: the only way tests wait (never a bare sleep)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    pass


def wait_for(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.1,
    what: str = "condition",
) -> T:
    """Call ``probe`` until it returns something truthy; return that, or fail at the deadline.

    The last value and the last exception raised by ``probe`` are in the failure message.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            last = probe()
        except Exception as exc:  # the probe's own failure is information, not the end
            last = exc
        else:
            if last:
                return last  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(interval)  # a poll interval between probes, bounded by the deadline


async def async_wait_for(
    probe: Callable[[], Awaitable[T | None]],
    *,
    timeout: float,
    interval: float = 0.1,
    what: str = "condition",
) -> T:
    """The asyncio twin of ``wait_for``."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            last = await probe()
        except Exception as exc:
            last = exc
        else:
            if last:
                return last  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        await asyncio.sleep(interval)  # poll interval, bounded by the deadline
