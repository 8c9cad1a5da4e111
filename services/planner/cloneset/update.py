"""The update step (`pkg/controller/cloneset/sync/cloneset_update.go`): refresh every pod, then move pods between revisions.

1. Refresh (in-place refresh, the lifecycle hooks): finish in-place grace periods and container batches, initialise/restore the
   ``InPlaceUpdateReady`` condition, advance lifecycle states, back-fill ``pod-template-hash``. A
   lifecycle move or back-fill ends the step (the pass already wrote pod metadata); condition, grace and
   batch writes do not.
2. ``paused`` stops here. `calculateDiffsWithExpectation` with plain revision equality gives ``updateNum`` (positive: towards the
   update revision; negative: rollback to the current revision, only with CloneSetPartitionRollback).
3. Candidates (not on the target revision; not PreparingDelete; not in an in-place grace period unless
   lifecycle Updated), Kruise's ordering (`SortUpdateIndexes` via ``sort.py``), then the `limitUpdateIndexes` budget, checked twice:
   all-revision unavailability (updating an already-unavailable pod is free) and target-revision
   unavailability (every accepted pod counts).
4. Each chosen pod is updated in place (InPlaceIfPossible/InPlaceOnly when `defaultCalculateInPlaceUpdateSpec` allows it; lifecycle
   hooks may park it in PreparingUpdate first) or marked ``specified-delete`` for recreation.

Invariant support: every in-place command tests the pod's current revision label, and its id is
``<cs-uid>/update-in-place/<pod-uid>/<revision>``, so one pod is never updated twice for one revision.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import attrgetter

from schemas.constants import (
    ANNOTATION_INPLACE_GRACE,
    EVENT_FAILED_UPDATE_INPLACE,
    EVENT_FAILED_UPDATE_RECREATE,
    EVENT_SUCCESSFUL_UPDATE_INPLACE,
    EVENT_SUCCESSFUL_UPDATE_RECREATE,
    LABEL_POD_TEMPLATE_HASH,
    LABEL_REVISION_HASH,
    LABEL_SPECIFIED_DELETE,
    STATE_NORMAL,
    STATE_PREPARING_NORMAL,
    STATE_PREPARING_UPDATE,
    STATE_UPDATED,
    STATE_UPDATING,
    STRATEGY_IN_PLACE_ONLY,
)
from schemas.kube import ControllerRevision, Pod
from schemas.messages import (
    VERB_BACKFILL,
    VERB_INPLACE_REFRESH,
    VERB_UPDATE_IN_PLACE,
    VERB_UPDATE_RECREATE,
    ApiOp,
)
from services.planner.cloneset.calc import GRACE_HELD, PRE_DELETE, UPDATED, ExpectationDiffs, PodInfo
from services.planner.cloneset.context import Ctx
from services.planner.cloneset.scale import lifecycle_command
from services.planner.kit import inplace
from services.planner.kit import lifecycle as lc
from services.planner.kit.builder import kube_event
from services.planner.kit.podpatch import PodPatch
from services.planner.kit.revision import short_hash
from services.planner.kit.sort import active_pods_key, sort_update_candidates


@dataclass(slots=True)
class UpdateOutcome:
    error: str = ""  # -> FailedUpdate condition
    updated: list[str] = field(default_factory=list)  # pods an update command was issued for


def update_step(ctx: Ctx) -> UpdateOutcome:
    out = UpdateOutcome()
    pending_ready: dict[str, Pod] = {}
    modified = refresh_all(ctx, pending_ready)
    try:
        if modified or ctx.cs.spec.update_strategy.paused:
            return out
        diffs = ctx.diffs(scaling=False)
        if diffs.update_num == 0:
            return out
        target = ctx.update_rev if diffs.update_num > 0 else ctx.current_rev
        chosen = choose_updates(ctx, diffs, target)
        for info in chosen:
            err = update_pod(ctx, info, target)
            out.updated.append(info.name)
            if err:
                out.error = err
                break
        return out
    finally:
        for name, pod in pending_ready.items():
            if name not in out.updated:
                ready_command(ctx, pod)


# --- refresh ---------------------------------------------------------------------------------------


def refresh_all(ctx: Ctx, pending_ready: dict[str, Pod]) -> bool:
    modified = False
    cs = ctx.cs
    for info in ctx.infos:
        if info.refresh_noop:
            continue
        pod = info.pod
        rev = ctx.revision_for_label(info.revision)
        priorities = ctx.priorities(rev or ctx.update_rev)
        grace = inplace.read_grace(pod) if inplace.grace_annotation(pod) else None
        matches = grace is not None and (
            info.revision == grace.revision or short_hash(info.revision) == short_hash(grace.revision)
        )
        res = inplace.refresh(pod, ctx.now, matches, priorities)
        ctx.b.delay(res.delay)
        if res.patch is not None:
            meta = pod.metadata
            ctx.b.command(
                f"{ctx.b.uid}/inplace-refresh/{meta.uid}/{res.kind}/{meta.resource_version}",
                VERB_INPLACE_REFRESH,
                [ctx.b.pod_json_patch(res.patch)],
                pod=meta.name,
                pod_uid=meta.uid,
                revision=info.revision,
            )
            if res.kind in ("grace-finish", "grace-drop"):
                ctx.b.expect(meta.name, "annotation-absent", ANNOTATION_INPLACE_GRACE)
        if res.set_ready:
            pending_ready[info.name] = pod

        new_state = lifecycle_transition(ctx, info)
        if new_state:
            hook = lc.in_place_update_hook(cs.spec.lifecycle)
            lifecycle_command(
                ctx,
                pod,
                new_state,
                mark_not_ready=hook is not None and hook.mark_pod_not_ready,
                lead_ops=_take_ready(ctx, pending_ready, pod),
            )
            modified = True

        if LABEL_POD_TEMPLATE_HASH not in pod.metadata.labels:
            patch = PodPatch(pod)
            value = short_hash(info.revision)
            patch.set_label(LABEL_POD_TEMPLATE_HASH, value)
            meta = pod.metadata
            ctx.b.command(
                f"{ctx.b.uid}/backfill/{meta.uid}",
                VERB_BACKFILL,
                [*_take_ready(ctx, pending_ready, pod), ctx.b.pod_json_patch(patch)],
                pod=meta.name,
                pod_uid=meta.uid,
                revision=info.revision,
            )
            ctx.b.expect(meta.name, "label", LABEL_POD_TEMPLATE_HASH, value)
            modified = True
    return modified


def _take_ready(ctx: Ctx, pending_ready: dict[str, Pod], pod: Pod) -> list[ApiOp]:
    """The pod's pending InPlaceUpdateReady=True write, to lead another command for the same pod.

    The write is guarded by the observed resourceVersion, so it must run before any other write to the
    pod in this pass; putting it first in the same command guarantees that order.
    """
    if pending_ready.pop(pod.metadata.name, None) is None:
        return []
    return [ctx.b.pod_status_patch(pod, [inplace.ready_condition(ctx.now)])]


def ready_command(ctx: Ctx, pod: Pod) -> None:
    meta = pod.metadata
    ctx.b.command(
        f"{ctx.b.uid}/inplace-refresh/{meta.uid}/ready/{meta.resource_version}",
        VERB_INPLACE_REFRESH,
        [ctx.b.pod_status_patch(pod, [inplace.ready_condition(ctx.now)])],
        pod=meta.name,
        pod_uid=meta.uid,
        revision=meta.labels.get(LABEL_REVISION_HASH, ""),
    )


def lifecycle_transition(ctx: Ctx, info: PodInfo) -> str:
    """refreshPodState's lifecycle moves (the lifecycle hooks); "" when the pod stays where it is."""
    cs = ctx.cs
    life = cs.spec.lifecycle
    pod = info.pod
    state = info.state
    if state == STATE_PREPARING_NORMAL:
        if not pod.spec.node_name:
            return ""
        if life is None or life.pre_normal is None or lc.is_all_hooked(life.pre_normal, pod):
            return STATE_NORMAL
    elif state == STATE_PREPARING_UPDATE:
        if info.updated:
            if life is not None and not lc.is_all_hooked(life.in_place_update, pod):
                return STATE_UPDATED
            return STATE_NORMAL
    elif state == STATE_UPDATING:
        if inplace.pod_update_completed(pod):
            if life is not None and not lc.is_all_hooked(life.in_place_update, pod):
                return STATE_UPDATED
            return STATE_NORMAL
    elif state == STATE_UPDATED:
        if life is None or life.in_place_update is None or lc.is_all_hooked(life.in_place_update, pod):
            return STATE_NORMAL
    return ""


# --- choosing --------------------------------------------------------------------------------------


def choose_updates(ctx: Ctx, diffs: ExpectationDiffs, target: ControllerRevision) -> list[PodInfo]:
    forward = diffs.update_num > 0
    # limit_updates accepts a prefix of at most K candidates (every accepted pod consumes the
    # target-revision budget), so only the first K of the order are needed.
    target_unavailable = _target_unavailable(ctx, target)
    k = min(abs(diffs.update_num), max(diffs.update_max_unavailable - target_unavailable, 0))
    if k == 0:
        return []
    # not on the target revision, not PreparingDelete, not in an in-place grace period unless
    # lifecycle Updated: one test of the pod's class bits
    want = 0 if forward else UPDATED
    candidates = [i for i in ctx.infos if i.code & (UPDATED | PRE_DELETE | GRACE_HELD) == want]
    if not candidates:
        return []
    return limit_updates(ctx, diffs, order_candidates(ctx, candidates, k), target)


def _target_unavailable(ctx: Ctx, target: ControllerRevision) -> int:
    """Unavailable pods already on the target revision (from the pass tally when target = update)."""
    if target is ctx.update_rev:
        return ctx.tally.unavailable_updated
    tname, tshort = target.metadata.name, short_hash(target.metadata.name)
    return sum(
        1 for i in ctx.infos if not i.available and (i.revision == tname or i.revision_short == tshort)
    )


_SORT_KEY = attrgetter("sort_key")


def order_candidates(ctx: Ctx, candidates: list[PodInfo], k: int | None = None) -> list[PodInfo]:
    """`SortUpdateIndexes` order. Without priority/scatter strategies this is ActivePods order with PreparingUpdate
    pods first, using the per-pod memoised key :func:`_update_key` (the sort of thousands of
    candidates is on the rollout's hot path); otherwise ``sort.sort_update_candidates`` does the whole
    composition."""
    strategy = ctx.cs.spec.update_strategy
    if strategy.priority_strategy is None and strategy.scatter_strategy is None:
        for info in candidates:
            if info.sort_key is None:  # memoised with the pod's other facts
                info.sort_key = _update_key(info)
        try:
            ordered = sorted(candidates, key=_SORT_KEY)
        except TypeError:
            # Some keys are tuples (not packable into an int) and some ints: a sort of a mixed list
            # always compares an int with a tuple somewhere (neighbours in the result are compared
            # directly), so this is the only way it can end up mixed. Order every pod by its tuple.
            ordered = sorted(candidates, key=_update_tuple)
        return ordered[:k]
    by_pod = {id(i.pod): i for i in candidates}
    pods = sort_update_candidates([i.pod for i in candidates], ctx.cs.spec.update_strategy,
                                  [i.pod for i in ctx.infos], ctx.now)
    return [by_pod[id(p)] for p in pods]


_FIELD = 1 << 63  # packed key: each criterion in a 64-bit field, offset by 2**63


def _update_tuple(info: PodInfo) -> tuple[float, ...]:
    """(PreparingUpdate first, *ActivePods key) with the five small leading criteria (PreparingUpdate,
    scheduled, phase ordinal 0-2, ready, ready-time present) folded into one mixed-radix number: the
    same total order as the plain tuple."""
    node, phase, ready, has_time, ready_at, restarts, has_created, created = active_pods_key(info.pod)
    first = 0.0 if info.state == STATE_PREPARING_UPDATE else 1.0
    head = (((first * 2.0 + node) * 3.0 + phase) * 2.0 + ready) * 2.0 + has_time
    return (head, ready_at, restarts, has_created, created)


def _update_key(info: PodInfo) -> int | tuple[float, ...]:
    """:func:`_update_tuple` packed into one int when every criterion is a whole number in
    (-2**63, 2**63) - Kubernetes timestamps have whole seconds, restart counts are ints - so each
    comparison in the sort is one int comparison (about 7x faster than comparing tuples of floats,
    and a smaller memo). The packing preserves the order exactly: fields compare most significant
    first, and whole floats convert to ints exactly. Otherwise the tuple itself."""
    key = _update_tuple(info)
    packed = 0
    for x in key:
        try:
            v = int(x)
        except (ValueError, OverflowError):  # nan, inf
            return key
        if v != x or not -_FIELD <= v < _FIELD:
            return key
        packed = (packed << 64) | (v + _FIELD)
    return packed


def limit_updates(
    ctx: Ctx, diffs: ExpectationDiffs, candidates: list[PodInfo], target: ControllerRevision
) -> list[PodInfo]:
    """`limitUpdateIndexes` ``limitUpdateIndexes``: the budget ``updateMaxUnavailable`` checked twice."""
    candidates = candidates[: abs(diffs.update_num)]
    unavailable = ctx.tally.unavailable
    target_unavailable = _target_unavailable(ctx, target)
    accepted = 0
    for info in candidates:
        if target_unavailable + accepted >= diffs.update_max_unavailable:
            break
        if info.available:
            if unavailable >= diffs.update_max_unavailable:
                break
            unavailable += 1
        accepted += 1
    return candidates[:accepted]


# --- per pod ---------------------------------------------------------------------------------------


def update_pod(ctx: Ctx, info: PodInfo, target: ControllerRevision) -> str:
    """Kruise ``updatePod``; returns an error message ("" on success)."""
    cs = ctx.cs
    pod = info.pod
    if ctx.in_place:
        old_rev = ctx.revision_for_label(info.revision)
        spec = ctx.inplace_spec(old_rev, target)
        if spec is not None:
            life = cs.spec.lifecycle
            state = info.state
            if state in ("", STATE_PREPARING_NORMAL, STATE_NORMAL):
                if life is not None and lc.is_hooked(life.in_place_update, pod):
                    hook = life.in_place_update
                    lifecycle_command(
                        ctx,
                        pod,
                        STATE_PREPARING_UPDATE,
                        mark_not_ready=hook is not None and hook.mark_pod_not_ready,
                    )
                    return ""
            elif state == STATE_UPDATED:
                hook = life.in_place_update if life is not None else None
                lifecycle_command(
                    ctx,
                    pod,
                    STATE_PREPARING_UPDATE,
                    mark_not_ready=hook is not None and hook.mark_pod_not_ready,
                    reapply_hook=True,
                )
                return ""
            elif state == STATE_PREPARING_UPDATE:
                if life is not None and lc.is_hooked(life.in_place_update, pod):
                    return ""
            elif state == STATE_UPDATING:
                pass
            else:
                return f"not allowed to in-place update pod {pod.metadata.name} in state {state}"
            start_in_place(ctx, info, target, spec)
            return ""
        if ctx.strategy == STRATEGY_IN_PLACE_ONLY:
            return f"find Pod {pod.metadata.name} update strategy is InPlaceOnly but can not update in-place"
    mark_recreate(ctx, info, target)
    return ""


def start_in_place(ctx: Ctx, info: PodInfo, target: ControllerRevision, spec: inplace.UpdateSpec) -> None:
    pod = info.pod
    meta = pod.metadata
    rname = target.metadata.name
    label_value = ctx.revision_label_value(target)
    spec.revision = label_value
    priorities = ctx.priorities(target)
    patch = inplace.start_update(pod, spec, label_value, short_hash(rname), priorities, ctx.now)
    lc.set_state(patch, STATE_UPDATING, ctx.now)
    ops: list[ApiOp] = []
    if inplace.has_readiness_gate(pod):
        ops.append(ctx.b.pod_status_patch(pod, inplace.start_conditions(pod, ctx.now)))
    ops.append(ctx.b.pod_json_patch(patch))
    ctx.b.command(
        f"{ctx.b.uid}/update-in-place/{meta.uid}/{rname}",
        VERB_UPDATE_IN_PLACE,
        ops,
        pod=meta.name,
        pod_uid=meta.uid,
        revision=rname,
        on_success=kube_event(
            EVENT_SUCCESSFUL_UPDATE_INPLACE, f"successfully update pod {meta.name} in-place(revision {rname})"
        ),
        on_failure=kube_event(
            EVENT_FAILED_UPDATE_INPLACE,
            f"failed to update pod {meta.name} in-place(revision {rname})",
            warning=True,
        ),
    )
    ctx.b.expect(meta.name, "label", LABEL_REVISION_HASH, label_value)
    if spec.grace_seconds > 0:
        ctx.b.delay(float(spec.grace_seconds))


def mark_recreate(ctx: Ctx, info: PodInfo, target: ControllerRevision) -> None:
    pod = info.pod
    meta = pod.metadata
    rname = target.metadata.name
    if LABEL_SPECIFIED_DELETE in meta.labels:
        return
    patch = PodPatch(pod)
    patch.test_label(LABEL_REVISION_HASH)
    patch.set_label(LABEL_SPECIFIED_DELETE, "true")
    ctx.b.command(
        f"{ctx.b.uid}/update-recreate/{meta.uid}/{rname}",
        VERB_UPDATE_RECREATE,
        [ctx.b.pod_json_patch(patch)],
        pod=meta.name,
        pod_uid=meta.uid,
        revision=rname,
        on_success=kube_event(
            EVENT_SUCCESSFUL_UPDATE_RECREATE,
            f"successfully patch pod {meta.name} specified-delete for update(revision {rname})",
        ),
        on_failure=kube_event(
            EVENT_FAILED_UPDATE_RECREATE,
            f"failed to patch pod specified-delete {meta.name} for update(revision {rname})",
            warning=True,
        ),
    )
    ctx.b.expect(meta.name, "label", LABEL_SPECIFIED_DELETE, "true")
