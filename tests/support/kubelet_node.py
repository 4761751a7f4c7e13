"""A Node with a kubelet's log endpoint, so ``pods/log`` works on the local control plane.

The API server answers ``GET /api/v1/namespaces/N/pods/P/log`` by proxying to the kubelet
of the Pod's Node: ``https://<node address>:<status.daemonEndpoints.kubeletEndpoint.Port>
/containerLogs/N/P/C`` with the query (``tailLines``, ``limitBytes``, ``previous``...).
The local control plane has no kubelet, so ``--capture-logs`` (issue 12) had no
integration test. ``KubeletNode`` plays that one kubelet endpoint for real:

- an HTTPS server on 127.0.0.1 (a free port), its serving certificate from a CA of its
  own (``devcluster.webhooks.generate``: the API server runs without
  ``--kubelet-certificate-authority``, so it does not verify a kubelet's certificate, as
  kube-apiserver does by default; a real certificate costs nothing and keeps the TLS
  honest);
- a Node whose ``status.addresses`` is ``InternalIP 127.0.0.1`` and whose
  ``daemonEndpoints.kubeletEndpoint.Port`` is that port, ``Ready=True``, with its Lease
  in ``kube-node-lease`` renewed every few seconds (the node lifecycle controller is not
  among the dev cluster's controllers today; renewing keeps the Node believable if it is
  ever turned on: it would otherwise taint an unrenewed Node and evict its Pods);
- ``bind(pod)``: the scheduler's part, a ``pods/binding`` to this Node (``spec.nodeName``
  can be set no other way), after which ``pods/log`` reaches the server;
- ``set_log(...)``: the container's log as the kubelet would serve it, honouring
  ``tailLines`` (the last n lines) then ``limitBytes`` (counted from the start of what is
  left), as the kubelet does, and ``previous``; ``requests`` records every request's path
  and query, for tests to assert what the operator asked for.

Nodes are cluster-scoped and the control plane is shared: each ``KubeletNode`` has a
unique name and deletes its Node and Lease when it stops.
"""

from __future__ import annotations

import datetime
import http.server
import ssl
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from heartbeat_operator.devcluster import webhooks

NODE_LEASE_NAMESPACE = "kube-node-lease"
RENEW_SECONDS = 5.0
"""How often the Node's Lease and Ready condition are renewed (a kubelet: 10 s lease,
40 s grace before the node lifecycle controller calls the Node unknown)."""


@dataclass(frozen=True)
class LogRequest:
    """One request the API server made to the stand-in kubelet."""

    path: str
    query: dict[str, str]


@dataclass
class _Logs:
    current: dict[tuple[str, str, str], bytes] = field(default_factory=dict)
    previous: dict[tuple[str, str, str], bytes] = field(default_factory=dict)
    requests: list[LogRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def serve_log(data: bytes, query: dict[str, str]) -> bytes:
    """What the kubelet returns of ``data`` for ``query``: ``tailLines`` first (the last n
    lines), then ``limitBytes`` from the start of that."""
    if "tailLines" in query:
        count = int(query["tailLines"])
        lines = data.splitlines(keepends=True)
        data = b"".join(lines[-count:]) if count > 0 else b""
    if "limitBytes" in query:
        data = data[: int(query["limitBytes"])]
    return data


class _Handler(http.server.BaseHTTPRequestHandler):
    logs: _Logs  # set on the subclass made per server

    def do_GET(self) -> None:
        split = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        with self.logs.lock:
            self.logs.requests.append(LogRequest(split.path, query))
        parts = [unquote(p) for p in split.path.split("/") if p]
        if len(parts) != 4 or parts[0] != "containerLogs":
            self._answer(404, b"404 page not found\n")
            return
        key = (parts[1], parts[2], parts[3])
        held = self.logs.previous if query.get("previous") == "true" else self.logs.current
        with self.logs.lock:
            data = held.get(key)
        if data is None:
            # What a kubelet says for a container it does not know (the API server passes
            # the status through as the pods/log answer).
            self._answer(404, f"container {parts[3]} not found in pod {parts[2]}\n".encode())
            return
        self._answer(200, serve_log(data, query))

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the test reads ``requests``; stderr stays quiet


def _now_text() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class KubeletNode:
    """One Node and its kubelet's log endpoint (see the module docstring)."""

    def __init__(self, api_client: k8s.ApiClient, name: str, port: int, logs: _Logs) -> None:
        self.core = k8s.CoreV1Api(api_client)
        self.coordination = k8s.CoordinationV1Api(api_client)
        self.name = name
        self.port = port
        self._logs = logs

    @property
    def requests(self) -> list[LogRequest]:
        with self._logs.lock:
            return list(self._logs.requests)

    def set_log(
        self, namespace: str, pod: str, container: str, text: str, *, previous: bool = False
    ) -> None:
        """What ``containerLogs/namespace/pod/container`` serves (``previous``: the log of
        the container's previous run, ``?previous=true``)."""
        held = self._logs.previous if previous else self._logs.current
        with self._logs.lock:
            held[(namespace, pod, container)] = text.encode("utf-8")

    def bind(self, pod: Any) -> None:
        """Bind ``pod`` (a V1Pod) to this Node, as the scheduler does (``pods/binding``)."""
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": pod.metadata.name},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.name},
        }
        # _preload_content=False: the client cannot deserialize the Status it answers with.
        self.core.create_namespaced_pod_binding(
            pod.metadata.name, pod.metadata.namespace, body, _preload_content=False
        )

    # --- the Node and its Lease ----------------------------------------------------------

    def _node_status(self) -> dict[str, Any]:
        now = _now_text()
        return {
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}},
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status (heartbeat-operator test stand-in)",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
            ],
        }

    def register(self) -> None:
        self.core.create_node(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": self.name,
                    "labels": {
                        "kubernetes.io/hostname": self.name,
                        "heartbeat.dev/test": "kubelet",
                    },
                },
            }
        )
        self.core.patch_node_status(self.name, {"status": self._node_status()})
        self.coordination.create_namespaced_lease(
            NODE_LEASE_NAMESPACE,
            {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name},
                "spec": {
                    "holderIdentity": self.name,
                    "leaseDurationSeconds": 40,
                    "renewTime": _micro_now(),
                },
            },
        )

    def renew(self) -> None:
        """What a kubelet does every 10 s: renew the Lease; post its Ready condition."""
        self.coordination.patch_namespaced_lease(
            self.name, NODE_LEASE_NAMESPACE, {"spec": {"renewTime": _micro_now()}}
        )
        now = _now_text()
        ready = {"type": "Ready", "status": "True", "lastHeartbeatTime": now}
        # Strategic merge: conditions merge by type, keeping lastTransitionTime.
        self.core.patch_node_status(self.name, {"status": {"conditions": [ready]}})

    def unregister(self) -> None:
        for delete in (
            lambda: self.coordination.delete_namespaced_lease(self.name, NODE_LEASE_NAMESPACE),
            lambda: self.core.delete_node(self.name),
        ):
            try:
                delete()
            except ApiException as exc:
                if exc.status != 404:
                    raise


@contextmanager
def kubelet_node(api_client: k8s.ApiClient, directory: Path) -> Iterator[KubeletNode]:
    """A registered Node with a live log endpoint, for the block; removed after it.

    ``directory`` holds the serving certificate (a test's ``tmp_path``).
    """
    certs = webhooks.generate(directory / "kubelet-pki", hosts=("127.0.0.1",))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs.cert, certs.key)

    logs = _Logs()
    handler = type("Handler", (_Handler,), {"logs": logs})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)  # a free port
    server.socket = context.wrap_socket(server.socket, server_side=True)
    port = int(server.server_address[1])
    node = KubeletNode(api_client, f"standin-{uuid.uuid4().hex[:10]}", port, logs)
    serving = threading.Thread(target=server.serve_forever, name="kubelet-logs", daemon=True)
    serving.start()

    stop = threading.Event()
    errors: list[BaseException] = []

    def heartbeat() -> None:
        while not stop.wait(RENEW_SECONDS):
            try:
                node.renew()
            except Exception as exc:  # kept for the test, which raises it at the end
                errors.append(exc)
                return

    renewing = threading.Thread(target=heartbeat, name="kubelet-lease", daemon=True)
    try:
        node.register()
        renewing.start()
        yield node
    finally:
        stop.set()
        if renewing.is_alive():
            renewing.join(timeout=10)
        server.shutdown()
        server.server_close()
        serving.join(timeout=10)
        node.unregister()
    if errors:
        raise errors[0]
