"""Rollouts and drains lose no ping (DESIGN 10.6, fine print 10.8.15, 9.20; issue 13 item 6).

Two replicas (operator processes against the real control plane) sit behind a tiny
round-robin TCP "Service" that, like endpoints, stops sending new connections to a
replica once its ``/readyz`` says 503 — and notices only every 2 s, as a Service's
endpoints take a while to reach every node. One replica is then terminated the way the
kubelet does it: the ``preStop`` hook (``GET /drain`` on the metrics port) returns, then
SIGTERM. Two clients ping through the "Service" without pause the whole time, one opening a
connection per ping, one keeping its connection alive. Neither sees a refused or broken
connection or an answer other than 200, and every 200 is counted in ``status.pingCount``.

Without the drain, SIGTERM closes the listener (within some 30 ms) while the "Service"
still routes to it: run that way, the connection-per-ping client saw 13 and 14 refused
connections in two runs (the kept-alive one none: a stopping replica closes each
connection after its reply).
"""

from __future__ import annotations

import contextlib
import itertools
import re
import socket
import threading
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.client import HTTPConnection, HTTPException

import pytest

from tests.integration.operator_process import Monitors, http, isolated
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

#: How often the "Service" looks at each replica's /readyz: endpoints are not instant.
ENDPOINTS_LAG = 2.0
#: The replicas' --drain-delay: twice the lag above, as 10 s is in a cluster.
DRAIN_DELAY = 4.0


def leads(op) -> bool:
    try:
        with urllib.request.urlopen(op.metrics_url + "/metrics", timeout=2) as response:
            text = response.read().decode()
    except (urllib.error.URLError, OSError):
        return False
    return re.search(r"^heartbeat_leader 1$", text, re.M) is not None


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    """Copy bytes until EOF, then pass the half-close on."""
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


@dataclass
class Backend:
    name: str
    port: int
    readyz: str
    ready: bool = False


@dataclass
class RoundRobinService:
    """A stand-in for a Service: new connections go round-robin to the ready backends;
    a connection, once made, stays with its backend (as with kube-proxy). No retry on a
    refused backend: the client would see it."""

    backends: list[Backend]
    listener: socket.socket = field(init=False)
    connections: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _turn: Iterator[int] = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}"

    def start(self) -> None:
        for target in (self._accept, self._watch_endpoints):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self.listener.close()

    def is_ready(self, name: str) -> bool:
        return any(b.ready for b in self.backends if b.name == name)

    def _watch_endpoints(self) -> None:
        while not self._stop.is_set():
            for backend in self.backends:
                try:
                    with urllib.request.urlopen(backend.readyz, timeout=1.0) as response:
                        backend.ready = response.status == 200
                except (urllib.error.URLError, OSError):
                    backend.ready = False
            self._stop.wait(ENDPOINTS_LAG)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._forward, args=(client,), daemon=True).start()

    def _forward(self, client: socket.socket) -> None:
        ready = [b for b in self.backends if b.ready]
        if not ready:
            self.failures.append("no ready backend")
            client.close()
            return
        backend = ready[next(self._turn) % len(ready)]
        try:
            upstream = socket.create_connection(("127.0.0.1", backend.port), timeout=5)
        except OSError as exc:
            self.failures.append(f"{backend.name}: {exc!r}")
            client.close()
            return
        upstream.settimeout(None)
        self.connections[backend.name] += 1
        back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
        back.start()
        _pipe(client, upstream)
        back.join()
        client.close()
        upstream.close()


@dataclass
class Pinger:
    """Pings one URL path without pause until stopped; counts every answer and error."""

    ping: Callable[[], int]
    answers: Counter[int] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.answers[self.ping()] += 1
            except (OSError, HTTPException) as exc:
                self.errors.append(repr(exc))


def connection_per_ping(base: str, path: str) -> Callable[[], int]:
    def ping() -> int:
        return http(base + path).status

    return ping


def kept_alive(base: str, path: str) -> Callable[[], int]:
    host, port = base.removeprefix("http://").split(":")
    connection = HTTPConnection(host, int(port), timeout=15)

    def ping() -> int:
        # http.client reconnects by itself after a reply that said "Connection: close".
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status

    return ping


def test_terminating_one_of_two_replicas_refuses_no_connection_and_loses_no_ping(
    operator_factory, api_client, namespace
):
    monitors = Monitors(api_client, namespace)
    flags = isolated(namespace, "--drain-delay", str(DRAIN_DELAY))
    a = operator_factory.start(*flags, name="a")
    b = operator_factory.start(*flags, name="b")
    replicas = {"a": a, "b": b}
    leader_name = wait_for(
        lambda: next((n for n, op in replicas.items() if leads(op)), None),
        timeout=15,
        what="a leader",
    )
    monitors.create("fresh", {"period": "1h"})
    monitors.create("kept", {"period": "1h"})
    paths = {n: "/ping/" + monitors.url(n).split("/ping/", 1)[1] for n in ("fresh", "kept")}

    service = RoundRobinService(
        [Backend(n, op.port, f"{op.metrics_url}/readyz") for n, op in replicas.items()]
    )
    service.start()
    pingers: dict[str, Pinger] = {}
    try:
        wait_for(
            lambda: all(service.is_ready(n) for n in replicas), timeout=5, what="both endpoints"
        )
        pingers = {
            "fresh": Pinger(connection_per_ping(service.url, paths["fresh"])),
            "kept": Pinger(kept_alive(service.url, paths["kept"])),
        }
        for pinger in pingers.values():
            pinger.start()
        wait_for(
            lambda: (
                all(p.answers[200] >= 5 for p in pingers.values())
                and all(service.connections[n] for n in replicas)
            ),
            timeout=20,
            what="pings through both replicas",
        )

        # The kubelet terminates the leader (the harder case: it also hands over the
        # Lease): preStop first, and SIGTERM only once the hook has returned.
        victim = replicas[leader_name]
        hook: dict[str, object] = {}
        drain = threading.Thread(
            target=lambda: hook.setdefault("reply", http(f"{victim.metrics_url}/drain")),
            daemon=True,
        )
        drain.start()
        wait_for(
            lambda: not service.is_ready(leader_name),
            timeout=DRAIN_DELAY + 5,
            what="the endpoint of the draining replica to go",
        )
        drain.join(timeout=DRAIN_DELAY + 10)
        reply = hook["reply"]
        assert (reply.status, reply.body) == (200, "drained")  # type: ignore[attr-defined]
        assert victim.stop(timeout=12) == 0
        answered = {name: p.answers[200] for name, p in pingers.items()}
        wait_for(
            lambda: all(p.answers[200] >= answered[n] + 5 for n, p in pingers.items()),
            timeout=20,
            what="pings through the replica that stays",
        )
    finally:
        for pinger in pingers.values():
            pinger.stop()
        service.close()

    for name, pinger in pingers.items():
        assert pinger.errors == [], f"{name}: {pinger.errors[:5]}"
        assert set(pinger.answers) == {200}, f"{name}: {pinger.answers}"
    assert service.failures == []
    # Every 200 reaches status, once: nothing acknowledged was lost or counted twice.
    for name, pinger in pingers.items():
        counted = monitors.absorbed(name, pinger.answers[200], timeout=30)["pingCount"]
        assert counted == pinger.answers[200], name
