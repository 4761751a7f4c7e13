"""A TCP pass-through that can be held shut: an API server outage for one operator only.

``TcpGate(upstream_host, upstream_port)`` listens on 127.0.0.1; while ``held`` it accepts
no connection and forwards nothing (clients connect into the kernel's backlog and get no
answer, as from a SIGSTOPped kube-apiserver), and once ``release()``d it forwards bytes
both ways untouched (TLS passes through: the API server's certificate names 127.0.0.1).
Pointing one operator's kubeconfig at the gate gives that operator an outage without
stopping the shared control plane under other test sessions (issue 18 item 4).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path

import yaml


def _pipe(source: socket.socket, sink: socket.socket, released: threading.Event) -> None:
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            released.wait()
            sink.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


class TcpGate:
    def __init__(self, upstream_host: str, upstream_port: int, *, held: bool = True) -> None:
        self.upstream = (upstream_host, upstream_port)
        self._released = threading.Event()
        if not held:
            self._released.set()
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.listener.settimeout(0.2)
        self.connections = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1])

    def release(self) -> None:
        self._released.set()

    def close(self) -> None:
        self._stop.set()
        self._released.set()
        self._thread.join(timeout=5)
        for sock in [self.listener, *self._sockets]:
            with contextlib.suppress(OSError):
                sock.close()

    def kubeconfig(self, original: Path, path: Path) -> Path:
        """A copy of ``original`` whose clusters' server is this gate; returns ``path``."""
        config = yaml.safe_load(original.read_text())
        for cluster in config.get("clusters") or ():
            cluster["cluster"]["server"] = f"https://127.0.0.1:{self.port}"
        path.write_text(yaml.safe_dump(config))
        return path

    def _accept(self) -> None:
        while not self._stop.is_set():
            if not self._released.wait(0.2):
                continue  # held: leave connections in the backlog, unanswered
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            self.connections += 1
            self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(
                    target=_pipe, args=(source, sink, self._released), daemon=True
                ).start()
