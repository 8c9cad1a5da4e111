"""``plan_daemonset``: one Advanced DaemonSet reconcile (`pkg/controller/daemonset/`) as a pure function.

A pass, in Kruise's order (`syncDaemonSet`): validation; the `SelectingAll` guard; revisions (the
template's ControllerRevision, created first when missing: no pod may name a revision the API server
has not stored); **manage** (one pod per node that should run one, failed / duplicate / misscheduled pods
deleted, surge clean-up); then, only when manage wrote nothing (a real cluster has not observed those
writes yet), the in-place refresh and the **rolling update** (window by partition and node selector,
Standard within maxUnavailable, surge within maxSurge, InPlaceIfPossible through `kit.inplace`); status.
Which nodes should run a pod is `schemas.placement.daemon_should_run`, shared with the sim's scheduler.

Pods are pinned with a required `matchFields metadata.name In [<node>]` term and left to the scheduler
(`--assign-pods-by-scheduler=true`). Their names are `<ds>-<5 characters>` derived from the DaemonSet's
uid, the node and a counter, so a restarted planner plans the same names (Kruise lets the API server
generate them). Kruise picks which window nodes go first by Go map order (random); kruisebus takes
them in window order, so the same view always gives the same plan.

A pass at 5,000 nodes has a 20 ms budget, so what it asks of each pod and node is memoised between passes
(`kit.memo`: the same object at the same resourceVersion), and the pods grouped by node with what is
derived from them are kept, or patched when a few pods or nodes were replaced. The plan is a function of
the view alone: `tests/unit/planner/daemonset/test_memo.py` checks it against passes from a cold memo.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

import msgspec

from schemas.constants import (
    ANNOTATION_DS_PROGRESSIVE_CREATE,
    ANNOTATION_DS_TEMPLATE_GENERATION,
    CONDITION_INPLACE_UPDATE_READY,
    DS_OWNER_API_VERSION,
    DS_ROLLING_UPDATE,
    EVENT_FAILED_CREATE,
    EVENT_FAILED_DAEMON_POD,
    EVENT_FAILED_DELETE,
    EVENT_FAILED_UPDATE_INPLACE,
    EVENT_SELECTING_ALL,
    EVENT_SUCCESSFUL_CREATE,
    EVENT_SUCCESSFUL_DELETE,
    EVENT_SUCCESSFUL_UPDATE_INPLACE,
    FIELD_NODE_NAME,
    KIND_DAEMONSET,
    LABEL_LIFECYCLE_STATE,
    LABEL_POD_TEMPLATE_GENERATION,
    LABEL_REVISION_HASH,
    SAFE_ALPHABET,
    STATE_PREPARING_DELETE,
    STRATEGY_IN_PLACE_IF_POSSIBLE,
)
from schemas.daemonset import DaemonSet, DaemonSetSpec, DaemonSetStatus, RollingUpdateDaemonSet
from schemas.imagepulljob import ImagePullJob
from schemas.kinds import DAEMONSET
from schemas.kube import (
    ControllerRevision,
    JsonObject,
    Node,
    OwnerReference,
    Pod,
    PodPlacementView,
    Toleration,
)
from schemas.messages import (
    VERB_ADOPT,
    VERB_BACKFILL,
    VERB_CREATE,
    VERB_DELETE,
    VERB_EVENT,
    VERB_INPLACE_REFRESH,
    VERB_LIFECYCLE,
    VERB_REVISION_BUMP,
    VERB_REVISION_CREATE,
    VERB_REVISION_DELETE,
    VERB_STATUS,
    VERB_UPDATE_IN_PLACE,
    ApiOp,
)
from schemas.placement import DaemonFit, daemon_should_run, daemon_tolerations, target_node
from services.planner.daemonset import predownload
from services.planner.daemonset.backoff import BackoffEntry, FailedPodBackoff, backoff_key
from services.planner.daemonset.validation import defaulted, validate_daemonset, validate_update
from services.planner.kit import inplace
from services.planner.kit import lifecycle as lc
from services.planner.kit.budget import BUDGET_FREE, Counted, Evidence
from services.planner.kit.builder import Builder, kube_event, short_digest
from services.planner.kit.fielderrors import FieldError, errors_message
from services.planner.kit.gates import FeatureGates
from services.planner.kit.gcpause import gc_paused
from services.planner.kit.intstr import IntOrPercentError, scaled_int_percent, scaled_or_zero
from services.planner.kit.memo import MemoRegistry, ObjectMemo
from services.planner.kit.plan import Plan
from services.planner.kit.podpatch import PodPatch
from services.planner.kit.podstate import is_pod_ready_condition, ready_time
from services.planner.kit.revision import (
    comparable_bytes,
    hash_revision,
    new_revision,
    owned_revisions,
    revision_bytes,
    revision_name,
    short_hash,
    template_of,
    template_patch_data,
    truncate_history,
)
from services.planner.kit.selectors import matches
from services.planner.kit.timeutil import parse_time

__all__ = ["DsPlan", "max_numbers", "plan_daemonset", "pod_name"]

_EPOCH: Final = datetime.min.replace(tzinfo=UTC)


class DsPlan(Plan[DaemonSetStatus], kw_only=True):
    """A DaemonSet pass; besides the common plan, what `kruisebus plan` shows."""

    created: list[tuple[str, str]] = []  # (pod, node)
    deleted: list[str] = []
    updated_in_place: list[str] = []
    jobs: list[JsonObject] = []  # ImagePullJobs created
    backoff: dict[str, BackoffEntry] = {}  # the failed-pod backoff to hand to the next pass (`backoff.py`)
    adopted: list[str] = []  # orphan pods given the DaemonSet's controller reference
    relabelled: list[str] = []  # pods whose revision label the deduplication of revisions rewrites
    revisions_deleted: list[str] = []  # revisions that duplicate the current one, deleted


def pod_name(ds: DaemonSet, node: str, taken: set[str]) -> str:
    """`<ds>-<5 characters>`: the first candidate k = 0, 1, ... of sha256(`<uid>/<node>/<k>`) no pod in
    the view uses (a replacement on the same node gets a fresh name while the old pod terminates)."""
    k = 0
    n = len(SAFE_ALPHABET)
    while True:
        digest = hashlib.sha256(f"{ds.metadata.uid}/{node}/{k}".encode()).digest()
        name = f"{ds.metadata.name[:57]}-{''.join(SAFE_ALPHABET[b % n] for b in digest[:5])}"
        if name not in taken:
            taken.add(name)
            return name
        k += 1


# --- pod facts -------------------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class _PodFacts:
    """What a pass asks of one pod, a function of the pod object alone (memoised between passes)."""

    pod: Pod
    node: str  # target_node: spec.nodeName, else the pinned node ("" when neither)
    bound: bool  # spec.nodeName set
    terminating: bool  # deletionTimestamp set
    failed: bool  # phase Failed
    preparing_delete: bool  # lifecycle state PreparingDelete
    ready: bool  # Ready condition True (phase ignored)
    base_available: bool  # ready, and not held by an InPlaceUpdateReady gate whose condition is not True
    since: datetime | None  # lastTransitionTime of the True Ready condition
    age: tuple[int, datetime, str]  # oldest first: scheduled before unscheduled, creationTimestamp, name
    hash: str | None  # controller-revision-hash label
    generation: str | None  # pod-template-generation label
    gated: bool  # has readiness gates (the in-place refresh looks at it)


def _pod_facts(pod: Pod) -> _PodFacts:
    meta, spec = pod.metadata, pod.spec
    ready = is_pod_ready_condition(pod)
    gate = any(g.condition_type == CONDITION_INPLACE_UPDATE_READY for g in spec.readiness_gates)
    cond = pod.status.condition(CONDITION_INPLACE_UPDATE_READY) if gate else None
    labels = meta.labels
    return _PodFacts(
        pod=pod, node=target_node(spec.node_name, spec.affinity), bound=bool(spec.node_name),
        terminating=meta.deletion_timestamp is not None, failed=pod.status.phase == "Failed",
        preparing_delete=labels.get(LABEL_LIFECYCLE_STATE) == STATE_PREPARING_DELETE, ready=ready,
        base_available=ready and not (cond is not None and cond.status != "True"),
        since=ready_time(pod) if ready else None,
        age=(0 if spec.node_name else 1, parse_time(meta.creation_timestamp) or _EPOCH, meta.name),
        hash=labels.get(LABEL_REVISION_HASH), generation=labels.get(LABEL_POD_TEMPLATE_GENERATION),
        gated=bool(spec.readiness_gates))


# Pod facts by DaemonSet, node fits by DaemonSet and placement (kit.memo: reused while the object is the
# same one at the same resourceVersion), so a pass over 5,000 unchanged nodes recomputes nothing per node.
_POD_FACTS: MemoRegistry[Pod, _PodFacts] = MemoRegistry(limit=1024)
_NODE_FITS: MemoRegistry[Node, tuple[str, DaemonFit]] = MemoRegistry(limit=1024)


def _age(f: _PodFacts) -> tuple[int, datetime, str]:
    return f.age


def _preparing_delete(pod: Pod) -> bool:
    return pod.metadata.labels.get(LABEL_LIFECYCLE_STATE) == STATE_PREPARING_DELETE


@dataclass(slots=True, eq=False)
class _Grouped:
    """The pods by target node (oldest first) and the orphans, derived from one list of pod facts and
    one of node fits (kept in the pod memo while neither list changes)."""

    nodes: object  # the node memo and its version the fits came from
    version: int
    fits: dict[str, DaemonFit]
    by_node: dict[str, list[_PodFacts]]
    orphans: list[Pod]  # target a node that does not exist and are not bound
    found: dict[tuple[str, str | None], dict[str, _NodePods]] = field(default_factory=dict)  # by (hash, generation)
    counts: dict[tuple[str, str | None], tuple[int, ...]] = field(default_factory=dict)  # _status's, minReadySeconds 0
    names: dict[bool, list[str]] = field(default_factory=dict)  # the window's nodes by DaemonSetPruneIneligibleNodes
    pods_version: int = -1  # the pod memo's version this grouping is for


def _node_counts(fit: DaemonFit, group: list[_PodFacts] | None, hash_: str, gen: str | None) -> tuple[int, ...]:
    """One node's share of `_counts` without minReadySeconds."""
    if not fit.should_run:
        return (0, 0, 1 if group else 0, 0, 0, 0)
    if not group:
        return (1, 0, 0, 0, 0, 0)
    oldest = group[0]
    updated = oldest.hash == hash_ or (gen is not None and oldest.generation == gen)
    return (1, 1, 0, int(oldest.ready), int(oldest.base_available), int(updated))


def _current(grouped: _Grouped, node_memo: ObjectMemo[Node, tuple[str, DaemonFit]],
             pod_memo: ObjectMemo[Pod, _PodFacts]) -> bool:
    """Whether the grouping still holds for this pass, patched if need be: nodes replaced by new versions
    with the same verdict (a heartbeat, an irrelevant label) change nothing in it; a few pods replaced on
    the same node are patched in (`_regroup`)."""
    if grouped.nodes is not node_memo:
        return False
    if grouped.version != node_memo.version:
        changes = node_memo.changes
        if grouped.version != node_memo.version - 1 or changes is None or any(o != n for _, o, n in changes):
            return False
        grouped.version = node_memo.version
    if grouped.pods_version != pod_memo.version:
        changes_ = pod_memo.changes
        if grouped.pods_version != pod_memo.version - 1 or changes_ is None or not _regroup(grouped, changes_):
            return False
    return True


def _regroup(grouped: _Grouped, changes: list[tuple[int, _PodFacts, _PodFacts]]) -> bool:
    """Patch the grouping for pods replaced by a new version on the same existing node (the common
    change during a rollout); False (and the grouping must be rebuilt) for anything else."""
    fits, by_node = grouped.fits, grouped.by_node
    before: dict[str, list[_PodFacts]] = {}
    for _, old, new in changes:
        node = old.node
        if not node or new.node != node or node not in fits:
            return False
        group = by_node.get(node)
        if group is None:
            return False
        at = next((k for k, f in enumerate(group) if f is old), None)
        if at is None:
            return False
        if node not in before:
            before[node] = list(group)
        group[at] = new
    for node in before:
        group = by_node[node]
        if len(group) > 1:
            group.sort(key=_age)
            if any(a.age == b.age for a, b in zip(group, group[1:], strict=False)):
                return False  # equal keys keep the view's order: rebuild
    for found in grouped.found.values():
        for node in before:
            found.pop(node, None)
    for (hash_, gen), counts in list(grouped.counts.items()):
        total = list(counts)
        for node, old_group in before.items():
            fit = fits[node]
            for k, (a, b) in enumerate(zip(_node_counts(fit, old_group, hash_, gen),
                                           _node_counts(fit, by_node[node], hash_, gen), strict=True)):
                total[k] += b - a
        grouped.counts[(hash_, gen)] = tuple(total)
    return True


def _group(facts: Sequence[_PodFacts], fits: dict[str, DaemonFit], nodes: object, version: int) -> _Grouped:
    by_node: dict[str, list[_PodFacts]] = {}
    orphans: list[Pod] = []
    crowded: list[list[_PodFacts]] = []  # groups of more than one pod
    for f in facts:
        node = f.node
        if not node:
            continue
        if node not in fits:
            if not f.bound and not f.terminating:
                orphans.append(f.pod)
            continue
        group = by_node.get(node)
        if group is None:
            by_node[node] = [f]
        else:
            if len(group) == 1:
                crowded.append(group)
            group.append(f)
    for group in crowded:
        group.sort(key=_age)
    return _Grouped(nodes, version, fits, by_node, orphans)


def _available(f: _PodFacts, min_ready: int, now: datetime) -> bool:
    """Ready for more than minReadySeconds (phase ignored) and, with the InPlaceUpdateReady gate and its
    condition present, that condition True (an in-place update in flight is unavailable)."""
    if not f.base_available:
        return False
    if min_ready <= 0:
        return True
    since = f.since
    return since is not None and since + timedelta(seconds=min_ready) < now


def _available_in(f: _PodFacts, min_ready: int, now: datetime) -> float | None:
    if min_ready <= 0 or not f.ready:
        return None
    since = f.since
    if since is None:
        return None
    left = (since + timedelta(seconds=min_ready) - now).total_seconds()
    return left + 0.001 if left >= 0 else None


@dataclass(slots=True)
class _Ctx:
    ds: DaemonSet
    spec: DaemonSetSpec
    b: Builder
    now: datetime
    gates: FeatureGates
    hash: str
    cur: ControllerRevision
    history: list[ControllerRevision]
    template_generation: str | None
    owner: OwnerReference
    pods: Sequence[Pod]
    nodes: Sequence[Node]
    backoff: FailedPodBackoff
    taken: set[str] | None = None  # pod names in the view, built on the first create
    grouped: _Grouped | None = None
    found: dict[str, _NodePods] = field(default_factory=dict)  # findUpdatedPodsOnNode, once per node and pass
    creates: list[tuple[str, str]] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    in_place: list[str] = field(default_factory=list)
    jobs: list[JsonObject] = field(default_factory=list)  # ImagePullJobs created (pre-download)
    evidence: dict[str, Evidence] = field(default_factory=dict)  # by pod uid: the rolling update's budget

    def updated(self, f: _PodFacts) -> bool:
        """`IsPodUpdated`: hash label equal, or the template-generation label when the DS carries one."""
        if f.hash == self.hash:
            return True
        gen = self.template_generation
        return gen is not None and f.generation == gen


# --- the pass --------------------------------------------------------------------------------------


@gc_paused
def plan_daemonset(ds: DaemonSet, pods: Sequence[Pod], nodes: Sequence[Node], revisions: Sequence[ControllerRevision],
                   *, now: datetime, gates: FeatureGates, previous: DaemonSet | None = None,
                   create_limit: int | None = None, jobs: Sequence[ImagePullJob] = (),
                   backoff: Mapping[str, BackoffEntry] | None = None, orphans: Sequence[Pod] = ()) -> DsPlan:
    """One reconcile at `now` over the DaemonSet, its pods, every Node, the namespace's revisions and the
    ImagePullJobs it controls. `backoff` is the failed-pod backoff the last pass returned (`DsPlan.backoff`);
    `orphans` are pods of the namespace without a controller reference that the selector matches: they
    are adopted and counted with the DaemonSet's pods in this pass (Kruise's `ClaimPods`)."""
    now = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    b = Builder.of(DAEMONSET, ds, now)
    kept = dict(backoff or {})
    selector = ds.spec.selector
    if selector is not None and not selector.match_labels and not selector.match_expressions:
        # the controller's guard (a DaemonSet that bypassed the webhook): warn, act on nothing
        b.command(f"{b.uid}/selecting-all/{ds.metadata.generation}", VERB_EVENT, [], on_success=kube_event(
            EVENT_SELECTING_ALL, "This DaemonSet is selecting all pods. A non-empty selector is required.",
            warning=True))
        b.event("rejected", "selecting all pods", reason=EVENT_SELECTING_ALL, field="spec.selector")
        return _result(b, ds.status, None, [], backoff=kept)
    errors = validate_update(ds, previous) if previous is not None else validate_daemonset(ds)
    if errors:
        return _invalid(b, ds, errors, kept)
    if ds.metadata.deletion_timestamp is not None:
        return _result(b, ds.status, None, [], backoff=kept)
    spec = defaulted(ds.spec)
    selector = spec.selector

    owner = OwnerReference(api_version=DS_OWNER_API_VERSION, kind=KIND_DAEMONSET, name=ds.metadata.name,
                           uid=ds.metadata.uid, controller=True, block_owner_deletion=True)
    history = owned_revisions(revisions, namespace=ds.metadata.namespace, selector=selector,
                              owner_uid=ds.metadata.uid)
    data = template_patch_data(ds.spec.template)
    want = revision_bytes(data)
    matching = [r for r in history if comparable_bytes(r.data) == want]
    top = max((r.revision for r in history if r not in matching), default=0)
    if not matching:
        return _create_revision(b, ds, owner, data, want, top + 1, revisions, kept)
    cur = max(matching, key=lambda r: (r.revision, r.metadata.name))
    hash_ = cur.metadata.labels.get(LABEL_REVISION_HASH) or cur.metadata.name
    if len(matching) > 1:
        others = [r for r in matching if r is not cur]
        relabelled = _dedup(b, ds, pods, cur, hash_, others)
        # the pass goes on once the relabelled pods are observed: before that it would take them for old
        deduped = _result(b, ds.status, None, [], update_revision=cur.metadata.name, backoff=kept)
        deduped.relabelled = relabelled
        deduped.revisions_deleted = [r.metadata.name for r in others]
        return deduped
    if cur.revision < top:
        b.command(f"{b.uid}/revision-bump/{cur.metadata.name}/{top + 1}", VERB_REVISION_BUMP,
                  [b.revision_patch(cur.metadata.name, [{"op": "test", "path": "/revision", "value": cur.revision},
                                                        {"op": "replace", "path": "/revision", "value": top + 1}])],
                  revision=cur.metadata.name)
    adopted = _adopt(b, owner, orphans)
    if adopted:
        pods = sorted([*pods, *adopted], key=lambda p: p.metadata.name)
    ctx = _Ctx(ds=ds, spec=spec, b=b, now=now, gates=gates, hash=hash_, cur=cur, history=history,
               template_generation=ds.metadata.annotations.get(ANNOTATION_DS_TEMPLATE_GENERATION), owner=owner,
               pods=pods, nodes=nodes, backoff=FailedPodBackoff(kept, now))

    if predownload.enabled(gates):
        old = [r for r in history if r.metadata.name != cur.metadata.name]
        ctx.jobs = predownload.predownload(b, ds, spec, cur, hash_, old, jobs)
    placement = msgspec.convert(ds.spec.template.spec, PodPlacementView)
    tolerations = daemon_tolerations(placement.tolerations, placement.host_network)

    def fit_of(n: Node) -> tuple[str, DaemonFit]:
        return n.metadata.name, daemon_should_run(n, placement, tolerations)

    owner_key = ds.metadata.uid or f"{ds.metadata.namespace}/{ds.metadata.name}"
    node_memo = _NODE_FITS.get(owner_key, msgspec.json.encode(placement), fit_of)
    fit_list = node_memo.facts(nodes)
    pod_memo = _POD_FACTS.get(owner_key, None, _pod_facts)
    facts = pod_memo.facts(pods)
    grouped = pod_memo.derived
    if not (isinstance(grouped, _Grouped) and _current(grouped, node_memo, pod_memo)):
        grouped = pod_memo.derived = _group(facts, dict(fit_list), node_memo, node_memo.version)
    grouped.pods_version = pod_memo.version
    fits, by_node, orphans = grouped.fits, grouped.by_node, grouped.orphans
    ctx.found = grouped.found.setdefault((hash_, ctx.template_generation), {})
    ctx.grouped = grouped
    burst = _burst(spec, ds.status.desired_number_scheduled)
    requeue: list[float] = []
    surge_mode = _max_surge_one(spec) > 0
    wrote = _manage(ctx, fits, by_node, orphans, burst, create_limit, surge_mode, requeue)
    full = not wrote
    if full:
        _refresh(ctx, facts)
        ru = spec.update_strategy.rolling_update
        if spec.update_strategy.type == DS_ROLLING_UPDATE and ru is not None and not ru.paused:
            try:
                _rolling_update(ctx, fits, by_node, burst, requeue)
            except IntOrPercentError as e:
                b.event("rollout-error", f"couldn't get unavailable numbers: {e}")
        limit = spec.revision_history_limit
        old = [r for r in history if r.metadata.name != cur.metadata.name]
        for name in truncate_history(old, pods, cur, cur, limit):
            rev = next(r for r in old if r.metadata.name == name)
            b.command(f"{b.uid}/revision-delete/{rev.metadata.uid}", VERB_REVISION_DELETE,
                      [b.revision_delete(name, rev.metadata.uid)], revision=name)
    status = _status(ctx, fits, by_node, full)
    _status_command(b, ds, status)
    if status.number_ready != status.number_available and spec.min_ready_seconds > 0:
        requeue.append(float(spec.min_ready_seconds))
    plan = _result(b, status, min(requeue) if requeue else None, [], ctx=ctx, current_revision=cur.metadata.name,
                   update_revision=cur.metadata.name)
    plan.adopted = [p.metadata.name for p in adopted]
    return plan


def _create_revision(b: Builder, ds: DaemonSet, owner: OwnerReference, data: JsonObject, want: bytes, number: int,
                     revisions: Sequence[ControllerRevision], kept: dict[str, BackoffEntry]) -> DsPlan:
    """The template's revision `<ds>-<hash>`, created. A name already taken by a revision with other data
    (a hash collision) raises `status.collisionCount` and hashes again, until the name is free or holds
    this very data (Kubernetes' `CreateControllerRevision`; Kruise's copy of it reads the wrong object and
    never gets there)."""
    collisions = ds.status.collision_count
    taken = {r.metadata.name: r for r in revisions if r.metadata.namespace in ("", ds.metadata.namespace)}
    while True:
        name = revision_name(ds.metadata.name, hash_revision(want, collisions))
        held = taken.get(name)
        if held is None or comparable_bytes(held.data) == want:
            break
        b.event("revision-collision", f"revision name {name} is taken by other data: collisionCount "
                f"{(collisions or 0) + 1}", revision=name)
        collisions = (collisions or 0) + 1
    status = ds.status
    if collisions != ds.status.collision_count:
        status = msgspec.structs.replace(status, collision_count=collisions)
        b.command(f"{b.uid}/status/collision/{collisions}", VERB_STATUS, [b.status_patch({"collisionCount": collisions})])
    rev = new_revision(owner, ds.metadata.namespace, data, number, collisions,
                       labels=ds.spec.template.metadata.labels, annotations=ds.metadata.annotations, hash_label=False)
    hash_ = short_hash(rev.metadata.name)
    rev = msgspec.structs.replace(rev, metadata=msgspec.structs.replace(
        rev.metadata, labels={**rev.metadata.labels, LABEL_REVISION_HASH: hash_}))
    body: JsonObject = msgspec.to_builtins(rev)
    b.command(f"{b.uid}/revision-create/{rev.metadata.name}", VERB_REVISION_CREATE, [b.revision_create(body)],
              revision=rev.metadata.name)
    b.event("revision-created", f"revision {rev.metadata.name} (number {rev.revision})", revision=rev.metadata.name)
    # no counters written: the next pass must still see the old hash (pre-download starts on it)
    return _result(b, status, None, [], update_revision=rev.metadata.name, backoff=kept)


def _adopt(b: Builder, owner: OwnerReference, orphans: Sequence[Pod]) -> list[Pod]:
    """`ClaimPods` for orphans: each live one gets the DaemonSet's controller reference (a JSON patch
    guarded by its uid and its current owner references, so a concurrent claim by another controller
    wins and this one is dropped as stale). Returns them as this pass counts them: owned."""
    adopted: list[Pod] = []
    ref = msgspec.to_builtins(owner)
    for pod in orphans:
        meta = pod.metadata
        if meta.deletion_timestamp is not None or meta.controller_ref() is not None:
            continue
        patch = PodPatch(pod)
        refs = msgspec.to_builtins(meta.owner_references)
        if refs:
            patch.ops += [{"op": "test", "path": "/metadata/ownerReferences", "value": refs},
                          {"op": "add", "path": "/metadata/ownerReferences/-", "value": ref}]
        else:
            patch.ops += [{"op": "test", "path": "/metadata/ownerReferences", "value": None},
                          {"op": "add", "path": "/metadata/ownerReferences", "value": [ref]}]
        b.command(f"{b.uid}/adopt/{meta.uid}", VERB_ADOPT, [b.pod_json_patch(patch)], pod=meta.name, pod_uid=meta.uid)
        b.event("pod-adopted", f"adopted orphan pod {meta.name}", pod=meta.name)
        owned = msgspec.structs.replace(meta, owner_references=[*meta.owner_references, owner])
        adopted.append(msgspec.structs.replace(pod, metadata=owned))
    return adopted


def _dedup(b: Builder, ds: DaemonSet, pods: Sequence[Pod], keep: ControllerRevision, hash_: str,
           others: list[ControllerRevision]) -> list[str]:
    """`dedupCurHistories`: several revisions hold the template: the one with the highest number stays,
    every pod of the DaemonSet whose hash label differs is relabelled to its hash (old pods too, as in
    Kruise), and the others are deleted. Returns the relabelled pods' names."""
    relabelled: list[str] = []
    for pod in pods:
        meta = pod.metadata
        if meta.labels.get(LABEL_REVISION_HASH) == hash_:
            continue
        patch = PodPatch(pod)
        patch.test_label(LABEL_REVISION_HASH)
        patch.set_label(LABEL_REVISION_HASH, hash_)
        b.command(f"{b.uid}/relabel/{meta.uid}/{hash_}", VERB_BACKFILL, [b.pod_json_patch(patch)], pod=meta.name,
                  pod_uid=meta.uid, revision=keep.metadata.name)
        b.expect(meta.name, "label", LABEL_REVISION_HASH, hash_)
        relabelled.append(meta.name)
    for rev in others:
        b.command(f"{b.uid}/revision-delete/{rev.metadata.uid}", VERB_REVISION_DELETE,
                  [b.revision_delete(rev.metadata.name, rev.metadata.uid)], revision=rev.metadata.name)
        b.event("revision-deduplicated", f"revision {rev.metadata.name} duplicates {keep.metadata.name}: deleted",
                revision=rev.metadata.name)
    return relabelled


def _result(b: Builder, status: DaemonSetStatus, requeue: float | None, errors: list[FieldError], *,
            ctx: _Ctx | None = None, current_revision: str = "", update_revision: str = "",
            backoff: dict[str, BackoffEntry] | None = None) -> DsPlan:
    return DsPlan(commands=b.commands, events=b.events, expectations=b.expectations, status=status,
                  requeue_after=requeue, errors=errors, current_revision=current_revision,
                  update_revision=update_revision, created=ctx.creates if ctx else [],
                  deleted=ctx.deletes if ctx else [], updated_in_place=ctx.in_place if ctx else [],
                  jobs=ctx.jobs if ctx else [],
                  backoff=ctx.backoff.entries() if ctx else dict(backoff or {}))


def _invalid(b: Builder, ds: DaemonSet, errors: list[FieldError], backoff: dict[str, BackoffEntry]) -> DsPlan:
    """A spec the webhook would refuse is never acted on: one Warning Event per generation and message,
    and a `rejected` rollout event naming the field."""
    message = errors_message(errors)
    b.reject_invalid(ds.metadata.generation, message, errors[0].field, VERB_EVENT,
                     [])
    return _result(b, ds.status, None, errors, backoff=backoff)


def _burst(spec: DaemonSetSpec, desired: int) -> int:
    """burstReplicas: an int as is, a percent floored against the previous status.desiredNumberScheduled."""
    return scaled_or_zero(spec.burst_replicas, desired, False)


def _max_surge_one(spec: DaemonSetSpec) -> int:
    """maxSurge resolved against one node (manage's switch to surge semantics)."""
    ru = spec.update_strategy.rolling_update
    if spec.update_strategy.type != DS_ROLLING_UPDATE or ru is None:
        return 0
    try:
        return scaled_int_percent(ru.max_surge, 1, True)
    except IntOrPercentError:
        return 0


# --- writes ----------------------------------------------------------------------------------------


def _pod_body(ctx: _Ctx, name: str, node: str) -> JsonObject:
    ds, template = ctx.ds, ctx.ds.spec.template
    labels = {**template.metadata.labels, LABEL_REVISION_HASH: ctx.hash}
    if ctx.template_generation is not None:
        labels[LABEL_POD_TEMPLATE_GENERATION] = ctx.template_generation
    metadata: JsonObject = {"name": name, "namespace": ds.metadata.namespace, "labels": labels,
                            "ownerReferences": [msgspec.to_builtins(ctx.owner)]}
    if template.metadata.annotations:
        metadata["annotations"] = dict(template.metadata.annotations)
    if template.metadata.finalizers:
        metadata["finalizers"] = list(template.metadata.finalizers)
    spec: JsonObject = dict(template.spec)
    tolerations = msgspec.convert(spec.get("tolerations") or [], list[Toleration])
    spec["tolerations"] = msgspec.to_builtins(daemon_tolerations(tolerations, bool(spec.get("hostNetwork"))))
    affinity = dict(spec.get("affinity") or {})
    node_affinity = dict(affinity.get("nodeAffinity") or {})
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [
        {"matchFields": [{"key": FIELD_NODE_NAME, "operator": "In", "values": [node]}]}]}
    affinity["nodeAffinity"] = node_affinity
    spec["affinity"] = affinity
    ru = ctx.spec.update_strategy.rolling_update
    if (ctx.spec.update_strategy.type == DS_ROLLING_UPDATE and ru is not None
            and ru.rolling_update_type == STRATEGY_IN_PLACE_IF_POSSIBLE):
        spec["readinessGates"] = [*(spec.get("readinessGates") or []),
                                  {"conditionType": CONDITION_INPLACE_UPDATE_READY}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def _create(ctx: _Ctx, node: str) -> None:
    b = ctx.b
    if ctx.taken is None:
        ctx.taken = {p.metadata.name for p in ctx.pods}
    name = pod_name(ctx.ds, node, ctx.taken)
    b.command(f"{b.uid}/create/{name}/{ctx.hash}", VERB_CREATE, [b.pod_create(_pod_body(ctx, name, node))], pod=name,
              revision=ctx.cur.metadata.name, on_success=kube_event(EVENT_SUCCESSFUL_CREATE, f"Created pod: {name}"),
              on_failure=kube_event(EVENT_FAILED_CREATE, "Error creating", warning=True))
    b.expect(name, "present")
    b.event("pod-created", f"created pod {name} on node {node}", pod=name)
    ctx.creates.append((name, node))


def _delete(ctx: _Ctx, pod: Pod) -> None:
    """Delete a pod, or (lifecycle.preDelete hooks it) move it to PreparingDelete instead; a rolling
    update's delete carries its budget evidence (`_Ctx.evidence`)."""
    b, meta = ctx.b, pod.metadata
    evidence = ctx.evidence.get(meta.uid, {})
    hook = lc.pre_delete_hook(ctx.spec.lifecycle)
    if hook is not None and lc.is_hooked(hook, pod):
        if _preparing_delete(pod):
            return  # waits for its hook to be released
        patch = PodPatch(pod)
        patch.test_label(LABEL_LIFECYCLE_STATE)
        lc.set_state(patch, STATE_PREPARING_DELETE, ctx.now)
        ops: list[ApiOp] = []
        if hook.mark_pod_not_ready:
            cond = lc.not_ready_condition(pod, STATE_PREPARING_DELETE, ctx.now)
            if cond is not None:
                ops.append(b.pod_status_patch(pod, [cond], exact=False))
        ops.append(b.pod_json_patch(patch))
        b.command(f"{b.uid}/lifecycle/{meta.uid}/{STATE_PREPARING_DELETE}/{meta.resource_version}", VERB_LIFECYCLE,
                  ops, pod=meta.name, pod_uid=meta.uid, data=evidence)
        b.expect(meta.name, "label", LABEL_LIFECYCLE_STATE, STATE_PREPARING_DELETE)
        b.event("pod-preparing-delete", f"pod {meta.name} is hooked by preDelete: PreparingDelete", pod=meta.name,
                data=evidence)
        return
    # a free replacement (old and not available) holds only while the pod is that version: one that has
    # become available since is not deleted (the planner's view may lag the pod by a few milliseconds)
    exact = evidence.get("budget") == BUDGET_FREE
    command_id = f"{b.uid}/delete/{meta.uid}"
    b.command(command_id, VERB_DELETE, [b.pod_delete(pod, exact=exact)], pod=meta.name,
              pod_uid=meta.uid,
              on_success=kube_event(EVENT_SUCCESSFUL_DELETE, f"Deleted pod: {meta.name}"),
              on_failure=kube_event(EVENT_FAILED_DELETE, "Error deleting", warning=True), data=evidence)
    b.expect(meta.name, "absent")
    # the command's id names the pod's uid: a DaemonSet's pod names come back on their node, and the
    # rollout log's message id (workload, type, command, message) otherwise took the next pod's
    # deletion for a duplicate of the last one and dropped it
    b.event("pod-deleted", f"deleted pod {meta.name}", pod=meta.name, data=evidence, command_id=command_id)
    ctx.deletes.append(meta.name)


def _sync_nodes(ctx: _Ctx, create_on: list[str], delete: list[Pod], burst: int, create_limit: int | None) -> bool:
    """`syncNodes`: creates and deletes each capped by burstReplicas (the rest waits for a later pass),
    creates also by the engine's slow-start limit. Whether anything was written."""
    before = len(ctx.b.commands)
    limit = burst if create_limit is None else min(burst, create_limit)
    for node in create_on[:max(limit, 0)]:
        _create(ctx, node)
    seen: set[str] = set()
    for pod in delete[:max(burst, 0)]:
        if pod.metadata.uid not in seen:
            seen.add(pod.metadata.uid)
            _delete(ctx, pod)
    return len(ctx.b.commands) > before


# --- manage ----------------------------------------------------------------------------------------


def _manage(ctx: _Ctx, fits: dict[str, DaemonFit], by_node: dict[str, list[_PodFacts]], orphans: list[Pod], burst: int,
            create_limit: int | None, surge: bool, requeue: list[float]) -> bool:
    b, min_ready = ctx.b, ctx.spec.min_ready_seconds
    need: list[str] = []
    delete: list[Pod] = []
    for node in sorted(fits):
        fit = fits[node]
        group = by_node.get(node, [])
        if fit.should_run and not group:
            need.append(node)
            continue
        if not group:
            continue
        if not fit.should_continue_running:
            delete.extend(f.pod for f in group if not f.terminating)
            continue
        if len(group) == 1 and not surge:  # the common case: one live pod, nothing to do
            f = group[0]
            if not (f.terminating or f.failed or f.preparing_delete):
                continue
        running: list[_PodFacts] = []
        for f in group:
            if f.terminating:
                continue
            pod = f.pod
            if f.failed:
                # rate-limited per (uid, observedGeneration, node): a kubelet rejecting the pod at once
                # must not make a delete/create loop (`backoff.py`)
                key = backoff_key(ctx.ds.metadata.uid, ctx.ds.status.observed_generation, node)
                wait = ctx.backoff.in_backoff(key)
                if wait is not None:
                    requeue.append(wait)
                    b.event("failed-pod-backoff", f"failed pod {pod.metadata.name} on node {node} is kept: "
                            f"deletion backoff {wait:g}s", pod=pod.metadata.name)
                    continue
                ctx.backoff.next(key)
                msg = f"Found failed daemon pod {pod.metadata.namespace}/{pod.metadata.name} on node {node}, " \
                      "will try to kill it"
                b.command(f"{b.uid}/failed-daemon-pod/{pod.metadata.uid}", VERB_EVENT, [],
                          on_success=kube_event(EVENT_FAILED_DAEMON_POD, msg, warning=True))
                delete.append(pod)
            elif f.preparing_delete:
                delete.append(pod)
            else:
                running.append(f)
        if not surge:
            delete.extend(f.pod for f in running[1:])  # keep the oldest
            continue
        if not running:
            if fit.should_run:
                need.append(node)
            continue
        new = [f for f in running if ctx.updated(f)]
        old = [f for f in running if not ctx.updated(f)]
        keep_new = new[0].pod if new else None
        keep_old = old[0].pod if old else None
        delete.extend(f.pod for f in running if f.pod is not keep_new and f.pod is not keep_old)
        if old and new:
            if not old[0].ready:
                delete.append(old[0].pod)
            elif _available(new[0], min_ready, ctx.now):
                delete.append(old[0].pod)
            elif new[0].ready and min_ready > 0:
                left = _available_in(new[0], min_ready, ctx.now)
                if left is not None:
                    requeue.append(left)
    delete.extend(orphans)
    need = _partition_cut(ctx, fits, by_node, need)
    return _sync_nodes(ctx, need, delete, burst, create_limit)


def _partition_cut(ctx: _Ctx, fits: dict[str, DaemonFit], by_node: dict[str, list[_PodFacts]],
                   need: list[str]) -> list[str]:
    """Partition on creation: with a partition resolving (floor, previous desired) to non-zero the nodes
    are taken in name order; with partitionedScaling (v1alpha1: the progressive-create-pod annotation)
    only max(desired - nodes with an updated pod - partition, 0) of them."""
    spec = ctx.spec
    ru = spec.update_strategy.rolling_update
    if spec.update_strategy.type != DS_ROLLING_UPDATE or ru is None or ru.partition is None:
        return need
    try:
        partition = scaled_int_percent(ru.partition, ctx.ds.status.desired_number_scheduled, False)
    except IntOrPercentError:
        return need
    if partition == 0:
        return need
    need = sorted(need)
    if ctx.ds.metadata.annotations.get(ANNOTATION_DS_PROGRESSIVE_CREATE) != "true":
        return need
    desired = sum(1 for f in fits.values() if f.should_run)
    updated = sum(1 for n in fits if len(g := [p for p in by_node.get(n, []) if ctx.updated(p)]) == 1 and g)
    return need[:max(desired - updated - min(max(partition, 0), desired), 0)]


# --- refresh, rolling update -----------------------------------------------------------------------


def _refresh(ctx: _Ctx, facts: Sequence[_PodFacts]) -> None:
    """The in-place library's refresh: InPlaceUpdateReady True once an update completed (and on new pods
    with the gate), the next container batch."""
    b = ctx.b
    for f in facts:
        if f.terminating or not f.gated:
            continue
        pod = f.pod
        res = inplace.refresh(pod, ctx.now, True, {})
        meta = pod.metadata
        if res.patch is not None:
            b.command(f"{b.uid}/inplace-refresh/{meta.uid}/{res.kind}/{meta.resource_version}", VERB_INPLACE_REFRESH,
                      [b.pod_json_patch(res.patch)], pod=meta.name, pod_uid=meta.uid)
        elif res.set_ready:
            b.command(f"{b.uid}/inplace-refresh/{meta.uid}/ready/{meta.resource_version}", VERB_INPLACE_REFRESH,
                      [b.pod_status_patch(pod, [inplace.ready_condition(ctx.now)])], pod=meta.name, pod_uid=meta.uid)


@dataclass(slots=True)
class _NodePods:
    ok: bool
    new: _PodFacts | None
    old: _PodFacts | None


def _find(ctx: _Ctx, group: list[_PodFacts]) -> _NodePods:
    """`findUpdatedPodsOnNode`: the live new and old pod (ok=False with more than one of either)."""
    new: _PodFacts | None = None
    old: _PodFacts | None = None
    updated = ctx.updated
    for f in group:
        if f.terminating:
            continue
        if updated(f):
            if new is not None:
                return _NodePods(False, None, None)
            new = f
        else:
            if old is not None:
                return _NodePods(False, None, None)
            old = f
    return _NodePods(True, new, old)


def _found(ctx: _Ctx, by_node: dict[str, list[_PodFacts]], name: str) -> _NodePods:
    got = ctx.found.get(name)
    if got is None:
        got = ctx.found[name] = _find(ctx, by_node.get(name, []))
    return got


def window(ctx: _Ctx, fits: dict[str, DaemonFit], by_node: dict[str, list[_PodFacts]]) -> list[tuple[str, _NodePods]]:
    """`filterDaemonPodsToUpdate`: updated nodes, then updating ones, then old ones (names descending),
    only those matching `rollingUpdate.selector` when one is set, cut to len - partition, each with its
    `findUpdatedPodsOnNode`. The nodes are the desired ones plus (unless DaemonSetPruneIneligibleNodes)
    every other node that has a pod."""
    ru = ctx.spec.update_strategy.rolling_update
    assert ru is not None
    prune = ctx.gates.daemon_set_prune_ineligible_nodes
    names = ctx.grouped.names.get(prune) if ctx.grouped is not None else None
    if names is None:
        desired = {n for n, f in fits.items() if f.should_run}
        # DaemonSetPruneIneligibleNodes: nodes that should not run a pod leave the window (their pods, which
        # manage deletes, no longer take maxUnavailable); without it they stay in, as Kruise's default
        names = sorted(desired if prune else desired | set(by_node), reverse=True)
        if ctx.grouped is not None:
            ctx.grouped.names[prune] = names
    node_objects = {n.metadata.name: n for n in ctx.nodes} if ru.selector is not None else {}
    updated: list[tuple[str, _NodePods]] = []
    updating: list[tuple[str, _NodePods]] = []
    selected: list[tuple[str, _NodePods]] = []
    rest: list[tuple[str, _NodePods]] = []
    known = ctx.found
    for name in names:
        found = known.get(name) or _found(ctx, by_node, name)
        if not found.ok or found.new is not None:
            updated.append((name, found))
        elif found.old is None or found.old.preparing_delete:
            updating.append((name, found))
        elif ru.selector is not None and matches(ru.selector, node_objects[name].metadata.labels):
            selected.append((name, found))
        else:
            rest.append((name, found))
    order = updated + updating + (selected if ru.selector is not None else rest)
    partition = scaled_int_percent(ru.partition, ctx.ds.status.desired_number_scheduled, False)
    keep = len(names) - partition
    return order[:keep] if keep > 0 else []


def max_numbers(ru: RollingUpdateDaemonSet, desired: int) -> tuple[int, int]:
    """`updatedDesiredNodeCounts`: (maxUnavailable, maxSurge) against this pass's desired nodes, percents
    rounded up; both 0 with desired > 0 -> maxUnavailable 1. Raises IntOrPercentError on a bad value."""
    max_unavailable = scaled_int_percent(ru.max_unavailable, desired, True)
    max_surge = scaled_int_percent(ru.max_surge, desired, True)
    if desired > 0 and max_unavailable == 0 and max_surge == 0:
        max_unavailable = 1
    return max_unavailable, max_surge


def _rolling_update(ctx: _Ctx, fits: dict[str, DaemonFit], by_node: dict[str, list[_PodFacts]], burst: int,
                    requeue: list[float]) -> None:
    ru = ctx.spec.update_strategy.rolling_update
    assert ru is not None
    max_unavailable, max_surge = max_numbers(ru, sum(1 for f in fits.values() if f.should_run))
    candidates = window(ctx, fits, by_node)
    min_ready, now = ctx.spec.min_ready_seconds, ctx.now
    if max_surge == 0:
        unavailable = Counted()  # the nodes counted unavailable, named for the evidence
        old_unavailable: list[_PodFacts] = []
        chosen: list[_PodFacts] = []
        for name, found in candidates:
            if not found.ok:
                unavailable.add(name)
                continue
            new, old = found.new, found.old
            old_live = old is not None and not old.preparing_delete
            new_live = new is not None and not new.preparing_delete
            if (not old_live and not new_live) or (old_live and new_live):
                unavailable.add(name)
            elif new is not None:
                if not _available(new, min_ready, now):
                    unavailable.add(name)
                if new.preparing_delete:
                    unavailable.add(name)
            elif old is not None:
                if not _available(old, min_ready, now):
                    old_unavailable.append(old)
                elif unavailable.total < max_unavailable:
                    chosen.append(old)
        chosen = chosen[:max(max_unavailable - unavailable.total, 0)]
        budget = unavailable.budget(max_unavailable)
        for facts, charged in [*((f, False) for f in old_unavailable), *((f, True) for f in chosen)]:
            # old and not available: replaced free, as Kruise does; available: charged to maxUnavailable
            ctx.evidence[facts.pod.metadata.uid] = budget.evidence(
                charged=charged, resource_version=facts.pod.metadata.resource_version, node=facts.node)
        targets = [f.pod for f in old_unavailable] + [f.pod for f in chosen]
        if ru.rolling_update_type == STRATEGY_IN_PLACE_IF_POSSIBLE:
            targets = _in_place(ctx, targets, burst)
        _sync_nodes(ctx, [], targets, burst, None)
        return
    surging = 0
    create_now: list[str] = []
    wait: list[str] = []
    delete: list[Pod] = []
    for name, found in candidates:
        if not found.ok:
            surging += 1
            continue
        new, old = found.new, found.old
        if old is None or old.preparing_delete:
            continue
        if new is None:
            if not _available(old, min_ready, now):
                create_now.append(name)
            elif surging < max_surge:
                wait.append(name)
        elif not _available(new, min_ready, now) or new.preparing_delete:
            surging += 1
            left = _available_in(new, min_ready, now)
            if left is not None:
                requeue.append(left)
        else:
            delete.append(old.pod)
    create_now += wait[:max(max_surge - surging, 0)]
    _sync_nodes(ctx, create_now, delete, burst, None)


def _in_place(ctx: _Ctx, targets: list[Pod], burst: int) -> list[Pod]:
    """`inPlaceUpdatePods`: update in place the pods that have the InPlaceUpdateReady gate, whose old
    revision exists and whose change is in-place-able (images, template metadata); the rest are returned
    to be recreated. In-place updates per pass are capped by burstReplicas."""
    recreate: list[Pod] = []
    by_hash = {r.metadata.labels.get(LABEL_REVISION_HASH) or r.metadata.name.rsplit("-", 1)[-1]: r
               for r in ctx.history}
    b = ctx.b
    done = 0
    for pod in targets:
        old_rev = by_hash.get(pod.metadata.labels.get(LABEL_REVISION_HASH, ""))
        spec = None
        if inplace.has_readiness_gate(pod) and old_rev is not None and old_rev is not ctx.cur:
            try:
                spec = inplace.calculate_spec(old_rev, ctx.cur, template_of(old_rev), template_of(ctx.cur),
                                              grace_seconds=0, gates=ctx.gates)
            except ValueError:
                spec = None
        if spec is None:
            recreate.append(pod)
            continue
        if done >= burst:
            continue
        done += 1
        meta = pod.metadata
        spec.revision = ctx.hash
        patch = inplace.start_update(pod, spec, ctx.hash, ctx.hash, {}, ctx.now, template_hash_label=False)
        ops: list[ApiOp] = [b.pod_status_patch(pod, inplace.start_conditions(pod, ctx.now)), b.pod_json_patch(patch)]
        rname = ctx.cur.metadata.name
        evidence = ctx.evidence.get(meta.uid, {})
        b.command(f"{b.uid}/update-in-place/{meta.uid}/{rname}", VERB_UPDATE_IN_PLACE, ops, pod=meta.name,
                  pod_uid=meta.uid, revision=rname,
                  on_success=kube_event(EVENT_SUCCESSFUL_UPDATE_INPLACE, f"successfully update pod {meta.name} in-place"),
                  on_failure=kube_event(EVENT_FAILED_UPDATE_INPLACE,
                                        f"failed to update pod {meta.name} in-place(revision {rname})", warning=True),
                  data=evidence)
        b.expect(meta.name, "label", LABEL_REVISION_HASH, ctx.hash)
        b.event("pod-updated-in-place", f"updating pod {meta.name} in place to {rname}", pod=meta.name,
                data=evidence)
        ctx.in_place.append(meta.name)
    return recreate


# --- status ----------------------------------------------------------------------------------------


def _status(ctx: _Ctx, fits: dict[str, DaemonFit], by_node: dict[str, list[_PodFacts]], full: bool) -> DaemonSetStatus:
    """`updateDaemonSetStatus` over the nodes that exist, each node's oldest pod only."""
    min_ready = ctx.spec.min_ready_seconds
    key = (ctx.hash, ctx.template_generation)
    # without minReadySeconds the counts are a function of the grouping and the hash: kept with it
    known = ctx.grouped.counts.get(key) if ctx.grouped is not None and min_ready <= 0 else None
    if known is None:
        known = _counts(ctx, fits, by_node)
        if ctx.grouped is not None and min_ready <= 0:
            ctx.grouped.counts[key] = known
    desired, current, misscheduled, ready, available, updated = known
    prev = ctx.ds.status
    return msgspec.structs.replace(
        prev, desired_number_scheduled=desired, current_number_scheduled=current, number_misscheduled=misscheduled,
        number_ready=ready, number_available=available, number_unavailable=desired - available,
        updated_number_scheduled=updated, daemon_set_hash=ctx.hash,
        observed_generation=ctx.ds.metadata.generation if full else prev.observed_generation)


def _counts(ctx: _Ctx, fits: dict[str, DaemonFit], by_node: dict[str, list[_PodFacts]]) -> tuple[int, ...]:
    """(desired, current, misscheduled, ready, available, updated)."""
    desired = current = misscheduled = ready = available = updated = 0
    min_ready, now = ctx.spec.min_ready_seconds, ctx.now
    is_updated = ctx.updated
    for name, fit in fits.items():
        group = by_node.get(name)
        if fit.should_run:
            desired += 1
            if group:
                current += 1
                oldest = group[0]
                if oldest.ready:
                    ready += 1
                    if oldest.base_available if min_ready <= 0 else _available(oldest, min_ready, now):
                        available += 1
                if is_updated(oldest):
                    updated += 1
        elif group:
            misscheduled += 1
    return desired, current, misscheduled, ready, available, updated


_COUNTERS: Final = ("current_number_scheduled", "number_misscheduled", "desired_number_scheduled", "number_ready",
                    "updated_number_scheduled", "number_available", "number_unavailable")


def _status_command(b: Builder, ds: DaemonSet, status: DaemonSetStatus) -> None:
    """Written unless every counter and the hash are unchanged and observedGeneration is current."""
    prev = ds.status
    same = all(getattr(prev, k) == getattr(status, k) for k in _COUNTERS) and prev.daemon_set_hash == status.daemon_set_hash
    if same and prev.observed_generation >= ds.metadata.generation:
        return
    body: JsonObject = {"daemonSetHash": status.daemon_set_hash, "observedGeneration": status.observed_generation}
    for key in _COUNTERS:
        head, *tail = key.split("_")
        body[head + "".join(t.title() for t in tail)] = getattr(status, key)
    b.command(f"{b.uid}/status/{ds.metadata.resource_version}/{short_digest(body)}", VERB_STATUS, [b.status_patch(body)])

