"""The pure core: durations, schedules, tokens and the heartbeat state machine.

Everything here is purely data-manipulative and computational: no I/O, no clock reads
(``now`` is always a parameter), and no imports of kopf, aiohttp, kubernetes or
prometheus_client (import-linter enforces this in ``make test``).
"""
