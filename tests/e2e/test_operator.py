"""The operator's main scenarios against the cluster KUBECONFIG names (tests/e2e/scenarios.py).

make e2e-kind                 # kind + the image + the chart (needs Docker and kind)
tests/e2e/run-local.sh        # the local control plane, the operator out of cluster
"""

from __future__ import annotations

import pytest

from tests.e2e.scenarios import SCENARIOS, Monitors


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_scenario(monitors: Monitors, scenario: str) -> None:
    SCENARIOS[scenario](monitors)
