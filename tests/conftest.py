"""Shared pytest configuration for every suite.

Everything under ``tests/integration/`` is marked ``integration`` here (by path, so no
test can forget it): ``pytest -m "not integration"`` runs only what needs no control
plane. Fixtures for the control plane live in ``tests/integration/conftest.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

INTEGRATION_DIR = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_DIR in item.path.parents:
            item.add_marker(pytest.mark.integration)
