"""The central CloneSet numbers (Kruise's ``calculateDiffsWithExpectation``, `pkg/controller/cloneset/sync/cloneset_sync_utils.go`).

Both the scale step and the update step start from these numbers; they decide how many pods to create
or delete, on which revision, whether to surge, and how many pods to move between revisions under which
unavailability budget. They are kept in one pure function returning an :class:`ExpectationDiffs`, so the
Kruise's TestCalculateDiffsWithExpectation tables can be checked field by field, exactly as Kruise's own unit test does.

Pods are classified once into :class:`PodInfo` (lifecycle state, specified-delete, availability) by
:func:`pod_infos`; the scale step, update step and status reuse that classification instead of
re-deriving it (the decision for a 10,000-pod CloneSet has a 20 ms budget).
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import is_not
from typing import Any

import msgspec

from schemas.cloneset import CloneSet, CloneSetScaleStrategy, CloneSetUpdateStrategy
from schemas.constants import (
    DEFAULT_MAX_UNAVAILABLE,
    LABEL_EXCLUDE_PREPARING_DELETE,
    LABEL_REVISION_HASH,
    LABEL_SPECIFIED_DELETE,
    MAX_INT32,
    STATE_PREPARING_DELETE,
    STATE_PREPARING_UPDATE,
    STATE_UPDATED,
    STRATEGY_ON_DELETE,
)
from schemas.kube import Pod
from services.planner.kit.gates import FeatureGates
from services.planner.kit.inplace import grace_annotation, refresh_is_noop
from services.planner.kit.intstr import IntOrPercentError, partition_replicas, scaled_or_zero
from services.planner.kit.memo import true_positions
from services.planner.kit.podstate import (
    is_active,
    is_ready,
    is_ready_lifecycle_aware,
    lifecycle_state,
    ready_time,
)
from services.planner.kit.revision import short_hash


def max_unavailable_and_surge(strategy: CloneSetUpdateStrategy, replicas: int) -> tuple[int, int]:
    """(maxUnavailable, maxSurge) for one reconcile, as ``calculateDiffsWithExpectation`` derives them.

    maxSurge rounds up and is forced to 0 while paused; maxUnavailable (default "20%") rounds **up** when
    the effective maxSurge is 0 and **down** when it is positive (a Kruise quirk), so surge and unavailability
    never both round in the rollout's favour. ``OnDelete`` (no rolling-update block after conversion)
    means no surge and floor(20%). Unparsable values count as 0, as in Kruise.
    """
    if strategy.type == STRATEGY_ON_DELETE:
        return scaled_or_zero(DEFAULT_MAX_UNAVAILABLE, replicas, False), 0
    max_surge = 0
    if strategy.max_surge is not None:
        max_surge = scaled_or_zero(strategy.max_surge, replicas, True)
        if strategy.paused:
            max_surge = 0
    mu = strategy.max_unavailable if strategy.max_unavailable is not None else DEFAULT_MAX_UNAVAILABLE
    max_unavailable = scaled_or_zero(mu, replicas, max_surge == 0)
    return max_unavailable, max_surge


def scale_max_unavailable(scale_strategy: CloneSetScaleStrategy, replicas: int) -> int:
    """``scaleStrategy.maxUnavailable`` (limits scale-up only): unset means MaxInt32, percents round up."""
    value = scale_strategy.max_unavailable if scale_strategy.max_unavailable is not None else MAX_INT32
    return scaled_or_zero(value, replicas, True)


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
        """The non-zero fields (how Kruise's TestCalculateDiffsWithExpectation writes expected results)."""
        return {f: v for f in self.__struct_fields__ if (v := getattr(self, f)) != 0}


@dataclass(slots=True, eq=False)
class PodInfo:
    """Per-pod facts (pods here are active: no deletionTimestamp, not finished).

    The first group depends only on the pod object and is memoised across passes (see
    :func:`pod_infos`); the second group depends on the CloneSet and ``now`` and is recomputed each pass.
    """

    pod: Pod
    name: str
    uid: str
    active: bool  # not Succeeded/Failed, no deletionTimestamp
    revision: str  # controller-revision-hash label ("" if missing)
    revision_short: str
    state: str  # lifecycle state label ("" if missing)
    sd_label: bool  # apps.kruise.io/specified-delete present
    ready: bool  # phase Running, Ready True, InPlaceUpdateReady absent/True (lifecycle ignored)
    base_available: bool  # lifecycle-aware, minReadySeconds = 0 (the delete filters' "ready")
    ready_since: float | None  # Ready lastTransitionTime (epoch seconds)
    refresh_noop: bool  # the update step's refresh has nothing to do for this pod (time-independent)
    has_grace: bool  # carries an in-place grace annotation
    static_code: int = 0  # READY | PRE_DELETE | PRE_UPDATE | GRACE_HELD bits (see ``code``)
    sort_key: Any = None  # `SortUpdateIndexes` update-order key, computed on demand
    mark: str | None = None  # update revision the per-pass fields below were set for (see mark_updated)
    # per pass
    specified_delete: bool = False
    available: bool = False  # lifecycle-aware, minReadySeconds
    updated: bool = False  # on the update revision (plain equality incl. short hash)
    code: int = 0  # static_code | UPDATED | SPECIFIED | AVAILABLE: the pod's class for the counts

    @property
    def available0(self) -> bool:
        return self.base_available


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


# Bits of PodInfo.code: every count the pass needs (`calculateDiffsWithExpectation` numbers, status, budgets) is a function of
# these, so a pass counts pods per class once (a 128-entry histogram) instead of scanning per consumer.
UPDATED = 1
PRE_DELETE = 2  # lifecycle PreparingDelete
SPECIFIED = 4  # specified-delete (label or podsToDelete)
AVAILABLE = 8  # lifecycle-aware, minReadySeconds
READY = 16  # is_ready (lifecycle ignored)
PRE_UPDATE = 32  # lifecycle PreparingUpdate
GRACE_HELD = 64  # in an in-place grace period (grace annotation) and not lifecycle Updated
N_CODES = 128


@dataclass(slots=True, eq=False)
class _Memo:
    """One CloneSet's memo: facts by pod identity, the previous pass's result, and its tally.

    ``tally`` was taken (by :func:`mark_updated`, for update revision ``tally_stamp``) over the active
    infos of a previous pass; ``added``/``removed`` are the changes of the active infos since then
    (``None``: too many or unknown). A pass where a few pods changed updates the tally from those.
    """

    by_id: dict[int, PodInfo]
    pods: list[Pod] = field(default_factory=list)  # the previous pass's pods
    infos: list[PodInfo] = field(default_factory=list)  # ... their infos (aligned)
    active: list[PodInfo] = field(default_factory=list)  # ... those of active pods (what classify returned)
    reps: dict[str, Pod] = field(default_factory=dict)  # ... one active pod per revision label
    labels: dict[str, int] = field(default_factory=dict)  # ... active pods per revision label
    tally: Tally | None = None
    tally_stamp: str | None = None
    marks_epoch: int = 0  # _foreign_marks when the tally was taken
    added: list[PodInfo] | None = None
    removed: list[PodInfo] | None = None


_MAX_CACHED_CLONESETS = 4096
_foreign_marks = 0  # mark_updated calls on infos other than a memo's active list
_CACHE: OrderedDict[str, _Memo] = OrderedDict()


def pod_facts(pod: Pod) -> PodInfo:
    """The time-independent facts of one pod (uncached)."""
    meta = pod.metadata
    labels = meta.labels
    # interned: the per-pass scans compare and hash these for every pod; one shared object per value
    # keeps those reads in cache instead of touching a string of every pod
    revision = sys.intern(labels.get(LABEL_REVISION_HASH, ""))
    since = ready_time(pod)
    state = sys.intern(lifecycle_state(pod))
    ready = is_ready(pod)
    has_grace = bool(grace_annotation(pod))
    return PodInfo(
        pod=pod,
        name=meta.name,
        uid=meta.uid,
        active=is_active(pod),
        revision=revision,
        revision_short=sys.intern(short_hash(revision)),
        state=state,
        sd_label=LABEL_SPECIFIED_DELETE in labels,
        ready=ready,
        base_available=is_ready_lifecycle_aware(pod),
        ready_since=since.timestamp() if since is not None else None,
        refresh_noop=refresh_is_noop(pod),
        has_grace=has_grace,
        static_code=(READY if ready else 0)
        | (PRE_DELETE if state == STATE_PREPARING_DELETE else 0)
        | (PRE_UPDATE if state == STATE_PREPARING_UPDATE else 0)
        | (GRACE_HELD if has_grace and state != STATE_UPDATED else 0),
    )


@dataclass(slots=True)
class Tally:
    """Counts and short lists gathered while marking a pass's pods (saves further full scans)."""

    specified: list[PodInfo]  # specified-delete (label or podsToDelete)
    pre_delete: list[PodInfo]  # lifecycle PreparingDelete
    unavailable: int  # not available (lifecycle-aware, minReadySeconds), all revisions
    unavailable_updated: int  # ... of which on the update revision
    hist: list[int]  # pods per PodInfo.code


def _lookup(cache: dict[int, PodInfo], pod: Pod) -> PodInfo:
    pid = id(pod)
    info = cache.get(pid)
    if info is None or info.pod is not pod:
        info = cache[pid] = pod_facts(pod)
    return info


def _changed_positions(old: list[Pod], new: Sequence[Pod], limit: int) -> list[int] | None:
    """Positions whose pod is not the same object as before (C-level scans that touch no pod); None
    when the lengths differ or more than ``limit`` changed."""
    if len(old) != len(new):
        return None
    return true_positions(list(map(is_not, old, new)), limit)


def classify(cs: CloneSet, pods: Sequence[Pod], now: datetime) -> tuple[list[PodInfo], list[Pod]]:
    """Active pods' infos for one pass, plus one representative active pod per revision label.

    Pod-only facts are memoised per CloneSet by object identity (``id(pod)`` with an ``is`` check), so a
    service that keeps its decoded Pod objects between passes pays almost nothing for unchanged pods:
    the memo also keeps the previous pass's pods, infos and active infos, one identity scan finds the
    positions whose pod changed, and a few changed pods are patched in place (:func:`_patch`); otherwise
    the lists are rebuilt, matching each pod against the info at its previous position first. This is
    what keeps a 10,000-pod decision within its 20 ms budget. View objects must therefore be treated as
    immutable (replace a Pod, never mutate it). The memo is rebuilt from the current pods whenever it
    holds more than ~1/8 stale entries (so it keeps at most that many replaced pods alive), for at most
    4096 CloneSets. The per-pass fields (updated, specified_delete, available, code) are set by
    :func:`mark_updated` once the update revision is known.

    The returned infos list is the memo's own: callers must not mutate it (the next call may update it
    in place). The representatives only stand for the set of labels in use (history truncation).
    """
    key = cs.metadata.uid or cs.metadata.name
    memo = _CACHE.pop(key, None)
    if memo is None:
        memo = _Memo(by_id={})
    changed = _changed_positions(memo.pods, pods, max(64, len(pods) // 16))
    if changed is None or (changed and not _patch(memo, pods, changed)):
        # something changed since the previous pass (usually a few pods were replaced)
        cache = memo.by_id
        prev = memo.infos
        added = memo.added
        removed = memo.removed
        every: list[PodInfo] = []
        out: list[PodInfo] = []
        add_every = every.append
        append = out.append
        # a pod at its position in the previous pass needs no lookup
        for pod, old in zip(pods, prev, strict=False):
            info = old
            if old.pod is not pod:
                info = _lookup(cache, pod)
                if added is not None and removed is not None and info is not old:
                    if old.active:
                        removed.append(old)
                    if info.active:
                        added.append(info)
            add_every(info)
            if info.active:
                append(info)
        for pod in pods[len(prev) :]:
            info = _lookup(cache, pod)
            add_every(info)
            if info.active:
                append(info)
                if added is not None:
                    added.append(info)
        if removed is not None:
            removed.extend(i for i in prev[len(pods) :] if i.active)
        if added is not None and removed is not None and len(added) + len(removed) > max(64, len(pods) // 16):
            memo.added = memo.removed = None  # cheaper to count afresh
        memo.pods = list(pods)
        memo.infos = every
        memo.active = out
        labels: dict[str, int] = {}
        reps: dict[str, Pod] = {}
        for i in out:
            labels[i.revision] = labels.get(i.revision, 0) + 1
            reps[i.revision] = i.pod
        memo.labels = labels
        memo.reps = reps
    if len(memo.by_id) > len(pods) + max(64, len(pods) // 8):
        # drop entries of replaced/removed pods (every current pod has one by now)
        memo.by_id = {id(i.pod): i for i in memo.infos}
    _CACHE[key] = memo
    while len(_CACHE) > _MAX_CACHED_CLONESETS:
        _CACHE.popitem(last=False)
    # the memo's own list (not a copy: copying touches every info): callers must not mutate it, and
    # it is updated in place by the next call when only a few pods changed
    return memo.active, list(memo.reps.values())


def _patch(memo: _Memo, pods: Sequence[Pod], changed: list[int]) -> bool:
    """Replace the infos at the ``changed`` positions in place (the pods list has the previous pass's
    length and, elsewhere, its objects). Only when every pod involved is active and every pod was
    active before (the active list is then aligned with the pods), and no revision label's
    representative pod leaves while the label stays in use; False (nothing done) otherwise."""
    infos, active = memo.infos, memo.active
    if len(active) != len(infos):
        return False
    new = [_lookup(memo.by_id, pods[i]) for i in changed]
    labels = dict(memo.labels)
    reps = dict(memo.reps)
    for i, info in zip(changed, new, strict=True):
        old = infos[i]
        if not (old.active and info.active):
            return False
        if old.revision != info.revision:
            left = labels[old.revision] = labels[old.revision] - 1
            if not left:
                del labels[old.revision]
                del reps[old.revision]
            elif reps[old.revision] is old.pod:
                return False
            labels[info.revision] = labels.get(info.revision, 0) + 1
            reps.setdefault(info.revision, info.pod)
        elif reps[old.revision] is old.pod:
            reps[old.revision] = info.pod
    added, removed = memo.added, memo.removed
    for i, info in zip(changed, new, strict=True):
        if added is not None and removed is not None:
            removed.append(infos[i])
            added.append(info)
        memo.pods[i] = pods[i]
        infos[i] = active[i] = info
    if added is not None and removed is not None and len(added) + len(removed) > max(64, len(pods) // 16):
        memo.added = memo.removed = None
    memo.labels, memo.reps = labels, reps
    return True


def mark_updated(infos: Sequence[PodInfo], update_revision: str, cs: CloneSet, now: datetime) -> Tally:
    """Set the per-pass fields: updated (plain revision equality incl. short hash), specified_delete
    (label or podsToDelete), available (lifecycle-aware, minReadySeconds); tally what later steps need.

    Without podsToDelete and minReadySeconds the fields depend only on the pod and the update revision,
    so an info already marked for this update revision (``mark``, typically in the previous pass - infos
    are memoised) keeps its fields and only new infos are marked.
    """
    short = short_hash(update_revision)
    min_ready = cs.spec.min_ready_seconds or 0
    names_to_delete = cs.spec.scale_strategy.pods_to_delete
    global _foreign_marks
    memo = _CACHE.get(cs.metadata.uid or cs.metadata.name)
    if memo is None or infos is not memo.active:
        # Infos the memo does not track: they may be shared with a memo's infos, whose marks (and the
        # tallies kept with them) are then no longer to be trusted.
        _foreign_marks += 1
        memo = None
    if min_ready <= 0 and not names_to_delete:
        stamp = sys.intern(update_revision)
        if memo is not None and memo.tally_stamp is stamp and memo.marks_epoch == _foreign_marks:
            tally = _update_tally(memo, stamp, update_revision, short)
            if tally is not None:
                memo.tally = tally
                memo.added, memo.removed = [], []
                return tally
    tally = _mark_all(infos, update_revision, short, min_ready, names_to_delete, now)
    if memo is not None:
        memo.tally = tally
        memo.tally_stamp = sys.intern(update_revision) if min_ready <= 0 and not names_to_delete else None
        memo.marks_epoch = _foreign_marks
        memo.added, memo.removed = [], []
    return tally


def _mark(info: PodInfo, update_revision: str, short: str, stamp: str) -> None:
    """Per-pass fields without podsToDelete and minReadySeconds (a function of the pod and ``stamp``)."""
    updated = info.updated = info.revision == update_revision or info.revision_short == short
    sd = info.specified_delete = info.sd_label
    available = info.available = info.base_available
    info.code = (
        info.static_code
        | (UPDATED if updated else 0)
        | (SPECIFIED if sd else 0)
        | (AVAILABLE if available else 0)
    )
    info.mark = stamp


def _update_tally(memo: _Memo, stamp: str, update_revision: str, short: str) -> Tally | None:
    """The memo's tally moved by the changes since it was taken; None when it must be recounted (too
    many or unknown changes, or a specified-delete/PreparingDelete pod is involved: those lists are
    kept in pod order)."""
    old = memo.tally
    added, removed = memo.added, memo.removed
    if old is None or added is None or removed is None or old.specified or old.pre_delete:
        return None
    hist = list(old.hist)
    for info in removed:
        if info.mark is not stamp:  # re-marked for another revision since: its count is unknown
            return None
        hist[info.code] -= 1
    for info in added:
        if info.mark is not stamp:
            _mark(info, update_revision, short, stamp)
        if info.code & (SPECIFIED | PRE_DELETE):
            return None
        hist[info.code] += 1
    return _tally([], [], hist)


def _tally(specified: list[PodInfo], pre_delete: list[PodInfo], hist: list[int]) -> Tally:
    unavailable = unavailable_updated = 0
    for code, n in enumerate(hist):
        if n and not code & AVAILABLE:
            unavailable += n
            if code & UPDATED:
                unavailable_updated += n
    return Tally(
        specified=specified,
        pre_delete=pre_delete,
        unavailable=unavailable,
        unavailable_updated=unavailable_updated,
        hist=hist,
    )


def _mark_all(
    infos: Sequence[PodInfo],
    update_revision: str,
    short: str,
    min_ready: int,
    names_to_delete: Sequence[str],
    now: datetime,
) -> Tally:
    specified: list[PodInfo] = []
    pre_delete: list[PodInfo] = []
    hist = [0] * N_CODES
    if min_ready <= 0 and not names_to_delete:
        stamp = sys.intern(update_revision)
        for info in infos:
            if info.mark is not stamp:
                _mark(info, update_revision, short, stamp)
            code = info.code
            hist[code] += 1
            if code & (SPECIFIED | PRE_DELETE):
                if code & SPECIFIED:
                    specified.append(info)
                if code & PRE_DELETE:
                    pre_delete.append(info)
    else:
        to_delete = set(names_to_delete)
        now_ts = now.timestamp()
        for info in infos:
            updated = info.updated = info.revision == update_revision or info.revision_short == short
            sd = info.specified_delete = info.sd_label or (info.name in to_delete if to_delete else False)
            if min_ready <= 0:
                available = info.available = info.base_available
            else:
                since = info.ready_since
                available = info.available = (
                    info.base_available and since is not None and since + min_ready < now_ts
                )
            code = info.code = (
                info.static_code
                | (UPDATED if updated else 0)
                | (SPECIFIED if sd else 0)
                | (AVAILABLE if available else 0)
            )
            info.mark = None
            hist[code] += 1
            if sd:
                specified.append(info)
            if code & PRE_DELETE:
                pre_delete.append(info)
    return _tally(specified, pre_delete, hist)


def histogram(infos: Sequence[PodInfo]) -> list[int]:
    """Pods per class (:attr:`PodInfo.code`), derived from the infos' fields."""
    hist = [0] * N_CODES
    for i in infos:
        hist[
            (UPDATED if i.updated else 0)
            | (PRE_DELETE if i.state == STATE_PREPARING_DELETE else 0)
            | (SPECIFIED if i.specified_delete else 0)
            | (AVAILABLE if i.available else 0)
            | (READY if i.ready else 0)
            | (PRE_UPDATE if i.state == STATE_PREPARING_UPDATE else 0)
            | (GRACE_HELD if i.has_grace and i.state != STATE_UPDATED else 0)
        ] += 1
    return hist


def pod_infos(cs: CloneSet, pods: Sequence[Pod], update_revision: str, now: datetime) -> list[PodInfo]:
    """:func:`classify` + :func:`mark_updated` (inactive pods are dropped)."""
    infos, _ = classify(cs, pods, now)
    mark_updated(infos, update_revision, cs, now)
    return infos


def calculate(
    cs: CloneSet,
    infos: Sequence[PodInfo],
    current_revision: str,
    update_revision: str,
    gates: FeatureGates,
    *,
    scaling: bool,
    hist: Sequence[int] | None = None,
) -> ExpectationDiffs:
    """`calculateDiffsWithExpectation` on pre-classified pods (see :func:`calculate_diffs` for the convenient form).

    ``scaling`` selects the scale step's is-updated predicate: with PreparingUpdateAsUpdate, pods in
    lifecycle PreparingUpdate count as updated there (never for the update step). ``hist``: the pass's
    class counts (:attr:`Tally.hist`) when already known, else derived from ``infos``.
    """
    replicas = replicas_of(cs)
    partition = partition_of(cs)
    max_unavailable, max_surge = max_unavailable_and_surge(cs.spec.update_strategy, replicas)
    scale_mu = scale_max_unavailable(cs.spec.scale_strategy, replicas)

    new_active = old_active = 0
    to_delete_new = to_delete_old = 0
    unavailable_new = unavailable_old = 0
    pre_deleting_new = pre_deleting_old = 0
    new_count = old_count = 0
    new_bits = UPDATED | PRE_UPDATE if scaling and gates.preparing_update_as_update else UPDATED
    for code, n in enumerate(histogram(infos) if hist is None else hist):
        if not n:
            continue
        new = bool(code & new_bits)
        if new:
            new_count += n
        else:
            old_count += n
        if code & PRE_DELETE:
            if new:
                pre_deleting_new += n
            else:
                pre_deleting_old += n
            continue
        if new:
            new_active += n
        else:
            old_active += n
        if code & SPECIFIED:
            if new:
                to_delete_new += n
            else:
                to_delete_old += n
        elif not code & AVAILABLE:
            if new:
                unavailable_new += n
            else:
                unavailable_old += n

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
    """`calculateDiffsWithExpectation` for ``pods`` (the active pods): ``scaling`` selects the scale step's is-updated predicate."""
    infos = pod_infos(cs, pods, update_revision, now)
    return calculate(cs, infos, current_revision, update_revision, gates, scaling=scaling)
