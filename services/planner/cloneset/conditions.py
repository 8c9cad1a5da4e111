"""CloneSet status conditions (`pkg/controller/cloneset/cloneset_status.go`): Progressing, FailedScale/FailedUpdate, InvalidSpec.

``Progressing`` mirrors Deployment's progress deadline with Kruise's priorities and quirks: once
``ProgressDeadlineExceeded`` is set it sticks until the CloneSet is available, paused or
partition-available; setting a condition with the same status and reason keeps it untouched
(lastUpdateTime is not refreshed), a new reason with the same status keeps lastTransitionTime.
The deadline clock therefore runs from the condition's lastUpdateTime. The generic get/set/remove
helpers are the kit's (`services/planner/kit/conditions.py`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from schemas.cloneset import CloneSet, CloneSetCondition, CloneSetStatus
from schemas.constants import (
    CONDITION_PROGRESSING,
    MAX_INT32,
    REASON_CLONESET_AVAILABLE,
    REASON_CLONESET_PAUSED,
    REASON_CLONESET_UPDATED,
    REASON_PROGRESS_DEADLINE_EXCEEDED,
    REASON_PROGRESS_PARTITION_AVAILABLE,
)
from services.planner.cloneset.calc import replicas_of
from services.planner.kit.conditions import get_condition, remove_condition, set_condition
from services.planner.kit.timeutil import parse_time


def progressing(
    cs: CloneSet, status: CloneSetStatus, now: datetime
) -> tuple[list[CloneSetCondition], float | None]:
    """The conditions after evaluating Progressing, and a requeue delay (deadline timer) if any."""
    pds = cs.spec.progress_deadline_seconds
    conditions = list(status.conditions)
    if pds is None or pds == MAX_INT32:
        return remove_condition(conditions, CONDITION_PROGRESSING), None
    replicas = replicas_of(cs)
    existing = get_condition(conditions, CONDITION_PROGRESSING)

    def cond(status_: str, reason: str, message: str) -> CloneSetCondition:
        return CloneSetCondition(type=CONDITION_PROGRESSING, status=status_, reason=reason, message=message)

    if (
        status.current_revision == status.update_revision
        and status.replicas == status.updated_replicas == status.updated_available_replicas == replicas
    ):
        return set_condition(
            conditions, cond("True", REASON_CLONESET_AVAILABLE, "CloneSet is available"), now
        ), None
    if cs.spec.update_strategy.paused:
        return set_condition(
            conditions, cond("True", REASON_CLONESET_PAUSED, "CloneSet is paused"), now
        ), None
    if (
        status.expected_updated_replicas < replicas
        and status.expected_updated_replicas <= status.updated_available_replicas
    ):
        c = cond(
            "True", REASON_PROGRESS_PARTITION_AVAILABLE, "CloneSet has been paused due to partition ready"
        )
        return set_condition(conditions, c, now), None
    if existing is not None:
        last = parse_time(existing.last_update_time)
        if existing.reason == REASON_PROGRESS_DEADLINE_EXCEEDED or (
            last is not None and last + timedelta(seconds=pds) < now
        ):
            msg = f"CloneSet revision {status.update_revision} has timed out progressing"
            return set_condition(conditions, cond("False", REASON_PROGRESS_DEADLINE_EXCEEDED, msg), now), None
    conditions = set_condition(
        conditions, cond("True", REASON_CLONESET_UPDATED, "CloneSet is progressing"), now
    )
    current = get_condition(conditions, CONDITION_PROGRESSING)
    last = parse_time(current.last_update_time) if current is not None else None
    if last is None:
        last = now
    delay = (last + timedelta(seconds=pds) - now).total_seconds() + 1
    return conditions, max(delay, 1.0)
