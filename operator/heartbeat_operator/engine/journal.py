"""The ping journal (DESIGN 10.7, fine print 10.8.10-12; issue 15).

A ``200`` means the ping is stored in the Kubernetes API, in a *journal* Secret of the
replica that took it, not necessarily in the monitor's status yet:

- ``Journal``: each replica appends accepted pings, keyed (identity, sequence), to a
  Secret of its own in the operator's namespace (type ``heartbeat.dev/journal``, labelled
  ``heartbeat.dev/journal: <identity>``). One flush in flight; whatever arrives meanwhile
  rides in the next one, whatever monitor it is for (group commit across monitors), and
  each ping is answered when the flush carrying it succeeds. Every flush rewrites the
  whole Secret conditional on its ``resourceVersion``: the journal holds the pings not
  absorbed yet, and absorbed ones are dropped by the next flush (no extra write). A write
  whose answer is lost (or a 409) is resolved by re-reading the Secret: what it holds is
  stored, the rest is not (issue 18's rule, by sequence instead of a write mark). A ping
  not stored within the write timeout is answered 503; if the flush carrying it lands
  after all, the next conditional write voids it before its own absorber takes it.
- ``Absorber``: each monitor's status takes in its stored pings through the writer lane
  (``engine.writing``), at most one write per monitor per interval under a global
  budget; the status remembers the highest sequence absorbed per journal
  (``engine.journaled``), so a replay never counts twice.
- ``JournalReader``: the leader's reads of every journal: one consistent list per batch
  of deadlines (10.8.11), and the journals of replicas whose Lease expired, absorbed and
  deleted (10.8.10).

The pure parts (entry encoding, size accounting, which pings to send) take no clock.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import dataclasses
import datetime
import enum
import heapq
import itertools
import logging
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import orjson

from heartbeat_operator.domain.inputs import Ping
from heartbeat_operator.domain.machine import describe
from heartbeat_operator.domain.records import Record
from heartbeat_operator.domain.specs import MonitorSpec
from heartbeat_operator.domain.timefmt import TimeFormatError, parse_time
from heartbeat_operator.domain.vocabulary import PingKind
from heartbeat_operator.engine import folding
from heartbeat_operator.engine.api import (
    METADATA_LIST,
    REPLICA_LEASE_PREFIX,
    ApiError,
    KubeApi,
    lease_path,
    lease_released,
    secret_path,
)
from heartbeat_operator.engine.journaled import JournalPings
from heartbeat_operator.engine.monitors import Key, MonitorEntry
from heartbeat_operator.engine.writing import TokenBucket, Writer
from heartbeat_operator.logthrottle import Throttle
from heartbeat_operator.recording import (
    JournalFull,
    Overloaded,
    UnknownToken,
    WriteTimeout,
)
from heartbeat_operator.settings import JournalSettings, ReceiverSettings, WriterSettings

logger = logging.getLogger(__name__)

JOURNAL_TYPE = "heartbeat.dev/journal"
JOURNAL_LABEL = "heartbeat.dev/journal"
MANAGED_BY = ("app.kubernetes.io/managed-by", "heartbeat-operator")
NAME_PREFIX = "heartbeat-journal-"
#: The Secret's data key: base64 of a JSON list of entries, each a list (``encode_entry``).
DATA_KEY = "pings"
#: Where the first cut wrote its entries as JSON objects, twice the bytes; still read, so
#: a journal an older replica left is absorbed after an upgrade.
OBJECT_DATA_KEY = "entries"
#: DESIGN 10.8.12: each journal object stays under this.
HARD_LIMIT = 512 * 1024
#: Bytes of a journal Secret besides its entries (metadata, labels, the server's
#: managedFields), counted against the limit so the object stays under it.
OVERHEAD = 4096
#: A journal whose replica Lease (``kube.replicas``) is gone, released or expired belongs
#: to a dead replica; one younger than this is never judged dead (its replica may not have
#: renewed its Lease yet).
YOUNG_JOURNAL = datetime.timedelta(seconds=30)


# --- entries (pure) ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Entry:
    """One journaled ping: its sequence, its monitor (key and uid), the ping itself."""

    sequence: int
    namespace: str
    name: str
    uid: str
    ping: Ping

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_MICROSECOND = datetime.timedelta(microseconds=1)


#: Bodies of at least this many bytes are stored deflated when that is shorter.
DEFLATE_FROM = 128
#: Raw deflate with a 2 KiB window: 4 µs for a 1 KB body where zlib's defaults (a
#: 32 KiB window) took 70 µs, for the same size on log text.
_DEFLATE_WBITS = -11
_DEFLATE_MEMLEVEL = 4


def _deflated(body: str) -> str:
    packer = zlib.compressobj(1, zlib.DEFLATED, _DEFLATE_WBITS, _DEFLATE_MEMLEVEL)
    raw = packer.compress(body.encode("utf-8")) + packer.flush()
    return base64.b64encode(raw).decode("ascii")


def _inflated(packed: str) -> str | None:
    """The body a deflated entry holds; None when it does not inflate (a Secret edited by
    hand): the ping still counts without its output, as an older replica reads it. An
    acknowledged success dropped for its body would page somebody."""
    try:
        return zlib.decompress(base64.b64decode(packed, validate=True), _DEFLATE_WBITS).decode()
    except (ValueError, zlib.error):
        return None


def encode_entry(entry: Entry) -> bytes:
    """One entry as the journal stores it, a JSON list: sequence, namespace, name, uid,
    acceptance time in microseconds since the epoch, then kind (null: success), exit
    code, run id, body, and the body deflated (base64) in its place when that is
    shorter, trailing nulls left out. A GET ping is ~90 bytes; as a JSON object with an
    ISO time it was ~135, and the journal's room is counted in bytes (issue 15: it
    filled under the sustained load). Job output is text that repeats itself
    (timestamps, prefixes, the same words): deflated, a 1 KB body of log lines takes a
    fifth of the room or less, and the room is what lets absorption coalesce (with 1 KB
    bodies stored as they came, the journal passed half full within seconds at the
    side-by-side load and statuses were written for every few pings)."""
    ping = entry.ping
    item: list[Any] = [
        entry.sequence,
        entry.namespace,
        entry.name,
        entry.uid,
        (ping.time - _EPOCH) // _MICROSECOND,
        None if ping.kind == PingKind.SUCCESS else ping.kind,
        ping.exit_code,
        ping.run_id,
        ping.body,
    ]
    while item[-1] is None:
        item.pop()
    encoded = orjson.dumps(item)
    if ping.body is not None and len(ping.body) >= DEFLATE_FROM:
        packed = orjson.dumps([*item[:-1], None, _deflated(ping.body)])
        if len(packed) < len(encoded):
            return packed
    return encoded


def decode_entry(item: Any) -> Entry | None:
    """An entry from its JSON form, a list or (written by the first cut) an object;
    None: not one of ours, skipped."""
    try:
        if isinstance(item, list):
            sequence, namespace, name, uid, micros, *rest = item
            kind, exit_code, run_id, body, packed = [*rest, None, None, None, None, None][:5]
            if packed is not None:
                body = _inflated(str(packed))
            at = _EPOCH + datetime.timedelta(microseconds=int(micros))
        elif isinstance(item, Mapping):
            sequence, namespace, name, uid = item["s"], item["ns"], item["n"], item["u"]
            kind, exit_code, run_id, body = item["k"], item.get("x"), item.get("r"), item.get("b")
            at = parse_time(str(item["t"]))
        else:
            return None
        ping = Ping(
            time=at,
            kind=PingKind(kind or "success"),
            exit_code=exit_code,
            run_id=run_id,
            body=body,
        )
        return Entry(int(sequence), str(namespace), str(name), str(uid), ping)
    except (KeyError, TypeError, ValueError, OverflowError, TimeFormatError):
        return None


def encode_entries(encoded: Iterable[bytes]) -> str:
    """The Secret's data value: base64 of a JSON list of entries."""
    return base64.b64encode(b"[" + b",".join(encoded) + b"]").decode("ascii")


def decode_entries(body: Mapping[str, Any]) -> list[Entry]:
    """The entries a journal Secret holds, in sequence order."""
    data = body.get("data") or {}
    raw = data.get(DATA_KEY) or data.get(OBJECT_DATA_KEY)
    if not raw:
        return []
    try:
        items = orjson.loads(base64.b64decode(raw))
    except (ValueError, TypeError):
        logger.warning("journal %s holds no entries we can read", _name_of(body))
        return []
    entries = [e for e in (decode_entry(i) for i in items or ()) if e is not None]
    return sorted(entries, key=lambda e: e.sequence)


def stored_size(entry_bytes: int, count: int) -> int:
    """Bytes of a journal Secret whose entries encode to ``entry_bytes`` in all: the
    base64 of the JSON list plus the object's overhead (DESIGN 10.8.12 size accounting)."""
    raw = entry_bytes + max(count - 1, 0) + 2
    return 4 * ((raw + 2) // 3) + OVERHEAD


def segment_name(identity: str, number: int) -> str:
    """The name of a replica's ``number``-th journal Secret (the first has no suffix)."""
    return NAME_PREFIX + identity + ("" if number == 1 else f"-{number}")


def journal_body(
    identity: str,
    namespace: str,
    name: str,
    encoded: Iterable[bytes],
    resource_version: str | None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": {MANAGED_BY[0]: MANAGED_BY[1], JOURNAL_LABEL: identity},
    }
    if resource_version is not None:
        metadata["resourceVersion"] = resource_version
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": JOURNAL_TYPE,
        "metadata": metadata,
        "data": {DATA_KEY: encode_entries(encoded)},
    }


def by_monitor(entries: Iterable[Entry]) -> dict[tuple[str, str, str], list[Entry]]:
    """Entries grouped by monitor (namespace, name, uid), each group in sequence order."""
    groups: dict[tuple[str, str, str], list[Entry]] = collections.defaultdict(list)
    for entry in sorted(entries, key=lambda e: e.sequence):
        groups[(entry.namespace, entry.name, entry.uid)].append(entry)
    return dict(groups)


def journal_pings(replica: str, entries: Iterable[Entry]) -> JournalPings:
    return JournalPings(replica, tuple((e.sequence, e.ping) for e in entries))


def _name_of(body: Mapping[str, Any]) -> str:
    return str((body.get("metadata") or {}).get("name", "?"))


async def delete_secrets(client: KubeApi, namespace: str, names: Iterable[str]) -> ApiError | None:
    """Delete the named journal Secrets, one already gone counting as deleted; the error
    that stopped it, if any."""
    for name in names:
        try:
            await client.delete(secret_path(namespace, name), kind="secrets")
        except ApiError as exc:
            if not exc.not_found:
                return exc
    return None


def _is_failure(ping: Ping) -> bool:
    return ping.kind == "fail" or ping.exit_code not in (None, 0)


def _version_of(body: Mapping[str, Any]) -> str | None:
    version = (body.get("metadata") or {}).get("resourceVersion")
    return version if isinstance(version, str) else None


# --- the replica's own journal ---------------------------------------------------------


@dataclasses.dataclass(eq=False)
class Waiter:
    entry: Entry
    encoded: bytes
    future: asyncio.Future[None]
    deadline: float  # loop time: not stored by then, it is answered 503
    voided: bool = False


@dataclasses.dataclass(eq=False)
class Segment:
    """One journal Secret of this replica and what it holds as last known."""

    name: str
    version: str | None = None  # None: the Secret does not exist (as far as known)
    stored: dict[int, bytes] = dataclasses.field(default_factory=dict)  # sequence -> entry
    bytes: int = 0  # of the entries stored
    live: int = 0  # entries stored and neither absorbed nor voided


class Journal:
    """This replica's journal: appends, flushes, what is stored and absorbed.

    The journal is a run of Secrets (DESIGN 10.8.12: a replica may use more than one).
    Flushes rewrite only the newest, the *head*; once the head holds ``max_bytes`` the
    next flush starts a new one and the old head is *sealed*: never written again, and
    deleted as soon as every entry it holds is absorbed (or voided). So a flush costs
    the head's size, not the backlog's, and the backlog may grow to ``max_segments``
    Secrets while absorption coalesces under load (issue 15).
    """

    def __init__(
        self,
        client: KubeApi,
        *,
        namespace: str,
        identity: str,
        max_bytes: int = JournalSettings.max_bytes,
        max_segments: int = JournalSettings.max_segments,
        write_timeout: float = ReceiverSettings.write_timeout,
        max_unabsorbed: int = WriterSettings.max_waiting_pings,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.identity = folding.replica_name(identity)
        self.name = segment_name(self.identity, 1)  # the first Secret's name
        self.max_bytes = min(max_bytes, HARD_LIMIT - 1)
        self.max_segments = max(1, max_segments)
        self.write_timeout = write_timeout
        self.max_unabsorbed = max_unabsorbed
        self._sequence = itertools.count(1)
        self._numbers = itertools.count(2)  # of the segments after the first
        #: Sealed segments, oldest first, then the head.
        self._segments: list[Segment] = [Segment(self.name)]
        self._entries: dict[int, Entry] = {}  # every entry some segment holds
        self._where: dict[int, Segment] = {}  # the segment holding each of them
        #: Stored entries neither absorbed nor voided, per monitor, by sequence.
        self._live: dict[Key, dict[int, Entry]] = collections.defaultdict(dict)
        self._failures: collections.Counter[Key] = collections.Counter()  # live failures
        self._absorbed: set[int] = set()  # stored and absorbed: dropped by the next flush
        self._voided: set[int] = set()  # answered 503: the next write leaves them out
        self._pending: list[Waiter] = []
        self._in_flight: list[Waiter] = []
        self._pending_bytes = 0  # encoded bytes of the pending entries
        #: Accepted and not absorbed, per monitor (DESIGN 10.8.12: more than 50 is 429).
        self._unabsorbed: collections.Counter[Key] = collections.Counter()
        self._task: asyncio.Task[None] | None = None
        self._deleting: asyncio.Task[None] | None = None  # ``_delete_emptied``
        self._log = Throttle(logger)
        self.closed = False
        #: Told of entries once stored (the absorber).
        self.on_stored: list[Callable[[Sequence[Entry]], None]] = []
        self._room = asyncio.Event()  # set when a sealed Secret is deleted
        self._sweep: asyncio.TimerHandle | None = None  # the next ``_expire``
        #: Told of every flush that landed: its latency in seconds (metrics).
        self.on_flush: list[Callable[[float], None]] = []

    # --- appending ---------------------------------------------------------------------

    def unabsorbed(self, key: Key) -> int:
        return self._unabsorbed[key]

    @property
    def flushing(self) -> bool:
        """Whether a flush (or the resolution of a lost one) is under way."""
        return self._task is not None and not self._task.done()

    def waiting_monitors(self) -> list[Key]:
        return list(self._unabsorbed)

    @property
    def backlog(self) -> int:
        """Pings accepted and not absorbed yet (metrics: journal backlog)."""
        return sum(self._unabsorbed.values())

    @property
    def segments(self) -> int:
        """Journal Secrets this replica holds (or is about to create)."""
        return len(self._segments)

    @property
    def fill(self) -> float:
        """How full the journal is, 0 to 1: the Secrets in use (the head by its bytes)
        out of ``max_segments`` (the absorber spends faster past one half)."""
        head = self._segments[-1]
        head_bytes = head.bytes + self._pending_bytes
        used = len(self._segments) - 1 + min(head_bytes / self.max_bytes, 1.0)
        return min(used / self.max_segments, 1.0)

    async def append(self, entry: MonitorEntry, ping: Ping) -> None:
        """Store ``ping`` for ``entry``'s monitor; return once a flush carrying it succeeded.

        Raises ``Overloaded`` (more than 50 unabsorbed pings for this monitor: nothing
        journaled), ``JournalFull`` (every Secret the replica may use is full),
        ``WriteTimeout`` (not stored within the write timeout).
        """
        if self.closed:
            raise WriteTimeout("the replica is stopping")
        key = entry.key
        if self._unabsorbed[key] >= self.max_unabsorbed:
            raise Overloaded("too many pings not absorbed yet for this monitor")
        item = Entry(next(self._sequence), entry.namespace, entry.name, entry.uid, ping)
        encoded = encode_entry(item)
        if not self._has_room(len(encoded)):
            raise JournalFull("the replica's journal is full")
        loop = asyncio.get_running_loop()
        waiter = Waiter(item, encoded, loop.create_future(), loop.time() + self.write_timeout)
        self._pending.append(waiter)
        self._pending_bytes += len(encoded)
        self._unabsorbed[key] += 1
        self._kick()
        if self._sweep is None:
            self._sweep = loop.call_at(waiter.deadline, self._expire)
        # Shielded: a client that hangs up does not take its ping out of the journal.
        # One timer for every waiter (``_expire``), not a wait_for each: per ping that
        # was a tenth of the replica's CPU at 1,400 pings/s (issue 15's profile).
        await asyncio.shield(waiter.future)

    def _expire(self) -> None:
        """Answer 503 every ping not stored by its deadline; come back at the next one."""
        self._sweep = None
        now = asyncio.get_running_loop().time()
        waiting = [w for w in (*self._in_flight, *self._pending) if not w.future.done()]
        for waiter in waiting:
            if waiter.deadline <= now:
                self._void(waiter)
        later = [w.deadline for w in waiting if not w.future.done()]
        if later:
            self._sweep = asyncio.get_running_loop().call_at(min(later), self._expire)

    def _has_room(self, size: int) -> bool:
        """Whether an entry of ``size`` bytes fits, after the pending ones, in the head or
        in the Secrets the replica may still start."""
        head = self._segments[-1]  # what it holds: at most what its next write keeps
        needed = head.bytes + self._pending_bytes + size
        count = len(head.stored) + len(self._pending) + 1
        spare = self.max_segments - len(self._segments)
        # A fresh Secret's room, less what a ping that does not fit at its end wastes.
        fresh = (self.max_bytes - OVERHEAD) * 7 // 8
        return stored_size(needed, count) <= self.max_bytes + spare * fresh

    def _void(self, waiter: Waiter) -> None:
        """``waiter`` is answered 503: it must never count (DESIGN 10.8.12)."""
        waiter.voided = True
        if not waiter.future.done():
            waiter.future.set_exception(WriteTimeout("the journal write did not succeed in time"))
            waiter.future.exception()  # retrieved: its client may be gone
        seq = waiter.entry.sequence
        if waiter in self._pending:
            self._pending.remove(waiter)  # never sent
            self._pending_bytes -= len(waiter.encoded)
            self._uncount(waiter.entry.key)
            return
        # Sent: its flush may still land; the next write of its Secret (conditional, so
        # after we know) leaves it out, and that Secret is not sealed before.
        self._voided.add(seq)
        self._unlive(waiter.entry)
        if seq in self._where:
            self._where[seq].live -= 1
        self._uncount(waiter.entry.key)

    def _unlive(self, entry: Entry) -> None:
        live = self._live.get(entry.key)
        if live is None or live.pop(entry.sequence, None) is None:
            return
        if not live:
            del self._live[entry.key]
        if _is_failure(entry.ping):
            self._failures[entry.key] -= 1
            if self._failures[entry.key] <= 0:
                del self._failures[entry.key]

    def _uncount(self, key: Key) -> None:
        self._unabsorbed[key] -= 1
        if self._unabsorbed[key] <= 0:
            del self._unabsorbed[key]

    # --- what the absorber asks ----------------------------------------------------------

    def stored_for(self, key: Key) -> list[Entry]:
        """Every stored, not absorbed, not voided entry of this monitor (all of them: the
        absorbed mark in status is only safe if each absorption takes them all)."""
        live = self._live.get(key)
        return [live[seq] for seq in sorted(live)] if live else []

    def oldest(self, key: Key) -> int:
        """The sequence of the monitor's oldest stored entry not absorbed (0: none): the
        absorber serves the oldest first, so sealed Secrets empty out in order."""
        live = self._live.get(key)
        return next(iter(live)) if live else 0  # entries land in sequence order

    def oldest_time(self, key: Key) -> datetime.datetime | None:
        """When the monitor's oldest stored, unabsorbed ping was accepted."""
        live = self._live.get(key)
        return live[next(iter(live))].ping.time if live else None

    def failure_waits(self, key: Key) -> bool:
        """Whether a stored, unabsorbed ping of the monitor reports a failure."""
        return self._failures[key] > 0 if key in self._failures else False

    def absorbed(self, entries: Iterable[Entry]) -> None:
        """The status holding ``entries`` is written: the next flush drops them (a sealed
        Secret goes once all it holds is absorbed)."""
        for entry in entries:
            seq = entry.sequence
            if seq in self._entries and seq not in self._absorbed and seq not in self._voided:
                self._absorbed.add(seq)
                self._where[seq].live -= 1
                self._unlive(entry)
                self._uncount(entry.key)
        self._kick_delete()

    def dropped(self, key: Key) -> None:
        """The monitor is gone: its entries are absorbed by no one, dropped next flush."""
        self.absorbed(self.stored_for(key))

    @property
    def all_absorbed(self) -> bool:
        return not self._pending and not self._in_flight and self.backlog == 0

    # --- flushing ----------------------------------------------------------------------

    def _kick(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._flush_loop(), name="journal flush")

    def _must_clean(self, segment: Segment) -> bool:
        """A voided entry the Secret still holds must be removed even without new pings."""
        return any(seq in self._voided for seq in segment.stored)

    def _emptied(self, segment: Segment) -> bool:
        """A sealed Secret whose every entry is absorbed or voided: to be deleted."""
        return segment.live == 0

    async def _flush_loop(self) -> None:
        failures = 0
        try:
            while True:
                if not self._pending and not self._must_clean(self._segments[-1]):
                    return
                batch = [w for w in self._pending if not w.future.done()]
                self._pending.clear()
                self._pending_bytes = 0
                self._in_flight = batch
                self._room.clear()  # a delete from now on frees room for what is left
                ok, left = await self._flush(batch)
                self._in_flight = []
                stalled = ok and batch and len(left) == len(batch)
                self._release_voided(batch)
                # What did not fit, or was not stored, goes back in front of what came
                # meanwhile (sequence order kept).
                again = [w for w in (batch if not ok else left) if not w.voided]
                again = [w for w in again if not w.future.done()]
                self._pending[:0] = again
                self._pending_bytes += sum(len(w.encoded) for w in again)
                if stalled:  # every Secret is full: wait for absorption (or their 503)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._room.wait(), 0.5)
                    continue
                if ok:
                    failures = 0
                    continue
                failures += 1
                await asyncio.sleep(min(0.1 * 2.0**failures, 1.0))
        except Exception:
            logger.exception("journal flush failed")
            for waiter in [*self._in_flight, *self._pending]:
                if not waiter.future.done():
                    waiter.future.set_exception(WriteTimeout("journal write failed"))
                    waiter.future.exception()
            self._in_flight = []
            self._pending.clear()
            self._pending_bytes = 0

    def _release_voided(self, batch: Sequence[Waiter]) -> None:
        """Voided pings of ``batch`` no Secret holds are forgotten (one a Secret holds is
        once the write that removes it lands: ``_landed``)."""
        for waiter in batch:
            if waiter.voided and waiter.entry.sequence not in self._entries:
                self._voided.discard(waiter.entry.sequence)

    def _content(self, segment: Segment) -> list[tuple[int, bytes]]:
        """What ``segment`` keeps on its next write: its entries not absorbed or voided."""
        return [
            (seq, data)
            for seq, data in segment.stored.items()
            if seq not in self._absorbed and seq not in self._voided
        ]

    def _fitting(self, kept: Sequence[tuple[int, bytes]], batch: Sequence[Waiter]) -> int:
        """How many of ``batch`` (in order) fit in a Secret that keeps ``kept``."""
        size = sum(len(d) for _, d in kept)
        count = len(kept)
        taken = 0
        for waiter in batch:
            if waiter.voided:
                taken += 1
                continue
            size += len(waiter.encoded)
            count += 1
            if stored_size(size, count) > self.max_bytes and count > 1:
                break
            taken += 1
        return taken

    async def _flush(self, batch: list[Waiter]) -> tuple[bool, list[Waiter]]:
        """One conditional write of the head (a new head when the old one is full): True
        when it landed, and the waiters of ``batch`` it had no room for."""
        head = self._segments[-1]
        kept = self._content(head)
        taken = self._fitting(kept, batch)
        if taken == 0 and batch and not self._must_clean(head):
            if len(self._segments) >= self.max_segments:
                return True, batch  # no room: they wait for absorption, or their 503
            head = Segment(segment_name(self.identity, next(self._numbers)))
            self._segments.append(head)  # the old head is sealed from now on
            self._kick_delete()  # it may hold nothing live already
            kept = []
            taken = self._fitting(kept, batch)
        batch, left = batch[:taken], batch[taken:]
        content = sorted(kept + [(w.entry.sequence, w.encoded) for w in batch if not w.voided])
        body = journal_body(
            self.identity, self.namespace, head.name, (data for _, data in content), head.version
        )
        started = time.monotonic()
        try:
            if head.version is None:
                written = await self.client.post(secret_path(self.namespace), body, kind="secrets")
            else:
                written = await self.client.put(
                    secret_path(self.namespace, head.name),
                    body,
                    kind="secrets",
                    timeout=self.write_timeout,
                )
        except ApiError as exc:
            self._log.log(
                "journal write", logging.WARNING, "journal write %s failed: %s", head.name, exc
            )
            # Re-read: what the Secret holds is stored, the rest is not (issue 18).
            resolvable = exc.conflict or exc.outcome_unknown or exc.not_found
            return (resolvable and await self._reread(head, batch)), left
        for listener in self.on_flush:
            listener(time.monotonic() - started)
        self._landed(head, batch, content, _version_of(written))
        return True, left

    def _landed(
        self,
        segment: Segment,
        batch: Sequence[Waiter],
        content: Sequence[tuple[int, bytes]],
        version: str | None,
    ) -> None:
        """``segment`` holds exactly ``content`` at ``version``: answer the batch."""
        held = dict(content)
        for seq in list(segment.stored):
            if seq not in held:  # dropped by this write (absorbed or voided), or by the
                # leader that took this replica for dead and absorbed its journal
                self._drop(segment, seq)
        fresh = []
        for waiter in batch:
            seq = waiter.entry.sequence
            if seq not in held:
                continue
            if seq not in segment.stored:
                segment.stored[seq] = waiter.encoded
                segment.bytes += len(waiter.encoded)
                segment.live += not waiter.voided
            self._entries[seq] = waiter.entry
            self._where[seq] = segment
            if not waiter.voided and seq not in self._live[waiter.entry.key]:
                self._live[waiter.entry.key][seq] = waiter.entry
                if _is_failure(waiter.entry.ping):
                    self._failures[waiter.entry.key] += 1
            if not waiter.voided and not waiter.future.done():
                waiter.future.set_result(None)
                fresh.append(waiter.entry)
        segment.version = version
        if fresh:
            for listener in self.on_stored:
                try:
                    listener(fresh)
                except Exception:
                    logger.exception("journal listener failed")

    def _drop(self, segment: Segment, seq: int) -> None:
        """``segment`` no longer holds ``seq``: forget it (still counted as unabsorbed if
        it was neither absorbed nor voided: the leader absorbed it)."""
        segment.bytes -= len(segment.stored.pop(seq))
        del self._where[seq]
        entry = self._entries.pop(seq)
        if seq not in self._absorbed and seq not in self._voided:
            segment.live -= 1
            self._unlive(entry)
            self._uncount(entry.key)
        self._absorbed.discard(seq)
        self._voided.discard(seq)

    async def _reread(self, segment: Segment, batch: Sequence[Waiter]) -> bool:
        """After a lost answer or a conflict: read the Secret; a batch entry it holds is
        stored (answered), one it lacks is not. True when the batch is settled."""
        try:
            body = await self.client.get(secret_path(self.namespace, segment.name), kind="secrets")
        except ApiError as exc:
            if not exc.not_found:
                return False
            body = {}
        held = {e.sequence for e in decode_entries(body)}
        version = _version_of(body) if body else None
        content = [(seq, data) for seq, data in segment.stored.items() if seq in held]
        content += [(w.entry.sequence, w.encoded) for w in batch if w.entry.sequence in held]
        landed_all = all(w.entry.sequence in held for w in batch if not w.voided)
        self._landed(segment, batch, sorted(content), version)
        return landed_all

    def _kick_delete(self) -> None:
        emptied = any(self._emptied(s) for s in self._segments[:-1])
        if emptied and (self._deleting is None or self._deleting.done()):
            self._deleting = asyncio.create_task(self._delete_emptied(), name="journal delete")

    async def _delete_emptied(self) -> None:
        """Delete the sealed Secrets whose entries are all absorbed, one at a time, beside
        the flushes: a sealed Secret is never written again, so its delete need not wait
        for the head's flush nor hold it up. In the flush loop, deletes took 40% of its
        time under the POST load (a 64 KiB head holds ~45 pings with 1 KB bodies, so a
        Secret was sealed and later deleted for about every flush), and every ping
        waiting for the next flush waited for them too (bench/README.md, "Issue 15,
        fifth session")."""
        failures = 0
        while emptied := [s for s in self._segments[:-1] if self._emptied(s)]:
            for segment in emptied:
                if await self._delete_sealed(segment):
                    failures = 0
                    self._room.set()  # a flush waiting for room may go on
                    continue
                failures += 1
                await asyncio.sleep(min(0.1 * 2.0**failures, 1.0))
                break

    async def _delete_sealed(self, segment: Segment) -> bool:
        """Delete a sealed Secret whose entries are all absorbed (one write per Secret);
        False: it is still there."""
        error = await delete_secrets(self.client, self.namespace, [segment.name])
        if error is not None:
            self._log.log(
                "journal delete",
                logging.WARNING,
                "deleting journal %s failed: %s",
                segment.name,
                error,
            )
            return False
        for seq in list(segment.stored):
            self._drop(segment, seq)
        self._segments.remove(segment)
        return True

    # --- shutdown ----------------------------------------------------------------------

    async def delete_if_empty(self) -> bool:
        """On SIGTERM, once everything is absorbed: delete the journal (True: gone)."""
        self.closed = True
        if not self.all_absorbed:
            return False
        written = [segment.name for segment in self._segments if segment.version is not None]
        error = await delete_secrets(self.client, self.namespace, written)
        if error is not None:
            logger.warning("deleting journal %s failed: %s", self.identity, error)
            return False
        for segment in self._segments:
            segment.version = None
        return True


class JournalRecorder:
    """``recording.PingRecorder`` with the journal on: the token lookup of the writer,
    then the journal; the status write follows behind the reply (``Absorber``)."""

    def __init__(self, writer: Writer, journal: Journal) -> None:
        self.writer = writer
        self.journal = journal

    async def record(self, token: str, ping: Ping) -> None:
        entry = await self.writer.find(token)
        await self.journal.append(entry, ping)


# --- absorption ----------------------------------------------------------------------


class Urgency(enum.IntEnum):
    """Which monitors the absorber writes first (lower first)."""

    #: Its unabsorbed pings near DESIGN 10.8.12's per-monitor limit (more refuse with
    #: 429): written without the budget.
    CROWDED = 0
    #: Absorbing likely changes its state (DESIGN 10.7: transitions first).
    TRANSITION = 1
    ROUTINE = 2


class WaitingMonitors:
    """The monitors with stored pings to absorb, in the absorber's order: by urgency,
    then by their oldest stored ping (so sealed journal Secrets empty out in order, and
    the ping closest to ``max_lag`` goes first).

    A heap per urgency of (oldest sequence, ticket, key), entries made stale by a newer
    ticket or a removal and dropped when they surface. Choosing the first few from all
    waiting monitors on each start was 70% of the replica's CPU once 100,000 monitors
    waited, and starved kopf's list into a 410 (bench/README.md, "sustained").
    """

    def __init__(self, oldest: Callable[[Key], int]) -> None:
        self._oldest = oldest
        self._tickets = itertools.count()
        #: key -> (urgency, ticket of its live heap entry)
        self._state: dict[Key, tuple[Urgency, int]] = {}
        self._heaps: dict[Urgency, list[tuple[int, int, Key]]] = {u: [] for u in Urgency}

    def __len__(self) -> int:
        return len(self._state)

    def __contains__(self, key: object) -> bool:
        return key in self._state

    def add(self, key: Key, urgency: Urgency) -> None:
        """Wait for absorption; a waiting monitor can become more urgent, not less."""
        current = self._state.get(key)
        if current is not None and current[0] <= urgency:
            return
        ticket = next(self._tickets)
        self._state[key] = (urgency, ticket)
        heapq.heappush(self._heaps[urgency], (self._oldest(key), ticket, key))

    def take(self, key: Key) -> None:
        """No longer waiting (its absorption starts)."""
        self._state.pop(key, None)

    def scan(self, urgency: Urgency) -> Iterator[Key]:
        """The waiting monitors of one urgency, first in order first. The ones the caller
        did not ``take`` wait on in place once the iteration ends (also when it stops
        early: a scan costs what it looked at, not what waits)."""
        heap = self._heaps[urgency]
        seen: list[tuple[int, int, Key]] = []
        try:
            while heap:
                item = heapq.heappop(heap)
                _, ticket, key = item
                if self._state.get(key) != (urgency, ticket):
                    continue  # taken, or pushed again since
                seen.append(item)
                yield key
        finally:
            for item in seen:
                if self._state.get(item[2]) == (urgency, item[1]):
                    heapq.heappush(heap, item)


class Absorber:
    """Absorbs this replica's stored pings into their monitors' statuses behind the reply
    (DESIGN 10.7): at most one write per monitor per ``interval``, under a global budget
    of ``writes_per_second``. At rest (fewer monitors pinged per second than the budget)
    a ping is in status within ``interval``; under load the monitors queue for the
    budget and each write carries every ping its monitor gathered meanwhile, so the
    writes per ping fall as the load grows (issue 15: ≤ 0.05 at the side-by-side load).
    No ping waits more than ``max_lag``: a monitor whose oldest ping is that old goes
    without the budget (many distinct monitors pinged once each cannot coalesce; the
    budget would only delay them). Monitors whose state the absorption likely changes go
    first, then the one with the oldest stored ping (so sealed journal Secrets empty out
    in order). Past half the
    journal's room absorption catches up without the budget (``max_in_flight`` writes at
    a time) until it is back under: a full journal would refuse pings, more writes only
    cost the API server."""

    #: Past this fill of the journal, absorption catches up without the budget until it
    #: is back under: at most ``max_in_flight`` writes at a time, as fast as the API
    #: server answers them (a full journal refuses pings; at one ping per monitor per
    #: interval nothing coalesces and status must keep up with the pings).
    CATCH_UP_FILL = 0.5

    def __init__(
        self,
        journal: Journal,
        writer: Writer,
        *,
        interval: float = JournalSettings.absorb_interval,
        writes_per_second: float = JournalSettings.absorb_writes_per_second,
        max_lag: float = JournalSettings.absorb_max_lag,
        max_in_flight: int = 8,
        clock: Callable[[], float] = time.monotonic,
        reader: JournalReader | None = None,
        now: Callable[[], datetime.datetime] | None = None,
    ) -> None:
        self.journal = journal
        self.writer = writer
        self._now = now or (lambda: datetime.datetime.now(datetime.UTC))
        #: Every replica's journals, read when an absorbing write judges a deadline.
        self.reader = reader
        self.interval = interval
        self.max_lag = datetime.timedelta(seconds=max_lag)
        self._bucket = TokenBucket(writes_per_second, max(1, int(writes_per_second)), clock)
        #: Eight: with two, the monitors that reach the ``CROWDED`` mark together queued
        #: past 50 unabsorbed and their pings got 429 (bench/README.md, "Issue 15, sixth
        #: session"); the bunch costs the flushes some latency, never a ping.
        self.max_in_flight = max_in_flight
        self._draining = False
        self._clock = clock
        #: Monitors with stored pings to absorb, by urgency (whether a state change is
        #: likely is judged once, when the monitor starts waiting: a heuristic for the
        #: order, never for what is written).
        self._waiting = WaitingMonitors(journal.oldest)
        #: Unabsorbed pings from which a monitor is written without the budget: three
        #: quarters of the per-monitor limit (DESIGN 10.8.12: past it, 429). At 1,000
        #: monitors pinged ~2/s each, the budget reached each monitor every ~50 s and
        #: 40% of the pings were refused (bench/README.md, the third side-by-side).
        self._crowded = max(1, journal.max_unabsorbed * 3 // 4)
        self._last: dict[Key, float] = {}
        self._busy: set[Key] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        #: Told, once a status write absorbed them, of each ping's lag in seconds from
        #: its acceptance (metrics: status lag).
        self.on_absorbed: list[Callable[[float], None]] = []
        journal.on_stored.append(self.stored)

    def stored(self, entries: Sequence[Entry]) -> None:
        for entry in entries:
            key = entry.key
            if self.journal.unabsorbed(key) >= self._crowded:
                self._waiting.add(key, Urgency.CROWDED)
            elif key not in self._waiting:
                self._waiting.add(key, self._urgency(key))
            elif _is_failure(entry.ping):
                self._waiting.add(key, Urgency.TRANSITION)
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="journal absorber")

    async def _run(self) -> None:
        while self._waiting or self._tasks:
            self._wake.clear()
            now = self._clock()
            wait = self._start_due(now)
            self._forget_old(now)
            if not self._waiting and not self._tasks:
                return
            waking = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({waking}, timeout=wait)
            finally:
                waking.cancel()

    def _start_due(self, now: float) -> float | None:
        """Start the absorptions the budget allows now; the seconds until another may
        start (None: when one in flight ends, or a ping is stored)."""
        free = self.max_in_flight - len(self._tasks)
        if free <= 0 or not self._waiting:
            return None
        catching_up = self._draining or self.journal.fill >= self.CATCH_UP_FILL
        budget = None if catching_up else self._bucket
        overdue_before = self._now() - self.max_lag
        wait: float | None = None
        for urgency in Urgency:
            for key in self._waiting.scan(urgency):
                if free <= 0:
                    break
                if key in self._busy:
                    continue
                due = self._last.get(key, -1e18) + self.interval
                if due > now:
                    wait = due - now if wait is None else min(wait, due - now)
                    continue
                accepted = self.journal.oldest_time(key)
                overdue = accepted is not None and accepted <= overdue_before
                if budget is not None and not overdue and urgency is not Urgency.CROWDED:
                    if (delay := budget.delay()) > 0:
                        if accepted is not None:  # or until it is overdue
                            delay = min(delay, (accepted - overdue_before).total_seconds())
                        wait = delay if wait is None else min(wait, delay)
                        # The ones behind it in this urgency were accepted later: not
                        # overdue either. An overdue routine one after urgent ones is.
                        break
                    budget.take()
                self._waiting.take(key)
                self._busy.add(key)
                self._last[key] = now
                task = asyncio.create_task(self._absorb(key))
                self._tasks.add(task)
                task.add_done_callback(self._done)
                free -= 1
        return wait

    def _settled_deadline(self, key: Key, entries: Sequence[Entry]) -> datetime.datetime | None:
        """The deadline of the monitor that folding ``entries`` judges, if any (a ping
        after its ``nextDueTime`` or ``alertTime``, or a write after them: every input
        first settles the deadlines before its time, ``domain.machine.apply``)."""
        entry = self.writer.table.get(key)
        if entry is None:
            return None
        spec = folding.parse(entry)
        if not isinstance(spec, MonitorSpec):
            return None  # nothing is judged
        now = self._now()
        settled = now - datetime.timedelta(seconds=self.writer.config.deadline_delay)
        latest = max([settled, *(e.ping.time for e in entries)])
        try:
            record = Record.from_status(entry.status, active_since=folding.created_at(entry, now))
            due = describe(spec, record).next_change_at
        except (OverflowError, ValueError):
            return None
        return due if due is not None and due <= latest else None

    def _urgency(self, key: Key) -> Urgency:
        """``TRANSITION`` when absorbing the monitor's pings likely changes its state: it
        is not Healthy (a ping ends New, Grace or Down), a failure waits, or it has a
        ``minRuntime`` (a success may be too fast: a failure too). DESIGN 10.7: under the
        budget, state transitions first."""
        entry = self.writer.table.get(key)
        if entry is None or entry.summary.get("state") != "Healthy":
            return Urgency.TRANSITION
        if entry.spec.get("minRuntime") or self.journal.failure_waits(key):
            return Urgency.TRANSITION
        return Urgency.ROUTINE

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._wake.set()

    def _forget_old(self, now: float) -> None:
        for key, last in list(self._last.items()):
            if now - last > self.interval and key not in self._busy:
                del self._last[key]

    async def _absorb(self, key: Key) -> None:
        try:
            entries = self.journal.stored_for(key)
            current = self.writer.table.get(key)
            stale = [e for e in entries if current is None or e.uid != current.uid]
            if stale:  # for a monitor deleted since (and maybe made again): no one's
                self.journal.absorbed(stale)
                entries = [e for e in entries if e not in stale]
            if not entries:
                return
            absorb = [journal_pings(self.journal.identity, entries)]
            due = self._settled_deadline(key, entries)
            monitor = self.writer.table.get(key)
            if self.reader is not None and due is not None and monitor is not None:
                # DESIGN 10.8.11: a write that judges a deadline folds every journal
                # first, so a ping another replica acknowledged before it counts; any
                # list sent after the deadline shows those (and is shared).
                listed = await self.reader.list_since(due.timestamp())
                absorb += listed.pings_for(monitor, own=False)
            change = folding.Change(absorb=tuple(absorb))
            try:
                await self.writer.submit(key, change, timeout=None)
            except UnknownToken:  # the monitor is gone: nothing to absorb into
                self.journal.dropped(key)
                return
            except WriteTimeout:
                self._waiting.add(
                    key, Urgency.TRANSITION
                )  # the writer gave up: again after the interval
                return
            self.journal.absorbed(entries)
            now = self._now()
            for listener in self.on_absorbed:
                for e in entries:
                    listener((now - e.ping.time).total_seconds())
        except Exception:
            logger.exception("absorbing %s/%s failed", *key)
            self._waiting.add(key, Urgency.TRANSITION)
        finally:
            self._busy.discard(key)

    async def absorb_all(self, timeout: float) -> None:
        """On SIGTERM: absorb what is stored now, within ``timeout`` (DESIGN 10.8.10)."""
        self.interval = 0.0
        self._draining = True  # the budget no longer applies: what is left goes to the leader
        self._wake.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.journal.all_absorbed and loop.time() < deadline:
            if self._task is None or self._task.done():
                for key in self.journal.waiting_monitors():
                    self._waiting.add(key, Urgency.TRANSITION)
                if self._waiting:
                    self._task = asyncio.create_task(self._run(), name="journal absorber")
            await asyncio.sleep(0.05)


# --- the leader's reads ----------------------------------------------------------------


class JournalList:
    """Every journal as one LIST showed it (one consistent view, DESIGN 10.8.11), and
    this replica's own from memory (``own``): what it holds there is exactly what it
    stored and neither absorbed nor voided, fresher than any LIST, and not read back.

    Entries are decoded only when asked for: under load the journals hold tens of
    thousands of pings (decoding them all each time was a quarter of the operator's CPU
    at 650 pings/s, issue 15's profile).
    """

    def __init__(
        self,
        started: float,
        secrets: Mapping[str, Sequence[Mapping[str, Any]]],
        created: Mapping[str, datetime.datetime],
        own: Journal | None = None,
    ) -> None:
        self.started = started  # wall time the LIST was sent
        self._secrets = secrets  # identity -> the bodies of its Secrets
        #: identity -> the names of its Secrets
        self.names = {i: [_name_of(body) for body in bodies] for i, bodies in secrets.items()}
        self.created = created  # identity -> when its oldest Secret was made
        self._own = own
        self._entries: dict[str, list[Entry]] = {}
        self._by_monitor: dict[tuple[str, Key, str], list[Entry]] | None = None

    @property
    def identities(self) -> list[str]:
        return sorted(self._secrets)

    def entries(self, identity: str) -> list[Entry]:
        """The identity's entries across its Secrets, in sequence order (decoded once)."""
        if identity not in self._entries:
            found = [e for body in self._secrets[identity] for e in decode_entries(body)]
            self._entries[identity] = sorted(found, key=lambda e: e.sequence)
        return self._entries[identity]

    def pings_for(self, entry: MonitorEntry, *, own: bool = True) -> tuple[JournalPings, ...]:
        """The monitor's pings in every journal; ``own=False``: the other replicas' only
        (the absorber already holds its own)."""
        if self._by_monitor is None:  # every journal decoded and grouped, once per LIST
            self._by_monitor = collections.defaultdict(list)
            for identity in self.identities:
                for e in self.entries(identity):
                    self._by_monitor[(identity, e.key, e.uid)].append(e)
        found = []
        for identity in self.identities:
            mine = self._by_monitor.get((identity, entry.key, entry.uid))
            if mine:
                found.append(journal_pings(identity, mine))
        if own and self._own is not None:
            held = [e for e in self._own.stored_for(entry.key) if e.uid == entry.uid]
            if held:
                found.append(journal_pings(self._own.identity, held))
        return tuple(found)


class JournalReader:
    """The leader's view of every replica's journal. The replica's own journal (``own``)
    is read from memory, never listed: with one replica the leader lists nothing but
    Secret names, and a journal of 8 MiB is not sent back to the replica that wrote it
    for every batch of deadlines."""

    def __init__(
        self,
        client: KubeApi,
        writer: Writer,
        *,
        namespace: str,
        lease_duration: float = 8.0,
        wall: Callable[[], float] = time.time,
        now: Callable[[], datetime.datetime] | None = None,
        own: Journal | None = None,
    ) -> None:
        self.client = client
        self.writer = writer
        self.namespace = namespace
        self.lease_duration = lease_duration
        self.own = own
        self._wall = wall
        self._now = now or (lambda: datetime.datetime.now(datetime.UTC))
        self._last: JournalList | None = None
        self._listing: asyncio.Task[JournalList] | None = None
        self._listing_started = 0.0

    async def list_since(self, since: float) -> JournalList:
        """A list sent at or after wall time ``since``: the deadlines of one batch share
        one LIST (the first reconcile sends it, the others await it)."""
        if self._last is not None and self._last.started >= since:
            return self._last
        if self._listing is not None and self._listing_started >= since:
            return await asyncio.shield(self._listing)
        self._listing_started = self._wall()
        self._listing = asyncio.create_task(self._list(self._listing_started))
        return await asyncio.shield(self._listing)

    def _selector(self) -> str:
        """Every journal but this replica's own."""
        if self.own is None:
            return JOURNAL_LABEL
        return f"{JOURNAL_LABEL},{JOURNAL_LABEL}!={self.own.identity}"

    async def _list(self, started: float) -> JournalList:
        body = await self.client.get(
            secret_path(self.namespace),
            kind="secrets",
            params={"labelSelector": self._selector()},
        )
        secrets, created = self._by_identity(body.get("items") or ())
        result = JournalList(started, secrets, created, own=self.own)
        if self._last is None or self._last.started <= started:
            self._last = result
        return result

    def _by_identity(
        self, items: Iterable[Mapping[str, Any]]
    ) -> tuple[dict[str, list[Mapping[str, Any]]], dict[str, datetime.datetime]]:
        """Journal Secrets (whole, or their metadata alone) by replica identity, and when
        each replica's oldest was made."""
        secrets: dict[str, list[Mapping[str, Any]]] = collections.defaultdict(list)
        created: dict[str, datetime.datetime] = {}
        for item in items:
            if item.get("type", JOURNAL_TYPE) != JOURNAL_TYPE:  # metadata alone has none
                continue
            metadata = item.get("metadata") or {}
            identity = (metadata.get("labels") or {}).get(JOURNAL_LABEL)
            if not isinstance(identity, str):
                continue
            secrets[identity].append(item)
            try:
                made = parse_time(str(metadata.get("creationTimestamp")))
            except TimeFormatError:
                made = self._now()
            created[identity] = min(made, created.get(identity, made))
        return dict(secrets), created

    async def dead(self, journals: JournalList) -> list[str]:
        """Identities of journals whose replica Lease is gone, released or expired."""
        body = await self.client.get(lease_path(self.namespace), kind="leases")
        renewed: dict[str, datetime.datetime] = {}
        released: set[str] = set()
        for item in body.get("items") or ():
            name = str((item.get("metadata") or {}).get("name", ""))
            if not name.startswith(REPLICA_LEASE_PREFIX):
                continue
            identity = name.removeprefix(REPLICA_LEASE_PREFIX)
            if lease_released(item):
                released.add(identity)
                continue
            try:
                renewed[identity] = parse_time(str((item.get("spec") or {}).get("renewTime")))
            except TimeFormatError:
                continue
        now = self._now()
        expiry = datetime.timedelta(seconds=self.lease_duration)
        gone = []
        for identity in journals.identities:
            if identity in released:
                gone.append(identity)
                continue
            last = renewed.get(identity)
            if last is not None and now - last <= expiry:
                continue
            if last is None and now - journals.created[identity] < YOUNG_JOURNAL:
                continue
            gone.append(identity)
        return gone

    async def absorb_dead(self, table_get: Callable[[Key], MonitorEntry | None]) -> int:
        """Absorb and delete the journals of dead replicas; the number deleted.

        Every 2 s while leading: the journals are listed by their metadata alone, and
        only a dead replica's are read whole (full lists of every journal, up to 8 MiB
        each time, were most of what the API server sent the leader under load)."""
        started = self._wall()
        body = await self.client.get(
            secret_path(self.namespace),
            kind="secrets",
            params={"labelSelector": self._selector()},
            accept=METADATA_LIST,
        )
        metadata, created = self._by_identity(body.get("items") or ())
        catalog = JournalList(started, metadata, created)
        deleted = 0
        for identity in await self.dead(catalog):
            secrets = []
            for name in catalog.names[identity]:
                try:
                    secrets.append(
                        await self.client.get(secret_path(self.namespace, name), kind="secrets")
                    )
                except ApiError as exc:
                    if not exc.not_found:
                        raise
            journal = JournalList(started, {identity: secrets}, created)
            groups = by_monitor(journal.entries(identity))
            ok = True
            for (namespace, name, uid), entries in groups.items():
                monitor = table_get((namespace, name))
                if monitor is None or monitor.uid != uid:
                    continue  # the monitor is gone: nothing to absorb into
                change = folding.Change(absorb=(journal_pings(identity, entries),))
                try:
                    await self.writer.submit((namespace, name), change, timeout=None)
                except UnknownToken:
                    continue
                except WriteTimeout:
                    ok = False
            if not ok:
                continue
            error = await delete_secrets(self.client, self.namespace, catalog.names[identity])
            if error is not None:
                logger.warning("deleting journal of %s failed: %s", identity, error)
            else:
                logger.info("absorbed and deleted the journal of replica %s", identity)
                deleted += 1
        return deleted

    async def run(self, is_leader: Callable[[], bool], table_get: Any, interval: float) -> None:
        """While leading: every ``interval``, absorb the journals of dead replicas."""
        while True:
            await asyncio.sleep(interval)
            if not is_leader():
                continue
            try:
                await self.absorb_dead(table_get)
            except ApiError as exc:
                logger.warning("reading journals failed: %s", exc)
