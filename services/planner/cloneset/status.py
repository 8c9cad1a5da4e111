"""CloneSet status (`pkg/controller/cloneset/cloneset_status.go`) and Kruise's rule for when to write it.

Status is computed from the pods as observed at the start of the pass (like Kruise, which computes it
from the pod list it reconciled, not from the writes it just issued). It is written only when one of the
counted fields, the revisions, the label selector, a higher observedGeneration or the Progressing
condition's status/reason changed — a change of collisionCount or of FailedScale/FailedUpdate alone does
not trigger a write (QUIRK kept on purpose, Kruise's status rules). kruisebus adds one exception: adding or removing its
own ``InvalidSpec`` condition always writes.

The write is a merge patch carrying *every* field explicitly (zeros included): msgspec omits defaults
when encoding, and a merge patch without ``readyReplicas`` would leave a stale non-zero value behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from schemas.cloneset import CloneSet, CloneSetCondition, CloneSetStatus
from schemas.constants import CONDITION_PROGRESSING, STRATEGY_ON_DELETE
from services.planner.cloneset.calc import (
    AVAILABLE,
    READY,
    UPDATED,
    PodInfo,
    histogram,
    partition_of,
    replicas_of,
)
from services.planner.kit.conditions import get_condition
from services.planner.kit.selectors import selector_to_string


def compute_status(
    cs: CloneSet,
    infos: Sequence[PodInfo],
    *,
    update_revision: str,
    current_revision: str,
    collision_count: int,
    conditions: list[CloneSetCondition],
    hist: Sequence[int] | None = None,
) -> CloneSetStatus:
    """``hist``: the pass's class counts (:attr:`calc.Tally.hist`) when already known."""
    replicas = replicas_of(cs)
    ready = available = updated = updated_ready = updated_available = 0
    for code, n in enumerate(histogram(infos) if hist is None else hist):
        if not n:
            continue
        if code & READY:
            ready += n
        if code & AVAILABLE:
            available += n
        if code & UPDATED:
            updated += n
            if code & READY:
                updated_ready += n
            if code & AVAILABLE:
                updated_available += n
    if cs.spec.update_strategy.type == STRATEGY_ON_DELETE:
        expected_updated = replicas
    else:
        expected_updated = replicas - partition_of(cs)
    current = current_revision
    if updated == len(infos) == replicas:
        current = update_revision
    return CloneSetStatus(
        observed_generation=cs.metadata.generation,
        replicas=len(infos),
        ready_replicas=ready,
        available_replicas=available,
        updated_replicas=updated,
        updated_ready_replicas=updated_ready,
        updated_available_replicas=updated_available,
        expected_updated_replicas=expected_updated,
        update_revision=update_revision,
        current_revision=current,
        collision_count=collision_count,
        label_selector=selector_to_string(cs.spec.selector),
        conditions=conditions,
    )


def _progress_key(status: CloneSetStatus) -> tuple[str, str] | None:
    c = get_condition(status.conditions, CONDITION_PROGRESSING)
    return (c.status, c.reason) if c is not None else None


def needs_write(old: CloneSetStatus, new: CloneSetStatus) -> bool:
    """Kruise's trigger list (Kruise's status rules)."""
    return (
        new.observed_generation > old.observed_generation
        or old.replicas != new.replicas
        or old.ready_replicas != new.ready_replicas
        or old.available_replicas != new.available_replicas
        or old.updated_replicas != new.updated_replicas
        or old.updated_ready_replicas != new.updated_ready_replicas
        or old.updated_available_replicas != new.updated_available_replicas
        or old.expected_updated_replicas != new.expected_updated_replicas
        or old.update_revision != new.update_revision
        or old.current_revision != new.current_revision
        or old.label_selector != new.label_selector
        or _progress_key(old) != _progress_key(new)
    )


def condition_json(c: CloneSetCondition) -> dict[str, Any]:
    out: dict[str, Any] = {"type": c.type, "status": c.status}
    if c.reason:
        out["reason"] = c.reason
    if c.message:
        out["message"] = c.message
    if c.last_transition_time:
        out["lastTransitionTime"] = c.last_transition_time
    if c.last_update_time:
        out["lastUpdateTime"] = c.last_update_time
    return out


def status_json(status: CloneSetStatus) -> dict[str, Any]:
    """Every status field, explicitly (see module docstring)."""
    return {
        "observedGeneration": status.observed_generation,
        "replicas": status.replicas,
        "readyReplicas": status.ready_replicas,
        "availableReplicas": status.available_replicas,
        "updatedReplicas": status.updated_replicas,
        "updatedReadyReplicas": status.updated_ready_replicas,
        "updatedAvailableReplicas": status.updated_available_replicas,
        "expectedUpdatedReplicas": status.expected_updated_replicas,
        "updateRevision": status.update_revision,
        "currentRevision": status.current_revision,
        "collisionCount": status.collision_count or 0,
        "labelSelector": status.label_selector,
        "conditions": [condition_json(c) for c in status.conditions],
    }
