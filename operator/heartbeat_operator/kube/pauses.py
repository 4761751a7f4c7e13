"""The pause API's Kubernetes side (issue 16 item 2; ``heartbeat_operator.pausing``).

Three requests, in this order, so that nobody learns anything about a monitor they may
not patch:

1. ``TokenReview`` (``authentication.k8s.io/v1``) with the caller's token and the
   configured audience: who is this? Not authenticated: 401.
2. ``SubjectAccessReview`` (``authorization.k8s.io/v1``) for that user, its groups, uid
   and extra: may they ``patch`` ``heartbeatmonitors.heartbeat.dev`` ``<name>`` in
   ``<namespace>``? No: 403. The same check ``kubectl patch`` would meet, so the pause API
   gives nobody a right they did not have.
3. A merge patch of ``spec.paused`` (and ``spec.pausedUntil``) by the operator's own
   account; the leader folds the change like any spec edit (DESIGN 9.19), posting the
   ``Paused``/``Resumed`` Event.

The TokenReview's answer echoes the token back (``spec.token``): it is read for its
status only and never logged. RBAC: tokenreviews and subjectaccessreviews create
(ClusterRole), heartbeatmonitors patch (already DESIGN 9.17's).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from heartbeat_operator.domain.timefmt import format_time
from heartbeat_operator.engine.api import (
    GROUP,
    MERGE_PATCH,
    PLURAL,
    ApiError,
    monitor_path,
)
from heartbeat_operator.kube.client import KubeClient
from heartbeat_operator.pausing import (
    Forbidden,
    MonitorNotFound,
    PauseDone,
    PauseRequest,
    PauseUnavailable,
    Unauthenticated,
)

logger = logging.getLogger(__name__)

TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"

#: Seconds each of the three requests may take: a deploy script waits for the answer, and
#: a ping-port request should not hold a connection for long (DESIGN 9.13 gives pings 5 s).
REQUEST_TIMEOUT = 5.0

#: The field manager of the patch, so `kubectl get -o yaml --show-managed-fields` tells a
#: pause by the API from one by kubectl.
FIELD_MANAGER = "heartbeat-pause-api"


class KubePauses:
    """``pausing.PauseControl`` on the operator's API client."""

    def __init__(self, client: KubeClient, *, audience: str | None) -> None:
        self.client = client
        self.audience = audience  # None: the API server's own audiences

    async def set_paused(self, token: str, request: PauseRequest) -> PauseDone:
        user = await self._authenticate(token)
        await self._authorize(user, request)
        await self._patch(request)
        what = "resumed" if not request.paused else "paused"
        until = f" until {format_time(request.until)}" if request.until is not None else ""
        username = str(user.get("username", ""))
        # The audit line: who paused what (never the token).
        logger.info(
            "pause API: %s %s heartbeatmonitor %s/%s%s",
            username,
            what,
            request.namespace,
            request.name,
            until,
        )
        return PauseDone(user=username)

    async def _authenticate(self, token: str) -> Mapping[str, Any]:
        spec: dict[str, Any] = {"token": token}
        if self.audience:
            spec["audiences"] = [self.audience]
        review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec}
        answer = await self._post(TOKEN_REVIEWS, review, "tokenreviews")
        status = answer.get("status") or {}
        if not status.get("authenticated"):
            # status.error is the authenticator's wording; it never quotes the token, but a
            # caller learns all they need from ours.
            expected = f" for audience {self.audience}" if self.audience else ""
            raise Unauthenticated(
                "the API server did not accept the bearer token: use a ServiceAccount token"
                f"{expected} that has not expired"
            )
        if self.audience and self.audience not in (status.get("audiences") or ()):
            raise Unauthenticated(f"the bearer token is not meant for audience {self.audience}")
        user = status.get("user") or {}
        if not user.get("username"):
            raise Unauthenticated("the API server authenticated the token but named no user")
        return user

    async def _authorize(self, user: Mapping[str, Any], request: PauseRequest) -> None:
        spec: dict[str, Any] = {
            "user": user.get("username"),
            "groups": list(user.get("groups") or ()),
            "resourceAttributes": {
                "namespace": request.namespace,
                "verb": "patch",
                "group": GROUP,
                "resource": PLURAL,
                "name": request.name,
            },
        }
        if user.get("uid"):
            spec["uid"] = user["uid"]
        if user.get("extra"):
            spec["extra"] = user["extra"]
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": spec,
        }
        answer = await self._post(ACCESS_REVIEWS, review, "subjectaccessreviews")
        status = answer.get("status") or {}
        if status.get("allowed") and not status.get("denied"):
            return
        why = str(status.get("reason") or "").strip()
        raise Forbidden(
            f"{user.get('username')} may not patch heartbeatmonitors.{GROUP} "
            f"{request.namespace}/{request.name}; grant it patch on heartbeatmonitors "
            f"(the edit role has it){': ' + why if why else ''}"
        )

    async def _patch(self, request: PauseRequest) -> None:
        until = format_time(request.until) if request.until is not None else None
        # pausedUntil is removed by every request that does not set it: a plain pause is
        # open-ended, a resume ends any timed pause.
        body = {"spec": {"paused": request.paused, "pausedUntil": until}}
        try:
            await self.client.request(
                "PATCH",
                monitor_path(request.namespace, request.name),
                body=body,
                kind=PLURAL,
                content_type=MERGE_PATCH,
                params={"fieldManager": FIELD_MANAGER},
                timeout=REQUEST_TIMEOUT,
            )
        except ApiError as exc:
            if exc.not_found:
                raise MonitorNotFound(
                    f"heartbeatmonitor {request.namespace}/{request.name} not found"
                ) from None
            raise _unavailable(exc, "patching the monitor") from None

    async def _post(self, path: str, body: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
        try:
            return await self.client.request(
                "POST", path, body=body, kind=kind, timeout=REQUEST_TIMEOUT
            )
        except ApiError as exc:
            raise _unavailable(exc, f"creating a {kind[:-1]}") from None


def _unavailable(exc: ApiError, doing: str) -> PauseUnavailable:
    # The operator's own request failed (its RBAC, the API server): the caller can only
    # retry; the operator's log says why (status and reason, never a request body).
    logger.warning("pause API: %s failed: %s %s", doing, exc.status, exc.reason)
    return PauseUnavailable(
        f"the operator could not reach the Kubernetes API ({exc.status} {exc.reason}); "
        "retry in a few seconds"
    )
