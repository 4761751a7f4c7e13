"""Coverage by policy (issue 12, item 5): with ``--auto-wire-namespace-selector`` every
CronJob in a matching Namespace is monitored without the annotation; ``"false"`` opts one
out; the annotation works everywhere; a Namespace relabelled re-decides its CronJobs. The
leader's reconcile runs against the fake of our own ``KubeClient`` seam of test_cronjobs
(the real API: tests/integration/test_coverage.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.unit.engine.test_cronjobs import FakeClient, cronjob, cronjob_body, monitor_body

from heartbeat_operator.domain.selectors import parse_selector
from heartbeat_operator.engine.autowiring import CRONJOBS, AutoWiring
from heartbeat_operator.engine.cronjobs import monitoring, name_conflict_event
from heartbeat_operator.engine.folding import Change
from heartbeat_operator.engine.monitors import Key, MonitorEntry, MonitorTable

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
SELECTOR = parse_selector("heartbeat.dev/monitor-cronjobs=true")
COVERED = {"heartbeat.dev/monitor-cronjobs": "true"}
KEY = ("ops", "backup")


def namespace_body(labels: dict[str, str], name: str = "ops") -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels}}


# --- the decision, pure ---------------------------------------------------------------------


def test_without_a_selector_only_the_annotation_monitors() -> None:
    assert monitoring(cronjob(), COVERED, None) is True
    assert monitoring(cronjob(annotations={}), COVERED, None) is False


def test_a_matching_namespace_monitors_unannotated_cronjobs() -> None:
    assert monitoring(cronjob(annotations={}), COVERED, SELECTOR) is True
    assert monitoring(cronjob(annotations={}), {}, SELECTOR) is False
    assert (
        monitoring(cronjob(annotations={}), {"heartbeat.dev/monitor-cronjobs": "no"}, SELECTOR)
        is False
    )


def test_the_annotation_decides_wherever_it_is_set() -> None:
    opted_out = cronjob(annotations={"heartbeat.dev/monitor": "false"})
    assert monitoring(opted_out, COVERED, SELECTOR) is False
    # DESIGN 9.11: a value other than "true" means not monitored, policy or not
    assert (
        monitoring(cronjob(annotations={"heartbeat.dev/monitor": "yes"}), COVERED, SELECTOR)
        is False
    )
    assert monitoring(cronjob(), {}, SELECTOR) is True
    assert monitoring(cronjob(), None, SELECTOR) is True


def test_undecided_until_the_namespace_is_seen() -> None:
    assert monitoring(cronjob(annotations={}), None, SELECTOR) is None


def test_name_conflict_points_a_policy_covered_cronjob_to_opting_out() -> None:
    annotated = name_conflict_event(cronjob(), now=NOW)
    assert "remove the annotation heartbeat.dev/monitor" in annotated["message"]
    by_policy = name_conflict_event(cronjob(annotations={}), now=NOW)
    assert 'heartbeat.dev/monitor: "false"' in by_policy["message"]
    assert "namespace's labels" in by_policy["message"]


# --- the leader's reconcile -----------------------------------------------------------------


class Harness:
    def __init__(self) -> None:
        self.client = FakeClient()
        self.table = MonitorTable()
        self.submitted: list[tuple[Key, Change]] = []
        self.wiring = AutoWiring(
            client=self.client,  # type: ignore[arg-type]
            monitors=self.table,
            submit=self.submit,
            is_leader=lambda: True,
            namespace_selector=SELECTOR,
            now=lambda: NOW,
        )

    async def submit(self, key: Key, change: Change) -> MonitorEntry:
        self.submitted.append((key, change))
        current = self.table.get(key)
        assert current is not None
        return current

    def monitor(self, body: dict[str, Any]) -> None:
        self.client.current = body
        self.table.upsert(body)
        self.wiring.monitor_event(None, body)

    def marked(self) -> set[Key]:
        marked = self.wiring.work.pending(CRONJOBS)
        self.wiring.work.clear(CRONJOBS)
        return marked  # type: ignore[return-value]


async def test_unannotated_cronjob_in_a_covered_namespace_gets_its_monitor() -> None:
    h = Harness()
    h.wiring.namespace_event(None, namespace_body(COVERED))
    h.wiring.cronjob_event("ADDED", cronjob_body(annotations={}))
    await h.wiring.reconcile(KEY)
    ((path, body, _),) = h.client.applied
    assert path.endswith("/namespaces/ops/heartbeatmonitors/backup")
    assert body["metadata"]["ownerReferences"][0]["name"] == "backup"


async def test_nothing_happens_before_the_namespace_is_seen_then_its_event_decides() -> None:
    h = Harness()
    h.monitor(monitor_body())  # made by the operator before a restart
    h.wiring.cronjob_event("ADDED", cronjob_body(annotations={}))
    assert h.marked() == {KEY}
    await h.wiring.reconcile(KEY)
    assert h.client.applied == [] and h.client.deleted == []  # no guess either way
    h.wiring.namespace_event(None, namespace_body({}))
    assert h.marked() == {KEY}
    await h.wiring.reconcile(KEY)
    assert len(h.client.deleted) == 1


async def test_relabelling_re_decides_only_that_namespaces_cronjobs() -> None:
    h = Harness()
    h.wiring.namespace_event(None, namespace_body(COVERED))
    h.wiring.namespace_event(None, namespace_body({}, name="other"))
    h.wiring.cronjob_event("ADDED", cronjob_body(annotations={}))
    h.marked()
    # a label the selector does not look at: nothing to re-decide
    h.wiring.namespace_event("MODIFIED", namespace_body({**COVERED, "team": "a"}))
    assert h.marked() == set()
    h.wiring.namespace_event("MODIFIED", namespace_body({}, name="other"))
    assert h.marked() == set()
    # the selector's answer changes: the namespace's CronJobs are reconciled again
    h.monitor(monitor_body())
    h.marked()
    h.wiring.namespace_event("MODIFIED", namespace_body({"team": "a"}))
    assert h.marked() == {KEY}
    await h.wiring.reconcile(KEY)
    ((path, options),) = h.client.deleted
    assert path.endswith("/heartbeatmonitors/backup")
    assert options["preconditions"] == {"uid": "m-uid"}


async def test_unlabelling_never_deletes_a_monitor_the_operator_did_not_make() -> None:
    h = Harness()
    h.monitor(monitor_body(owner=None, labels={}))
    h.wiring.namespace_event(None, namespace_body({}))
    h.wiring.cronjob_event("ADDED", cronjob_body(annotations={}))
    await h.wiring.reconcile(KEY)
    assert h.client.deleted == [] and h.client.applied == []


async def test_opted_out_cronjob_in_a_covered_namespace_gets_none() -> None:
    h = Harness()
    h.wiring.namespace_event(None, namespace_body(COVERED))
    h.wiring.cronjob_event("ADDED", cronjob_body(annotations={"heartbeat.dev/monitor": "false"}))
    await h.wiring.reconcile(KEY)
    assert h.client.applied == []


async def test_annotated_cronjob_in_an_unlabelled_namespace_keeps_working() -> None:
    h = Harness()
    h.wiring.namespace_event(None, namespace_body({}))
    h.wiring.cronjob_event("ADDED", cronjob_body())
    await h.wiring.reconcile(KEY)
    assert len(h.client.applied) == 1


def test_deleted_namespace_and_cronjobs_are_forgotten() -> None:
    h = Harness()
    h.wiring.namespace_event(None, namespace_body(COVERED))
    h.wiring.cronjob_event("ADDED", cronjob_body(annotations={}))
    h.wiring.cronjob_event("DELETED", cronjob_body(annotations={}))
    h.wiring.namespace_event("DELETED", namespace_body(COVERED))
    assert h.wiring.namespace_labels == {}
    assert h.wiring._names_in == {}


def test_without_a_selector_namespaces_are_not_kept() -> None:
    wiring = AutoWiring(
        client=FakeClient(),  # type: ignore[arg-type]
        monitors=MonitorTable(),
        submit=Harness().submit,
        is_leader=lambda: True,
    )
    wiring.namespace_event(None, namespace_body(COVERED))
    assert wiring.namespace_labels == {}
    assert wiring.capture_logs is False
