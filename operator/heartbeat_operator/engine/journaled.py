"""Journaled pings as a status write absorbs them, and what the status remembers of it.

Pure (DESIGN 10.7, fine print 10.8.10): a journaled ping's key is (replica identity,
sequence), sequences strictly increasing per identity. A status keeps in
``status.journalAbsorbed``, for each identity, the highest sequence it absorbed; a write
that absorbs a journal's pings folds only those above that mark and raises it. So
replaying a journal (its owner after a lost answer, the leader at a deadline or after the
replica died) never counts a ping twice.

The mark is safe because a replica's journal is written by one flush at a time and a
ping that a flush did not store rides in the next one with the newer pings: no ping is
stored after a later-sequenced ping of the same journal was absorbed, and every absorber
passes *all* the stored pings of the monitor it absorbs (``engine.journal``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from typing import Any

from heartbeat_operator.domain.inputs import Ping
from heartbeat_operator.domain.timefmt import format_time

#: ``status.journalAbsorbed``: ``[{replica, sequence, time}]``, the most recent first.
JOURNAL_ABSORBED = "journalAbsorbed"
MAX_JOURNAL_ABSORBED = 16  # the CRD's maxItems: more replicas than that is not a thing


@dataclasses.dataclass(frozen=True)
class JournalPings:
    """One journal's stored pings for one monitor, ``(sequence, ping)`` in any order."""

    replica: str
    pings: tuple[tuple[int, Ping], ...]


def absorbed_marks(status: Mapping[str, Any]) -> dict[str, int]:
    """``replica -> highest sequence absorbed`` as ``status`` records it."""
    marks: dict[str, int] = {}
    for item in status.get(JOURNAL_ABSORBED) or ():
        if not isinstance(item, Mapping):
            continue
        replica, sequence = item.get("replica"), item.get("sequence")
        if isinstance(replica, str) and isinstance(sequence, int):
            marks[replica] = max(sequence, marks.get(replica, 0))
    return marks


def absorb(
    status: Mapping[str, Any],
    journals: Iterable[JournalPings],
    now: datetime,
    *,
    live: Collection[str] | None = None,
) -> tuple[list[Ping], list[dict[str, Any]] | None]:
    """The pings not absorbed yet, and the new ``journalAbsorbed`` (None: unchanged).

    ``live``: identities whose journal still exists (the leader knows them from its list);
    marks of the others are dropped, a journal that is gone cannot be replayed.
    """
    kept = [dict(i) for i in status.get(JOURNAL_ABSORBED) or () if isinstance(i, Mapping)]
    marks = absorbed_marks(status)
    fresh: list[Ping] = []
    raised: dict[str, int] = {}
    for journal in journals:
        mark = max(marks.get(journal.replica, 0), raised.get(journal.replica, 0))
        new = sorted((seq, ping) for seq, ping in journal.pings if seq > mark)
        if new:
            fresh.extend(ping for _, ping in new)
            raised[journal.replica] = new[-1][0]
    pruned = kept if live is None else [i for i in kept if i.get("replica") in live]
    if not raised and len(pruned) == len(kept):
        return fresh, None
    stamp = format_time(now)
    ahead = [{"replica": r, "sequence": s, "time": stamp} for r, s in raised.items()]
    rest = [i for i in pruned if i.get("replica") not in raised]
    return fresh, (ahead + rest)[:MAX_JOURNAL_ABSORBED]
