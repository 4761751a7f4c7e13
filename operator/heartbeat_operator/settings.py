"""The one settings object: built once from flags and environment, then passed down.

``Settings`` is frozen and grouped by concern, like kopf's ``OperatorSettings``: each
field says its unit, its default and why it has that value (usually a DESIGN item).
Nothing here reads ``os.environ`` at import time: ``build_settings(args, environ)`` takes
the environment as a parameter, so tests pass a plain dict.

Every command-line flag of ``heartbeat-operator run`` also reads ``HEARTBEAT_<NAME>``
(``--metrics-port`` -> ``HEARTBEAT_METRICS_PORT``); a flag on the command line wins over
the environment, the environment over the default. Repeatable flags (``--namespace``,
``--metrics-label``) take a comma-separated list from the environment.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import secrets
import socket
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from heartbeat_operator.domain.selectors import Selector, SelectorError, parse_selector

__all__ = [
    "SERVICEACCOUNT_NAMESPACE_FILE",
    "JobsSettings",
    "LeadershipSettings",
    "MetricsSettings",
    "MonitorMetrics",
    "ReceiverSettings",
    "ServerSettings",
    "Settings",
    "SettingsError",
    "TokenSettings",
    "WatchingSettings",
    "WebhookSettings",
    "WriterSettings",
    "add_arguments",
    "build_settings",
    "default_identity",
]

MonitorMetrics = Literal["full", "minimal"]

#: Where a pod finds its own namespace (the ServiceAccount volume Kubernetes mounts).
SERVICEACCOUNT_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")

ENV_PREFIX = "HEARTBEAT_"


class SettingsError(ValueError):
    """A flag or environment variable has a value the operator cannot use."""


#: Random characters appended to the host name: a new epoch at each process start.
IDENTITY_EPOCH_CHARS = 8
_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def default_identity(hostname: str | None = None) -> str:
    """``<hostname>-<epoch>``: the Pod's name (the hostname in a cluster) plus a random
    epoch chosen at process start, at most 63 characters and a DNS-1123 label, so it is
    also the suffix of the replica Lease ``heartbeat-replica-<identity>`` (DESIGN
    10.8.10). A restarted process is a new replica, even with the same Pod name."""
    raw = (hostname or socket.gethostname()).lower()
    host = re.sub(r"[^a-z0-9-]+", "-", raw).strip("-")
    host = host[: 63 - IDENTITY_EPOCH_CHARS - 1].rstrip("-") or "replica"
    return f"{host}-{secrets.token_hex(IDENTITY_EPOCH_CHARS // 2)}"


def default_holder() -> str:
    """``<hostname>_<pid>``, the leadership Lease's holder (DESIGN 9.1)."""
    return f"{socket.gethostname()}_{os.getpid()}"


def _identity(text: str) -> str:
    text = _text(text)
    if not _LABEL_RE.match(text):
        raise ValueError(
            "must be a DNS-1123 label (at most 63 lower-case letters, digits and '-'): it "
            "names the replica Lease heartbeat-replica-<identity>"
        )
    return text


@dataclasses.dataclass(frozen=True)
class ServerSettings:
    """The two HTTP listeners (DESIGN 9.2)."""

    host: str = "0.0.0.0"
    """Address both listeners bind to. Default all interfaces (a pod's only one)."""

    port: int = 8080
    """Ping receiver port (``/ping``, ``/hb``, ``/v1/heartbeats``, ``/healthz``, ``/readyz``).
    Default 8080 (DESIGN 9.2). 0 picks a free port (tests)."""

    metrics_port: int = 8081
    """Metrics port (``/metrics``, ``/healthz``, ``/readyz``). Default 8081 (DESIGN 9.2)."""

    external_url: str = ""
    """Base URL users' jobs reach the receiver at, without a trailing slash; the Secret's
    ``url`` is this + ``/ping/<token>``. Default ``http://127.0.0.1:<port>`` (DESIGN 9.2;
    the Helm chart sets the Service's address)."""

    internal_url: str | None = None
    """In-cluster base URL (the Service address). When set, the Secret also gets
    ``internal-url`` (DESIGN 9.2). Default unset."""

    log_level: str = "INFO"
    """The log's threshold: DEBUG, INFO, WARNING or ERROR, any case (the chart's own
    example is ``--log-level=debug``, issue 13 item 10). Default INFO."""

    shutdown_timeout: float = 8.0
    """Seconds, after SIGTERM, that in-flight requests get to finish before connections are
    closed. Default 8 s: the process must exit within 10 s (DESIGN 9.20)."""

    drain_delay: float = 10.0
    """Seconds ``/drain`` (metrics port; the Pod's ``preStop`` hook) holds ``/readyz`` at 503
    before it answers, while pings are still served, so Service endpoints and load
    balancers move before SIGTERM closes the listener. Default 10 s (DESIGN 10.6: endpoint
    changes take a few seconds to reach every node); the chart's ``preStopDelaySeconds``.
    0: ``/drain`` turns ``/readyz`` to 503 and answers at once."""

    def __post_init__(self) -> None:
        # The default external URL depends on the port: fill it in once, here, so every
        # way of building the object (flags, tests, defaults) gives the same answer.
        url = self.external_url or f"http://127.0.0.1:{self.port}"
        object.__setattr__(self, "external_url", url.rstrip("/"))
        if self.internal_url is not None:
            object.__setattr__(self, "internal_url", self.internal_url.rstrip("/") or None)


@dataclasses.dataclass(frozen=True)
class WatchingSettings:
    """What the replica watches and who it is (DESIGN 9.1, 9.2)."""

    namespaces: tuple[str, ...] = ()
    """Namespaces to watch for monitors and CronJobs. Empty (the default) means all
    namespaces, cluster-wide (DESIGN 9.2 ``--namespace``)."""

    lease_namespace: str = "default"
    """Namespace of the leadership Lease. Default: the pod's own namespace
    (``POD_NAMESPACE`` or the ServiceAccount namespace file), else ``default`` (DESIGN 9.1)."""

    identity: str = dataclasses.field(default_factory=default_identity)
    """This replica's identity: the name of its own Lease
    ``heartbeat-replica-<identity>``, the ``reportingInstance`` of its Events. Default the
    Pod name (hostname) plus a random epoch chosen at process start (DESIGN 10.8.10);
    ``--identity`` must be a DNS-1123 label."""

    api_fresh_window: float = 10.0
    """Seconds: ``/readyz`` needs an answer from the API server within this window.
    Default 10 s (DESIGN 9.2)."""


@dataclasses.dataclass(frozen=True)
class ReceiverSettings:
    """Limits of the ping receiver (DESIGN 3 and 9.13)."""

    body_limit: int = 10_000
    """Bytes of a POST/PUT body kept (cut, then decoded as UTF-8 with replacement); sent to
    clients as ``Ping-Body-Limit``. Default 10,000 (DESIGN 3)."""

    max_body: int = 1024 * 1024
    """Bytes: larger bodies are refused with 413. Default 1 MiB (DESIGN 9.13)."""

    read_timeout: float = 10.0
    """Seconds allowed for a request's headers (from connect, or from the previous response
    on a kept-alive connection), and again for its body; slower clients get 408 (an idle
    connection is closed quietly). Default 10 s (DESIGN 9.13)."""

    max_connections: int = 1000
    """Open connections per replica on the ping port; a connection beyond it is answered
    ``503`` with ``Retry-After: 1`` and closed. Default 1,000 (DESIGN 9.13)."""

    index_miss_wait: float = 2.0
    """Seconds a ping for an unknown token waits for the token index before its 404, so a
    brand-new monitor's first ping is not lost. Default 2 s (DESIGN 9.9)."""

    max_index_waits: int = 64
    """Index-miss waits at once; beyond it an unknown token is answered 404 at once.
    Default 64 (DESIGN 9.9)."""

    write_timeout: float = 5.0
    """Seconds a ping waits for its status write; then 503 ``Retry-After: 5`` and nothing is
    counted. Default 5 s (DESIGN 9.13)."""

    pause_api: bool = True
    """Serve ``POST /api/v1/namespaces/<ns>/heartbeatmonitors/<name>/pause|resume`` on the
    ping port, for deploy scripts holding a ServiceAccount token (issue 16 item 2). Needs
    RBAC ``tokenreviews create`` and ``subjectaccessreviews create`` (the chart grants them
    while on). Default on: a caller needs a token the API server accepts and ``patch`` on
    the monitor, exactly what ``kubectl patch`` needs, so it grants nobody anything new."""

    pause_api_audience: str = "heartbeat-operator"
    """The audience a pause API token must be issued for (a projected ServiceAccount token
    with ``audience: heartbeat-operator``); the TokenReview checks it. Default
    ``heartbeat-operator``: a token meant for us is refused by the API server itself, so the
    receiver never holds one that could act on the cluster (docs/decisions.md)."""


@dataclasses.dataclass(frozen=True)
class WriterSettings:
    """The per-monitor group-commit status writer (DESIGN 6 and 9.8)."""

    writes_per_second: float = 5.0
    """Status writes per second per monitor (token bucket rate). Default 5 (DESIGN 9.8)."""

    write_burst: int = 10
    """Token bucket size for the rate above. Default 10 (DESIGN 9.8)."""

    max_waiting_pings: int = 50
    """Pings waiting for one monitor's next write; beyond it 429 ``Retry-After: 1``.
    Default 50 (DESIGN 9.8)."""

    max_writes_in_flight: int = 64
    """Status writes in flight per replica. Default 64 (DESIGN 9.8)."""

    deadline_delay: float = 0.5
    """Seconds the leader waits after a deadline before writing its transition, so a ping in
    flight at that instant lands first. Default 0.5 s (DESIGN 9.3)."""


@dataclasses.dataclass(frozen=True)
class JournalSettings:
    """The ping journal (DESIGN 10.7, fine print 10.8.10-12; issue 15)."""

    enabled: bool = True
    """Acknowledge a ping once it is stored in this replica's journal Secret (in the
    operator's namespace) and absorb it into the monitor's status behind the reply
    (DESIGN 10.7). Default on. Off (``--no-journal``), a ping is answered after its
    status write (DESIGN 9.8's group commit per monitor, one status write per ping under
    load) and no Role for Secrets is needed (bench/README.md, issue 15)."""

    max_bytes: int = 64 * 1024
    """Bytes one journal Secret may hold (its serialized object) before the replica starts
    another; only a Secret holding a single ping may be larger (up to DESIGN 10.8.12's
    512 KiB). Every flush rewrites the newest Secret, so this bounds what one flush costs
    the API server and etcd. Default 64 KiB (about 500 GET pings; issue 15)."""

    max_segments: int = 256
    """Journal Secrets one replica may hold; when all are full, pings get ``503`` with
    ``Retry-After``. Their room (256 x 64 KiB = 16 MiB by default, ~120,000 GET pings) is
    what lets absorption coalesce under load (a status write carries every ping its
    monitor gathered while it queued for the budget) and what holds the pings when status
    cannot keep up: 100,000 monitors pinged every 5 minutes need one status write per
    ping, and 128 Secrets filled within 5 minutes on the benchmark's machine (bench/
    README.md, "sustained"; docs/operating.md, "The ping journal")."""

    absorb_interval: float = 0.2
    """Seconds: at most one absorbing status write per monitor per interval; pings that
    arrive meanwhile ride in the next one (DESIGN 10.7: coalesced under load). Default
    0.2 s, DESIGN 9.8's 5 writes/s per monitor: a monitor may hold 50 unabsorbed pings
    before its pings get ``429`` (10.8.12), so the interval caps what one monitor may be
    sent at ~250 pings/s, as without the journal (at 1 s a job pinging one monitor ~50
    times a second met ``429``s: issue 15, fourth session). Under load the global budget,
    not this, is what coalesces."""

    absorb_max_lag: float = 30.0
    """Seconds a journaled ping waits at most for its status write: a monitor whose oldest
    unabsorbed ping is this old is absorbed without waiting for the budget (a burst of
    distinct monitors, one ping each, cannot coalesce; the budget would only delay them).
    Default 30 s: the 1,000 monitors of issue 15's side-by-side load then cost ~33 status
    writes/s whatever the ping rate, and `kubectl get hbm` lags at most ~30 s."""

    absorb_writes_per_second: float = 20.0
    """Absorbing status writes per second per replica, all monitors together (the global
    budget of DESIGN 10.7); likely state changes first, then the oldest ping. Set aside
    while the journal is more than half full, until it is back under. Default 20: a status
    write costs kube-apiserver ~6.9 ms of CPU (issue 15's cost table), so 20/s is ~14% of
    one core whatever the load; at 400 pings/s that is 0.05 writes per ping."""


@dataclasses.dataclass(frozen=True)
class LeadershipSettings:
    """The Lease that picks the one replica writing what time changes (DESIGN 9.1)."""

    lease_name: str = "heartbeat-operator"
    """Name of the ``coordination.k8s.io/v1`` Lease. Default ``heartbeat-operator``."""

    holder: str = dataclasses.field(default_factory=default_holder)
    """The Lease's ``holderIdentity`` while this replica leads: ``<hostname>_<pid>``
    (DESIGN 9.1; the hostname is the Pod's name in a cluster). The replica's identity
    (``WatchingSettings.identity``, 10.8.10) names its own Lease and journal instead."""

    lease_duration: float = 8.0
    """Seconds, ``spec.leaseDurationSeconds``. Default 8 s (DESIGN 9.1)."""

    renew_interval: float = 2.0
    """Seconds between renewals by the holder. Default 2 s (DESIGN 9.1)."""

    renew_deadline: float = 6.0
    """Seconds without a successful renewal after which a leader stops leading (and keeps
    serving pings). Default 6 s (DESIGN 9.1), less than the duration so two never lead."""


@dataclasses.dataclass(frozen=True)
class TokenSettings:
    """The leader's sweep that finds deleted token Secrets (DESIGN 10.8.14)."""

    sweep_reads_per_second: float = 20.0
    """Secret reads per second the sweep makes, at most. Default 20 (DESIGN 10.8.14): a few
    thousand monitors are read in a few minutes at an API cost that stays in the noise."""

    sweep_interval: float = 60.0
    """Seconds from the end of one sweep pass to the start of the next (and from taking the
    lead to the first pass). Default 60 s (DESIGN 10.8.14)."""


@dataclasses.dataclass(frozen=True)
class MetricsSettings:
    """What the scrape-time collector exports (DESIGN 5 and 9.14)."""

    label_allowlist: tuple[str, ...] = ()
    """Monitor label keys copied into ``heartbeat_monitor_info`` as ``label_<key>``.
    Default none (labels may hold anything; only what the user allows becomes a series)."""

    badges: bool = False
    """Serve ``/badge/<namespace>/<name>.svg`` on the metrics port: a status badge per
    monitor (issue 16 item 4), read-only, no authentication. Default off: anyone who can
    reach the port then learns which monitors exist and their state (docs/operating.md)."""

    monitor_metrics: MonitorMetrics = "full"
    """``full`` exports every per-monitor series; ``minimal`` only state, up, ready and
    next due (DESIGN 9.14; ready so that an invalid monitor still alerts, 10.4), for large
    fleets."""


@dataclasses.dataclass(frozen=True)
class JobsSettings:
    """CronJob auto-wiring (DESIGN 4 and 9.11)."""

    exit_codes: bool = True
    """List a failed Job's Pods once to report the container's exit code. Needs RBAC
    ``pods list`` (DESIGN 9.17); off, a Job failure carries no exit code. Default on."""

    namespace_selector: Selector | None = None
    """Coverage by policy (issue 12, item 5): every CronJob in a Namespace whose labels
    match this label selector is monitored without the ``heartbeat.dev/monitor``
    annotation (``"false"`` opts one out; ``"true"`` works in every namespace). Needs RBAC
    ``namespaces list, watch``, which the operator already has (DESIGN 9.17). Default
    None (off): monitoring a CronJob is the user's explicit choice unless they set one."""

    capture_logs: bool = False
    """Read a failed Job's failing container's last lines (at most 10,000 bytes) into the
    fail ping's body (issue 12, item 4), so they outlive the Pod. Needs RBAC ``pods/log
    get`` (the chart grants it only while on). Default off: logs may hold what a user
    never meant to store in a monitor's status."""


@dataclasses.dataclass(frozen=True)
class WebhookSettings:
    """The validating admission webhook's HTTPS listener (DESIGN 10.4; docs/decisions.md)."""

    port: int = 9443
    """HTTPS port of ``POST /validate/heartbeatmonitors``. Default 9443, the port
    controller-runtime operators use for webhooks; the chart's webhook Service targets it.
    0 picks a free port (tests)."""

    cert_file: Path | None = None
    """PEM serving certificate (chain) for the webhook. The webhook is served only when
    this and ``key_file`` are given (the chart mounts its Secret; ``make run`` passes the
    pair ``dev up`` wrote), so tests that start many replicas never compete for its port.
    Default unset: no webhook."""

    key_file: Path | None = None
    """PEM private key of ``cert_file``. Default unset."""

    @property
    def enabled(self) -> bool:
        return self.cert_file is not None and self.key_file is not None


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything a replica is configured with, grouped by concern."""

    server: ServerSettings = dataclasses.field(default_factory=ServerSettings)
    watching: WatchingSettings = dataclasses.field(default_factory=WatchingSettings)
    receiver: ReceiverSettings = dataclasses.field(default_factory=ReceiverSettings)
    writer: WriterSettings = dataclasses.field(default_factory=WriterSettings)
    leadership: LeadershipSettings = dataclasses.field(default_factory=LeadershipSettings)
    journal: JournalSettings = dataclasses.field(default_factory=JournalSettings)
    metrics: MetricsSettings = dataclasses.field(default_factory=MetricsSettings)
    tokens: TokenSettings = dataclasses.field(default_factory=TokenSettings)
    jobs: JobsSettings = dataclasses.field(default_factory=JobsSettings)
    webhook: WebhookSettings = dataclasses.field(default_factory=WebhookSettings)


# --- flags and environment ------------------------------------------------------------


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError("must be a port number, 0-65535")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must not be negative")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise ValueError("must be a positive number of seconds")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not 0 <= value < float("inf"):
        raise ValueError("must be a number of seconds, 0 or more")
    return value


def _url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http:// or https:// URL")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query or fragment")
    return text


def _text(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text.strip()


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _log_level(text: str) -> str:
    level = text.strip().upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)} (any case)")
    return level


def _path(text: str) -> Path:
    return Path(_text(text))


def _monitor_metrics(text: str) -> str:
    if text not in ("full", "minimal"):
        raise ValueError("must be 'full' or 'minimal'")
    return text


def _namespace_selector(text: str) -> Selector | None:
    if not text.strip():
        return None  # empty: coverage by policy is off
    try:
        return parse_selector(text)
    except SelectorError as exc:
        raise ValueError(f"not a label selector: {exc}") from None


def _boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


@dataclasses.dataclass(frozen=True)
class _Flag:
    flag: str  # "--metrics-port"
    group: str  # Settings attribute: "server"
    field: str  # attribute within the group: "metrics_port"
    parse: Callable[[str], Any]
    help: str
    shown: str | None = None  # the default as --help shows it, when not the field's own
    repeatable: bool = False
    boolean: bool = False

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.dest.upper()


_FLAGS: tuple[_Flag, ...] = (
    _Flag("--host", "server", "host", _text, "address to bind both ports to"),
    _Flag("--port", "server", "port", _port, "ping receiver port"),
    _Flag("--metrics-port", "server", "metrics_port", _port, "metrics port"),
    _Flag("--log-level", "server", "log_level", _log_level, "log level, any case"),
    _Flag(
        "--external-url",
        "server",
        "external_url",
        _url,
        "base URL jobs ping; the Secret's url is this + /ping/<token>",
        shown="http://127.0.0.1:<port>",
    ),
    _Flag(
        "--internal-url",
        "server",
        "internal_url",
        _url,
        "in-cluster base URL; adds internal-url to each Secret",
    ),
    _Flag(
        "--shutdown-timeout",
        "server",
        "shutdown_timeout",
        _positive_float,
        "seconds in-flight requests get after SIGTERM",
    ),
    _Flag(
        "--drain-delay",
        "server",
        "drain_delay",
        _non_negative_float,
        "seconds /drain (the preStop hook) keeps /readyz 503 before answering",
    ),
    _Flag(
        "--namespace",
        "watching",
        "namespaces",
        _text,
        "namespace to watch; repeat for several",
        shown="default: all",
        repeatable=True,
    ),
    _Flag(
        "--lease-namespace",
        "watching",
        "lease_namespace",
        _text,
        "namespace of the leadership Lease",
        shown="the pod's namespace, else default",
    ),
    _Flag(
        "--identity",
        "watching",
        "identity",
        _identity,
        "this replica's identity, a DNS-1123 label",
        shown="<hostname>-<random epoch>",
    ),
    _Flag(
        "--body-limit",
        "receiver",
        "body_limit",
        _non_negative_int,
        "bytes of a ping body kept",
    ),
    _Flag("--max-body", "receiver", "max_body", _positive_int, "bytes: larger bodies get 413"),
    _Flag(
        "--read-timeout",
        "receiver",
        "read_timeout",
        _positive_float,
        "seconds for headers and for the body, else 408",
    ),
    _Flag(
        "--max-connections",
        "receiver",
        "max_connections",
        _positive_int,
        "connections per replica on the ping port",
    ),
    _Flag(
        "--index-miss-wait",
        "receiver",
        "index_miss_wait",
        _positive_float,
        "seconds an unknown token waits for the index before 404",
    ),
    _Flag(
        "--max-index-waits",
        "receiver",
        "max_index_waits",
        _positive_int,
        "index-miss waits at once",
    ),
    _Flag(
        "--write-timeout",
        "receiver",
        "write_timeout",
        _positive_float,
        "seconds a ping waits for its write, else 503",
    ),
    _Flag(
        "--pause-api",
        "receiver",
        "pause_api",
        _boolean,
        "serve the authenticated pause/resume API on the ping port (on)",
        boolean=True,
    ),
    _Flag(
        "--pause-api-audience",
        "receiver",
        "pause_api_audience",
        _text,
        "audience a pause API ServiceAccount token must have (heartbeat-operator)",
    ),
    _Flag(
        "--writes-per-second",
        "writer",
        "writes_per_second",
        _positive_float,
        "status writes per second per monitor",
    ),
    _Flag("--write-burst", "writer", "write_burst", _positive_int, "write burst per monitor"),
    _Flag(
        "--max-waiting-pings",
        "writer",
        "max_waiting_pings",
        _positive_int,
        "pings waiting for one monitor before 429",
    ),
    _Flag(
        "--max-writes-in-flight",
        "writer",
        "max_writes_in_flight",
        _positive_int,
        "status writes in flight per replica",
    ),
    _Flag(
        "--journal",
        "journal",
        "enabled",
        _boolean,
        "acknowledge pings once stored in a journal Secret, absorb them into status "
        "behind the reply",
        boolean=True,
    ),
    _Flag(
        "--journal-max-bytes",
        "journal",
        "max_bytes",
        _positive_int,
        "bytes one journal Secret may hold before the replica starts another",
    ),
    _Flag(
        "--journal-max-secrets",
        "journal",
        "max_segments",
        _positive_int,
        "journal Secrets one replica may hold; all full: 503",
    ),
    _Flag(
        "--absorb-interval",
        "journal",
        "absorb_interval",
        _positive_float,
        "seconds between absorbing status writes of one monitor",
    ),
    _Flag(
        "--absorb-max-lag",
        "journal",
        "absorb_max_lag",
        _positive_float,
        "seconds a journaled ping waits at most for its status write",
    ),
    _Flag(
        "--absorb-writes-per-second",
        "journal",
        "absorb_writes_per_second",
        _positive_float,
        "absorbing status writes per second per replica",
    ),
    _Flag("--lease-name", "leadership", "lease_name", _text, "Lease name"),
    _Flag(
        "--secret-sweep-reads-per-second",
        "tokens",
        "sweep_reads_per_second",
        _positive_float,
        "token Secret reads per second of the leader's sweep for deleted Secrets",
    ),
    _Flag(
        "--secret-sweep-interval",
        "tokens",
        "sweep_interval",
        _positive_float,
        "seconds between the end of one Secret sweep pass and the next",
    ),
    _Flag(
        "--monitor-metrics",
        "metrics",
        "monitor_metrics",
        _monitor_metrics,
        "per-monitor series: full or minimal",
    ),
    _Flag(
        "--badges",
        "metrics",
        "badges",
        _boolean,
        "serve public SVG status badges /badge/<ns>/<name>.svg on the metrics port (off)",
        boolean=True,
    ),
    _Flag(
        "--metrics-label",
        "metrics",
        "label_allowlist",
        _text,
        "monitor label key exported in heartbeat_monitor_info; repeatable",
        repeatable=True,
    ),
    _Flag(
        "--exit-codes",
        "jobs",
        "exit_codes",
        _boolean,
        "list a failed Job's Pods for its exit code",
        boolean=True,
    ),
    _Flag(
        "--auto-wire-namespace-selector",
        "jobs",
        "namespace_selector",
        _namespace_selector,
        "label selector on Namespaces whose CronJobs are all monitored without the "
        "annotation, e.g. 'heartbeat.dev/monitor-cronjobs=true'",
        shown="empty: off",
    ),
    _Flag(
        "--capture-logs",
        "jobs",
        "capture_logs",
        _boolean,
        "a failed Job's last log lines become its fail ping's body",
        boolean=True,
    ),
    _Flag("--webhook-port", "webhook", "port", _port, "admission webhook HTTPS port"),
    _Flag(
        "--webhook-cert-file",
        "webhook",
        "cert_file",
        _path,
        "PEM certificate of the admission webhook; with --webhook-key-file turns it on",
        shown="off",
    ),
    _Flag(
        "--webhook-key-file",
        "webhook",
        "key_file",
        _path,
        "PEM key of --webhook-cert-file",
    ),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``run`` subcommand's settings flags. Every default is None: "not given", so
    ``build_settings`` can fall back to ``HEARTBEAT_<NAME>`` and then the field default."""
    group = parser.add_argument_group(
        "settings", "each flag can also be set as HEARTBEAT_<NAME> (the flag wins)"
    )
    for flag in _FLAGS:
        help_text = f"{flag.help} ({_shown_default(flag)}) [env {flag.env}]"
        if flag.boolean:
            group.add_argument(
                flag.flag,
                dest=flag.dest,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
        elif flag.repeatable:
            group.add_argument(
                flag.flag,
                dest=flag.dest,
                action="append",
                type=_argparse_type(flag),
                default=None,
                help=help_text,
            )
        else:
            group.add_argument(
                flag.flag,
                dest=flag.dest,
                type=_argparse_type(flag),
                default=None,
                help=help_text,
            )


def _shown_default(flag: _Flag) -> str:
    """The default ``--help`` names, read from the settings field itself, so each default
    is written once (issue 14 item 5); ``flag.shown`` for a default computed at start-up."""
    if flag.shown is not None:
        return flag.shown
    groups = {f.name: f.default_factory for f in dataclasses.fields(Settings)}
    group = groups[flag.group]
    assert callable(group)
    value = getattr(group(), flag.field)
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return "unset"
    if value == ():
        return "none"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _argparse_type(flag: _Flag) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return flag.parse(text)
        except ValueError as exc:
            # argparse turns ArgumentTypeError into "argument --port: <message>".
            raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None

    convert.__name__ = flag.dest
    return convert


def _from_environment(flag: _Flag, environ: Mapping[str, str]) -> Any:
    raw = environ.get(flag.env)
    if raw is None or raw.strip() == "":
        return None
    try:
        if flag.repeatable:
            items = [item for item in (part.strip() for part in raw.split(",")) if item]
            return [flag.parse(item) for item in items] or None
        return flag.parse(raw)
    except ValueError as exc:
        raise SettingsError(f"{flag.env}={raw!r}: {exc}") from None


def _pod_namespace(environ: Mapping[str, str], namespace_file: Path) -> str:
    from_env = environ.get("POD_NAMESPACE", "").strip()
    if from_env:
        return from_env
    try:
        from_file = namespace_file.read_text(encoding="utf-8").strip()
    except OSError:
        from_file = ""
    return from_file or "default"


def build_settings(
    args: argparse.Namespace | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    namespace_file: Path = SERVICEACCOUNT_NAMESPACE_FILE,
) -> Settings:
    """Build the one ``Settings``: flag, else ``HEARTBEAT_<NAME>``, else the default.

    ``args`` is what ``add_arguments``' flags parsed to (missing attributes count as not
    given); ``environ`` defaults to the process environment, read here and only here.
    Raises ``SettingsError`` for an environment value that does not parse, or for
    settings that contradict each other.
    """
    if environ is None:
        environ = os.environ
    given: dict[str, dict[str, Any]] = {}
    for flag in _FLAGS:
        value = getattr(args, flag.dest, None) if args is not None else None
        if value is None:
            value = _from_environment(flag, environ)
        if value is None:
            continue
        if flag.repeatable:
            value = tuple(dict.fromkeys(value))  # keep order, drop repeats
        given.setdefault(flag.group, {})[flag.field] = value

    watching = given.setdefault("watching", {})
    if "lease_namespace" not in watching:
        watching["lease_namespace"] = _pod_namespace(environ, namespace_file)

    settings = Settings(
        server=ServerSettings(**given.get("server", {})),
        watching=WatchingSettings(**given.get("watching", {})),
        receiver=ReceiverSettings(**given.get("receiver", {})),
        writer=WriterSettings(**given.get("writer", {})),
        leadership=LeadershipSettings(**given.get("leadership", {})),
        journal=JournalSettings(**given.get("journal", {})),
        metrics=MetricsSettings(**given.get("metrics", {})),
        tokens=TokenSettings(**given.get("tokens", {})),
        jobs=JobsSettings(**given.get("jobs", {})),
        webhook=WebhookSettings(**given.get("webhook", {})),
    )
    _check(settings)
    return settings


def _check(settings: Settings) -> None:
    receiver = settings.receiver
    if receiver.body_limit > receiver.max_body:
        raise SettingsError(
            f"body limit ({receiver.body_limit} bytes) exceeds the hard body cap "
            f"({receiver.max_body} bytes)"
        )
    server = settings.server
    if server.port != 0 and server.port == server.metrics_port:
        raise SettingsError(f"--port and --metrics-port are both {server.port}")
    if settings.journal.max_bytes >= 512 * 1024:
        raise SettingsError(
            f"--journal-max-bytes {settings.journal.max_bytes}: a journal Secret stays "
            "under 512 KiB (524288 bytes)"
        )
    # A kept body escapes to at most 6 bytes a byte in JSON (\u00XX), then base64: one
    # ping must always fit in a journal Secret of its own.
    largest_entry = 4 * (6 * settings.receiver.body_limit + 512) // 3 + 4096
    if settings.journal.enabled and largest_entry >= 512 * 1024:
        raise SettingsError(
            f"--body-limit {settings.receiver.body_limit} with --journal: one ping's body "
            f"may take {largest_entry} bytes in a journal Secret, over 512 KiB"
        )
    webhook = settings.webhook
    if (webhook.cert_file is None) != (webhook.key_file is None):
        raise SettingsError("--webhook-cert-file and --webhook-key-file go together")
    if webhook.enabled and webhook.port != 0 and webhook.port in (server.port, server.metrics_port):
        raise SettingsError(f"--webhook-port {webhook.port} is already the ping or metrics port")


def flag_names() -> Sequence[str]:
    """Every settings flag, e.g. for docs and the Helm chart's tests."""
    return [flag.flag for flag in _FLAGS]
