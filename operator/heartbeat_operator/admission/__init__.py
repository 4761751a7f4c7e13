"""The validating admission webhook (DESIGN 10.4): refuse at ``kubectl apply``, with one
sentence, the HeartbeatMonitor specs the domain cannot evaluate.

What belongs here: reading an AdmissionReview and answering it (``reviews``, no I/O), the
aiohttp app that carries it (``app``) and its HTTPS listener (``serving``). The checks
themselves are the domain's (``domain.specs.parse_spec``); nothing here re-implements
them. Every replica serves the webhook, leader or not, and the chart registers it with
``failurePolicy: Ignore``: a stopped operator never blocks an apply, and ``Ready=False``
plus ``HeartbeatMonitorInvalid`` stay the safety net for what slips through.
"""
