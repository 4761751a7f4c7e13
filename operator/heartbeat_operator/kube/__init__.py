"""Kubernetes edges: kopf watches, the async API client and one adapter per object kind.

Handlers here parse what the API sent, call ``heartbeat_operator.domain``, and apply the
result; builders return plain data and a one-line ``apply_*`` does the I/O.
"""
