"""AdmissionReview v1 in, AdmissionReview v1 out: the webhook's decision, without I/O.

``review(body)`` answers one request the API server sent:

- a HeartbeatMonitor created, or updated with a changed ``spec``, is parsed by the domain
  (``parse_spec``); a ``SpecError`` refuses it with the domain's sentence, naming the field,
  unless the update's old spec failed with the same error (ratcheting);
- everything else is allowed: other kinds and operations, an update that leaves ``spec`` as
  it was (labels, annotations such as ``heartbeat.dev/rotate-token``, finalizers: an old
  monitor that is already invalid must stay editable), and the operator's own writes
  (field manager ``heartbeat-operator``: an auto-wired monitor mirrors its CronJob, and
  refusing it would hide the CronJob instead of showing it ``Ready=False``);
- a spec the domain fails on in any other way is allowed too, as ``failurePolicy: Ignore``
  would: the operator then reports it ``Ready=False``.

A body that is not an AdmissionReview v1 with a request uid raises ``MalformedReview``
(the app answers 400).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from heartbeat_operator.domain.specs import SpecError, parse_spec

logger = logging.getLogger(__name__)

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"
GROUP = "heartbeat.dev"
MONITOR_KIND = "HeartbeatMonitor"
#: The operator's own field manager (``engine.cronjobs.FIELD_MANAGER``, DESIGN 9.11).
OPERATOR_FIELD_MANAGER = "heartbeat-operator"
#: The HTTP status the API server reports for a refusal: 422 Invalid, as for a schema error.
REFUSED_CODE = 422


class MalformedReview(ValueError):
    """The request body is not an AdmissionReview v1 carrying a request uid."""


def _request(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise MalformedReview("the body is not a JSON object")
    if body.get("apiVersion") != API_VERSION or body.get("kind") != KIND:
        raise MalformedReview(f"expected apiVersion {API_VERSION}, kind {KIND}")
    request = body.get("request")
    if not isinstance(request, Mapping):
        raise MalformedReview("the AdmissionReview has no request")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise MalformedReview("the AdmissionReview's request has no uid")
    return request


def _answer(uid: str, message: str | None) -> dict[str, Any]:
    response: dict[str, Any] = {"uid": uid, "allowed": message is None}
    if message is not None:
        response["status"] = {"code": REFUSED_CODE, "reason": "Invalid", "message": message}
    return {"apiVersion": API_VERSION, "kind": KIND, "response": response}


def _spec(obj: Any) -> Any:
    return obj.get("spec") if isinstance(obj, Mapping) else None


def _name(obj: Any) -> str | None:
    metadata = obj.get("metadata") if isinstance(obj, Mapping) else None
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    return name if isinstance(name, str) else None


def sentence(error: SpecError) -> str:
    """The refusal: the domain's message, led by the field when it does not name it."""
    message = error.message.rstrip(".")
    if error.field in message:
        return message
    return f"{error.field}: {message}"


def refusal(request: Mapping[str, Any]) -> str | None:
    """Why this request must be refused, or None to allow it."""
    kind = request.get("kind")
    if not isinstance(kind, Mapping) or (kind.get("group"), kind.get("kind")) != (
        GROUP,
        MONITOR_KIND,
    ):
        return None
    operation = request.get("operation")
    if operation not in ("CREATE", "UPDATE"):
        return None
    options = request.get("options")
    if isinstance(options, Mapping) and options.get("fieldManager") == OPERATOR_FIELD_MANAGER:
        return None
    obj = request.get("object")
    spec = _spec(obj)
    if operation == "UPDATE" and spec == _spec(request.get("oldObject")):
        return None
    if not isinstance(spec, Mapping):
        return None  # the schema requires spec: nothing for us to add
    try:
        parse_spec(spec, name=_name(obj))
    except SpecError as error:
        if operation == "UPDATE" and _same_error(error, request.get("oldObject")):
            return None  # not this edit's doing: pausing or fixing another field must work
        return sentence(error)
    except Exception:  # as failurePolicy Ignore would: the operator reports it Ready=False
        logger.warning("admission: could not evaluate a spec; allowed", exc_info=True)
    return None


def _same_error(error: SpecError, old: Any) -> bool:
    """Whether the object before the update failed the same way (ratcheting, as the API
    server does for CRD schema rules): a monitor that got in invalid (the webhook fails
    open, the operator's own writes pass) must stay editable, ``spec.paused`` included."""
    old_spec = _spec(old)
    if not isinstance(old_spec, Mapping):
        return False
    try:
        parse_spec(old_spec, name=_name(old))
    except SpecError as before:
        return (before.field, before.message) == (error.field, error.message)
    except Exception:
        return False
    return False


def review(body: Any) -> dict[str, Any]:
    """The AdmissionReview v1 answering ``body``. Raises ``MalformedReview``."""
    request = _request(body)
    return _answer(request["uid"], refusal(request))
