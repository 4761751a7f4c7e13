"""Outages of the operator itself: intervals in which no replica could store pings
(DESIGN 10.5, 10.8.9).

Pure: intervals in, intervals out; the kube side (``kube.replicas``) reads and writes the
Leases they come from. What the state machine does with them is in ``machine`` (a slot
overlapping one by at least ``MIN_OUTAGE`` is judged ``OperatorUnavailable``).

- ``Outage(start, end)``: an ended interval; only those of at least ``MIN_OUTAGE`` count.
- ``uncovered(covered)``: the gaps of at least ``MIN_OUTAGE`` between intervals in which
  some replica renewed its Lease: how the leader finds outages (``kube.replicas``).
- ``merge``, ``to_json``/``from_json`` (the annotation on the leadership Lease),
  ``overlapping``/``containing`` (what the machine asks).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from heartbeat_operator.domain.timefmt import TimeFormatError, format_time, parse_time
from heartbeat_operator.domain.vocabulary import EventReason

#: DESIGN 10.5: outages shorter than this do not count (clients retry: ``curl --retry 3
#: --retry-connrefused``), and a slot's window must overlap one by at least this much.
MIN_OUTAGE = timedelta(seconds=10)

#: The ``Healthy`` reason and the Normal Event of a slot judged during an outage
#: (DESIGN 10.5, 10.8.4, 10.8.9): counted neither as failure nor as success.
OPERATOR_UNAVAILABLE = EventReason.OPERATOR_UNAVAILABLE


@dataclass(frozen=True, slots=True, order=True)
class Outage:
    """An ended interval in which no replica could store pings."""

    start: datetime
    end: datetime

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    def overlap(self, start: datetime, end: datetime) -> timedelta:
        """How long ``[start, end]`` and this outage share (zero if they do not meet)."""
        return max(timedelta(0), min(end, self.end) - max(start, self.start))


def counted(outages: Iterable[Outage]) -> list[Outage]:
    """Those long enough to count, sorted."""
    return sorted(o for o in outages if o.duration >= MIN_OUTAGE)


def overlapping(outages: Sequence[Outage], start: datetime, end: datetime) -> Outage | None:
    """The outage a window ``[start, end]`` overlaps by at least ``MIN_OUTAGE``, or lies
    wholly inside (a window shorter than 10 s in an outage had no chance at all; see
    docs/decisions.md), else None; the latest one if several do (its Event names it)."""
    found = None
    for outage in outages:
        if outage.duration < MIN_OUTAGE:
            continue
        inside = outage.start <= start and end <= outage.end
        meets = inside or outage.overlap(start, end) >= MIN_OUTAGE
        if meets and (found is None or outage.start > found.start):
            found = outage
    return found


def containing(outages: Sequence[Outage], at: datetime) -> Outage | None:
    """The outage (of at least ``MIN_OUTAGE``) that ``at`` falls in, ends included."""
    for outage in outages:
        if outage.duration >= MIN_OUTAGE and outage.start <= at <= outage.end:
            return outage
    return None


def merge(outages: Iterable[Outage]) -> list[Outage]:
    """Sorted, overlapping or touching outages joined into one."""
    out: list[Outage] = []
    for outage in sorted(outages):
        if out and outage.start <= out[-1].end:
            if outage.end > out[-1].end:
                out[-1] = Outage(out[-1].start, outage.end)
            continue
        out.append(outage)
    return out


def uncovered(covered: Iterable[tuple[datetime, datetime]]) -> list[Outage]:
    """The gaps of at least ``MIN_OUTAGE`` between ``covered`` intervals (a point is an
    interval with equal ends). Only gaps with covered time on both sides are outages:
    before the first renewal anyone knows of, nothing can be said."""
    spans = merge(Outage(a, b) for a, b in covered if b >= a)
    return [
        Outage(left.end, right.start)
        for left, right in itertools.pairwise(spans)
        if right.start - left.end >= MIN_OUTAGE
    ]


def minus(
    start: datetime, end: datetime, holes: Iterable[Outage]
) -> list[tuple[datetime, datetime]]:
    """``[start, end]`` without ``holes``: what a replica covered, from its first to its
    latest renewal, less the gaps in which its own renewals failed."""
    out: list[tuple[datetime, datetime]] = []
    at = start
    for hole in merge(holes):
        if hole.end <= at or hole.start >= end:
            continue
        if hole.start >= at:  # a gap's ends are renewals that succeeded: covered
            out.append((at, hole.start))
        at = max(at, hole.end)
    if at <= end:
        out.append((at, end))
    return out


def to_json(outages: Iterable[Outage]) -> str:
    """The annotation's value: ``[{"start": "...Z", "end": "...Z"}, ...]``, oldest first."""
    return json.dumps(
        [{"start": format_time(o.start), "end": format_time(o.end)} for o in sorted(outages)],
        separators=(",", ":"),
    )


def from_json(text: str | None) -> list[Outage]:
    """The annotation read back; malformed entries (or text) are dropped, never raised."""
    if not text:
        return []
    try:
        raw = json.loads(text)
    except ValueError:
        return []
    out = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict):
            continue
        try:
            start, end = parse_time(str(item.get("start"))), parse_time(str(item.get("end")))
        except TimeFormatError:
            continue
        if end > start:
            out.append(Outage(start, end))
    return sorted(out)
