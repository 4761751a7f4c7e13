"""docs/cli.md shows real sessions: each `$ heartbeat-operator …` there, run in a directory
holding the files the session `cat`s, prints exactly what the page shows."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from heartbeat_operator.__main__ import main

PAGE = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def sessions() -> list[list[str]]:
    blocks = re.findall(r"```sh\n(.*?)```", PAGE.read_text(), flags=re.S)
    return [block.splitlines() for block in blocks if "\n$ " in "\n" + block]


def commands(lines: list[str]) -> list[tuple[str, list[str]]]:
    """(command line, the lines it printed) for each `$ ` line of a session."""
    out: list[tuple[str, list[str]]] = []
    for line in lines:
        if line.startswith("$ "):
            out.append((line[2:], []))
        elif out:
            out[-1][1].append(line)
    return out


@pytest.mark.parametrize("session", sessions(), ids=lambda s: s[0][2:40])
def test_the_page_shows_what_the_cli_prints(
    session: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    ran = 0
    for command, printed in commands(session):
        if command.startswith("cat "):  # the session's input files
            Path(command[4:]).write_text("\n".join(printed) + "\n")
            continue
        if command.startswith("printf "):
            text, target = re.fullmatch(r"printf '(.*)' > (\S+)", command).groups()  # type: ignore[union-attr]
            Path(target).write_text(text.replace("\\n", "\n"))
            continue
        argv = shlex.split(command.split(";")[0])
        assert argv[0] == "heartbeat-operator", command
        status = main(argv[1:])
        captured = capsys.readouterr()
        shown = captured.out.splitlines() + captured.err.splitlines()
        if 'echo "exit $?"' in command:
            shown.append(f"exit {status}")
        assert shown == printed, command
        ran += 1
    assert ran
