"""The `$ command` sessions of a README: parse them, replay them in a shell, compare shapes.

Issue 17 item 6 and issue 16 "Tests": every example's README is replayed as written
(tests/integration/test_examples.py). A session is a fenced ```` ```console ```` block:
lines starting with ``$ `` are commands (a heredoc runs on to its terminator, a line
ending in ``\\`` to the next), the lines after one are its output (stdout and stderr
together, as a terminal shows them). A block preceded by

    <!-- not replayed: WHY -->

is skipped (the README's prose should say why too: a watch that never ends, a wait on
wall time, a Pod that needs a kubelet).

Commands run one after another in ``bash`` with the repository as working directory;
variables they set (``URL=$(...)``, ``export PING_URL=...``) carry on to the next command,
as in one terminal. Each must exit 0 (a README shows a failure as ``cmd; echo "exit
status $?"``).

"Same shape" (``same_shape``): both texts are normalised (``normalise``: times, ages,
durations, tokens, UIDs, hashes, ports become placeholders; runs of spaces become one),
then compared line by line; an expected line ``...`` matches any number of lines, and the
rows of ``kubectl get events`` are compared in any order (the API server does not keep
one). Names, columns, states, reasons and messages must be the same.

Recording a session (CONTRIBUTING.md): with the operator running (``make run``), ::

    .venv/bin/python -m tests.support.sessions examples/period-monitor/README.md --write

runs every replayed block and writes the real output under each command.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOT_REPLAYED = re.compile(r"<!--\s*not replayed:\s*(?P<why>.*?)\s*-->")
FENCE = "```"
TOKEN = re.compile(r"/ping/[A-Za-z0-9_-]{20,}")


@dataclass
class Command:
    text: str  # what follows "$ ", heredoc and continuation lines included
    expected: list[str] = field(default_factory=list)  # the output lines the README shows


@dataclass
class Block:
    line: int  # 1-based line of the opening fence
    commands: list[Command]
    skipped_because: str | None  # None: replayed

    @property
    def replayed(self) -> bool:
        return self.skipped_because is None


def parse(text: str) -> list[Block]:
    """The ```` ```console ```` blocks of a README, in order."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        if lines[i].strip() != f"{FENCE}console":
            i += 1
            continue
        start = i
        why = _marker_before(lines, start)
        i += 1
        body: list[str] = []
        while i < len(lines) and lines[i].strip() != FENCE:
            body.append(lines[i])
            i += 1
        i += 1
        blocks.append(Block(start + 1, _commands(body), why))
    return blocks


def _marker_before(lines: Sequence[str], fence: int) -> str | None:
    j = fence - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    match = NOT_REPLAYED.search(lines[j]) if j >= 0 else None
    return match.group("why") if match else None


def _commands(body: Sequence[str]) -> list[Command]:
    commands: list[Command] = []
    i = 0
    while i < len(body):
        line = body[i]
        if not line.startswith("$ "):
            if commands:
                commands[-1].expected.append(line)
            i += 1
            continue
        text = [line[2:]]
        heredoc = re.search(r"<<-?\s*'?\"?(\w+)'?\"?", line)
        if heredoc:
            end = heredoc.group(1)
            while i + 1 < len(body) and body[i].strip() != end:
                i += 1
                text.append(body[i])
        while text[-1].endswith("\\") and i + 1 < len(body):
            i += 1
            text.append(body[i])
        commands.append(Command("\n".join(text)))
        i += 1
    for command in commands:
        while command.expected and not command.expected[-1].strip():
            command.expected.pop()
    return commands


# --- shape -----------------------------------------------------------------------------

_NORMALISE: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\x1b\[[0-9;]*m"), ""),  # colours (the plugin's, on a terminal)
    (re.compile(r"/ping/\S+"), "/ping/<token>"),  # the token is never the README's
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<uid>"),
    (re.compile(r"sha256:[0-9a-f]+"), "sha256:<hash>"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)"), "<time>"),
    # "Wed 2026-11-25 05:42:29 CET", "Mon 2026-12-07 09:30 EST"
    (
        re.compile(
            r"\b(Mon|Tue|Wed|Thu|Fri|Sat|Sun) \d{4}-\d\d-\d\d \d\d:\d\d(:\d\d)? [A-Z][\w+-]*"
        ),
        "<time>",
    ),
    # The UTC beside a local time names its weekday when the dates differ ("00:05 CET
    # (Mon 23:05 UTC)" between 23:00 and 24:00 UTC): a session replays at any hour.
    (re.compile(r"\((Mon|Tue|Wed|Thu|Fri|Sat|Sun) (\d\d:\d\d(:\d\d)? UTC)\)"), r"(\2)"),
    (re.compile(r"\b\d\d:\d\d(:\d\d)?\b"), "<hh:mm>"),
    (re.compile(r"\b(127\.0\.0\.1|localhost):\d+"), r"\1:<port>"),
    # ages and durations: 0s, 4m37s, 0.074s, 2d ago, 15m, "after 0 ms" (curl)
    (re.compile(r"\b\d+ ms\b"), "<d>"),
    (re.compile(r"\b\d+(\.\d+)?(ms|[smhd])(\d+[smhd])*\b"), "<d>"),
]


def normalise(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        for pattern, replacement in _NORMALISE:
            line = pattern.sub(replacement, line)
        out.append(" ".join(line.split()))
    while out and not out[-1]:
        out.pop()
    return out


def same_shape(command: str, expected: Sequence[str], actual: str) -> str | None:
    """None when ``actual`` has the shape of ``expected``; else a message saying where not."""
    want = normalise("\n".join(expected))
    got = normalise(actual)
    if "get events" in command and want and got:
        # One header, then rows in whatever order the API server listed them.
        want = [want[0], *sorted(want[1:])]
        got = [got[0], *sorted(got[1:])]
    pattern = "".join(_line_pattern(line) for line in want)
    if re.fullmatch(pattern, "".join(f"{line}\n" for line in got)):
        return None
    return (
        f"$ {command}\nexpected (normalised):\n  "
        + "\n  ".join(want)
        + "\nactual (normalised):\n  "
        + "\n  ".join(got)
        + f"\nactual (as printed):\n{actual}"
    )


def _line_pattern(line: str) -> str:
    if line == "...":
        return r"(?:[^\n]*\n)*?"
    if line.endswith("…"):
        # A column cut to the terminal's width: where it is cut moves with the length of
        # what came before (a duration of 0.03s or 0.031s), so its last 30 characters aside.
        return re.escape(line[: max(0, len(line) - 30)]) + r"[^\n]*\n"
    return re.escape(line) + r"\n"


# Commands that only read (kubectl get/describe, the plugin's list/describe/url): the
# replay may run them again while what the operator writes a moment later (an Event) is
# not there yet.
_READS = re.compile(
    r"^(kubectl (-n \S+ )?(get|describe)|kubectl heartbeat (list|describe|url))\b"
    r"[^|;&]*(; echo\b.*)?$"
)


def rereadable(command: str) -> bool:
    return bool(_READS.match(command)) and "\n" not in command


# --- running ---------------------------------------------------------------------------


class Shell:
    """One terminal: bash commands in order, variables carried from one to the next."""

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        substitutions: Mapping[str, str] | None = None,
        cwd: Path = ROOT,
        timeout: float = 60.0,
    ) -> None:
        self.env = dict(env)
        self.substitutions = dict(substitutions or {})
        self.cwd = cwd
        self.timeout = timeout
        self._state = Path(tempfile.mkdtemp(prefix="session-")) / "vars.sh"
        self._state.write_text("")

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        for old, new in self.substitutions.items():
            command = command.replace(old, new)
        # set -a: every assignment is exported, so `export -p` keeps it for the next command.
        script = (
            f"set -a\nsource {shlex.quote(str(self._state))}\n{command}\n__rc=$?\n"
            f"export -p > {shlex.quote(str(self._state))}\nexit $__rc\n"
        )
        return subprocess.run(
            ["bash", "-c", script],
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=self.timeout,
            check=False,
        )


def record(readme: Path, shell: Shell) -> str:
    """The README with each replayed command's output replaced by what ``shell`` printed."""
    lines = readme.read_text().splitlines()
    blocks = parse("\n".join(lines))
    out: list[str] = []
    i = 0
    for block in blocks:
        fence = block.line - 1
        out.extend(lines[i : fence + 1])
        i = fence + 1
        end = i
        while lines[end].strip() != FENCE:
            end += 1
        if not block.replayed:
            out.extend(lines[i:end])
        else:
            for command in block.commands:
                done = shell.run(command.text)
                if done.returncode != 0:
                    print(f"exit {done.returncode}: $ {command.text}", file=sys.stderr)
                out.extend(f"$ {command.text}".splitlines())
                # A README never shows a token, not even a dev cluster's.
                shown = TOKEN.sub("/ping/<token>", done.stdout.rstrip("\n"))
                out.extend(shown.splitlines())
        i = end
    out.extend(lines[i:])
    return "\n".join(out) + "\n"


def main(argv: Sequence[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 2
    readme = Path(argv[0])
    env = {**os.environ, "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    text = record(readme, Shell(env))
    if "--write" in argv:
        readme.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
