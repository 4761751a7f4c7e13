"""The operator's engine: everything between the watch and the API that is not the wire.

Issue 14 item 1. Here: the group-commit status writer (``writing``), the fold from a
monitor plus inputs to its whole new status (``folding``), the monitor table every replica
keeps and how it packs statuses (``monitors``, ``packing``), the leader's deadline heap
(``scheduling``), the token life cycle (``tokens``), Event bookkeeping (``events``), and
the CronJob auto-wiring (``cronjobs``: the pure mapping; ``autowiring``: the tables and
the leader's reconciler) with what a Job's Pods mean (``jobs``, ``causes``), and the
keyed work queue the leader's loops share (``workqueue``).

Nothing here imports kopf or aiohttp: the engine reaches the API through ``api.KubeApi``
(implemented by ``kube.client.KubeClient``, and by ``tests/unit/kube/fakes.FakeKube``),
and is fed by ``kube.watching``. Decisions live in ``heartbeat_operator.domain``.
"""
