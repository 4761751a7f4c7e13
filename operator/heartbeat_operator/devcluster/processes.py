"""Starting, recognising and stopping the control plane's processes by PID.

A PID alone is not an identity: after a reboot or a long pause the number may belong to
another program. Each process is recorded with its kernel start time
(``/proc/<pid>/stat`` field 22), and only a process with both matching is signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcessRecord:
    """One started process: what it is, its PID, its kernel start time and its log."""

    name: str
    pid: int
    start_ticks: int
    log: str

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "pid": self.pid, "startTicks": self.start_ticks, "log": self.log}

    @classmethod
    def from_json(cls, raw: Mapping[str, object]) -> ProcessRecord:
        pid, ticks = raw["pid"], raw["startTicks"]
        assert isinstance(pid, int) and isinstance(ticks, int)
        return cls(name=str(raw["name"]), pid=pid, start_ticks=ticks, log=str(raw["log"]))


def _stat(pid: int) -> tuple[str, int] | None:
    """``(state letter, start time in clock ticks)`` of a PID, or None if there is none."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) is in parentheses and may contain spaces: split after it.
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def start_ticks(pid: int) -> int:
    stat = _stat(pid)
    if stat is None:
        raise ProcessLookupError(pid)
    return stat[1]


def _reap(pid: int) -> None:
    """Collect the exit status if the process is our own exited child (no zombie left)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def is_running(record: ProcessRecord) -> bool:
    """True when the recorded process still runs (same PID, same start time, not a zombie)."""
    _reap(record.pid)
    stat = _stat(record.pid)
    return stat is not None and stat[0] not in ("Z", "X") and stat[1] == record.start_ticks


def spawn(
    name: str, argv: Sequence[str], log: Path, env: Mapping[str, str] | None = None
) -> ProcessRecord:
    """Start ``argv`` in its own session (it outlives the caller), output appended to ``log``."""
    with open(log, "ab") as out:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a terminal's Ctrl-C on `dev up` must not stop it
            env=dict(env) if env is not None else None,
        )
    return ProcessRecord(
        name=name, pid=process.pid, start_ticks=start_ticks(process.pid), log=str(log)
    )


def stop(record: ProcessRecord, *, timeout: float = 10.0) -> bool:
    """SIGTERM, then SIGKILL after ``timeout`` s; True if it was running. Never a stranger."""
    if not is_running(record):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while is_running(record):
        if time.monotonic() >= deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(record.pid, signal.SIGKILL)
            deadline = time.monotonic() + timeout
        time.sleep(0.05)
    return True


def argv(record: ProcessRecord) -> list[str]:
    """The command line of a running recorded process (from ``/proc/<pid>/cmdline``)."""
    if not is_running(record):
        raise ProcessLookupError(record.pid)
    raw = Path(f"/proc/{record.pid}/cmdline").read_bytes()
    return [part.decode() for part in raw.split(b"\0") if part]


def kill(record: ProcessRecord, *, timeout: float = 10.0) -> bool:
    """SIGKILL (no graceful stop) and wait until it is gone; True if it was running."""
    if not is_running(record):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(record.pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while is_running(record):
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{record.name} (pid {record.pid}) survived SIGKILL")
        time.sleep(0.05)
    return True


def send_signal(record: ProcessRecord, signum: int) -> None:
    """Signal a recorded process (e.g. SIGSTOP/SIGCONT in the fault suite); never a stranger."""
    if not is_running(record):
        raise ProcessLookupError(record.pid)
    os.kill(record.pid, signum)


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1 right now (held open until all are found)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tail(path: Path | str, lines: int = 30) -> str:
    """The last ``lines`` lines of a log file ('' if it does not exist)."""
    try:
        text = Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
