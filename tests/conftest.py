"""Shared pytest configuration for every suite.

Everything under ``tests/integration/`` and ``tests/faults/`` is marked ``integration``
here (by path, so no test can forget it): ``pytest -m "not integration"`` runs only what
needs no control plane. Fixtures for the control plane live in
``tests/integration/conftest.py``.

The fault suite (``tests/faults/``, issue 18): its long scenarios are marked
``fault_long`` and deselected unless ``--faults`` is given (``make faults``); the short
ones (``quick_fault``) run with the rest of ``make test``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

INTEGRATION_DIRS = (Path(__file__).parent / "integration", Path(__file__).parent / "faults")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--faults",
        action="store_true",
        default=False,
        help="also run the long fault scenarios of tests/faults (make faults; issue 18)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if any(d in item.path.parents for d in INTEGRATION_DIRS):
            item.add_marker(pytest.mark.integration)
    if config.getoption("--faults"):
        return
    # Deselected, not skipped: a skipped test must never look like a pass.
    long_runs = [item for item in items if item.get_closest_marker("fault_long")]
    if long_runs:
        config.hook.pytest_deselected(items=long_runs)
        items[:] = [item for item in items if not item.get_closest_marker("fault_long")]
