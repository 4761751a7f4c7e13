"""The inputs ``machine.apply`` folds: pings, pause/resume, time passing, spec edits.

Every input carries its own ``time`` (aware datetime); ``apply`` clamps a time earlier
than the record's latest transition to it (DESIGN 9.3).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

# ``exit`` (a finish carrying only an exit code) is still folded, but nothing produces it:
# an exit code ping is recorded as the success or failure it reports (``exit_code_kind``).
PingKind = Literal["success", "start", "fail", "log", "exit"]
PING_KINDS: tuple[PingKind, ...] = ("success", "start", "fail", "log", "exit")


def exit_code_kind(code: int) -> PingKind:
    """The kind an exit code ping is recorded as: DESIGN section 3, "0 success, 1–255
    failure", as section 2's ``{kind: success, exitCode: 0, …}``. So
    ``heartbeat_pings_total{kind="fail"}`` counts every failure, however reported."""
    return "success" if code == 0 else "fail"


# Job phases recorded in ``status.reportedJobs`` (DESIGN 9.10): the kind of ping the Job
# produced.
JobPhase = Literal["start", "success", "fail"]

PAUSE_CAUSE_SPEC = "spec.paused"
PAUSE_CAUSE_CRONJOB = "CronJob suspend"


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
    """

    time: datetime
    kind: PingKind
    exit_code: int | None = None
    run_id: str | None = None
    body: str | None = None
    scheduled_time: datetime | None = None
    job: tuple[str, JobPhase] | None = None
    exit_code_unknown: bool = False

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
class Pause:
    """``spec.paused`` became true, or the owning CronJob was suspended (``cause``)."""

    time: datetime
    cause: str = PAUSE_CAUSE_SPEC


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
    """The spec changed; folded with the *new* spec (DESIGN 9.19: edits never alert)."""

    time: datetime


Input = Ping | Pause | Resume | Tick | SpecEdit
