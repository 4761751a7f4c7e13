"""The per-monitor series: a scrape-time collector over the monitor table (DESIGN 5, 9.14).

``MonitorCollector`` is a prometheus_client ``Collector`` that reads the monitor table
(seam 3 of docs/architecture.md) at scrape time and yields every per-monitor series from
the monitors' ``status`` (and ``spec`` for ``mode`` only). Only the leader exports them;
every replica exports ``heartbeat_leader``.

No label ever carries a token or free text: namespaces, names, states, modes, ping kinds
and allow-listed Kubernetes label values (which the API server already restricts to 63
characters of ``[A-Za-z0-9._-]``).

The series are written straight to the text format rather than through
prometheus_client's sample objects, a monitor's lines are reused until its row in the
table changes, a new leader renders them all before its first scrape (``warm``), and the
body is streamed in pieces: a scrape of 10,000 monitors is ~190,000 samples (16 MB) and
must stay under 200 ms (bench/bench_metrics.py, bench/README.md "Metrics scrape").
"""

from __future__ import annotations

import asyncio
import itertools
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, NamedTuple

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from heartbeat_operator.domain.vocabulary import PingKind, State

__all__ = [
    "MONITOR_STATES",
    "PING_KINDS",
    "STREAM_ROWS",
    "WARM_SLICE",
    "MonitorCollector",
    "MonitorMetricsMode",
    "MonitorSnapshot",
    "MonitorSource",
    "info_label_name",
]
#: The closed set of states (DESIGN section 2); ``heartbeat_monitor_state`` is one-hot over it.
MONITOR_STATES: tuple[str, ...] = tuple(State)

#: Ping kinds as ``status.pingCounts`` keys them (DESIGN seam 1: ``Ping.kind``).
PING_KINDS: tuple[str, ...] = tuple(PingKind)

MonitorMetricsMode = Literal["full", "minimal"]

#: Monitors rendered per slice of ``MonitorCollector.warm`` between yields to the event
#: loop: at ~20 µs each, a slice holds the loop for about 5 ms (bench/bench_metrics.py).
WARM_SLICE = 250

#: Monitors per piece of a streamed /metrics body: ~150 KB at most (one family's lines).
STREAM_ROWS = 1000

#: A short lower-case word safe as a label value: a pingCounts key, an API verb.
WORD_LABEL_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_LABEL_CHARS_RE = re.compile(r"[^a-zA-Z0-9_]")


class MonitorSnapshot(NamedTuple):
    """One row of the monitor table (seam 3). The kube side may pass any object with these
    attributes (its ``MonitorEntry``), or plain 5-tuples in this order. Rows are treated as
    immutable: a changed monitor must be a new row object, never an edited one."""

    namespace: str
    name: str
    labels: Mapping[str, str]
    spec: Mapping[str, Any]
    status: Mapping[str, Any]


MonitorSource = Callable[[], Iterable[Any]]


def info_label_name(key: str) -> str:
    """The ``heartbeat_monitor_info`` label for a Kubernetes label key.

    Like kube-state-metrics: ``label_`` + the key with every character outside
    ``[a-zA-Z0-9_]`` replaced by ``_`` (``app.kubernetes.io/team`` ->
    ``label_app_kubernetes_io_team``).
    """
    return "label_" + _LABEL_CHARS_RE.sub("_", key)


# --- the per-monitor text ------------------------------------------------------------------

# (status field, metric name, help). Each series is absent while its field is unset
# (DESIGN 9.14). Order is the exposition order.
_TIMESTAMPS: tuple[tuple[str, str, str], ...] = (
    (
        "lastPingTime",
        "heartbeat_monitor_last_ping_timestamp_seconds",
        "Time of the monitor's latest ping of any kind (status.lastPingTime), Unix seconds.",
    ),
    (
        "lastSuccessTime",
        "heartbeat_monitor_last_success_timestamp_seconds",
        "Time of the latest successful run finish (status.lastSuccessTime), Unix seconds.",
    ),
    (
        "lastFailureTime",
        "heartbeat_monitor_last_failure_timestamp_seconds",
        "Time of the latest failed run finish (status.lastFailureTime), Unix seconds.",
    ),
    (
        "nextDueTime",
        "heartbeat_monitor_next_due_timestamp_seconds",
        "When the next ping is expected (status.nextDueTime), Unix seconds.",
    ),
)
_NUMBERS: tuple[tuple[str, str, str], ...] = (
    (
        "lastDurationSeconds",
        "heartbeat_monitor_last_duration_seconds",
        "Duration of the latest finished run with a known start (status.lastDurationSeconds).",
    ),
    (
        "lastExitCode",
        "heartbeat_monitor_last_exit_code",
        "Exit code of the latest finish that carried one (status.lastExitCode).",
    ),
    (
        "consecutiveFailures",
        "heartbeat_monitor_consecutive_failures",
        "Failed or missed runs in a row (status.consecutiveFailures).",
    ),
)
_STATE = "heartbeat_monitor_state"
_UP = "heartbeat_monitor_up"
_READY = "heartbeat_monitor_ready"
_NEXT_DUE = "heartbeat_monitor_next_due_timestamp_seconds"
_PINGS = "heartbeat_pings_total"
_MISSED = "heartbeat_missed_runs_total"
_INFO = "heartbeat_monitor_info"
_LEADER = "heartbeat_leader"

_HELP: dict[str, tuple[str, str]] = {
    _STATE: ("gauge", "1 for the monitor's current state (status.state), 0 for the others."),
    _UP: ("gauge", "0 while the monitor is Down (and its spec can be evaluated), else 1."),
    _READY: (
        "gauge",
        "1 while the monitor's Ready condition is True, 0 while it is not (the spec or the "
        "token cannot be used: nothing is judged, see the condition's reason).",
    ),
    **{metric: ("gauge", text) for _, metric, text in _TIMESTAMPS + _NUMBERS},
    _PINGS: (
        "counter",
        "Pings recorded since creation, by kind (status.pingCounts).",
    ),
    _MISSED: ("counter", "Slots that passed without a ping since creation (status.missedRuns)."),
    _INFO: ("gauge", "Always 1: the monitor's mode and its allow-listed Kubernetes labels."),
}


def _escape(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def _number(value: object) -> str | None:
    """Text for a numeric status field, or None when it is unset or not a number."""
    kind = type(value)
    if kind is int:
        return str(value)
    if kind is float:
        assert isinstance(value, float)
        if value != value:  # NaN
            return "NaN"
        if math.isinf(value):
            return "+Inf" if value > 0 else "-Inf"
        return repr(value)
    return None  # unset, bool, str, …: not a number the API would hold here


def _timestamp(value: object) -> str | None:
    """Unix seconds for a status time (``YYYY-MM-DDTHH:MM:SS[.mmm]Z``), None if unset/bad."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:  # DESIGN 9.18 writes UTC with "Z"; never guess a local zone
        return None
    seconds = parsed.timestamp()
    return str(int(seconds)) if seconds.is_integer() else repr(seconds)


def _ready(status: Mapping[str, Any]) -> str | None:
    """The ``Ready`` condition's status (``"True"``, ``"False"``, …), None while absent."""
    conditions = status.get("conditions")
    if not isinstance(conditions, list):
        return None
    for condition in conditions:
        if isinstance(condition, Mapping) and condition.get("type") == "Ready":
            value = condition.get("status")
            return value if isinstance(value, str) else None
    return None


def _mode(spec: Mapping[str, Any]) -> str:
    if spec.get("schedule"):
        return "cron"
    if spec.get("period"):
        return "period"
    return "unknown"


def _unpack(row: Any) -> tuple[str, str, Mapping[str, Any], Mapping[str, Any], Mapping[str, Any]]:
    if hasattr(row, "namespace"):
        # A row may offer its status without the history lists (the kube table's
        # ``summary``): everything read here, for a fraction of the cost to unpack.
        # (Not hasattr: on a property that would unpack it once more.)
        summary = getattr(row, "summary", None)
        status = summary if summary is not None else row.status
        return (
            row.namespace,
            row.name,
            row.labels or {},
            row.spec or {},
            status or {},
        )
    namespace, name, labels, spec, status = row
    return namespace, name, labels or {}, spec or {}, status or {}


# The per-monitor families in exposition order; a row renders to one string per family.
_FAMILIES: tuple[str, ...] = (
    _STATE,
    _UP,
    _READY,
    *(metric for _, metric, _ in _TIMESTAMPS + _NUMBERS),
    _PINGS,
    _MISSED,
    _INFO,
)
# For each current state, the tail of its five one-hot lines after `…{namespace,name`.
_STATE_SUFFIXES: dict[str, tuple[str, ...]] = {
    state: tuple(
        f',state="{candidate}"}} {1 if candidate == state else 0}\n' for candidate in MONITOR_STATES
    )
    for state in MONITOR_STATES
}


class _RowRenderer:
    """Renders one monitor row to its lines, one string per family of ``_FAMILIES``."""

    def __init__(self, label_keys: Sequence[str], minimal: bool) -> None:
        self.minimal = minimal
        # allow-listed keys -> their label names; the first key wins a sanitizing collision
        names: dict[str, str] = {}
        for key in label_keys:
            label = info_label_name(key)
            if label not in names.values():
                names[key] = label
        self.info_labels = list(names.items())

    def render(self, row: Any) -> tuple[str, ...]:
        namespace, name, labels, spec, status = _unpack(row)
        ident = f'{{namespace="{_escape(namespace)}",name="{_escape(name)}"'
        out: list[str] = []
        state = status.get("state")
        ready = _ready(status)
        if state in MONITOR_STATES:
            prefix = _STATE + ident
            out.append("".join([prefix + suffix for suffix in _STATE_SUFFIXES[state]]))
            # DESIGN 9.7: while Ready=False nothing alerts, even if the kept state is Down.
            down = state == "Down" and ready != "False"
            out.append(f"{_UP}{ident}}} {0 if down else 1}\n")
        else:
            out += ("", "")
        # DESIGN 10.4: a monitor that cannot be evaluated alerts (HeartbeatMonitorInvalid),
        # so this series is kept in minimal mode too. Absent until the operator has set
        # Ready (a brand-new monitor whose token is not in its Secret yet).
        out.append(f"{_READY}{ident}}} {1 if ready == 'True' else 0}\n" if ready else "")
        if self.minimal:
            value = _timestamp(status.get("nextDueTime"))
            due = f"{_NEXT_DUE}{ident}}} {value}\n" if value is not None else ""
            out += ["", "", "", due, "", "", "", "", "", ""]
            return tuple(out)
        for field, metric, _ in _TIMESTAMPS:
            value = _timestamp(status.get(field))
            out.append(f"{metric}{ident}}} {value}\n" if value is not None else "")
        for field, metric, _ in _NUMBERS:
            value = _number(status.get(field))
            out.append(f"{metric}{ident}}} {value}\n" if value is not None else "")
        counts = status.get("pingCounts")
        pings = ""
        if isinstance(counts, Mapping):
            for kind in sorted(k for k in counts if isinstance(k, str) and WORD_LABEL_RE.match(k)):
                value = _number(counts[kind])
                if value is not None:
                    pings += f'{_PINGS}{ident},kind="{kind}"}} {value}\n'
        out.append(pings)
        value = _number(status.get("missedRuns"))
        out.append(f"{_MISSED}{ident}}} {value}\n" if value is not None else "")
        extra = "".join(
            f',{label}="{_escape(str(labels.get(key, "")))}"' for key, label in self.info_labels
        )
        out.append(f'{_INFO}{ident},mode="{_mode(spec)}"{extra}}} 1\n')
        return tuple(out)


def _families_chunks(rendered: Sequence[Sequence[bytes]]) -> Iterator[bytes]:
    """The per-monitor families, each as its header and its lines ``STREAM_ROWS``
    monitors at a time (a scrape never builds the whole body: 16 MB at 10,000)."""
    for index, metric in enumerate(_FAMILIES):
        header = False
        for start in range(0, len(rendered), STREAM_ROWS):
            lines = b"".join([lines[index] for lines in rendered[start : start + STREAM_ROWS]])
            if not lines:
                continue
            if not header:
                kind, text = _HELP[metric]
                yield f"# HELP {metric} {text}\n# TYPE {metric} {kind}\n".encode()
                header = True
            yield lines


def _leader_text(leader: bool) -> str:
    return (
        f"# HELP {_LEADER} 1 on the replica that holds the leader Lease, 0 on the others.\n"
        f"# TYPE {_LEADER} gauge\n{_LEADER} {1 if leader else 0}\n"
    )


# What a collector keeps between scrapes: id(row) -> (row, its lines: UTF-8, one bytes per
# family of _FAMILIES). Bytes, not str: smaller, and the body is joined from them with no
# 16 MB encode.
_Cache = dict[int, tuple[Any, tuple[bytes, ...]]]


class MonitorCollector(Collector):
    """Per-monitor series from the monitor table, computed at scrape time (seam 3).

    ``monitors()`` returns the table's rows (``MonitorSnapshot`` or anything with the same
    attributes); ``is_leader()`` says whether this replica leads: followers export only
    ``heartbeat_leader 0``. A row whose ``deleting`` attribute is true (the kube table's
    ``MonitorEntry`` of an object with a deletionTimestamp) is skipped: a monitor on its way
    out never pages. ``label_keys`` is the allow-list of Kubernetes label keys
    copied onto ``heartbeat_monitor_info``; ``mode="minimal"`` keeps only state, up, ready
    and next due (``--monitor-metrics=minimal``).
    """

    def __init__(
        self,
        monitors: MonitorSource,
        is_leader: Callable[[], bool],
        *,
        label_keys: Sequence[str] = (),
        mode: MonitorMetricsMode = "full",
    ) -> None:
        if mode not in ("full", "minimal"):
            raise ValueError(f"monitor metrics mode must be 'full' or 'minimal', not {mode!r}")
        self._monitors = monitors
        self._is_leader = is_leader
        self._renderer = _RowRenderer(tuple(label_keys), mode == "minimal")
        self._cache: _Cache = {}

    def text(self) -> str:
        """The collector's exposition text (Prometheus text format 0.0.4)."""
        return b"".join(self.chunks()).decode()

    def chunks(self) -> Iterator[bytes]:
        """``text()`` as UTF-8 pieces of at most a few hundred KB, what /metrics streams.
        Every monitor is rendered (or found rendered) before the first piece."""
        leader = bool(self._is_leader())
        head = _leader_text(leader).encode()
        if not leader:
            self.forget()
            return iter((head,))
        return itertools.chain((head,), _families_chunks(self._rendered()))

    def _rendered(self) -> list[tuple[bytes, ...]]:
        """Every monitor's lines, one bytes per family of ``_FAMILIES``.

        A row rendered before (by the previous scrape or ``warm``) is reused when the
        table hands out the very same row object: rows are immutable snapshots (the kube
        table replaces an entry on every change, never edits it), so at 10,000 monitors a
        scrape renders only the monitors that changed since the last one."""
        previous = self._cache
        cache: _Cache = {}
        rendered: list[tuple[bytes, ...]] = []
        for row in self._monitors():
            if not getattr(row, "deleting", False):
                rendered.append(self._lines(row, previous, cache))
        self._cache = cache
        return rendered

    def _lines(self, row: Any, previous: _Cache, cache: _Cache) -> tuple[bytes, ...]:
        """``row``'s lines, from ``previous`` when rendered there for this very row object,
        else rendered now; either way kept in ``cache``. (id() is safe as a key: the cache
        holds the row, so no other live object can have its id while the entry exists.)"""
        hit = previous.get(id(row))
        if hit is not None and hit[0] is row:
            lines = hit[1]
        else:
            lines = tuple([family.encode() for family in self._renderer.render(row)])
        cache[id(row)] = (row, lines)
        return lines

    async def warm(self) -> None:
        """Render every monitor not rendered yet, ``WARM_SLICE`` at a time, yielding to the
        event loop between slices.

        A replica calls it when it starts leading (``running``): its first scrape then
        finds every monitor rendered, like every later one (issue 6: a scrape of 10,000
        monitors under 200 ms), and no scrape holds the event loop, and the pings
        waiting on it, while the whole table renders (~0.3 s at 10,000 monitors). It
        stops early if this replica stops leading or a scrape came first (a scrape
        renders whatever is missing itself).
        """
        previous = self._cache
        cache: _Cache = {}
        rows = [row for row in self._monitors() if not getattr(row, "deleting", False)]
        for start in range(0, len(rows), WARM_SLICE):
            if not self._is_leader() or self._cache is not previous:
                return
            for row in rows[start : start + WARM_SLICE]:
                self._lines(row, previous, cache)
            await asyncio.sleep(0)
        if self._is_leader() and self._cache is previous:
            self._cache = cache

    def forget(self) -> None:
        """Drop every rendered line: a replica that stops leading exports no per-monitor
        series and should not hold them (~2 KiB per monitor)."""
        self._cache = {}

    def describe(self) -> list[Metric]:
        # Nothing to describe up front: the series depend on the table at scrape time, and
        # an empty describe() keeps the registry from calling collect() at registration.
        return []

    def collect(self) -> Iterator[Metric]:
        """The same series as ``text()``, as prometheus_client metric families.

        For registries that use the standard exposition (e.g. ``generate_latest``); the
        operator's /metrics uses the faster ``text()``.
        """
        from prometheus_client.parser import text_string_to_metric_families

        leader = GaugeMetricFamily(
            _LEADER, "1 on the replica that holds the leader Lease, 0 on the others."
        )
        is_leader = bool(self._is_leader())
        leader.add_metric([], 1 if is_leader else 0)
        yield leader
        if is_leader:
            text = b"".join(_families_chunks(self._rendered())).decode()
            yield from text_string_to_metric_families(text)
