"""core/v1 Events, each transition exactly once (DESIGN 5 and 9.6, 9.7).

An Event's name is derived from what it reports —
``<monitor name, cut to 200>.<first 16 hex of sha256(uid + time + reason)>`` — so whoever
creates it (the writer right after its status write, or a new leader catching up on
transitions younger than 10 minutes) creates the same object, and ``409 AlreadyExists``
means it is already there. Never one per ping; never a token in a message.

Like kopf's own Events adapter, posting never breaks the caller: transport and API errors
are logged, not raised.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import logging
from collections.abc import Mapping
from typing import Any

from heartbeat_operator.domain.timefmt import TimeFormatError, format_time, parse_time
from heartbeat_operator.kube.client import ApiError, KubeClient, event_path

logger = logging.getLogger(__name__)

COMPONENT = "heartbeat-operator"
MAX_MESSAGE = 1024  # the API's limit for an Event's note (events.k8s.io); kept for both APIs
CATCH_UP_WINDOW = datetime.timedelta(minutes=10)  # DESIGN 9.6


@dataclasses.dataclass(frozen=True)
class InvolvedObject:
    namespace: str
    name: str
    uid: str
    api_version: str = "heartbeat.dev/v1alpha1"
    kind: str = "HeartbeatMonitor"


def event_name(obj: InvolvedObject, time: str, reason: str) -> str:
    digest = hashlib.sha256((obj.uid + time + reason).encode("utf-8")).hexdigest()[:16]
    return f"{obj.name[:200]}.{digest}"


def shorten(message: str, limit: int = MAX_MESSAGE) -> str:
    """Cut a long message in the middle (both its start and its end are informative)."""
    if len(message) <= limit:
        return message
    half = (limit - 5) // 2
    return f"{message[:half]} ... {message[-half:]}"


def build_event(
    obj: InvolvedObject,
    *,
    time: datetime.datetime,
    reason: str,
    event_type: str,
    message: str,
    instance: str = "",
) -> dict[str, Any]:
    """The Event for one transition (plain data; ``apply_event`` posts it)."""
    stamp = format_time(time)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": event_name(obj, stamp, reason), "namespace": obj.namespace},
        "involvedObject": {
            "apiVersion": obj.api_version,
            "kind": obj.kind,
            "name": obj.name,
            "namespace": obj.namespace,
            "uid": obj.uid,
        },
        "reason": reason,
        "message": shorten(message),
        "type": event_type,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": instance[:128],
    }


async def apply_event(client: KubeClient, body: dict[str, Any]) -> bool:
    """Create the Event; True when it exists afterwards. Never raises."""
    namespace = body["metadata"]["namespace"]
    try:
        await client.post(event_path(namespace), body, kind="events")
    except ApiError as exc:
        if exc.conflict:
            return True  # already created by us or a previous leader: done (DESIGN 9.6)
        logger.warning(
            "could not post Event %s on %s/%s: %s",
            body.get("reason"),
            namespace,
            body["involvedObject"]["name"],
            exc,
        )
        return False
    except Exception:
        logger.exception("could not post Event %s", body.get("reason"))
        return False
    return True


#: Event reasons posted as Warning (DESIGN 9.7); every other transition Event is Normal.
WARNING_REASONS = frozenset(
    {"Missed", "NeverPinged", "NotStarted", "Failed", "RunTimeout", "RanTooFast"}
)


def missing_events(
    obj: InvolvedObject,
    status: Mapping[str, Any],
    now: datetime.datetime,
    instance: str = "",
) -> list[dict[str, Any]]:
    """Events for the transitions in ``status`` younger than 10 minutes (plain data): the
    ones their writer posted (``eventReason``), with the same names, so an Event already
    there is not posted twice."""
    out = []
    for item in status.get("recentTransitions") or ():
        if not isinstance(item, Mapping) or not isinstance(item.get("eventReason"), str):
            continue  # posted no Event (a spec edit, a run start ending Late)
        try:
            when = parse_time(str(item.get("time")))
        except TimeFormatError:
            continue
        if now - when > CATCH_UP_WINDOW:
            continue
        reason = item["eventReason"]
        out.append(
            build_event(
                obj,
                time=when,
                reason=reason,
                event_type="Warning" if reason in WARNING_REASONS else "Normal",
                message=str(item.get("message") or ""),
                instance=instance,
            )
        )
    return out


async def catch_up_events(
    client: KubeClient, entry: Any, now: datetime.datetime, instance: str = ""
) -> None:
    obj = InvolvedObject(entry.namespace, entry.name, entry.uid)
    for body in missing_events(obj, entry.status, now, instance):
        await apply_event(client, body)
