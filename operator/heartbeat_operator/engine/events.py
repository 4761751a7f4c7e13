"""core/v1 Events, each transition exactly once (DESIGN 5 and 9.6, 9.7, 10.8.13).

An Event's name is derived from what it reports —
``<monitor name, cut to 200>.<first 16 hex of sha256(uid + time + reason)>`` — so whoever
creates it (the writer right after its status write, or a new leader catching up on
transitions younger than 10 minutes) creates the same object, and ``409 AlreadyExists``
means it is already there. Never one per ping; never a token in a message.

Events that repeat aggregate (DESIGN 10.8.13): a slot that fails while the monitor is
already Down posts no Event of its own. It patches the Event of the transition into Down
(the *anchor*): ``count`` set absolutely to consecutiveFailures − failureThreshold + 1,
``lastTimestamp`` and ``message`` moved to the newest failure. ``mark_repeats`` finds those
failures and their anchor from the status before the write; ``event_posts`` turns a
write's announcements into creates and patches, for the monitor or its CronJob alike.

The anchor is named from its time and reason like any Event. Both come from
``recentTransitions`` while the transition into Down is among its 10 entries; after that
only its time is known (``stateSince``), and the patch tries the failure reasons in turn,
the likeliest first (a 404 costs nothing). An anchor that no longer exists (Events expire
an hour after their last write) is created again, with the count.

Like kopf's own Events adapter, posting never breaks the caller: transport and API errors
are logged, not raised.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from heartbeat_operator.domain.timefmt import TimeFormatError, format_time, parse_time
from heartbeat_operator.domain.vocabulary import (
    FAILURE_REASONS,
    EventType,
    event_type_for,
)
from heartbeat_operator.engine.api import ApiError, KubeApi, event_path

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


async def apply_event(client: KubeApi, body: dict[str, Any] | Aggregate) -> bool:
    """Create the Event (or, for an ``Aggregate``, patch its anchor); True when it exists
    afterwards. Never raises."""
    if isinstance(body, Aggregate):
        return await _aggregate(client, body)
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


# --- events that repeat aggregate (DESIGN 10.8.13) ---------------------------------------


class Announced(Protocol):
    """What an Event reports: a domain ``Transition``, a ``folding.ExtraEvent``, a ``Repeat``."""

    @property
    def time(self) -> datetime.datetime: ...
    @property
    def message(self) -> str: ...
    @property
    def event_reason(self) -> str | None: ...
    @property
    def event_type(self) -> str: ...


class Transitioned(Announced, Protocol):
    """An ``Announced`` that also says the state the monitor is in after it."""

    @property
    def state(self) -> str: ...


@dataclasses.dataclass(frozen=True)
class Repeat:
    """A slot failed while the monitor was already Down: it posts no Event of its own but
    moves the anchor's (the Event of the transition into Down) count and last time."""

    time: datetime.datetime
    state: str
    message: str
    event_reason: str | None
    event_type: str
    anchor_time: datetime.datetime
    anchor_reasons: tuple[str, ...]  # the anchor's reason, or the candidates, likeliest first
    count: int


@dataclasses.dataclass(frozen=True)
class Aggregate:
    """A patch of the anchor Event (``apply_event`` tries ``names`` in turn), or, when none
    exists, ``create``: the anchor made again, with the count."""

    namespace: str
    names: tuple[str, ...]
    patch: dict[str, Any]
    create: dict[str, Any]


def _is_failure(reason: object) -> bool:
    return isinstance(reason, str) and reason in FAILURE_REASONS


def _entry_time(item: Mapping[str, Any]) -> datetime.datetime | None:
    try:
        return parse_time(str(item.get("time")))
    except TimeFormatError:
        return None


def down_anchor(status: Mapping[str, Any]) -> tuple[datetime.datetime, tuple[str, ...]] | None:
    """The time and reason (or candidate reasons) of the Event that a failure now would
    aggregate into: the first failure of the current Down period. None when the monitor
    is not Down, or is Down with no failure since it became so (resumed into Down)."""
    if status.get("state") != "Down":
        return None
    try:
        since = parse_time(str(status.get("stateSince")))
    except TimeFormatError:
        return None
    entries = [e for e in status.get("recentTransitions") or () if isinstance(e, Mapping)]
    run: list[Mapping[str, Any]] = []  # the current Down period, newest first
    start_seen = False
    for item in entries:
        when = _entry_time(item)
        if when is None or item.get("state") != "Down" or when < since:
            start_seen = True
            break
        run.append(item)
        if when == since and not _is_failure(item.get("eventReason")):
            start_seen = True  # entered Down without a failure (a resume): this is its start
            break
    failures = [e for e in run if _is_failure(e.get("eventReason"))]
    if run and _entry_time(run[-1]) == since:
        start_seen = True
    if start_seen:
        if not failures:
            return None
        first = failures[-1]
        when = _entry_time(first)
        assert when is not None
        return when, (str(first["eventReason"]),)
    # Scrolled out of the 10 entries: its time is stateSince, its reason one of the
    # failure reasons, most likely those of the oldest failures still listed.
    seen = [str(e["eventReason"]) for e in reversed(failures)]
    return since, tuple(dict.fromkeys([*seen, *FAILURE_REASONS]))


def repeat_count(consecutive_failures: int, failure_threshold: int) -> int:
    """The anchor's count: the failed slots since the monitor went Down (DESIGN 10.8.13)."""
    return max(1, consecutive_failures - failure_threshold + 1)


def mark_repeats(
    announcements: Sequence[Transitioned],
    *,
    before: Mapping[str, Any],
    failure_threshold: int,
) -> list[Transitioned]:
    """The write's announcements with each failure while already Down made a ``Repeat``.

    ``before`` is the status the write started from. Each repeat carries the anchor's
    count as of that failure: one more than the failure before it (the anchor made by
    ``before`` counts ``consecutiveFailures − failureThreshold + 1``; one made in this
    write, 1). Not the count of the status written: a write that also holds the
    recovery after them would have them counted from its ``consecutiveFailures``, 0.
    """
    anchor = down_anchor(before)
    state = before.get("state")
    count = repeat_count(_int(before.get("consecutiveFailures")), failure_threshold)
    out: list[Transitioned] = []
    for item in announcements:
        failure = _is_failure(item.event_reason) and item.state == "Down"
        if failure and state == "Down" and anchor is not None:
            count += 1
            out.append(
                Repeat(
                    time=item.time,
                    state=item.state,
                    message=item.message,
                    event_reason=item.event_reason,
                    event_type=item.event_type,
                    anchor_time=anchor[0],
                    anchor_reasons=anchor[1],
                    count=count,
                )
            )
            continue
        if failure:
            anchor = (item.time, (str(item.event_reason),))  # this one goes Down: the anchor
            count = 1
        elif item.state != "Down":
            anchor = None  # left Down (or paused): the next failure starts a new Event
        state = item.state
        out.append(item)
    return out


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def event_posts(
    obj: InvolvedObject, announcements: Iterable[Announced], *, instance: str = ""
) -> list[dict[str, Any] | Aggregate]:
    """What to send for a write's announcements (``mark_repeats``' output) about ``obj``:
    an Event to create per transition, one patch of the anchor for the repeats."""
    out: list[dict[str, Any] | Aggregate] = []
    created: dict[str, dict[str, Any]] = {}
    latest: Repeat | None = None
    for item in announcements:
        if isinstance(item, Repeat):
            latest = item
            continue
        if not item.event_reason:
            continue
        body = build_event(
            obj,
            time=item.time,
            reason=item.event_reason,
            event_type=item.event_type or EventType.NORMAL,
            message=item.message,
            instance=instance,
        )
        created[body["metadata"]["name"]] = body
        out.append(body)
    if latest is None:
        return out
    names = tuple(
        event_name(obj, format_time(latest.anchor_time), reason) for reason in latest.anchor_reasons
    )
    stamp = format_time(latest.time)
    moved: dict[str, Any] = {
        "count": latest.count,
        "lastTimestamp": stamp,
        "message": shorten(latest.message),
    }
    if instance:
        moved["reportingInstance"] = instance[:128]  # who judged the latest failure
    if names[0] in created:
        created[names[0]].update(moved)  # the anchor is posted by this very write
        return out
    anchor = build_event(
        obj,
        time=latest.anchor_time,
        reason=latest.anchor_reasons[0],
        event_type=EventType.WARNING,
        message=latest.message,
        instance=instance,
    )
    anchor.update(moved)
    out.append(Aggregate(obj.namespace, names, moved, anchor))
    return out


async def _aggregate(client: KubeApi, action: Aggregate) -> bool:
    """Patch the first of ``action.names`` that exists; none: create the anchor again."""
    try:
        for attempt in range(2):
            for name in action.names:
                try:
                    await client.patch(
                        event_path(action.namespace, name), action.patch, kind="events"
                    )
                except ApiError as exc:
                    if exc.not_found:
                        continue  # not this reason (or expired): try the next
                    raise
                return True
            if attempt:
                break
            try:
                await client.post(event_path(action.namespace), action.create, kind="events")
            except ApiError as exc:
                if not exc.conflict:
                    raise
                continue  # created meanwhile by another writer: patch it
            return True
    except ApiError as exc:
        logger.warning(
            "could not update Event %s on %s/%s: %s",
            action.create.get("reason"),
            action.namespace,
            action.create["involvedObject"]["name"],
            exc,
        )
        return False
    except Exception:
        logger.exception("could not update Event %s", action.create.get("reason"))
        return False
    return False


def repeated(status: Mapping[str, Any]) -> list[bool]:
    """For each ``recentTransitions`` entry (newest first): whether it was a failure while
    already Down, which posted no Event of its own (DESIGN 10.8.13)."""
    entries = [e for e in status.get("recentTransitions") or () if isinstance(e, Mapping)]
    try:
        since: datetime.datetime | None = parse_time(str(status.get("stateSince")))
    except TimeFormatError:
        since = None
    flags: list[bool] = []
    state: object = None
    anchored = False
    for index, item in enumerate(reversed(entries)):
        failure = _is_failure(item.get("eventReason")) and item.get("state") == "Down"
        if index == 0 and failure:
            # Nothing older is listed: it went Down here only if it is where the current
            # Down period began; otherwise count it aggregated (no Event posted twice).
            when = _entry_time(item)
            current = status.get("state") == "Down" and since is not None
            starts = current and when == since
            flags.append(not starts)
            state, anchored = "Down", True
            continue
        flags.append(failure and state == "Down" and anchored)
        if failure:
            anchored = True
        elif item.get("state") != "Down":
            anchored = False
        state = item.get("state")
    return list(reversed(flags))


def missing_events(
    obj: InvolvedObject,
    status: Mapping[str, Any],
    now: datetime.datetime,
    instance: str = "",
    *,
    failure_threshold: int | None = None,
    since: datetime.datetime | None = None,
) -> list[dict[str, Any]]:
    """Events for the transitions in ``status`` younger than 10 minutes (plain data): the
    ones their writer posted (``eventReason``), with the same names, so an Event already
    there is not posted twice. Failures while already Down posted none (they moved the
    anchor, DESIGN 10.8.13); with ``failure_threshold`` an anchor of the current Down
    period made again carries its count. ``since``: only transitions after it (what the
    leader has not checked yet)."""
    out = []
    entries = [e for e in status.get("recentTransitions") or () if isinstance(e, Mapping)]
    anchor = down_anchor(status)
    posted_at = _posting_times(entries)
    for item, repeat, posting in zip(
        entries, repeated({**status, "recentTransitions": entries}), posted_at, strict=True
    ):
        if repeat or not isinstance(item.get("eventReason"), str):
            continue  # posted no Event (lateness, 10.8.13; a spec edit; a repeat)
        when = _entry_time(item)
        if (
            when is None
            or posting is None
            or now - posting > CATCH_UP_WINDOW
            or (since is not None and posting <= since)
        ):
            continue
        reason = item["eventReason"]
        body = build_event(
            obj,
            time=when,
            reason=reason,
            event_type=event_type_for(reason),
            message=str(item.get("message") or ""),
            instance=instance,
        )
        newest = entries[0]
        if (
            failure_threshold is not None
            and anchor == (when, (reason,))
            and newest is not item
            and isinstance(newest.get("time"), str)
        ):
            count = repeat_count(_int(status.get("consecutiveFailures")), failure_threshold)
            body.update(
                count=count,
                lastTimestamp=newest["time"],
                message=shorten(str(newest.get("message") or "")),
            )
        out.append(body)
    return out


#: How long after the leader sees a transition it checks that its Event exists: the
#: writer (any replica) posts right after its write; this is the backstop for a writer
#: that died in between (issue 18 item 3: "every transition's Event within 10 s").
EVENT_SETTLE = datetime.timedelta(seconds=5)
EVENT_RETRY = datetime.timedelta(seconds=5)  # after a post that failed (API unreachable)

EventTargets = Callable[[Any], Sequence[InvolvedObject]]
"""The objects a monitor's transitions are posted on: itself, and its CronJob if auto-wired."""


class EventKeeper:
    """The leader makes every transition's Event exist, continuously (DESIGN 9.6).

    The replica that writes a transition posts its Events right after the write; if it
    dies in between they would be lost (issue 18 item 3: 32 of 360 ``FirstPing`` Events
    after a follower was killed). So the leader, which sees every write through its
    watch, checks each monitor's ``recentTransitions`` once it has settled
    (``EVENT_SETTLE`` after it saw a new one) and creates whatever is missing, with the
    names the writer used (409: it is there). A new leader starts with nothing checked,
    which is the takeover catch-up. Per monitor it keeps one timestamp: what it has
    checked up to. The scheduler calls it from its reconcile, its one loop per monitor.
    """

    def __init__(self, client: KubeApi, targets: EventTargets, instance: str = "") -> None:
        self.client = client
        self.targets = targets
        self.instance = instance
        self._checked: dict[tuple[str, str], datetime.datetime] = {}
        """Per monitor, the newest transition time whose Events are known to exist."""
        self._pending: dict[tuple[str, str], tuple[datetime.datetime, datetime.datetime]] = {}
        """Per monitor, the newest transition not checked yet and when to check it."""

    def forget(self) -> None:
        """Leadership lost: the next leader checks everything again."""
        self._checked.clear()
        self._pending.clear()

    def discard(self, key: tuple[str, str]) -> None:
        self._checked.pop(key, None)
        self._pending.pop(key, None)

    def posted(self, entry: Any) -> None:
        """This replica's writer wrote ``entry``'s newest transition and posted all its
        Events: nothing to check (detection: 10,000 transitions no longer cost 10,000
        extra POSTs answered 409, issue 14's bench). An auto-wired monitor's CronJob
        Events are mirrored apart, so those are still checked."""
        times = [
            t for t in (_entry_time(item) for item in _transitions(entry.status)) if t is not None
        ]
        if not times or entry.cronjob is not None:
            return
        newest = times[0]
        checked = self._checked.get(entry.key)
        if checked is not None and checked > newest:
            return
        # Only when every earlier transition's Events are known to exist: one another
        # replica wrote just before (its writer may have died before posting) is still
        # checked, or a takeover's first write would hide the catch-up.
        before = times[1] if len(times) > 1 else None
        if (
            before is None
            or (checked is not None and before <= checked)
            or newest - before > CATCH_UP_WINDOW
        ):
            self._checked[entry.key] = newest
            self._pending.pop(entry.key, None)

    def check_at(self, entry: Any, now: datetime.datetime) -> datetime.datetime | None:
        """When ``entry``'s Events are to be checked (None: nothing new to check)."""
        newest = _newest_transition(entry.status)
        if newest is None or now - newest > CATCH_UP_WINDOW:
            self.discard(entry.key)
            return None
        if self._checked.get(entry.key) == newest:
            return None
        pending = self._pending.get(entry.key)
        if pending is None or pending[0] != newest:
            pending = (newest, now + EVENT_SETTLE)
            self._pending[entry.key] = pending
        return pending[1]

    async def keep(self, entry: Any, now: datetime.datetime) -> datetime.datetime | None:
        """Post ``entry``'s missing Events if their check is due; return when to come back."""
        at = self.check_at(entry, now)
        if at is None or at > now:
            return at
        newest, _ = self._pending[entry.key]
        since = self._checked.get(entry.key)
        threshold = entry.spec.get("failureThreshold", 1)
        if not isinstance(threshold, int) or isinstance(threshold, bool):
            threshold = 1
        posted = True
        for obj in self.targets(entry):
            for body in missing_events(
                obj, entry.status, now, self.instance, failure_threshold=threshold, since=since
            ):
                posted = await apply_event(self.client, body) and posted
        if not posted:
            self._pending[entry.key] = (newest, now + EVENT_RETRY)
            return now + EVENT_RETRY
        self._checked[entry.key] = newest
        self._pending.pop(entry.key, None)
        return None


def _posting_times(entries: Sequence[Mapping[str, Any]]) -> list[datetime.datetime | None]:
    """When each transition's Event is posted: at its time, but a slot's ``Late`` with the
    failure that follows it (``engine.folding``: it is known only then), so the catch-up
    windows count from that write."""
    times = [_entry_time(item) for item in entries]
    out: list[datetime.datetime | None] = []
    for i, item in enumerate(entries):
        newer = times[i - 1] if i > 0 else None
        late = item.get("eventReason") == "Late"
        out.append(newer if late and newer is not None else times[i])
    return out


def _transitions(status: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """``status.recentTransitions``, newest first."""
    return [item for item in status.get("recentTransitions") or () if isinstance(item, Mapping)]


def _newest_transition(status: Mapping[str, Any]) -> datetime.datetime | None:
    transitions = _transitions(status)
    return _entry_time(transitions[0]) if transitions else None
