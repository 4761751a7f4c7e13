"""The inputs ``machine.apply`` folds: pings, pause/resume, time passing, spec edits.

Every input carries its own ``time`` (aware datetime); ``apply`` clamps a time earlier
than the record's latest transition to it (DESIGN 9.3).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from heartbeat_operator.domain.vocabulary import PingKind

PING_KINDS: tuple[PingKind, ...] = tuple(PingKind)


def exit_code_kind(code: int) -> PingKind:
    """The kind an exit code ping is recorded as: DESIGN section 3, "0 success, 1–255
    failure", as section 2's ``{kind: success, exitCode: 0, …}``. So
    ``heartbeat_pings_total{kind="fail"}`` counts every failure, however reported."""
    return PingKind.SUCCESS if code == 0 else PingKind.FAIL


# Job phases recorded in ``status.reportedJobs`` (DESIGN 9.10): the kind of ping the Job
# produced, or ``pending`` (a ``JobPending`` folded: the Job existed before its Pod ran).
JobPhase = Literal["pending", "start", "success", "fail"]

PAUSE_CAUSE_SPEC = "spec.paused"
PAUSE_CAUSE_CRONJOB = "CronJob suspend"
#: A timed pause (``spec.pausedUntil``, issue 16 item 1): it ends by itself at that time.
PAUSE_CAUSE_UNTIL = "spec.pausedUntil"


@dataclass(frozen=True, slots=True)
class Ping:
    """One ping, as accepted by a receiver or produced from a Job.

    - ``kind``: ``success | start | fail | log | exit``. ``exit`` needs ``exit_code``
      0–255 (0 success, else failure). ``success``/``fail`` may also carry ``exit_code``
      (a Job's success is 0, a Job failure's container code); ``lastExitCode`` is the code
      of the latest finish, removed by a finish without one (DESIGN 9.11).
    - ``run_id``: ``?rid=`` (or a Job's UID), pairs start and finish.
    - ``body``: already cut to the body limit and decoded (DESIGN 9.13).
    - ``scheduled_time``: a Job's ``cronjob-scheduled-timestamp``: the slot a start
      counts for, if that slot is not over (DESIGN 9.10).
    - ``job``: ``(uid, phase)`` for ``status.reportedJobs`` (exactly-once Job pings).
    - ``exit_code_unknown``: a Job failure whose Pod is gone; the Event says
      "exit code unknown (Pod gone)".
    - ``not_started``: a Job that ended before any of its Pods ran (DESIGN 10.8.3): the
      failure's reason is ``NotStarted`` and ``body`` says what the cluster said.
    - ``job_created``: a Job start's ``creationTimestamp``: a Job created at or after
      ``activeSince`` is never an old Job, whatever its Pod's clock says (``job_predates``).
    """

    time: datetime
    kind: PingKind
    exit_code: int | None = None
    run_id: str | None = None
    body: str | None = None
    scheduled_time: datetime | None = None
    job: tuple[str, JobPhase] | None = None
    exit_code_unknown: bool = False
    not_started: bool = False
    job_created: datetime | None = None

    @property
    def finishes(self) -> bool:
        """Whether this ping ends a run (success, fail, exit code)."""
        return self.kind in ("success", "fail", "exit")

    @property
    def failed(self) -> bool:
        """Whether a finishing ping reports failure (fail, or exit code 1–255)."""
        if self.kind == "fail":
            return True
        return self.kind == "exit" and self.exit_code is not None and self.exit_code != 0


@dataclass(frozen=True, slots=True)
class JobPending:
    """An auto-wired Job exists and none of its Pods has run yet (DESIGN 10.1, 10.8.3).

    A Job created on time for the slot expected is a *pending start*: that slot is not
    Late, and at its ``alertTime`` it fails with ``NotStarted`` unless a start came first.
    Folding it again for the same Job only refreshes ``cause`` (the leader does that right
    before judging, with ``time`` at or before the deadline, so the failure names what the
    cluster says then).

    - ``created``: the Job's ``creationTimestamp``; ``scheduled_time`` its
      ``cronjob-scheduled-timestamp`` (the slot it was made for), when present;
    - ``cause``: the cluster's words, e.g. "Job nightly-29012 created 02:00:03 UTC; Pod
      nightly-29012-x7k Pending for 31m: ImagePullBackOff: ...".
    """

    time: datetime
    uid: str
    name: str
    created: datetime
    cause: str
    scheduled_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class SlotSkipped:
    """The CronJob controller made no Job for the slot due at ``due``, and ``cause`` says
    why (``concurrencyPolicy: Forbid`` with Job X active since T, ``startingDeadlineSeconds``
    passed): the slot's failure message adds it (DESIGN 10.1, 10.8.7). The leader folds it
    right before judging that slot; ``time`` is at or before the deadline."""

    time: datetime
    due: datetime
    cause: str


@dataclass(frozen=True, slots=True)
class Pause:
    """``spec.paused`` became true, or the owning CronJob was suspended (``cause``).

    ``until``: a timed pause (``spec.pausedUntil``, cause ``PAUSE_CAUSE_UNTIL``): the
    machine resumes by itself at that time (issue 16 item 1). A Pause folded while a spec
    pause holds changes when that pause ends (no Event: the monitor stays Paused).
    """

    time: datetime
    cause: str = PAUSE_CAUSE_SPEC
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Resume:
    """The pause ended; the next slot is counted from ``time`` (DESIGN fine print 8)."""

    time: datetime
    cause: str = PAUSE_CAUSE_SPEC


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed: settle every deadline strictly before ``time``.

    A deadline exactly at ``time`` is not settled (a ping at a deadline is on time).
    """

    time: datetime


@dataclass(frozen=True, slots=True)
class SpecEdit:
    """The spec changed; folded with the *new* spec (DESIGN 9.19: edits never alert).

    ``restart``: nothing was judged before it (``Ready`` was False: a spec that could not
    be evaluated, a token failure), so the next slot counts from the edit, as after a
    resume, whatever the slot's ``alertTime``; pings only recorded meanwhile are not
    counted for the slot.
    """

    time: datetime
    restart: bool = False


Input = Ping | JobPending | SlotSkipped | Pause | Resume | Tick | SpecEdit
