"""heartbeat-operator: heartbeat (dead-man's switch) monitoring for Kubernetes.

Layout (DESIGN.md section 7, docs/architecture.md):

- ``domain/``     pure state machine and schedule math; no I/O, ``now`` is a parameter.
- ``kube/``       kopf watching and the Kubernetes adapters (status, Events, Secrets,
                  CronJobs, Leases), the leader's scheduler and the status writer.
- ``receiver/``   the aiohttp ping receiver.
- ``metrics.py``  the scrape-time Prometheus collector.
- ``settings.py`` the one typed settings object.
- ``devcluster/`` the local control plane (``heartbeat-operator dev …``), a development tool.
"""
