"""The webhook's aiohttp app: one route, ``POST /validate/heartbeatmonitors``.

Like the receiver's apps it is built by a factory with nothing global, so tests serve it
in-process (``aiohttp_client``) without TLS; ``serving.serve_webhook`` adds the HTTPS
listener in the operator.
"""

from __future__ import annotations

import json
import logging

from aiohttp import web

from heartbeat_operator.admission.reviews import MalformedReview, review

logger = logging.getLogger(__name__)

#: The path the ValidatingWebhookConfiguration names (chart, ``dev up``, tests).
PATH = "/validate/heartbeatmonitors"

#: Bytes of an AdmissionReview accepted: it holds the object and the old object, each up to
#: etcd's 1.5 MiB request limit, plus the review's own fields.
MAX_REVIEW_BYTES = 4 * 1024 * 1024


async def validate(request: web.Request) -> web.Response:
    try:
        body = json.loads(await request.read())
        answer = review(body)
    except (ValueError, MalformedReview) as error:  # JSONDecodeError is a ValueError
        reason = error if isinstance(error, MalformedReview) else "the body is not JSON"
        return web.json_response({"error": f"not an AdmissionReview v1: {reason}"}, status=400)
    response = answer["response"]
    if not response["allowed"]:
        logger.info("admission: refused %s: %s", _what(body), response["status"]["message"])
    return web.json_response(answer)


def _what(body: dict[str, object]) -> str:
    request = body.get("request")
    if not isinstance(request, dict):
        return "a request"
    namespace, name = request.get("namespace") or "", request.get("name") or ""
    return f"{request.get('operation', '?')} {namespace}/{name}".rstrip("/")


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def make_webhook_app() -> web.Application:
    app = web.Application(client_max_size=MAX_REVIEW_BYTES)
    app.add_routes([web.post(PATH, validate), web.get("/healthz", healthz)])
    return app
