"""The ping receiver: an aiohttp application (app factory, route table, middlewares, views).

Views turn HTTP requests into domain pings and recorder outcomes into HTTP responses;
nothing here talks to Kubernetes directly.

What the rest of the operator uses:

- ``app.make_ping_app(settings, recorder, health, observer=, clock=)`` -> port 8080
- ``app.make_metrics_app(render_or_handler, health, observer=)`` -> port 8081
- ``health.Health(readiness, drain_delay=)``: one per process, shared by both apps;
  ``begin_shutdown()`` turns ``/readyz`` to 503; so does ``/drain`` (metrics port, the
  Pod's ``preStop`` hook), which answers after the drain delay.
- ``serving.serve(app, host, port, shutdown_timeout=)``: an async context manager that
  listens in the caller's loop and, on exit, stops accepting and answers what is in flight.

Modules: ``paths`` (parse and redact ping URLs), ``bodies`` (cap, cut, decode), ``views``,
``middlewares``, ``routes``, ``keys`` (typed app state), ``connections`` (header timeout
and connection cap), ``logs`` (token-free access log and tracebacks).
"""
