"""The token life cycle, run by the leader (DESIGN 3 and 9.9).

Triggers, and the only times a Secret is read (by name): the monitor has no
``status.tokenHash`` yet (creation), ``status.tokenSecretName`` differs from the Secret
name the spec asks for (a ``tokenSecretName`` edit, or a crash half-way through
creation), or the annotation ``heartbeat.dev/rotate-token`` changed.

Order matters: ``status.tokenHash`` is written before the Secret is created, and
``status.tokenSecretName`` only once the Secret holds the token — so after a crash
anywhere in between, the next leader sees the mismatch and finishes the job.

And a slow sweep (DESIGN 10.8.14): while leading, the operator re-reads each monitor's
Secret by name, at most ``sweep_reads_per_second``, a new pass ``sweep_interval`` after
the last one ended; a Secret found missing is created again with a new token (Warning
Event ``TokenRotated``), so a deleted Secret never leaves a monitor "Ready" with a URL
nobody can read. Still no list or watch of Secrets.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
import logging
from collections.abc import Callable, Sequence

from heartbeat_operator.domain.statuses import READY_TOKEN, Ready
from heartbeat_operator.domain.tokens import new_token, token_hash
from heartbeat_operator.domain.vocabulary import EventType
from heartbeat_operator.engine import secrets
from heartbeat_operator.engine.api import ApiError, KubeApi
from heartbeat_operator.engine.events import InvolvedObject, apply_event, build_event
from heartbeat_operator.engine.folding import Change, TokenUpdate, token_ready
from heartbeat_operator.engine.monitors import Key, MonitorEntry, MonitorTable, age_order
from heartbeat_operator.engine.writing import Writer

logger = logging.getLogger(__name__)

#: Lease annotation: the base URLs the Secrets' ``url``/``internal-url`` keys were written
#: with, so a leader started with other ones rewrites them (DESIGN 9.2).
URLS_ANNOTATION = "heartbeat.dev/ping-urls"


@dataclasses.dataclass(frozen=True)
class Urls:
    external: str
    internal: str | None = None

    def for_token(self, token: str) -> dict[str, str]:
        return secrets.ping_urls(token, self.external, self.internal)

    @property
    def marker(self) -> str:
        return json.dumps({"url": self.external, "internal-url": self.internal}, sort_keys=True)


class TokenKeeper:
    def __init__(
        self,
        client: KubeApi,
        table: MonitorTable,
        writer: Writer,
        urls: Urls,
        *,
        instance: str = "",
        poke: Callable[[Key], None] = lambda key: None,
        targets: Callable[[MonitorEntry], Sequence[InvolvedObject]] | None = None,
    ) -> None:
        self.client = client
        # The objects a monitor's Events go on: itself, and its CronJob when auto-wired
        # (DESIGN 9.7).
        self.targets = targets or (
            lambda entry: [InvolvedObject(entry.namespace, entry.name, entry.uid)]
        )
        self.table = table
        self.writer = writer
        self.urls = urls
        self.instance = instance  # reportingInstance of the Events posted here
        # Asks the leader to reconcile a monitor (the scheduler's ``poke``).
        self.poke = poke
        # Monitors whose Secret the sweep found deleted: uid -> that Secret's name.
        self._missing: dict[str, str] = {}
        # Rotation requests handled, by monitor uid (a new leader takes the current value
        # as handled; see docs/operating.md).
        self._rotation_seen: dict[str, str | None] = {}
        # Failures already reported, by uid: (generation, rotate annotation) they were for.
        self._failed: dict[str, tuple[int, str | None]] = {}
        # Which sweep loop is the current one: a leadership lost and regained while a
        # loop sleeps must not leave two loops reading.
        self._sweep_epoch = 0
        self.sweeps = 0  # passes completed (tests and logs)

    def leading_again(self) -> None:
        """This replica (again) leads: what it remembers handling may be stale, since
        another leader may have handled rotations meanwhile. Like any new leader it takes
        each monitor's current ``rotate-token`` value as handled (docs/operating.md);
        rotating again on an old memory would void the URL the user just copied."""
        self._rotation_seen.clear()

    def _rotation(self, entry: MonitorEntry) -> str | None:
        return entry.annotations.get(secrets.ROTATE_ANNOTATION)

    def needs_work(self, entry: MonitorEntry) -> bool:
        rotation = self._rotation(entry)
        if entry.uid not in self._rotation_seen:
            self._rotation_seen[entry.uid] = rotation if entry.token_hash else None
        if self._missing.get(entry.uid) == secrets.secret_name_for(entry):
            return True  # the sweep found its Secret deleted (DESIGN 10.8.14)
        if self._failed.get(entry.uid) == (entry.generation, rotation):
            return False  # reported; the user must edit the spec or the annotation
        if not entry.token_hash:
            return True
        if entry.status.get("tokenSecretName") != secrets.secret_name_for(entry):
            return True
        if (
            self._shares_an_older_token(entry)
            and token_ready(entry.status).reason != "TokenConflict"
        ):
            return True  # an older monitor adopted the same token after this one did
        return rotation != self._rotation_seen.get(entry.uid)

    def _shares_an_older_token(self, entry: MonitorEntry) -> bool:
        owner = self.table.owner_of(entry.token_hash) if entry.token_hash else None
        return owner is not None and owner.uid != entry.uid

    async def _write(self, entry: MonitorEntry, update: TokenUpdate) -> MonitorEntry:
        return await self.writer.submit(entry.key, Change(token=update), timeout=None)

    async def reconcile(self, entry: MonitorEntry) -> None:
        name = secrets.secret_name_for(entry)
        rotation = self._rotation(entry)
        rotate = entry.uid in self._rotation_seen and rotation != self._rotation_seen[entry.uid]
        secret = await secrets.read_secret(self.client, entry.namespace, name)

        missing = self._missing.pop(entry.uid, None) == name
        if secret is None:
            await self._create(entry, name)
            if missing:
                fresh = self.table.get(entry.key)
                if fresh is not None and fresh.status.get("tokenSecretName") == name:
                    self._rotated_event(fresh, name)
        else:
            verdict = secrets.judge_secret(secret, entry, name)
            if verdict.token is None and not verdict.owned:
                await self._fail(entry, verdict.reason, verdict.message)
                return
            if verdict.token is None or (verdict.owned and rotate):
                await self._replace(entry, name)
            elif verdict.token is not None:
                await self._adopt(entry, name, secret, verdict)
        self._rotation_seen[entry.uid] = rotation
        self._failed.pop(entry.uid, None)

    async def _create(self, entry: MonitorEntry, name: str) -> None:
        token = new_token()
        # DESIGN 9.9: the hash is in status before any Secret holds the token.
        entry = await self._write(
            entry, TokenUpdate(token_hash=token_hash(token), secret_name=None, ready=READY_TOKEN)
        )
        body = secrets.build_secret(entry, name, token, self.urls.for_token(token))
        try:
            await secrets.apply_secret_create(self.client, body)
        except ApiError as exc:
            if exc.conflict:
                logger.info("Secret %s/%s appeared meanwhile; looking again", entry.namespace, name)
                return  # tokenSecretName still differs: the next reconcile adopts it
            raise
        await self._write(entry, TokenUpdate(secret_name=name))
        logger.info("created token Secret %s/%s", entry.namespace, name)

    async def _replace(self, entry: MonitorEntry, name: str) -> None:
        """A new token in a Secret we own (rotation, or our Secret lost its token)."""
        token = new_token()
        entry = await self._write(
            entry, TokenUpdate(token_hash=token_hash(token), secret_name=None, ready=READY_TOKEN)
        )
        await secrets.apply_secret_update(
            self.client, entry.namespace, name, {"token": token, **self.urls.for_token(token)}
        )
        await self._write(entry, TokenUpdate(secret_name=name))
        logger.info("rotated the token in Secret %s/%s", entry.namespace, name)

    async def _adopt(
        self,
        entry: MonitorEntry,
        name: str,
        secret: dict[str, object],
        verdict: secrets.SecretVerdict,
    ) -> None:
        assert verdict.token is not None
        digest = token_hash(verdict.token)
        holders = [other for other in self.table.holders(digest) if other.uid != entry.uid]
        if any(age_order(other) < age_order(entry) for other in holders):
            await self._fail(
                entry,
                "TokenConflict",
                f"the token in Secret {name} is already used by another monitor",
            )
            return
        urls = self.urls.for_token(verdict.token)
        current = {key: secrets.secret_value(secret, key) for key in urls}
        if current != urls:
            # An adopted Secret only gains the URL keys, never an owner reference.
            await secrets.apply_secret_update(self.client, entry.namespace, name, urls)
        await self._write(
            entry, TokenUpdate(token_hash=digest, secret_name=name, ready=READY_TOKEN)
        )
        logger.info("using the token in Secret %s/%s", entry.namespace, name)
        for newer in holders:
            # DESIGN 9.9: the newer one gets TokenConflict, whichever was adopted first
            # (two monitors applied together are reconciled in any order); asked once
            # this one's hash is written, so its reconcile sees it.
            self.poke(newer.key)

    async def _fail(self, entry: MonitorEntry, reason: str, message: str) -> None:
        logger.warning("%s/%s: %s: %s", entry.namespace, entry.name, reason, message)
        await self._write(entry, TokenUpdate(ready=Ready("False", reason, message)))
        self._failed[entry.uid] = (entry.generation, self._rotation(entry))

    async def sweep_forever(
        self, is_leading: Callable[[], bool], *, reads_per_second: float, interval: float
    ) -> None:
        """While this replica leads: every ``interval`` seconds after the previous pass
        ended, one ``sweep`` pass (DESIGN 10.8.14). Returns when leadership is lost."""
        self._sweep_epoch += 1
        epoch = self._sweep_epoch

        def current() -> bool:
            return epoch == self._sweep_epoch and is_leading()

        while True:
            await asyncio.sleep(interval)
            if not current():
                return
            try:
                missing = await self.sweep(current, reads_per_second)
            except Exception:  # a bug must not end the sweep for the rest of the lead
                logger.exception("token Secret sweep failed; next pass in %s s", interval)
                continue
            self.sweeps += 1
            if missing:
                logger.info("token Secret sweep: %d deleted Secrets to create again", missing)

    async def sweep(self, go_on: Callable[[], bool], reads_per_second: float) -> int:
        """One pass: read every monitor's token Secret by name, at most
        ``reads_per_second``; hand a missing one to the leader's reconcile (``poke``),
        which creates it again with a new token. Returns how many were missing; stops
        early when ``go_on()`` turns false."""
        await self.table.wait_synced()
        loop = asyncio.get_running_loop()
        spacing = 1.0 / reads_per_second
        missing = 0
        for entry in list(self.table):
            if not go_on():
                break
            name = entry.status.get("tokenSecretName")
            if not isinstance(name, str) or not entry.token_hash or entry.deleting:
                continue  # no Secret yet: creation (reconcile) is on it
            if name != secrets.secret_name_for(entry):
                continue  # a tokenSecretName edit: reconcile's job
            started = loop.time()
            try:
                found = await secrets.read_secret(self.client, entry.namespace, name)
            except ApiError as exc:
                logger.warning("sweep: reading Secret %s/%s: %s", entry.namespace, name, exc)
            else:
                if found is None and self._still_there(entry):
                    # The leader's reconcile creates it again (serialised with every other
                    # change of this monitor), with a new token and a TokenRotated Event.
                    logger.warning(
                        "token Secret %s/%s of monitor %s is gone; creating it again",
                        entry.namespace,
                        name,
                        entry.name,
                    )
                    self._missing[entry.uid] = name
                    self.poke(entry.key)
                    missing += 1
            await asyncio.sleep(max(0.0, spacing - (loop.time() - started)))
        return missing

    def _still_there(self, entry: MonitorEntry) -> bool:
        """Whether the monitor a pass listed is still in the table as it was: one deleted
        since (a pass takes minutes) took its Secret with it, nothing to create again (the
        pings benchmark deleted monitors mid-pass and saw 20 Secrets "created again")."""
        current = self.table.get(entry.key)
        return current is not None and current.uid == entry.uid and not current.deleting

    def _rotated_event(self, entry: MonitorEntry, name: str) -> None:
        now = datetime.datetime.now(datetime.UTC)
        for target in self.targets(entry):
            body = build_event(
                target,
                time=now,
                reason="TokenRotated",
                event_type=EventType.WARNING,
                message=(
                    f"Secret {name} was deleted; created it again with a new token (the old "
                    "ping URL no longer works: read the new one from the Secret)"
                ),
                instance=self.instance,
            )
            self.writer.spawn(apply_event(self.client, body))

    async def refresh_urls(self, notes: dict[str, str]) -> None:
        """When the configured URLs differ from the ones the Secrets were written with
        (``notes``: the Lease's annotations), rewrite every Secret's URL keys.

        The only time Secrets are read without a monitor asking: after a settings change,
        once per monitor, by name.
        """
        if notes.get(URLS_ANNOTATION) == self.urls.marker:
            return
        await self.table.wait_synced()
        rewritten = 0
        for entry in list(self.table):
            name = entry.status.get("tokenSecretName")
            if not isinstance(name, str) or not entry.token_hash:
                continue
            try:
                secret = await secrets.read_secret(self.client, entry.namespace, name)
                token = secrets.secret_value(secret or {}, "token")
                if secret is None or token is None or token_hash(token) != entry.token_hash:
                    continue
                urls = self.urls.for_token(token)
                current = {k: secrets.secret_value(secret, k) for k in ("url", "internal-url")}
                if current != {"url": urls["url"], "internal-url": urls.get("internal-url")}:
                    await secrets.apply_secret_urls(self.client, entry.namespace, name, urls)
                    rewritten += 1
            except ApiError as exc:
                logger.warning("rewriting the URLs of Secret %s/%s: %s", entry.namespace, name, exc)
                return  # try again at the next takeover; the note stays as it was
        notes[URLS_ANNOTATION] = self.urls.marker
        logger.info("ping URLs are %s; rewrote %d Secrets", self.urls.marker, rewritten)
