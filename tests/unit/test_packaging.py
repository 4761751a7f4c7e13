"""Dev-only dependencies stay out of the operator (issue 14 item 7).

``kubernetes`` and ``cryptography`` are the ``dev`` extra: ``heartbeat-operator dev`` and
the tests use them, the image installs none of them, and ``run`` must work without them.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from heartbeat_operator.__main__ import main

REPO = Path(__file__).resolve().parents[2]
DEV_ONLY = ("kubernetes", "cryptography")


def test_the_runtime_dependencies_hold_no_dev_only_package() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime = {re.split(r"[=<>\[ ]", d)[0] for d in project["dependencies"]}
    dev = {re.split(r"[=<>\[ ]", d)[0] for d in project["optional-dependencies"]["dev"]}
    assert set(DEV_ONLY) <= dev
    assert not runtime & dev


def test_the_image_installs_no_extra() -> None:
    installs = re.findall(r"pip install [^\n]*", (REPO / "Dockerfile").read_text())
    assert installs and all("[" not in line for line in installs), installs


def test_run_imports_nothing_from_the_dev_extra() -> None:
    # A fresh interpreter where the dev extra is absent (an import of it raises): every
    # module `run` loads must import, and none of the dev tools may be among them.
    code = f"""
import sys
for name in {DEV_ONLY!r}:
    sys.modules[name] = None
from heartbeat_operator.__main__ import build_parser
build_parser(["run", "--help"])
import heartbeat_operator.running
loaded = [m for m in sys.modules if m.startswith("heartbeat_operator.devcluster")]
assert not loaded, loaded
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_dev_without_its_extra_says_which_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in list(sys.modules):
        if name.startswith("heartbeat_operator.devcluster"):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "cryptography", None)
    with pytest.raises(SystemExit) as exited:
        main(["dev", "status"])
    assert "pip install 'heartbeat-operator[dev]'" in str(exited.value.code)


def test_make_run_installs_what_dev_up_needs() -> None:
    # `make run` starts the local control plane with `heartbeat-operator dev up`, which
    # needs the dev extra: a first run from a fresh clone stopped at "needs the 'dev'
    # extra" when it installed the operator alone.
    makefile = (REPO / "Makefile").read_text()
    recipe = makefile.split("$(VENV)/.run-installed:", 1)[1].split("\n\n", 1)[0]
    assert '" dev up' in (REPO / "hack" / "run-dev.sh").read_text()  # what needs it
    install = next(line for line in recipe.splitlines() if "pip install" in line)
    extras = re.search(r"\.\[([a-z,]+)\]", install)
    assert extras is not None and "dev" in extras.group(1).split(","), install
