"""The wire to Kubernetes: the aiohttp API client, credentials, kopf's watches, Leases,
and the per-kind reads and writes (Secrets, a Job's Events and logs).

Only transport and object shapes live here (issue 14 item 1); what to write and when is
``heartbeat_operator.engine``'s, which reaches this package through ``engine.api.KubeApi``.
"""
