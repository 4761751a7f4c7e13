"""Events that repeat aggregate (DESIGN 10.8.13; issue 13 item 7), against the real API.

A two-second monitor that stays Down across several slots has exactly one Warning Event,
the one of its transition into Down, whose ``count`` grows with each further missed slot
(consecutiveFailures − failureThreshold + 1) and whose ``lastTimestamp`` moves; after a
recovery, the next transition into Down posts a new one.
"""

from __future__ import annotations

import pytest

from heartbeat_operator.domain.timefmt import parse_time
from tests.integration.operator_process import Monitors, http, isolated
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def test_a_monitor_down_for_several_slots_has_one_warning_whose_count_grows(
    operator_factory, api_client, namespace
):
    operator_factory.start(*isolated(namespace))
    monitors = Monitors(api_client, namespace)
    monitors.create("silent", {"period": "2s", "grace": "1s"})
    url = monitors.url("silent")
    assert http(url).status == 200
    monitors.wait_state("silent", "Down", timeout=15, reason="Missed")

    def warnings() -> list:
        return [e for e in monitors.events("silent") if e.type == "Warning"]

    def counted_slots(least: int):
        found = warnings()
        status = monitors.status("silent")
        missed = status["missedRuns"]
        if missed >= least and len(found) == 1 and found[0].count == missed:
            return found[0], status
        return None

    first, _ = wait_for(lambda: counted_slots(1), timeout=10, what="the Down Event")
    event, status = wait_for(
        lambda: counted_slots(first.count + 3), timeout=20, what="three more missed slots"
    )
    # One Warning for the whole Down period: the transition into Down's, counted.
    assert event.metadata.name == first.metadata.name
    assert event.reason == "Missed"
    assert event.count == status["consecutiveFailures"] >= 4
    assert event.first_timestamp == first.first_timestamp
    # Its time is the transition's (an Event's timestamps have whole seconds).
    assert event.first_timestamp == parse_time(status["stateSince"]).replace(microsecond=0)
    assert event.last_timestamp > first.last_timestamp
    assert f"{event.count} of failureThreshold 1" in event.message
    # Every other transition posted its own Event once.
    assert [e.reason for e in monitors.events("silent")].count("Missed") == 1

    # Back up, then Down again: a new transition into Down, a new Event.
    assert http(url).status == 200
    wait_for(lambda: "Recovered" in monitors.event_reasons("silent"), timeout=5, what="Recovered")
    wait_for(lambda: len(warnings()) == 2, timeout=15, what="a second Down Event")
    old = next(e for e in warnings() if e.metadata.name == first.metadata.name)
    new = next(e for e in warnings() if e.metadata.name != first.metadata.name)
    assert old.count >= event.count  # the first period's Event keeps its count
    assert new.reason == "Missed"
    assert new.first_timestamp > old.last_timestamp
