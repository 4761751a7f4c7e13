"""``render_status``: the whole ``status`` dict a writer PUTs, pure.

Conditions follow DESIGN fine print 4 and 9.7 and the ``metav1.Condition`` shape; each
keeps its ``lastTransitionTime`` from the previous status while its ``status`` value is
unchanged, else takes the time the rules give.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from heartbeat_operator.domain.records import Record
from heartbeat_operator.domain.specs import MonitorSpec, SpecError


@dataclass(frozen=True, slots=True)
class Ready:
    """The ``Ready`` condition as the caller decided it.

    ``status`` ``"True"`` with reason ``TokenReady``, or ``"False"`` with one of
    ``InvalidSchedule | InvalidTimeZone | SecretConflict | TokenConflict | WeakToken``.
    """

    status: str
    reason: str
    message: str

    @classmethod
    def from_spec_error(cls, error: SpecError) -> Ready:
        """``Ready=False`` for a spec the domain cannot evaluate."""
        return cls("False", error.reason, error.message)


READY_TOKEN = Ready("True", "TokenReady", "the ping token is ready")


def render_status(
    *,
    spec: MonitorSpec | SpecError,
    record: Record,
    now: datetime,
    generation: int,
    ready: Ready,
    previous: Mapping[str, Any] | None = None,
    token_hash: str | None = None,
    token_secret_name: str | None = None,
    paused: bool = False,
) -> dict[str, Any]:
    """Build the complete ``status``.

    - ``spec``: the parsed spec, or the ``SpecError`` that made it unusable (then
      ``ready`` should be ``Ready.from_spec_error(error)``).
    - ``record``: already settled to ``now`` (``apply(..., Tick(now), now)``).
    - ``now``: the write's time: ``Ready``'s transition time when it changes.
    - ``generation``: ``metadata.generation`` -> ``observedGeneration`` (top level and on
      each condition).
    - ``previous``: the status being replaced (``lastTransitionTime`` kept from it).
    - ``paused``: the raw ``spec.paused`` (or CronJob suspend), needed with a SpecError.

    While ``ready.status != "True"``: ``nextDueTime``/``alertTime`` absent, ``Healthy``
    Unknown ``InvalidSpec``, the state keeps its last value (``Paused`` if paused).
    """
    raise NotImplementedError
