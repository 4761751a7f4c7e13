"""``kubectl heartbeat`` (the ``kubectl-heartbeat`` console script; issue 16 item 1).

- ``cli``: the verbs and their flags (``list``, ``describe``, ``url``, ``ping``, ``pause``,
  ``resume``, ``run``) and the exit statuses.
- ``api``: the Kubernetes API through the project's own client and kubeconfig reading,
  refusals turned into one sentence.
- ``views``: what ``list`` and ``describe`` print (pure, ``now`` passed in).
- ``pinging``: pings with retries and the ``run`` wrapper.

A client tool, never imported by the operator.
"""
