"""Small builders for the domain tests: explicit datetimes, specs, folds."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from heartbeat_operator.domain.inputs import Input, Tick
from heartbeat_operator.domain.machine import Transition, apply, view
from heartbeat_operator.domain.records import Record
from heartbeat_operator.domain.specs import MonitorSpec, parse_spec
from heartbeat_operator.domain.timefmt import parse_time

US = timedelta(microseconds=1)


def T(text: str) -> datetime:
    """``T("2026-03-01T01:00:00Z")``: an aware UTC datetime."""
    return parse_time(text)


def spec(**raw: Any) -> MonitorSpec:
    """``spec(period="1h", grace="10m")``: parse a spec written with the CRD's field names."""
    return parse_spec(raw)


def fold(
    s: MonitorSpec, created: datetime, inputs: Iterable[Input], until: datetime | None = None
) -> tuple[Record, list[Transition]]:
    """Fold ``inputs`` from a new record; then ``Tick(until)`` when given."""
    rec = Record.new(created)
    out: list[Transition] = []
    for item in inputs:
        rec, made = apply(s, rec, item, item.time)
        out.extend(made)
    if until is not None:
        rec, made = apply(s, rec, Tick(until), until)
        out.extend(made)
    return rec, out


def states(transitions: Iterable[Transition]) -> list[tuple[str, str, str]]:
    """``[(time, state, reason), ...]`` with times as ``...Z`` text, for readable asserts."""
    from heartbeat_operator.domain.timefmt import format_time

    return [(format_time(t.time), t.state, t.reason) for t in transitions]


__all__ = ["US", "T", "apply", "fold", "spec", "states", "view"]
