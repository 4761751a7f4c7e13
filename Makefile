# Two commands a new machine needs (README): `make run` and `make test`.
# Everything they need is built or installed here, from the project's own files.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: test faults run run-venv bench bench-deps setup venv test-deps controlplane helm lint pytest e2e-kind check-py313

## test: virtualenv, test tools, Debian test deps, control plane; lint, types, layers, tests
test: setup lint pytest

## faults: every fault scenario of issue 18 (tests/faults/README.md), long runs included,
## each printing its counts; ~5.5 min. `make test` runs only the quick ones (quick_fault).
faults: setup
	$(BIN)/pytest tests/faults --faults -p no:cacheprovider

## run: the local control plane, the CRD, examples/ applied, the operator in the foreground
# Only what running needs (issue 17 item 6): the operator (with its dev extra) in the
# virtualenv and the control plane binaries; no test tools, Prometheus, Alertmanager or helm.
run: run-venv controlplane
	bash hack/run-dev.sh

run-venv: $(VENV)/.run-installed

# The operator and its `dev` extra (`heartbeat-operator dev up` makes the local control
# plane's certificates and applies the CRD: cryptography, kubernetes); `make venv` adds the
# test tools on top.
$(VENV)/.run-installed: pyproject.toml | $(BIN)/python
	@echo "run: installing heartbeat-operator and its dev extra into $(VENV) (first time only)"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

## bench: the operator benchmarks of issue 8 (bench/run.py, own control plane; BENCH_QUICK=1
## for a smoke run), then every bench/bench_*.py; results in bench/README.md
bench: setup bench-deps
	$(BIN)/python bench/run.py
	@shopt -s nullglob; for script in bench/bench_*.py; do echo "== $$script"; $(BIN)/python "$$script"; done

# wrk (Debian) and the bench extra (profilers), installed once.
bench-deps: $(VENV)/.bench-installed
	bash hack/install-bench-deps.sh

$(VENV)/.bench-installed: pyproject.toml | $(VENV)/.installed
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,test,bench]'
	touch $@

setup: venv test-deps controlplane helm

venv: $(VENV)/.installed

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstalled whenever pyproject.toml changes (pins, extras, entry points).
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,test]'
	touch $@

test-deps:
	bash hack/install-test-deps.sh

# Builds etcd, kube-apiserver, kube-controller-manager and kubectl once (cached outside the
# tree), then links the matching kubectl into the virtualenv (DESIGN 9.5).
controlplane: | $(BIN)/python
	@bin_dir=$$(bash hack/build-controlplane.sh); ln -sfn "$$bin_dir/kubectl" $(BIN)/kubectl; \
	echo "control plane binaries: $$bin_dir (kubectl linked as $(BIN)/kubectl)"

# The pinned helm CLI the chart tests lint and render with (built once from its Go
# module, cached outside the tree like the control plane).
helm:
	@echo "helm: $$(bash hack/build-helm.sh)"

## e2e-kind: kind cluster, image built and loaded, chart installed, tests/e2e run (needs Docker and kind)
e2e-kind: venv helm
	bash tests/e2e/run-kind.sh

## check-py313: the unit tests on the newest Python the project claims (3.13, from pyenv),
## in a virtualenv of its own; not part of `make test` (CONTRIBUTING.md says when to run it)
# Python 3.13 verifies TLS strictly (VERIFY_X509_STRICT) and deprecates more than 3.11:
# what passes on CI's 3.11 can fail there (issue 13 item 13).
PY313 ?= $(shell ls -d "$$(pyenv root 2>/dev/null || echo $$HOME/.pyenv)"/versions/3.13*/bin/python3 2>/dev/null | sort -V | tail -n 1)
VENV313 := .venv-py313

check-py313: $(VENV313)/.installed
	$(VENV313)/bin/pytest tests/unit -q -p no:cacheprovider

$(VENV313)/.installed: pyproject.toml
	@test -n "$(PY313)" || { echo "no Python 3.13: pyenv install 3.13 (or make check-py313 PY313=/path/to/python3.13)" >&2; exit 1; }
	test -x $(VENV313)/bin/python || "$(PY313)" -m venv $(VENV313)
	$(VENV313)/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev,test]'
	touch $@

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

pytest: venv controlplane
	$(BIN)/pytest
