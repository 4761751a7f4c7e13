"""From a monitor as last seen plus what a write carries to the whole new ``status``.

Pure: ``fold(entry, changes, now)`` parses the spec, reads the ``Record`` back from
status, folds every input through ``domain.machine.apply`` in time order, settles
deadlines up to ``now`` and renders the complete status (``domain.statuses``). The writer
PUTs the result; whoever writes (the replica that took a ping, or the leader) computes the
same thing, because everything it needs is in the object.

Spec changes are folded by *every* writer, not only the leader: when
``status.observedGeneration`` lags ``metadata.generation`` the write first folds the
edit (``Pause``/``Resume`` when ``spec.paused`` flipped, else ``SpecEdit``; DESIGN 9.19).
Otherwise a follower's ping write would mark the new generation observed and the edit
would never be folded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from heartbeat_operator.domain.inputs import Input, Ping, SpecEdit, Tick
from heartbeat_operator.domain.machine import Transition, apply, describe, record_ping_only, view
from heartbeat_operator.domain.outages import Outage
from heartbeat_operator.domain.pausing import spec_pause, spec_pause_inputs, spec_pauses
from heartbeat_operator.domain.records import (
    Record,
)
from heartbeat_operator.domain.specs import MonitorSpec, SpecError, parse_spec
from heartbeat_operator.domain.statuses import READY_TOKEN, Ready, render_status
from heartbeat_operator.domain.timefmt import TimeFormatError, format_time, parse_time
from heartbeat_operator.domain.vocabulary import EventType
from heartbeat_operator.engine import events, journaled
from heartbeat_operator.engine.monitors import MonitorEntry

__all__ = ["Change", "Folded", "TokenUpdate", "Transition", "WriteMark", "fold", "landed_write"]

#: ``status.replicaWrites``: each replica's last write to land (issue 18 item 2). Entries
#: of replicas that have not written for ``REPLICA_WRITE_TTL`` are dropped by the next
#: write that adds one: a write whose answer was lost is looked up within seconds.
REPLICA_WRITES = "replicaWrites"
MAX_REPLICA_WRITES = 16  # the CRD's maxItems
REPLICA_WRITE_TTL = timedelta(minutes=10)

TOKEN_FAILURES = frozenset({"SecretConflict", "TokenConflict", "WeakToken"})
KEEP: Any = object()


@dataclasses.dataclass(frozen=True)
class TokenUpdate:
    """Token fields of status a write sets (``KEEP``: leave as they are)."""

    token_hash: Any = KEEP  # str
    secret_name: Any = KEEP  # str | None
    ready: Any = KEEP  # domain Ready (TokenReady or a token failure)


@dataclasses.dataclass(frozen=True)
class Change:
    """One waiter's contribution to a write: inputs to fold and/or token fields to set,
    and/or journaled pings to absorb (folded only above ``status.journalAbsorbed``'s
    mark of their journal: DESIGN 10.8.10, ``engine.journaled``)."""

    inputs: tuple[Input, ...] = ()
    token: TokenUpdate | None = None
    absorb: tuple[journaled.JournalPings, ...] = ()


@dataclasses.dataclass(frozen=True)
class ExtraEvent:
    """An Event that is not a state transition (``InvalidSpec``, once per generation)."""

    time: datetime
    state: str
    reason: str
    message: str
    event_reason: str
    event_type: str


Announcement = Transition | ExtraEvent
"""Something an Event reports: a state transition, or an ``ExtraEvent``."""


@dataclasses.dataclass(frozen=True)
class WriteMark:
    """Which write this is: the writing replica's identity and a sequence number unique
    to it. Stored in ``status.replicaWrites`` by the write itself, so that after a write
    whose answer was lost a fresh read tells whether it landed (``landed_write``)."""

    replica: str
    sequence: int


@dataclasses.dataclass(frozen=True)
class Judged:
    """What the next wake is computed from: the spec in force, the folded record, the
    instant deadlines were settled up to and the operator's outages."""

    spec: MonitorSpec
    record: Record
    until: datetime
    outages: tuple[Outage, ...]


@dataclasses.dataclass(frozen=True)
class Folded:
    """A fold's answer: the whole new status, and what its write announces and implies.

    One path per deadline (issue 14 item 2): the fold that is written also says when the
    monitor next changes (``next_change_at``) and which Events its transitions post
    (``announced``, ``event_posts``), so no caller folds, parses or views it again.
    """

    status: dict[str, Any]
    transitions: list[Announcement]
    changed: bool
    announced: Sequence[events.Transitioned] = ()
    """``transitions`` with the failures while already Down marked as repeats
    (DESIGN 10.8.13): what the transition listeners are given."""
    subject: events.InvolvedObject | None = None
    judged: Judged | None = None
    """None when nothing is judged: an invalid spec, or the token not Ready."""

    def next_change_at(self) -> datetime | None:
        """The next instant this status can change with no new input (the leader wakes
        then, DESIGN 9.3), None if never or while nothing is judged. Computed on demand:
        only the leader asks, and a ping write need not pay for it."""
        if self.judged is None:
            return None
        j = self.judged
        return view(j.spec, j.record, j.until, outages=j.outages).next_change_at

    def event_posts(self, instance: str = "") -> list[dict[str, Any] | events.Aggregate]:
        """The Events (or anchor patches) to post once this status is written."""
        if not self.announced or self.subject is None:
            return []
        return events.event_posts(self.subject, self.announced, instance=instance)


def parse(entry: MonitorEntry) -> MonitorSpec | SpecError:
    try:
        return parse_spec(entry.spec, name=entry.name)
    except SpecError as exc:
        return exc


def created_at(entry: MonitorEntry, now: datetime) -> datetime:
    try:
        return parse_time(entry.creation_timestamp)
    except TimeFormatError:
        return now


def ready_condition(status: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for condition in status.get("conditions") or ():
        if isinstance(condition, Mapping) and condition.get("type") == "Ready":
            return condition
    return None


def _ready_status(status: Mapping[str, Any]) -> str | None:
    condition = ready_condition(status)
    return str(condition.get("status")) if condition is not None else None


def token_ready(status: Mapping[str, Any]) -> Ready:
    """The token's side of ``Ready`` as status last recorded it."""
    condition = ready_condition(status)
    if condition is not None and condition.get("reason") in TOKEN_FAILURES:
        return Ready("False", str(condition["reason"]), str(condition.get("message") or ""))
    return READY_TOKEN


def spec_inputs(entry: MonitorEntry, record: Record, now: datetime) -> list[Input]:
    """What a not yet observed generation asks to fold (DESIGN 9.19, fine print 8)."""
    observed = entry.observed_generation
    if not entry.has_status:
        # A new monitor created paused (or paused before its first write) starts Paused.
        pause = spec_pause(entry.spec, created_at(entry, now))
        return [pause] if pause is not None else []
    if observed == entry.generation:
        return []
    return spec_now(entry, record, now)


def spec_now(
    entry: MonitorEntry, record: Record, now: datetime, *, restart: bool = False
) -> list[Input]:
    """Fold what the spec says now into a record that has not judged it: a pause, a
    resume or an edit (the slot counted from now if it is over, or if ``restart``;
    DESIGN 9.19). ``spec.paused`` and the timed ``spec.pausedUntil`` are read by the
    domain (issue 16)."""
    return spec_pause_inputs(entry.spec, record, now) or [SpecEdit(now, restart=restart)]


def _parse_observed(raw: Mapping[str, Any] | None, name: str) -> MonitorSpec | None:
    if raw is None:
        return None
    try:
        return parse_spec(raw, name=name)
    except SpecError:
        return None


def fold(
    entry: MonitorEntry,
    changes: Iterable[Change],
    now: datetime,
    *,
    settle_delay: timedelta = timedelta(0),
    observed_spec: Mapping[str, Any] | None = None,
    outages: Sequence[Outage] = (),
    mark: WriteMark | None = None,
    live_journals: Collection[str] | None = None,
) -> Folded:
    """The status after ``changes``; deadlines are settled up to ``now - settle_delay``.

    With ``mark`` the status records it in ``replicaWrites`` (a change in itself: a write
    that carries only a mark makes the versions it was conditional on stale).

    The leader passes its 0.5 s delay (DESIGN 9.3: a deadline's transition is written 0.5 s
    after it, so a ping in flight at that instant lands first); so does every writer, so a
    ping write never settles a deadline the leader would still wait for. ``outages``: the
    operator's own (``kube.replicas``); deadlines they cover are ``OperatorUnavailable``.
    """
    now = now.astimezone(UTC)
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)
    changes = list(changes)
    spec = parse(entry)
    record = Record.from_status(entry.status, active_since=created_at(entry, now))

    ready_before = token_ready(entry.status)
    token_hash, secret_name, ready = _token_fields(entry, changes, ready_before)

    # DESIGN 9.7: while a token failure holds Ready=False nothing is judged (the state
    # keeps its value, nothing alerts); once it clears, judging resumes the way an edit
    # resumes it, so the slots that passed meanwhile are not counted as missed.
    token_failed = ready is not None and ready.status == "False"
    judged = isinstance(spec, MonitorSpec) and not token_failed
    edits: list[Input] = spec_inputs(entry, record, now)
    old = _parse_observed(observed_spec, entry.name) if edits else None
    if judged and entry.has_status and _ready_status(entry.status) == "False":
        # Nothing was judged while Ready was False (a spec that could not be evaluated,
        # section 2; a token failure, 9.7), pings were only recorded: judging starts
        # again from now, as after a resume, so neither the slots that passed meanwhile
        # nor a ping that was never judged can make a page (no old spec: nothing before).
        edits, old = spec_now(entry, record, now, restart=True), None
    # Journaled pings not absorbed yet (DESIGN 10.7); each at its acceptance time (10.8.1).
    absorbed, marks = journaled.absorb(
        entry.status, (j for c in changes for j in c.absorb), now, live=live_journals
    )
    pings = sorted(
        [*(i for c in changes for i in c.inputs), *absorbed], key=lambda i: i.time
    )  # stable: arrival order for equal times
    inputs = edits + pings

    transitions: list[Announcement] = []
    before = record
    try:
        if judged and isinstance(spec, MonitorSpec) and old is not None:
            # What happened before the edit is judged by the spec in force then (the
            # domain's rule for SpecEdit: fold a Tick at the edit time with the old spec
            # first).
            for item in [*pings, Tick(now - settle_delay)]:
                record, made = apply(old, record, item, now, outages=outages)
                transitions.extend(made)
            inputs = edits
        if judged and isinstance(spec, MonitorSpec):
            for item in inputs:
                record, made = apply(spec, record, item, now, outages=outages)
                transitions.extend(made)
            record, made = apply(spec, record, Tick(now - settle_delay), now, outages=outages)
            transitions.extend(made)
            _announce_lateness_of_failed_slots(spec, record, transitions)
            # What render_status will ask of the spec, asked here where it can be caught.
            describe(spec, record)
    except (OverflowError, ValueError):
        # A spec whose times fall past what a datetime holds (year 9999) cannot be
        # evaluated: Ready=False like any invalid spec, the pings still counted, never an
        # exception that would answer every ping 503 (issue 13 item 3). parse_spec bounds
        # every duration to 10 years, so only a record or clock near year 9999 gets here.
        spec = SpecError(
            "InvalidSpec", "spec", "the spec cannot be evaluated: its times fall past year 9999"
        )
        judged = False
        record, transitions, inputs = before, [], edits + pings
    if not judged:  # an invalid spec or a token failure: pings counted, nothing judged
        for item in inputs:
            if isinstance(item, Ping):
                record = record_ping_only(record, item)
    if not isinstance(spec, MonitorSpec):
        ready = Ready.from_spec_error(spec)
        if entry.observed_generation != entry.generation:
            transitions.append(
                ExtraEvent(
                    now,
                    record.state,
                    "InvalidSpec",
                    f"{spec.field}: {spec.message}",
                    "InvalidSpec",
                    EventType.WARNING,
                )
            )

    if ready is not None and ready.status == "True" and not isinstance(secret_name, str):
        # The token is not in its Secret yet (engine.tokens writes the hash first): no Ready
        # condition until it is, so `kubectl wait --for=condition=Ready` means the ping
        # URL can be read from the Secret.
        ready = None
    status = render_status(
        spec=spec,
        record=record,
        now=now,
        generation=entry.generation,
        ready=ready,
        previous=entry.status,
        token_hash=token_hash if isinstance(token_hash, str) else None,
        token_secret_name=secret_name if isinstance(secret_name, str) else None,
        paused=spec_pauses(entry.spec, now),
    )
    if not isinstance(secret_name, str):
        # render_status falls back to the spec's name; ours is set only once the Secret
        # holds the token (engine.tokens: crash-safe order), so drop the fallback.
        status.pop("tokenSecretName", None)
    writes = _replica_writes(entry.status, mark, now)
    if writes:
        status[REPLICA_WRITES] = writes
    if marks is not None:
        if marks:
            status[journaled.JOURNAL_ABSORBED] = marks
        else:
            status.pop(journaled.JOURNAL_ABSORBED, None)
    elif journaled.JOURNAL_ABSORBED in entry.status:
        status[journaled.JOURNAL_ABSORBED] = entry.status[journaled.JOURNAL_ABSORBED]
    judging = None
    if judged and isinstance(spec, MonitorSpec) and token_ready(status).status == "True":
        judging = Judged(spec, record, now - settle_delay, tuple(outages))
    return _folded(entry, status, transitions, judging)


#: Failures a slot is judged with at its ``alertTime`` (DESIGN 9.7, 10.1); a
#: ``RunTimeout`` only when it falls there (10.3), not a ``maxRuntime`` within grace.
_SLOT_FAILURES = frozenset({"Missed", "NeverPinged", "NotStarted"})


def _announce_lateness_of_failed_slots(
    spec: MonitorSpec, record: Record, transitions: list[Announcement]
) -> None:
    """Post the ``Late`` of a slot that then failed.

    DESIGN 9.7 posts ``Late`` (Normal) on entering Grace for lateness; 10.8.13 posts none
    for a slot whose start or finish arrives within grace. Which of the two a slot is,
    only its ``alertTime`` tells, so the domain's transition into Late posts nothing, and
    when the slot fails there its ``Late`` Event goes out just before the failure's
    Warning, with the time it turned Late. The entry in ``recentTransitions`` gets
    ``eventReason: Late`` so a new leader's catch-up posts that same Event (one name).
    """
    new = {(t.time, t.reason) for t in transitions if isinstance(t, Transition)}
    history = record.recent_transitions
    for i, (failure, late) in enumerate(itertools.pairwise(history)):
        slot_failed = failure.event_reason in _SLOT_FAILURES or (
            failure.event_reason == "RunTimeout" and failure.time >= late.time + spec.grace
        )
        if (
            slot_failed
            and (failure.time, failure.reason) in new
            and (late.state, late.reason, late.event_reason) == ("Grace", "Late", None)
        ):
            history[i + 1] = dataclasses.replace(late, event_reason="Late")
            at = next(
                i
                for i, t in enumerate(transitions)
                if isinstance(t, Transition)
                and (t.time, t.reason) == (failure.time, failure.reason)
            )
            announced = ExtraEvent(
                late.time, late.state, late.reason, late.message, "Late", EventType.NORMAL
            )
            transitions.insert(at, announced)


def _token_fields(
    entry: MonitorEntry, changes: Sequence[Change], ready: Ready
) -> tuple[Any, Any, Ready | None]:
    """``tokenHash``, ``tokenSecretName`` and the Ready condition after ``changes``: each
    as in status unless a change sets it (``KEEP`` leaves it)."""
    token_hash, secret_name = entry.token_hash, entry.status.get("tokenSecretName")
    now_ready: Ready | None = ready
    for change in changes:
        if change.token is None:
            continue
        if change.token.token_hash is not KEEP:
            token_hash = change.token.token_hash
        if change.token.secret_name is not KEEP:
            secret_name = change.token.secret_name
        if change.token.ready is not KEEP:
            now_ready = change.token.ready
    return token_hash, secret_name, now_ready


def _folded(
    entry: MonitorEntry,
    status: dict[str, Any],
    transitions: list[Announcement],
    judged: Judged | None,
) -> Folded:
    announced: Sequence[events.Transitioned] = ()
    if transitions:
        # DESIGN 10.8.13: a failure while already Down patches the Event of the transition
        # into Down instead of posting its own (on the monitor and on its CronJob alike).
        announced = events.mark_repeats(
            transitions,
            before=entry.status,
            failure_threshold=failure_threshold(entry.spec),
        )
    return Folded(
        status,
        transitions,
        changed=status != dict(entry.status),
        announced=announced,
        subject=events.InvolvedObject(entry.namespace, entry.name, entry.uid),
        judged=judged,
    )


def failure_threshold(spec: Mapping[str, Any]) -> int:
    value = spec.get("failureThreshold", 1)  # the CRD's default
    return value if isinstance(value, int) and not isinstance(value, bool) else 1


def _replica_writes(
    previous: Mapping[str, Any], mark: WriteMark | None, now: datetime
) -> list[dict[str, Any]]:
    """``replicaWrites`` kept from ``previous``, with ``mark`` as its replica's entry."""
    kept = [e for e in previous.get(REPLICA_WRITES) or () if isinstance(e, Mapping)]
    if mark is None:
        return [dict(e) for e in kept]
    fresh = []
    for item in kept:
        if item.get("replica") == mark.replica:
            continue
        try:
            written = parse_time(str(item.get("time")))
        except TimeFormatError:
            continue
        if now - written <= REPLICA_WRITE_TTL:
            fresh.append(dict(item))
    own = {"replica": mark.replica, "sequence": mark.sequence, "time": format_time(now)}
    return [own, *fresh][:MAX_REPLICA_WRITES]


def replica_name(identity: str) -> str:
    """``identity`` as ``replicaWrites`` holds it: at most 63 characters (the CRD's
    bound), a long one cut and told apart by a digest of the whole."""
    if len(identity) <= 63:
        return identity
    digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:16]
    return f"{identity[:46]}-{digest}"


def landed_write(status: Mapping[str, Any], replica: str) -> int | None:
    """The sequence of ``replica``'s last write that ``status`` records (None: none)."""
    for item in status.get(REPLICA_WRITES) or ():
        if isinstance(item, Mapping) and item.get("replica") == replica:
            sequence = item.get("sequence")
            return sequence if isinstance(sequence, int) else None
    return None


def needs_write(entry: MonitorEntry) -> bool:
    """Whether the leader must write this monitor although no input is waiting."""
    return not entry.has_status or entry.observed_generation != entry.generation
