"""The ``heartbeat-operator`` command line.

Each subcommand lives in the module that owns it; that module exposes
``configure(parser)`` (add its arguments) and ``main(args) -> int`` (exit status).
Modules are imported only when their subcommand runs, so ``simulate`` never loads kopf.
``dev`` needs the ``dev`` extra (``kubernetes``, ``cryptography``; issue 14 item 7), which
the image does not install: without it, it says so.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

# subcommand -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "run": ("heartbeat_operator.running", "run the operator (watches, receiver, metrics)"),
    "simulate": ("heartbeat_operator.simulating", "dry-run a monitor spec against events"),
    "schedule": ("heartbeat_operator.scheduling_cli", "print a cron schedule's next due times"),
    "dev": ("heartbeat_operator.devcluster.cli", "the local control plane: up, down, status, env"),
}


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="heartbeat-operator")
    # The installed distribution's version (pyproject.toml), as the image's label and the
    # chart's appVersion say it (issue 17 item 6).
    parser.add_argument("--version", action="version", version=f"heartbeat-operator {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # Only the chosen subcommand's module is imported (the others may pull heavy deps).
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub = commands.add_parser(name, help=help_text)
        if name == chosen:
            module = _import(name, module_name)
            module.configure(sub)
            sub.set_defaults(entry=module.main)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("heartbeat-operator")
    except PackageNotFoundError:  # run from a source tree without an install
        return "unknown"


#: Subcommands that need an extra, and the modules only that extra installs.
EXTRAS: dict[str, tuple[str, frozenset[str]]] = {
    "dev": ("dev", frozenset({"kubernetes", "cryptography"})),
}


def _import(name: str, module_name: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        extra, modules = EXTRAS.get(name, ("", frozenset()))
        if (exc.name or "").split(".")[0] not in modules:
            raise
        sys.exit(
            f"heartbeat-operator {name} needs the '{extra}' extra "
            f"(pip install 'heartbeat-operator[{extra}]'): no module named {exc.name!r}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    return int(args.entry(args))


if __name__ == "__main__":
    sys.exit(main())
