"""The wire to Kubernetes: the aiohttp API client, credentials, kopf's watches, Leases.

Only transport, kopf and leadership live here (issue 14 item 1); what to write and when is
``heartbeat_operator.engine``'s, which reaches the API through ``engine.api.KubeApi``
(``client.KubeClient`` implements it). Import-linter keeps the engine from importing this.
"""
