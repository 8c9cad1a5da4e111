"""Pod predicates shared by every planner module (Kruise's `pkg/util/pods.go`, `cloneset_status.go`).

Kruise has several near-identical notions of "ready"; mixing them up changes rollout pacing, so each one
Kruise uses gets its own function here with the Kruise function it mirrors named in the docstring:

* :func:`is_pod_ready_condition` — Kubernetes ``podutil.IsPodReady`` (used by ActivePods ordering);
* :func:`is_ready` — ``IsPodUpdateReady(pod, 0)``: Running + Ready + InPlaceUpdateReady; lifecycle ignored
  (status.readyReplicas);
* :func:`is_available` — ``sync.IsPodAvailable``: lifecycle "" or Normal + the above held for
  minReadySeconds (availableReplicas, update/scale budgets).

Timestamps in pods are RFC3339 strings parsed by ``timeutil.parse_time`` (cached); no clock is read —
``now`` is always supplied by the caller as a timezone-aware ``datetime``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from schemas.constants import (
    CONDITION_INPLACE_UPDATE_READY,
    CONDITION_READY,
    LABEL_LIFECYCLE_STATE,
    LABEL_SPECIFIED_DELETE,
    STATE_NORMAL,
)
from schemas.kube import Pod
from services.planner.kit.timeutil import parse_time

PHASE_PENDING = "Pending"
PHASE_RUNNING = "Running"
PHASE_SUCCEEDED = "Succeeded"
PHASE_FAILED = "Failed"
PHASE_UNKNOWN = "Unknown"


def lifecycle_state(pod: Pod) -> str:
    """The pod's ``lifecycle.apps.kruise.io/state`` label ("" when absent)."""
    return pod.metadata.labels.get(LABEL_LIFECYCLE_STATE, "")


def is_active(pod: Pod) -> bool:
    """Kubernetes ``controller.IsPodActive``: not Succeeded/Failed and not being deleted."""
    return pod.status.phase not in (PHASE_SUCCEEDED, PHASE_FAILED) and pod.metadata.deletion_timestamp is None


def is_terminating(pod: Pod) -> bool:
    """The pod has a deletionTimestamp."""
    return pod.metadata.deletion_timestamp is not None


def is_scheduled(pod: Pod) -> bool:
    """Bound to a node (``spec.nodeName`` non-empty), the test Kruise uses for "scheduled"."""
    return bool(pod.spec.node_name)


def has_specified_delete_label(pod: Pod) -> bool:
    """``apps.kruise.io/specified-delete`` present with any value (podsToDelete is checked by callers)."""
    return LABEL_SPECIFIED_DELETE in pod.metadata.labels


def is_pod_ready_condition(pod: Pod) -> bool:
    """Kubernetes ``podutil.IsPodReady``: the Ready condition is True (phase not considered)."""
    cond = pod.status.condition(CONDITION_READY)
    return cond is not None and cond.status == "True"


def is_inplace_update_ready(pod: Pod) -> bool:
    """``InPlaceUpdateReady`` condition absent or True (an in-place update in flight makes it False)."""
    cond = pod.status.condition(CONDITION_INPLACE_UPDATE_READY)
    return cond is None or cond.status == "True"


def ready_time(pod: Pod) -> datetime | None:
    """lastTransitionTime of a True Ready condition, else None (Kubernetes' ``podReadyTime``)."""
    cond = pod.status.condition(CONDITION_READY)
    if cond is None or cond.status != "True":
        return None
    return parse_time(cond.last_transition_time)


def is_running_and_available(pod: Pod, min_ready_seconds: int, now: datetime) -> bool:
    """Running and ``podutil.IsPodAvailable``: Ready for *strictly more* than minReadySeconds.

    minReadySeconds 0 means "just ready"; with minReadySeconds > 0 a Ready condition without a
    lastTransitionTime never counts as available (Go's zero-time check).
    """
    if pod.status.phase != PHASE_RUNNING or not is_pod_ready_condition(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = ready_time(pod)
    return since is not None and since + timedelta(seconds=min_ready_seconds) < now


def is_update_ready(pod: Pod, min_ready_seconds: int, now: datetime) -> bool:
    """Kruise ``IsPodUpdateReady``: running-and-available and InPlaceUpdateReady not False."""
    return is_running_and_available(pod, min_ready_seconds, now) and is_inplace_update_ready(pod)


def is_ready(pod: Pod) -> bool:
    """Ready as status.readyReplicas counts it: Running + Ready + InPlaceUpdateReady; lifecycle ignored."""
    return pod.status.phase == PHASE_RUNNING and is_pod_ready_condition(pod) and is_inplace_update_ready(pod)


def is_available(pod: Pod, min_ready_seconds: int, now: datetime) -> bool:
    """Kruise ``sync.IsPodAvailable``: lifecycle "" or Normal, and update-ready for minReadySeconds.

    Any other lifecycle state (PreparingNormal, PreparingUpdate, Updating, Updated, PreparingDelete)
    counts as unavailable for the update/scale budgets (a Kruise quirk) even if the containers are serving.
    """
    state = lifecycle_state(pod)
    if state not in ("", STATE_NORMAL):
        return False
    return is_update_ready(pod, min_ready_seconds, now)


def is_ready_lifecycle_aware(pod: Pod) -> bool:
    """Kruise's ``isPodReady`` in the scale step = ``is_available(pod, 0)`` (lifecycle-aware, no clock)."""
    state = lifecycle_state(pod)
    return state in ("", STATE_NORMAL) and is_ready(pod)


def max_restart_count(pod: Pod) -> int:
    """Highest restartCount among container statuses (0 without statuses)."""
    return max((c.restart_count for c in pod.status.container_statuses), default=0)


def available_in(pod: Pod, min_ready_seconds: int, now: datetime) -> timedelta | None:
    """How long until a ready pod becomes available (for requeue timers); None if not applicable.

    Returns None when the pod is not ready or already available, so callers can take the minimum over
    pods without special cases.
    """
    if min_ready_seconds <= 0 or not is_ready(pod):
        return None
    since = ready_time(pod)
    if since is None:
        return None
    remaining = since + timedelta(seconds=min_ready_seconds) - now
    return remaining if remaining >= timedelta(0) else None
