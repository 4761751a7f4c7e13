"""The machinery every operator benchmark of issue 8 shares.

- ``ControlPlane``: a control plane of its own for the benchmarks (state in
  ``$HEARTBEAT_BENCH_DIR``, default ``~/.cache/heartbeat-operator/bench``), never the
  shared development one, so 10,000 monitors never slow another session's tests and the
  API server's counters hold only what a benchmark did. ``fresh()`` restarts it with an
  empty etcd (about 6 s) between benchmarks.
- ``Api``: an async client (aiohttp, the admin client certificate) for what the
  benchmarks do in bulk: create thousands of monitors with parallel POSTs, list them
  paged, read tokens from their Secrets, watch, and read kube-apiserver's own /metrics.
- ``OperatorProcess``: ``heartbeat-operator run`` as a separate process on free ports,
  bound to 127.0.0.1, its log in a file; its RSS from /proc, its /metrics parsed.
- ``Row``: one line of the results table.

Everything runs against 127.0.0.1 only, and every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import dataclasses
import json
import os
import platform
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from heartbeat_operator import devcluster
from heartbeat_operator.devcluster import pki, processes

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = REPO / ".venv" / "bin"
GROUP, VERSION, PLURAL = "heartbeat.dev", "v1alpha1", "heartbeatmonitors"
MONITORS = f"/apis/{GROUP}/{VERSION}"

T = TypeVar("T")

#: ``BENCH_QUICK=1``: every benchmark at a fraction of its size (a smoke run, ~5 min).
QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")


#: ``BENCH_SPEEDUPS=orjson,asyncio-loop``: every operator run through bench/launching.py
#: with them.
SPEEDUPS = tuple(x for x in os.environ.get("BENCH_SPEEDUPS", "").split(",") if x.strip())


def say(message: str) -> None:
    stamp = datetime.now(UTC).strftime("%H:%M:%S")
    print(f"bench {stamp} {message}", file=sys.stderr, flush=True)


def bench_dir() -> Path:
    explicit = os.environ.get("HEARTBEAT_BENCH_DIR")
    if explicit:
        return Path(explicit).expanduser().resolve()
    return (devcluster.default_state_dir().parent / "bench").resolve()


def parse_time(text: str) -> float:
    """An RFC 3339 UTC time of the API (``...Z``, optional fraction) as epoch seconds."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


async def wait_until(
    probe: Callable[[], Awaitable[T | None]],
    *,
    timeout: float,
    interval: float = 0.2,
    what: str,
) -> T:
    """Poll ``probe`` until it returns something truthy; TimeoutError at the deadline."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        last = await probe()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last}")
        await asyncio.sleep(interval)  # poll interval, bounded by the deadline above


class OpenLoopPings:
    """GET pings sent open loop (each due at its own time, whatever the answers before
    it) over one pool of kept-alive connections: the answers by code and each latency
    from the ping's due time, so waiting for a free connection counts too."""

    def __init__(self, base: str, connections: int) -> None:
        self.base = base
        self.codes: dict[str, int] = {}
        self.latencies: list[float] = []
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections),
            timeout=aiohttp.ClientTimeout(total=60),
        )

    async def __aenter__(self) -> OpenLoopPings:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._session.close()

    async def shoot(self, token: str, due: float) -> None:
        try:
            async with self._session.get(f"{self.base}/ping/{token}") as response:
                await response.read()
                code = str(response.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            code = type(exc).__name__
        self.codes[code] = self.codes.get(code, 0) + 1
        self.latencies.append(time.monotonic() - due)

    def summary(self) -> dict[str, Any]:
        return {
            "codes": dict(self.codes),
            "latency_s": {
                "p50": percentile(self.latencies, 0.50),
                "p99": percentile(self.latencies, 0.99),
                "max": max(self.latencies),
            },
        }


# --- the results table -----------------------------------------------------------------


@dataclasses.dataclass
class Row:
    benchmark: str
    how: str
    target: str
    result: str
    holds: bool | None  # None: nothing to judge (informational row)

    @property
    def verdict(self) -> str:
        return {True: "yes", False: "**no**", None: "—"}[self.holds]


def table(rows: Iterable[Row]) -> str:
    lines = [
        "| benchmark | how | target | result | holds |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [f"| {r.benchmark} | {r.how} | {r.target} | {r.result} | {r.verdict} |" for r in rows]
    return "\n".join(lines)


def machine_facts() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])
        memory = f"{kib / 1024 / 1024:.1f} GiB"
    return {
        "cpus": str(os.cpu_count()),
        "cpu": cpu,
        "memory": memory,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": wrk_version(),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def wrk_version() -> str:
    try:
        out = subprocess.run(["wrk", "--version"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return "missing"
    return (out.stdout + out.stderr).split("[")[0].replace("wrk", "").strip() or "?"


# --- the control plane -----------------------------------------------------------------


class ControlPlane:
    """The benchmarks' own local control plane (never the shared development one)."""

    def __init__(self, state_dir: Path | None = None) -> None:
        self.state_dir = state_dir or bench_dir()
        self.cluster: devcluster.Cluster | None = None
        self.started = False  # this run started one: `close()` stops it

    def fresh(self) -> devcluster.Cluster:
        """Stop whatever runs there (ours by definition: its own state dir), start anew."""
        devcluster.down(state_dir=self.state_dir)
        began = time.monotonic()
        self.cluster = devcluster.up(state_dir=self.state_dir)
        self.started = True
        say(f"fresh control plane at {self.cluster.server} in {time.monotonic() - began:.1f}s")
        return self.cluster

    def close(self, keep: bool = False) -> None:
        if self.started and not keep:
            devcluster.down(state_dir=self.state_dir)
            self.started = False

    def ssl_context(self) -> ssl.SSLContext:
        keys = pki.Pki(self.state_dir / "pki")
        context = ssl.create_default_context(cafile=str(keys.ca_cert))
        context.load_cert_chain(str(keys.admin_cert), str(keys.admin_key))
        return context

    def etcd_port(self) -> int:
        state = json.loads((self.state_dir / "state.json").read_text())
        return int(state["ports"]["etcd"])

    def api_process(self) -> processes.ProcessRecord:
        assert self.cluster is not None
        return next(p for p in self.cluster.processes if p.name == "kube-apiserver")

    def audit(self, policy: str) -> Path:
        """Restart kube-apiserver with an audit log (``policy``: the audit Policy, YAML);
        the log's path. Which user read what, which the request counters cannot say: the
        kube-controller-manager lists and watches Pods cluster-wide too (issue 12)."""
        assert self.cluster is not None
        policy_file = self.state_dir / "audit-policy.yaml"
        policy_file.write_text(policy)
        log = self.state_dir / "logs" / "audit.jsonl"
        argv = [
            *processes.argv(self.api_process()),
            f"--audit-policy-file={policy_file}",
            f"--audit-log-path={log}",
            "--audit-log-format=json",
            "--audit-log-mode=blocking",
        ]
        began = time.monotonic()
        devcluster.restart_process("kube-apiserver", state_dir=self.state_dir, argv=argv)
        deadline = time.monotonic() + 180
        while (cluster := devcluster.status(state_dir=self.state_dir)) is None:  # /readyz
            if time.monotonic() > deadline:
                raise RuntimeError("kube-apiserver not ready after its restart with audit")
            time.sleep(1)  # polled with a deadline
        self.cluster = cluster
        say(f"kube-apiserver restarted with an audit log in {time.monotonic() - began:.1f}s")
        return log


def pid_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (0 once it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def plane_cpu_seconds(plane: ControlPlane) -> dict[str, float]:
    """CPU seconds used so far by each control plane process (etcd, kube-apiserver, ...)."""
    assert plane.cluster is not None
    return {p.name: pid_cpu_seconds(p.pid) for p in plane.cluster.processes}


# --- the API client --------------------------------------------------------------------


class ApiFailure(RuntimeError):
    pass


class Api:
    """What the benchmarks do to the API server, async, as the admin user."""

    def __init__(self, plane: ControlPlane, *, connections: int = 32) -> None:
        assert plane.cluster is not None
        self.server = plane.cluster.server
        self._ssl = plane.ssl_context()
        self._connections = connections
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Api:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self._ssl, limit=self._connections + 8),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.session is not None
        await self.session.close()

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        ok: Sequence[int] = (200, 201),
        content_type: str = "application/json",
        timeout: float = 60,
    ) -> Any:
        assert self.session is not None
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if data is not None else {}
        async with self.session.request(
            method,
            self.server + path,
            data=data,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            text = await response.text()
            if response.status not in ok:
                raise ApiFailure(f"{method} {path}: {response.status} {text[:300]}")
            return json.loads(text) if text.startswith("{") else text

    async def create_namespace(self, name: str) -> None:
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        await self.request("POST", "/api/v1/namespaces", body, ok=(201, 409))

    async def create_monitors(
        self,
        namespace: str,
        specs: Sequence[tuple[str, Mapping[str, Any]]],
        *,
        concurrency: int | None = None,
    ) -> float:
        """POST every ``(name, spec)`` with ``concurrency`` requests in flight; seconds taken."""
        queue: asyncio.Queue[tuple[str, Mapping[str, Any]]] = asyncio.Queue()
        for item in specs:
            queue.put_nowait(item)
        path = f"{MONITORS}/namespaces/{namespace}/{PLURAL}"

        async def worker() -> None:
            while not queue.empty():
                name, spec = queue.get_nowait()
                body = {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "HeartbeatMonitor",
                    "metadata": {"name": name, "namespace": namespace},
                    "spec": dict(spec),
                }
                for attempt in range(5):
                    try:
                        await self.request("POST", path, body, ok=(201, 409))
                        break
                    except (TimeoutError, aiohttp.ClientError, ApiFailure) as error:
                        if attempt == 4 or ("429" not in str(error) and "50" not in str(error)):
                            raise
                        await asyncio.sleep(0.5 * (attempt + 1))  # back off, then retry

        began = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency or self._connections)))
        return time.monotonic() - began

    async def list_all(
        self, path: str, *, page: int = 500, params: str = ""
    ) -> tuple[list[dict[str, Any]], str]:
        """Every item of a list, in pages; and the list's resourceVersion."""
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            query = f"?limit={page}{params}" + (f"&continue={token}" if token else "")
            answer = await self.request("GET", path + query, timeout=300)
            items += answer.get("items") or []
            token = answer["metadata"].get("continue") or ""
            if not token:
                return items, answer["metadata"]["resourceVersion"]

    async def monitors(self, namespace: str) -> tuple[list[dict[str, Any]], str]:
        return await self.list_all(f"{MONITORS}/namespaces/{namespace}/{PLURAL}")

    async def tokens(self, namespace: str) -> dict[str, str]:
        """``{monitor name: token}`` from the operator's Secrets (never printed)."""
        import base64

        secrets, _ = await self.list_all(
            f"/api/v1/namespaces/{namespace}/secrets",
            params="&labelSelector=app.kubernetes.io%2Fmanaged-by%3Dheartbeat-operator",
        )
        out = {}
        for secret in secrets:
            monitor = (secret["metadata"].get("labels") or {}).get("heartbeat.dev/monitor")
            token = (secret.get("data") or {}).get("token")
            if monitor and token:
                out[monitor] = base64.b64decode(token).decode()
        return out

    async def watch(
        self, path: str, resource_version: str, *, timeout: float
    ) -> AsyncIterator[tuple[float, str, dict[str, Any]]]:
        """``(arrival wall time, type, object)`` of a watch from ``resource_version``."""
        assert self.session is not None
        query = f"?watch=1&resourceVersion={resource_version}&timeoutSeconds={int(timeout)}"
        async with self.session.get(
            self.server + path + query,
            timeout=aiohttp.ClientTimeout(total=timeout + 30, sock_read=None),
        ) as response:
            if response.status != 200:
                raise ApiFailure(f"watch {path}: {response.status}")
            # Lines can be longer than aiohttp's default 64 KiB line limit: split by hand.
            buffer = b""
            async for chunk in response.content.iter_any():
                arrived = time.time()
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        event = json.loads(line)
                        yield arrived, event["type"], event["object"]

    async def apiserver_requests(self) -> dict[tuple[str, str, str, str], float]:
        """kube-apiserver's own ``apiserver_request_total``: (verb, resource, sub, code) -> n."""
        text = await self.request("GET", "/metrics", timeout=60)
        out: dict[tuple[str, str, str, str], float] = {}
        for family in text_string_to_metric_families(text):
            if family.name != "apiserver_request":
                continue
            for sample in family.samples:
                if sample.name != "apiserver_request_total":
                    continue
                labels = sample.labels
                key = (labels["verb"], labels["resource"], labels["subresource"], labels["code"])
                out[key] = out.get(key, 0.0) + sample.value
        return out


WRITE_VERBS = {"POST", "PUT", "PATCH", "DELETE", "APPLY", "DELETECOLLECTION"}


def writes_between(
    before: Mapping[tuple[str, str, str, str], float],
    after: Mapping[tuple[str, str, str, str], float],
) -> dict[str, float]:
    """Write requests per ``resource[/subresource]`` between two apiserver scrapes."""
    out: dict[str, float] = {}
    for key, value in after.items():
        verb, resource, sub, _code = key
        if verb not in WRITE_VERBS:
            continue
        delta = value - before.get(key, 0.0)
        if delta:
            name = resource + (f"/{sub}" if sub else "")
            out[name] = out.get(name, 0.0) + delta
    return out


# --- the operator under test -----------------------------------------------------------


def parse_metrics(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Prometheus text -> ``{sample name: [(labels, value), ...]}``."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def metric_sum(
    metrics: Mapping[str, list[tuple[dict[str, str], float]]], name: str, **match: str
) -> float:
    return sum(
        value
        for labels, value in metrics.get(name, [])
        if all(labels.get(k) == v for k, v in match.items())
    )


_STARTED: list[OperatorProcess] = []


@atexit.register
def _kill_leftovers() -> None:
    """A benchmark that failed half-way leaves no operator behind (only those it started)."""
    for op in _STARTED:
        if op.alive():
            op.proc.kill()
            op.proc.wait(timeout=10)


class OperatorProcess:
    """One ``heartbeat-operator run`` replica as a child process on 127.0.0.1."""

    def __init__(
        self,
        plane: ControlPlane,
        *,
        namespace: str,
        lease_namespace: str,
        log_dir: Path,
        name: str = "operator",
        extra: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        speedups: Sequence[str] = (),
    ) -> None:
        assert plane.cluster is not None
        self.port, self.metrics_port = processes.free_ports(2)
        self.name = name
        self.log = log_dir / f"{name}.log"
        # Always through bench/launching.py: the operator as the image runs it (no dev
        # extra loaded), with ``speedups`` ("asyncio-loop", "orjson") when asked.
        speedups = speedups or SPEEDUPS
        launcher = [
            str(VENV_BIN / "python"),
            str(REPO / "bench" / "launching.py"),
            *[f"--{name}" for name in speedups],
            "--",
        ]
        argv = [
            *launcher,
            "run",
            "--host=127.0.0.1",
            f"--port={self.port}",
            f"--metrics-port={self.metrics_port}",
            *([f"--namespace={namespace}"] if namespace else []),  # "": cluster-wide
            f"--lease-namespace={lease_namespace}",
            *extra,
        ]
        environ = {
            **os.environ,
            "KUBECONFIG": str(plane.cluster.kubeconfig),
            **(env or {}),
        }
        self.argv = argv
        self._log_file = open(self.log, "ab")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            argv, stdout=self._log_file, stderr=subprocess.STDOUT, env=environ, cwd=REPO
        )
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        _STARTED.append(self)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss_mib(self, field: str = "VmRSS") -> float:
        """Resident memory now (``VmHWM``: the peak so far), MiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError(f"no {field}")

    def cpu_seconds(self) -> float:
        return pid_cpu_seconds(self.pid)

    async def get(self, url: str) -> tuple[int, str]:
        try:
            async with self.session.get(url) as response:
                return response.status, await response.text()
        except (TimeoutError, aiohttp.ClientError) as error:
            return 0, str(error)

    async def wait_ready(self, timeout: float = 60) -> None:
        async def ready() -> bool:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited; see {self.log}")
            status, _ = await self.get(f"http://127.0.0.1:{self.metrics_port}/readyz")
            return status == 200

        await wait_until(ready, timeout=timeout, what=f"{self.name} /readyz")

    async def wait_knows(self, token: str, timeout: float, interval: float = 0.5) -> None:
        """Ping ``token`` until it is answered 200: the token index holds its monitor (an
        unknown token waits 2 s, then 404). One ping of that monitor is counted."""

        async def known() -> bool:
            status, _ = await self.get(f"{self.base}/ping/{token}")
            return status == 200

        await wait_until(known, timeout=timeout, interval=interval, what=f"{self.name} index")

    async def metrics(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        status, text = await self.get(f"http://127.0.0.1:{self.metrics_port}/metrics")
        if status != 200:
            raise RuntimeError(f"{self.name} /metrics: {status}")
        return parse_metrics(text)

    async def is_leader(self) -> bool:
        status, text = await self.get(f"http://127.0.0.1:{self.metrics_port}/metrics")
        if status != 200:
            return False
        return metric_sum(parse_metrics(text), "heartbeat_leader") == 1

    def kill(self) -> None:
        """SIGKILL: the crash a takeover must survive."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    async def stop(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.to_thread(self.proc.wait), 15)
            except TimeoutError:
                self.kill()
        await self.session.close()
        self._log_file.close()


# --- monitors in bulk --------------------------------------------------------------------


async def wait_all_ready(
    api: Api, namespace: str, count: int, *, timeout: float, what: str = "Ready"
) -> list[dict[str, Any]]:
    """Until ``count`` monitors report ``Ready=True`` with a token Secret; their objects."""

    async def probe() -> list[dict[str, Any]] | None:
        items, _ = await api.monitors(namespace)
        ready = [item for item in items if is_ready(item)]
        say(f"  {len(ready)}/{count} monitors {what}")
        return items if len(ready) >= count else None

    return await wait_until(probe, timeout=timeout, interval=3.0, what=f"{count} monitors {what}")


def is_ready(item: Mapping[str, Any]) -> bool:
    status = item.get("status") or {}
    ready = condition(status, "Ready").get("status") == "True"
    return ready and bool(status.get("tokenSecretName"))


def condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    for item in status.get("conditions") or ():
        if item.get("type") == kind:
            return item  # type: ignore[no-any-return]
    return {}


def write_tokens(path: Path, tokens: Iterable[str]) -> Path:
    """The tokens for wrk's Lua script, one per line, readable by this user only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.writelines(f"{token}\n" for token in tokens)
    return path
