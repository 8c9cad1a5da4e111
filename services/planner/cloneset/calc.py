"""The central CloneSet numbers (kruise-semantics §4.1, Kruise's ``calculateDiffsWithExpectation``).

Both the scale step and the update step start from these numbers; they decide how many pods to create
or delete, on which revision, whether to surge, and how many pods to move between revisions under which
unavailability budget. They are kept in one pure function returning an :class:`ExpectationDiffs`, so the
§11.A tables can be checked field by field, exactly as Kruise's own unit test does.

Pods are classified once into :class:`PodInfo` (lifecycle state, specified-delete, availability) by
:func:`pod_infos`; the scale step, update step and status reuse that classification instead of
re-deriving it (the decision for a 10,000-pod CloneSet has a 20 ms budget).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import msgspec

from schemas.cloneset import CloneSet
from schemas.constants import (
    LABEL_EXCLUDE_PREPARING_DELETE,
    LABEL_SPECIFIED_DELETE,
    STATE_PREPARING_DELETE,
    STATE_PREPARING_UPDATE,
)
from schemas.kube import Pod
from services.planner.cloneset.gates import FeatureGates
from services.planner.cloneset.intstr import (
    IntOrPercentError,
    max_unavailable_and_surge,
    partition_replicas,
    scale_max_unavailable,
)
from services.planner.cloneset.podstate import is_available, is_ready, lifecycle_state
from services.planner.cloneset.revision import is_pod_updated


class ExpectationDiffs(msgspec.Struct, kw_only=True):
    """Kruise's ``expectationDiffs``; all zero means "nothing to do"."""

    scale_up_num: int = 0
    scale_up_num_old_revision: int = 0
    scale_up_limit: int = 0
    scale_down_num: int = 0
    scale_down_num_old_revision: int = 0
    delete_ready_limit: int = 0
    use_surge: int = 0
    use_surge_old_revision: int = 0
    update_num: int = 0
    update_max_unavailable: int = 0

    def nonzero(self) -> dict[str, int]:
        """The non-zero fields (how §11.A writes expected results)."""
        return {f: v for f in self.__struct_fields__ if (v := getattr(self, f)) != 0}


@dataclass(slots=True)
class PodInfo:
    """Per-pod facts derived once per plan (pods here are active: no deletionTimestamp, not finished)."""

    pod: Pod
    name: str
    uid: str
    revision: str  # controller-revision-hash label ("" if missing)
    state: str  # lifecycle state label ("" if missing)
    specified_delete: bool
    ready: bool  # phase Running, Ready True, InPlaceUpdateReady absent/True (lifecycle ignored)
    available: bool  # lifecycle-aware, minReadySeconds
    available0: bool  # lifecycle-aware, minReadySeconds = 0 (the delete filters' "ready")
    updated: bool  # on the update revision (plain equality incl. short hash)


def replicas_of(cs: CloneSet) -> int:
    r = cs.spec.replicas
    if r is None:
        return 1
    return int(r)


def partition_of(cs: CloneSet) -> int:
    """Partition replicas; a parse error counts as 0 (Kruise logs it and carries on)."""
    try:
        return partition_replicas(cs.spec.update_strategy.partition, replicas_of(cs))
    except IntOrPercentError:
        return 0


def exclude_preparing_delete(cs: CloneSet) -> bool:
    return cs.metadata.labels.get(LABEL_EXCLUDE_PREPARING_DELETE) == "true"


def pod_infos(cs: CloneSet, pods: Sequence[Pod], update_revision: str, now: datetime) -> list[PodInfo]:
    min_ready = cs.spec.min_ready_seconds or 0
    to_delete = set(cs.spec.scale_strategy.pods_to_delete)
    out: list[PodInfo] = []
    for pod in pods:
        meta = pod.metadata
        labels = meta.labels
        available = is_available(pod, min_ready, now)
        available0 = available if min_ready == 0 else is_available(pod, 0, now)
        out.append(
            PodInfo(
                pod=pod,
                name=meta.name,
                uid=meta.uid,
                revision=labels.get("controller-revision-hash", ""),
                state=lifecycle_state(pod),
                specified_delete=LABEL_SPECIFIED_DELETE in labels or meta.name in to_delete,
                ready=is_ready(pod),
                available=available,
                available0=available0,
                updated=is_pod_updated(pod, update_revision),
            )
        )
    return out


def scaling_updated(gates: FeatureGates) -> Callable[[PodInfo], bool]:
    """The scale step's "is this pod new?" (PreparingUpdateAsUpdate also counts PreparingUpdate pods)."""
    if gates.preparing_update_as_update:
        return lambda i: i.updated or i.state == STATE_PREPARING_UPDATE
    return lambda i: i.updated


def updating_updated(_gates: FeatureGates) -> Callable[[PodInfo], bool]:
    return lambda i: i.updated


def calculate(
    cs: CloneSet,
    infos: Sequence[PodInfo],
    current_revision: str,
    update_revision: str,
    is_new: Callable[[PodInfo], bool],
    gates: FeatureGates,
) -> ExpectationDiffs:
    """§4.1 on pre-classified pods (see :func:`calculate_diffs` for the convenient form)."""
    replicas = replicas_of(cs)
    partition = partition_of(cs)
    max_unavailable, max_surge = max_unavailable_and_surge(cs.spec.update_strategy, replicas)
    scale_mu = scale_max_unavailable(cs.spec.scale_strategy, replicas)

    new_active = old_active = 0
    to_delete_new = to_delete_old = 0
    unavailable_new = unavailable_old = 0
    pre_deleting_new = pre_deleting_old = 0
    new_count = old_count = 0
    for info in infos:
        new = is_new(info)
        if new:
            new_count += 1
        else:
            old_count += 1
        if info.state == STATE_PREPARING_DELETE:
            if new:
                pre_deleting_new += 1
            else:
                pre_deleting_old += 1
            continue
        if new:
            new_active += 1
        else:
            old_active += 1
        if info.specified_delete:
            if new:
                to_delete_new += 1
            else:
                to_delete_old += 1
        elif not info.available:
            if new:
                unavailable_new += 1
            else:
                unavailable_old += 1

    res = ExpectationDiffs()
    update_old_diff = old_active - partition
    update_new_diff = new_active - (replicas - partition)
    total_unavailable = pre_deleting_new + pre_deleting_old + unavailable_new + unavailable_old
    if update_revision == current_revision or not gates.clone_set_partition_rollback:
        update_old_diff = max(update_old_diff, 0)
        update_new_diff = min(update_new_diff, 0)

    if max_surge > 0:
        to_delete = to_delete_new + to_delete_old
        scale_surge = scale_old_surge = 0
        if to_delete > 0:
            scale_surge = min(max(total_unavailable + to_delete - max_unavailable, 0), to_delete)
            if scale_surge > to_delete_new:
                scale_old_surge = scale_surge - to_delete_new
        update_surge = update_old_surge = 0
        if (update_old_diff > 0 > update_new_diff) or (update_old_diff < 0 < update_new_diff):
            if abs(update_old_diff) <= abs(update_new_diff):
                update_surge = abs(update_old_diff)
                if update_old_diff < 0:
                    update_old_surge = update_surge
            else:
                update_surge = abs(update_new_diff)
                if update_new_diff > 0:
                    update_old_surge = update_surge
        if scale_surge >= update_surge:
            res.use_surge = min(max_surge, scale_surge)
            res.use_surge_old_revision = min(res.use_surge, scale_old_surge)
        else:
            res.use_surge = min(max_surge, update_surge)
            res.use_surge_old_revision = min(res.use_surge, update_old_surge)

    current_total = len(infos)
    current_total_old = old_count
    if exclude_preparing_delete(cs):
        current_total -= pre_deleting_new + pre_deleting_old
        current_total_old -= pre_deleting_old
    expected_total = replicas + res.use_surge
    expected_total_old = partition + res.use_surge_old_revision

    if expected_total - current_total > 0:
        res.scale_up_num = expected_total - current_total
        res.scale_up_num_old_revision = max(expected_total_old - current_total_old, 0)
        res.scale_up_limit = min(res.scale_up_num, max(scale_mu - total_unavailable, 0))
    elif current_total - to_delete_old - to_delete_new - expected_total > 0:
        res.scale_down_num = current_total - to_delete_old - to_delete_new - expected_total
        res.scale_down_num_old_revision = max(current_total_old - to_delete_old - expected_total_old, 0)

    if to_delete_new + to_delete_old > 0 or res.scale_down_num > 0:
        res.delete_ready_limit = max(max_unavailable + (len(infos) - replicas) - total_unavailable, 0)

    if abs(update_old_diff) <= abs(update_new_diff):
        res.update_num = update_old_diff
    else:
        res.update_num = -update_new_diff
    if res.update_num != 0:
        res.update_max_unavailable = max_unavailable + len(infos) - replicas
    return res


def calculate_diffs(
    cs: CloneSet,
    pods: Sequence[Pod],
    current_revision: str,
    update_revision: str,
    *,
    now: datetime,
    gates: FeatureGates,
    scaling: bool = True,
) -> ExpectationDiffs:
    """§4.1 for ``pods`` (the active pods): ``scaling`` selects the scale step's is-updated predicate."""
    infos = pod_infos(cs, pods, update_revision, now)
    pred = scaling_updated(gates) if scaling else updating_updated(gates)
    return calculate(cs, infos, current_revision, update_revision, pred, gates)
