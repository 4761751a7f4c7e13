"""How the monitor table holds a status: packed, in two parts, against a preset dictionary.

Every replica holds every monitor's status (engine.monitors). As Python dicts a full status
costs about 12 KiB; packed (compact JSON, zlib) it costs a few hundred bytes. Two
choices here, both measured in bench/README.md ("scale" and "Metrics scrape"):

- **Two parts.** The *summary* is the status without its ``HISTORY_FIELDS``, the part the
  metrics read; the histories are the rest, read only with the whole status (the writer,
  the scheduler). Rendering every monitor for ``/metrics`` (a new leader's warm pass)
  unpacks each summary and nothing else, about a third of a status's JSON.
- **A preset dictionary** (zlib's ``zdict``): a typical status, so the field names,
  reasons and messages every status repeats are not stored once per monitor: a status
  of ~4 KB of JSON packs to ~540 bytes instead of ~810 with plain zlib (the summary,
  ~1.4 KB of JSON, to ~330 bytes). The dictionary lives only in memory: changing it
  needs no migration.

Pure functions of bytes and dicts; no I/O.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

import orjson

from heartbeat_operator.engine.api import dump_json

__all__ = ["HISTORY_FIELDS", "pack_histories", "pack_summary", "unpack"]

#: The status fields that keep histories (DESIGN section 9 item 4's record): most of a
#: status's bytes, never read by the metrics.
HISTORY_FIELDS = frozenset(
    {
        "recentPings",
        "recentTransitions",
        "lastOutput",
        "openRuns",
        "reportedJobs",
        "replicaWrites",
        "journalAbsorbed",  # engine.journaled (issue 15)
    }
)

# A status as the operator writes it (a cron monitor after a day of hourly runs, one
# failure, one missed run), the source of both preset dictionaries. Only its strings
# matter: the more a real status shares with it, the smaller it packs.
_TYPICAL_STATUS: dict[str, Any] = {
    "observedGeneration": 1,
    "state": "Healthy",
    "stateReason": "PingReceived",
    "activeSince": "2026-01-01T01:59:00Z",
    "referenceTime": "2026-01-01T15:03:03Z",
    "successStreak": 2,
    "consecutiveFailures": 0,
    "pingCount": 25,
    "missedRuns": 2,
    "stateMessage": "run started at 15:00:03 UTC; next expected by 16:00 UTC",
    "stateSince": "2026-01-01T15:00:03Z",
    "lastPingTime": "2026-01-01T15:03:03Z",
    "lastSuccessTime": "2026-01-01T15:00:43.250Z",
    "lastFailureTime": "2026-01-01T06:00:43.250Z",
    "lastStartTime": "2026-01-01T15:03:03Z",
    "runningChangedAt": "2026-01-01T11:00:03Z",
    "failureReason": "Missed",
    "lastExitCode": 0,
    "lastDurationSeconds": 40.25,
    "pingCounts": {"fail": 1, "log": 1, "start": 13, "success": 10},
    "openRuns": [
        {"startTime": "2026-01-01T11:00:03Z", "runId": "run9", "timedOut": True},
        {"startTime": "2026-01-01T15:03:03Z", "runId": "open"},
    ],
    "recentTransitions": [
        {
            "time": "2026-01-01T15:00:00Z",
            "state": "Grace",
            "reason": "Late",
            "message": "no ping since 14:00:43 UTC; expected by 15:00 UTC + grace 5m "
            "(missed after 15:05 UTC)",
            "eventReason": "Late",
        },
        {
            "time": "2026-01-01T13:05:00Z",
            "state": "Down",
            "reason": "Missed",
            "message": "no ping since 11:00:03 UTC; expected by 13:00 UTC + grace 5m; "
            "2 of failureThreshold 1",
            "eventReason": "Missed",
        },
        {
            "time": "2026-01-01T14:00:43.250Z",
            "state": "Healthy",
            "reason": "PingReceived",
            "message": "success at 14:00:43 UTC in 40.25s; 1 of successThreshold 1; "
            "next expected by 15:00 UTC",
            "eventReason": "Recovered",
        },
        {
            "time": "2026-01-01T15:00:03Z",
            "state": "Healthy",
            "reason": "PingReceived",
            "message": "run started at 15:00:03 UTC; next expected by 16:00 UTC",
        },
    ],
    "recentPings": [
        {"time": "2026-01-01T13:00:03Z", "kind": "log", "body": "progress 50%"},
        {"time": "2026-01-01T12:00:43.250Z", "kind": "fail", "exitCode": 1, "runId": "run11"},
        {
            "time": "2026-01-01T14:00:43.250Z",
            "kind": "success",
            "exitCode": 0,
            "durationSeconds": 40.25,
            "runId": "run12",
            "body": "backup done\n",
        },
        {"time": "2026-01-01T15:00:03Z", "kind": "start", "runId": "run13"},
    ],
    "lastOutput": {"time": "2026-01-01T14:00:43.250Z", "kind": "success", "body": "done\n"},
    "reportedJobs": [{"uid": "4f9c2a1e-6d3b-4c8a-9e7f-1a2b3c4d5e6f", "phase": "succeeded"}],
    "conditions": [
        {
            "type": "Ready",
            "status": "True",
            "reason": "TokenReady",
            "message": "the ping token is ready",
            "lastTransitionTime": "2026-01-01T02:00:00Z",
            "observedGeneration": 1,
        },
        {
            "type": "Healthy",
            "status": "True",
            "reason": "PingReceived",
            "message": "run started at 15:00:03 UTC; next expected by 16:00 UTC",
            "lastTransitionTime": "2026-01-01T14:00:43.250Z",
            "observedGeneration": 1,
        },
        {
            "type": "Running",
            "status": "False",
            "reason": "Idle",
            "message": "no run is open",
            "lastTransitionTime": "2026-01-01T11:00:03Z",
            "observedGeneration": 1,
        },
    ],
    "nextDueTime": "2026-01-01T16:00:00Z",
    "alertTime": "2026-01-01T16:05:00Z",
    "tokenHash": "sha256:4a1f0c9e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f",
    "tokenSecretName": "nightly-backup-heartbeat",
}


def _summary(status: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in status.items() if k not in HISTORY_FIELDS}


def _histories(status: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in status.items() if k in HISTORY_FIELDS}


_SUMMARY_DICTIONARY = dump_json(_summary(_TYPICAL_STATUS))
_HISTORIES_DICTIONARY = dump_json(_histories(_TYPICAL_STATUS))

# Level 1: packing runs on every status write (~30 µs, against the write's milliseconds);
# higher levels save a few bytes.
_LEVEL = 1


def _pack(fields: Mapping[str, Any], dictionary: bytes) -> bytes:
    if not fields:
        return b""
    packer = zlib.compressobj(_LEVEL, zdict=dictionary)
    return packer.compress(dump_json(fields)) + packer.flush()


def pack_summary(status: Mapping[str, Any]) -> bytes:
    """The status without its ``HISTORY_FIELDS``, packed (b"" when that is empty)."""
    return _pack(_summary(status), _SUMMARY_DICTIONARY)


def pack_histories(status: Mapping[str, Any]) -> bytes:
    """The status's ``HISTORY_FIELDS`` alone, packed (b"" when it has none)."""
    return _pack(_histories(status), _HISTORIES_DICTIONARY)


def unpack(packed_summary: bytes, packed_histories: bytes = b"") -> dict[str, Any]:
    """The fields of both parts (``unpack(summary)`` alone: the summary). A new dict."""
    fields = _unpack(packed_summary, _SUMMARY_DICTIONARY)
    if packed_histories:
        fields.update(_unpack(packed_histories, _HISTORIES_DICTIONARY))
    return fields


def _unpack(packed: bytes, dictionary: bytes) -> dict[str, Any]:
    if not packed:
        return {}
    fields: dict[str, Any] = orjson.loads(zlib.decompressobj(zdict=dictionary).decompress(packed))
    return fields
