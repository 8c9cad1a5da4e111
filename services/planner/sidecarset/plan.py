"""One pass of the SidecarSet update controller: revisions, status and the in-place sidecar upgrade.

Kruise's `pkg/controller/sidecarset/` (sidecarset_processor.go UpdateSidecarSet, sidecarset_strategy.go
GetNextUpgradePods, pkg/control/sidecarcontrol/sidecarset_control.go), as a pure decision over the
SidecarSet, every pod (a shared kind: a SidecarSet owns none) and its revisions (the per-pod
predicates are `podfacts`):

1. matched pods: selector and namespace, active, listed in `kruise.io/sidecarset-injected-list`, and
   having every sidecar container;
2. register the latest revision (create, renumber an equal older one, relabel the custom version) and
   truncate history beyond `revisionHistoryLimit`;
3. status computed before any pod change, written when it differs;
4. NotUpdate or paused: stop; HotUpgrade pods whose upgrade finished: flip them, and stop; everything
   updated: stop;
5. candidates (not updated, selected, upgradable, not in progress), ActivePods/priority/scatter order,
   partition subtracted from the candidates, then the maxUnavailable walk; each chosen pod gets its
   sidecar images, hash annotation, in-place state, injected list and patchPodMetadata in one guarded
   JSON patch, then condition SidecarSetUpgradable; not-upgradable pods get the condition False and the
   SidecarSet one `NotUpgradablePods` Event.

HotUpgrade pairs: the empty (or failing, or non-working) one of `X-1`/`X-2` gets the new image and
becomes the working one; once it runs, a pass flips the other to the empty image and does nothing else.

A pass over 10,000 pods has a 20 ms budget: each pod's matching, facts and ActivePods key are memoised
between passes (`kit.memo`), and the matched list, status tallies and upgrade order are kept, or patched
when a few pods were replaced (`tests/unit/planner/sidecarset/test_memo.py` checks them against a cold memo).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from typing import Any, NamedTuple

import msgspec

from schemas.constants import (
    ANNOTATION_SIDECARSET_HASH,
    ANNOTATION_SIDECARSET_INJECTED_LIST,
    ANNOTATION_SIDECARSET_INPLACE_STATE,
    ANNOTATION_SIDECARSET_VERSION_ALT_PREFIX,
    ANNOTATION_SIDECARSET_VERSION_PREFIX,
    ANNOTATION_SIDECARSET_WORKING_HOT_CONTAINER,
    CONDITION_SIDECARSET_UPGRADABLE,
    DEFAULT_KRUISE_NAMESPACE,
    EVENT_NOT_UPGRADABLE_PODS,
    EVENT_RESET_CONTAINER_FAILED,
    EVENT_RESET_CONTAINER_SUCCEED,
    LABEL_SIDECARSET_CUSTOM_VERSION,
    REASON_ALL_SIDECARSET_UPGRADABLE,
    REASON_INVALID_SPEC,
    REASON_UPDATE_IMMUTABLE_FIELD,
    SIDECARSET_NOT_UPDATE,
    STATE_PREPARING_UPDATE,
)
from schemas.kinds import SIDECARSET
from schemas.kube import ControllerRevision, ObjectReference, Pod
from schemas.messages import (
    CONTROLLER_REVISIONS,
    PODS,
    SIDECARSETS,
    VERB_EVENT,
    VERB_REVISION_BUMP,
    VERB_REVISION_CREATE,
    VERB_REVISION_DELETE,
    VERB_REVISION_LABEL,
    VERB_SIDECAR_CONDITION,
    VERB_SIDECAR_UPGRADE,
    VERB_STATUS,
    Command,
    CreateOp,
    DeleteOp,
    Expectation,
    KubeEvent,
    PatchOp,
    RolloutEvent,
)
from schemas.pub import UpdateScatterTerm
from schemas.sidecarset import SidecarSet, SidecarSetStatus, SidecarSetUpdateStrategy, sidecar_fields
from schemas.timefmt import format_time
from services.planner.kit.budget import Budget, Counted, pod_ref
from services.planner.kit.builder import Builder, controller_ref, kube_event, short_digest
from services.planner.kit.fielderrors import FieldError, errors_message
from services.planner.kit.gates import DEFAULT_GATES, FeatureGates
from services.planner.kit.gcpause import gc_paused
from services.planner.kit.intstr import IntOrPercentError, partition_replicas, scaled_or_zero
from services.planner.kit.memo import MemoRegistry
from services.planner.kit.plan import Revisionless
from services.planner.kit.podpatch import PodPatch, status_conditions_patch
from services.planner.kit.podstate import is_ready, lifecycle_state
from services.planner.kit.selectors import matches
from services.planner.kit.sort import PodKey, active_pods_key, sort_update_candidates
from services.planner.sidecarset.defaults import default_sidecarset
from services.planner.sidecarset.inject import UpgradeSpec, encode_hashes, read_hashes
from services.planner.sidecarset.matching import namespace_selector
from services.planner.sidecarset.metadata import PatchError, patch_pod_metadata
from services.planner.sidecarset.podfacts import (
    PodFacts,
    Wanted,
    compute_status,
    facts_of,
    hot_pairs,
    inplace_state,
    is_consistent,
    is_consistent_container,
    is_matched,
    is_updated,
    is_upgradable,
    pod_facts,
    sidecar_names,
    status_of,
    tally,
    tally_all,
    working_containers,
)
from services.planner.sidecarset.revisions import find_specific, history, register_latest, to_truncate
from services.planner.sidecarset.validation import validate_sidecarset

RESET_CONTAINER_SUCCEED_MESSAGE = "reset sidecar container image empty successfully"
RESET_CONTAINER_FAILED_MESSAGE = "reset sidecar container image empty failed"
"""The executor appends ": <the API server's error>", as Kruise's Event does."""


def _pod_event(pod: Pod, reason: str, message: str, *, warning: bool = False) -> KubeEvent:
    """A Kubernetes Event of `pod` (Kruise records the hot-upgrade reset Events on the pod)."""
    event = kube_event(reason, message, warning=warning)
    event.involved = ObjectReference(api_version="v1", kind="Pod", namespace=pod.metadata.namespace,
                                     name=pod.metadata.name, uid=pod.metadata.uid)
    return event


def status_body(status: SidecarSetStatus) -> dict[str, Any]:
    """The merge patch that makes the stored status exactly `status`, as Kruise's status update leaves
    it: the counts Kruise always writes are written at 0 too, and its omitempty members at their zero
    value are removed (null) rather than left at an older value."""
    body: dict[str, Any] = msgspec.to_builtins(status)
    for always in ("matchedPods", "updatedPods", "readyPods"):
        body.setdefault(always, 0)
    for omitted in ("observedGeneration", "updatedReadyPods", "latestRevision"):
        body.setdefault(omitted, None)
    body.setdefault("collisionCount", status.collision_count)
    return body


def not_upgradable_message(n: int) -> str:
    return f"SidecarSet in-place update detected {n} not upgradable pod(s) in this round, will skip them."


@dataclass
class SidecarSetPlan(Revisionless):
    """One pass's decisions (`kit.workload.PlanResult`) and the numbers tests and `plan` show."""

    commands: list[Command] = field(default_factory=list)
    events: list[RolloutEvent] = field(default_factory=list)
    expectations: list[Expectation] = field(default_factory=list)
    requeue_after: float | None = None
    errors: list[FieldError] = field(default_factory=list)
    status: SidecarSetStatus = field(default_factory=SidecarSetStatus)
    upgrade: list[str] = field(default_factory=list)  # "<namespace>/<name>" of the pods upgraded this pass
    not_upgradable: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return not self.errors


# --- selection --------------------------------------------------------------------------------------


def _scatter_terms(terms: list[UpdateScatterTerm] | None, pods: Sequence[Pod]) -> list[UpdateScatterTerm] | None:
    """A `value: "*"` term becomes one term per distinct value of its key among the matched pods."""
    if not terms:
        return terms
    literal = [t for t in terms if t.value != "*"]
    seen = {(t.key, t.value) for t in literal}
    for t in terms:
        if t.value != "*":
            continue
        for pod in pods:
            value = pod.metadata.labels.get(t.key)
            if value is not None and (t.key, value) not in seen:
                seen.add((t.key, value))
                literal.append(UpdateScatterTerm(key=t.key, value=value))
    return literal


@dataclass(frozen=True)
class _Ordering:
    priority_strategy: Any
    scatter_strategy: list[UpdateScatterTerm] | None


def max_unavailable_of(strategy: SidecarSetUpdateStrategy, total: int) -> int:
    """How many matched pods may have a sidecar being upgraded at once: 1 by default, percents rounded up."""
    return 1 if strategy.max_unavailable is None else scaled_or_zero(strategy.max_unavailable, total, True)


_UID = attrgetter("metadata.uid")


class UpgradePods(NamedTuple):
    """What `next_upgrade_pods` decided: the pods to upgrade now, the not-upgradable ones, and the
    budget the choice was made on (`kit.budget`: the rollout log's evidence of each upgrade)."""

    chosen: list[Pod]
    not_upgradable: list[Pod]
    budget: Budget


def next_upgrade_pods(ss: SidecarSet, matched: Sequence[Pod], facts: Mapping[str, PodFacts] | None = None, *,
                      keys: Mapping[str, PodKey] | None = None,
                      preparing_update: bool | None = None) -> UpgradePods:
    """`GetNextUpgradePods`: (pods to upgrade now, not-upgradable pods, the budget). `keys`: memoised
    ActivePods keys by uid; `preparing_update` False: no candidate is in lifecycle PreparingUpdate (both
    only speed)."""
    strategy = ss.spec.update_strategy
    facts = facts if facts is not None else facts_of(ss, matched)
    want, want_without = Wanted.of(ss)
    candidates: list[Pod] = []
    not_upgradable: list[Pod] = []
    selector = strategy.selector
    used = 0  # updated pods not consistent or not ready: what maxUnavailable is charged with
    counted = Counted()  # who they are, for the evidence
    for pod, f in zip(matched, map(facts.__getitem__, map(_UID, matched)), strict=True):
        if f.hash == want:
            if not (f.consistent and f.ready):
                used += 1
                counted.add(pod_ref(pod.metadata.name, pod.metadata.resource_version))
            continue
        if selector is not None and not matches(selector, pod.metadata.labels):
            continue
        if f.hash_without_image != want_without:
            not_upgradable.append(pod)
        elif not f.upgrading:
            candidates.append(pod)
    ordering = _Ordering(strategy.priority_strategy, _scatter_terms(strategy.scatter_strategy, matched))
    ordered = sort_update_candidates(candidates, ordering, list(matched),
                                     keys=None if keys is None else [keys[p.metadata.uid] for p in candidates],
                                     preparing_update=preparing_update)
    total = len(matched)
    try:
        partition = partition_replicas(strategy.partition, total)
    except IntOrPercentError:
        partition = 0
    max_unavailable = max_unavailable_of(strategy, total)
    budget = counted.budget(max_unavailable)
    keep = len(ordered) - partition
    if keep <= 0:
        return UpgradePods([], not_upgradable, budget)
    ordered = ordered[:keep]
    chosen: list[Pod] = []
    for pod in ordered:
        if not facts[pod.metadata.uid].ready:
            chosen.append(pod)
            continue
        if used >= max_unavailable:
            break
        used += 1
        chosen.append(pod)
    return UpgradePods(chosen, not_upgradable, budget)


# --- writes -----------------------------------------------------------------------------------------


def _condition_body(pod: Pod, name: str, upgradable: bool, now: datetime) -> dict[str, Any] | None:
    """The SidecarSetUpgradable condition after this SidecarSet's verdict (None: unchanged)."""
    current = pod.status.condition(CONDITION_SIDECARSET_UPGRADABLE)
    verdicts: dict[str, bool] = {}
    if current is not None:
        try:
            loaded = json.loads(current.message or "{}")
            verdicts = {str(k): bool(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}
        except ValueError:
            verdicts = {}
    verdicts[name] = upgradable
    status = "True" if all(verdicts.values()) else "False"
    message = json.dumps(verdicts, sort_keys=True, separators=(",", ":"))
    if current is not None and current.status == status and current.message == message:
        return None
    transition = current.last_transition_time if current is not None and current.status == status else None
    return {"type": CONDITION_SIDECARSET_UPGRADABLE, "status": status,
            "reason": REASON_ALL_SIDECARSET_UPGRADABLE if status == "True" else REASON_UPDATE_IMMUTABLE_FIELD,
            "message": message, "lastTransitionTime": transition or format_time(now)}


def _status_op(pod: Pod, condition: dict[str, Any]) -> PatchOp:
    return PatchOp(resource=PODS, namespace=pod.metadata.namespace, name=pod.metadata.name, patch_type="strategic",
                   patch=status_conditions_patch(pod, [condition]), subresource="status")


def _hot_target(pod: Pod, pair: tuple[str, str, str], working: str) -> tuple[str, str]:
    """`findContainerToHotUpgrade`: (the container to upgrade, the other one)."""
    n1, n2, empty = pair
    images = {c.name: c.image for c in pod.spec.containers}
    if images.get(n1) == empty:
        return n1, n2
    if images.get(n2) == empty:
        return n2, n1
    statuses = {c.name: c for c in pod.status.container_statuses}

    def ready(name: str) -> bool:
        st = statuses.get(name)
        return st is not None and st.ready and is_consistent_container(pod, name)

    r1, r2 = ready(n1), ready(n2)
    if r1 and not r2:
        return n2, n1
    if r2 and not r1:
        return n1, n2
    return (n2, n1) if working == n1 else (n1, n2)


def flip_ops(ss: SidecarSet, pod: Pod, names: Sequence[str]) -> list[PatchOp] | None:
    """The hot-upgrade flip (`sidecarset_hotupgrade.go`): a pod whose upgrade finished (the non-working
    container of a pair is not empty, the other sidecars consistent, the pod Running and Ready) gets
    that container reset to the empty image. None: nothing to flip."""
    pairs = hot_pairs(ss)
    if not pairs or not is_ready(pod):
        return None
    working = working_containers(pod)
    index = {c.name: i for i, c in enumerate(pod.spec.containers)}
    statuses = {c.name: c for c in pod.status.container_statuses}
    patch = PodPatch(pod)
    state = inplace_state(pod) or {}
    state.pop("\x00", None)
    entry = state.get(ss.metadata.name) if isinstance(state.get(ss.metadata.name), dict) else {}
    assert isinstance(entry, dict)
    flipped = False
    for base, (n1, n2, empty) in pairs.items():
        work = working.get(base, n1)
        other = n2 if work == n1 else n1
        i = index.get(other)
        if i is None or pod.spec.containers[i].image == empty:
            continue
        if not all(is_consistent_container(pod, n) for n in names if n != other):
            return None
        patch.set_container_image(i, empty)
        patch.set_annotation(ANNOTATION_SIDECARSET_VERSION_PREFIX + other, "0")
        patch.set_annotation(ANNOTATION_SIDECARSET_VERSION_ALT_PREFIX + work, "0")
        st = statuses.get(other)
        entry.setdefault("lastContainerStatuses", {})[other] = {"imageID": st.image_id if st is not None else ""}
        flipped = True
    if not flipped:
        return None
    state[ss.metadata.name] = entry
    patch.set_annotation(ANNOTATION_SIDECARSET_INPLACE_STATE, json.dumps(state, sort_keys=True, separators=(",", ":")))
    return [PatchOp(resource=PODS, namespace=pod.metadata.namespace, name=pod.metadata.name, patch_type="json",
                    patch=patch.build())]


def upgrade_ops(ss: SidecarSet, pod: Pod, now: datetime, *, exact: bool = False) -> list[PatchOp]:
    """`updatePodSidecarAndHash` as one guarded JSON patch (images only; hash; state; list; metadata),
    then the condition. `exact`: only on the pod's observed resourceVersion (a pod upgraded free, for
    not being Ready, must still be the version that was not Ready). Raises PatchError when a
    MergePatchJson cannot apply."""
    name = ss.metadata.name
    stamp = format_time(now)
    patch = PodPatch(pod)
    patch.test_annotation(ANNOTATION_SIDECARSET_HASH)
    if exact:
        patch.test_resource_version()
    index = {c.name: i for i, c in enumerate(pod.spec.containers)}
    statuses = {c.name: c for c in pod.status.container_statuses}
    changed: dict[str, dict[str, str]] = {}
    pairs = hot_pairs(ss)
    working = working_containers(pod)
    hot_annotations: dict[str, str] = {}
    for c in ss.spec.containers:
        f = sidecar_fields(c)
        target = f.name
        if f.name in pairs:
            chosen, other = _hot_target(pod, pairs[f.name], working.get(f.name, pairs[f.name][0]))
            if index.get(other) is not None and pod.spec.containers[index[other]].image == f.image:
                continue  # the working container already runs it
            target = chosen
            working[f.name] = chosen
            version = ss.metadata.resource_version
            hot_annotations[ANNOTATION_SIDECARSET_VERSION_PREFIX + chosen] = version
            hot_annotations[ANNOTATION_SIDECARSET_VERSION_ALT_PREFIX + chosen] = \
                pod.metadata.annotations.get(ANNOTATION_SIDECARSET_VERSION_PREFIX + other, "")
            hot_annotations[ANNOTATION_SIDECARSET_VERSION_ALT_PREFIX + other] = version
        i = index.get(target)
        if i is None or pod.spec.containers[i].image == f.image:
            continue
        patch.set_container_image(i, f.image)
        status = statuses.get(target)
        changed[target] = {"imageID": status.image_id if status is not None else ""}
    hashes = read_hashes(pod.metadata.name, pod.metadata.namespace, pod.metadata.annotations, ANNOTATION_SIDECARSET_HASH)
    hashes[name] = UpgradeSpec(updateTimestamp=stamp, hash=ss.metadata.annotations.get(ANNOTATION_SIDECARSET_HASH, ""),
                               sidecarSetName=name, sidecarList=sorted(sidecar_names(ss)),
                               controllerRevision=ss.status.latest_revision)
    annotations = dict(pod.metadata.annotations)
    annotations[ANNOTATION_SIDECARSET_HASH] = encode_hashes(hashes)
    if hot_annotations:
        annotations.update(hot_annotations)
        annotations[ANNOTATION_SIDECARSET_WORKING_HOT_CONTAINER] = json.dumps(
            working, sort_keys=True, separators=(",", ":"))
    state = inplace_state(pod) or {}
    state.pop("\x00", None)
    entry = state.get(name) if isinstance(state.get(name), dict) else None
    if entry is None:
        entry = {"revision": ss.metadata.annotations.get(ANNOTATION_SIDECARSET_HASH, ""), "updateTimestamp": stamp,
                 "lastContainerStatuses": {}}
    entry.setdefault("lastContainerStatuses", {}).update(changed)
    state[name] = entry
    annotations[ANNOTATION_SIDECARSET_INPLACE_STATE] = json.dumps(state, sort_keys=True, separators=(",", ":"))
    listed = [n for n in annotations.get(ANNOTATION_SIDECARSET_INJECTED_LIST, "").split(",") if n]
    if name not in listed:
        annotations[ANNOTATION_SIDECARSET_INJECTED_LIST] = ",".join(sorted({*listed, name}))
    patch_pod_metadata(annotations, ss.spec.patch_pod_metadata)
    for key, value in annotations.items():
        if pod.metadata.annotations.get(key) != value:
            patch.set_annotation(key, value)
    ops = [PatchOp(resource=PODS, namespace=pod.metadata.namespace, name=pod.metadata.name, patch_type="json",
                   patch=patch.build())]
    condition = _condition_body(pod, name, True, now)
    if condition is not None:
        ops.append(_status_op(pod, condition))
    return ops


@dataclass(frozen=True, slots=True)
class _PodView:
    """One matched pod as the pass sees it (memoised per pod object and resourceVersion)."""

    uid: str
    facts: PodFacts
    key: PodKey  # kit.sort.active_pods_key
    preparing_update: bool  # lifecycle PreparingUpdate


@dataclass(eq=False)
class _Matched:
    """What a pass derives from the matched pods alone, kept with the memo and patched when a few pods
    were replaced by new versions that still match. The counts and upgrade orders are for the hashes
    `want`; a pass with other hashes (the sidecar images changed: an upgrade starts) recounts them
    from the kept facts instead of deciding every pod again."""

    version: int  # the memo's version these are for
    pods: list[Pod]
    facts: dict[str, PodFacts]
    keys: dict[str, PodKey]
    preparing: set[str]  # uids in lifecycle PreparingUpdate
    index: dict[str, int] | None  # uid -> position in pods (None: a uid appears twice, no patching)
    want: Wanted
    counts: tuple[int, int, int]  # summed podfacts.tally for `want`
    revisions: set[str] | None = None  # the revisions the pods' hash entries name
    upgrades: dict[bytes, UpgradePods] = field(default_factory=dict)  # by update strategy

    def recount(self, want: Wanted) -> None:
        """The counts and orders for other hashes (the facts do not depend on them)."""
        if want == self.want:
            return
        self.want = want
        self.counts = tally_all(self.facts.values(), want)
        self.upgrades.clear()


# Per SidecarSet: each pod's view (None: not matched), reused while the pod is the same object at the
# same resourceVersion (kit.memo) and the SidecarSet's selectors, sidecars, hashes and the namespaces
# are those the memo was built for.
_MATCHES: MemoRegistry[Pod, _PodView | None] = MemoRegistry(limit=1024)


def _build(version: int, pods: Sequence[Pod], per_pod: list[_PodView | None], want: Wanted) -> _Matched:
    matched: list[Pod] = []
    facts: dict[str, PodFacts] = {}
    keys: dict[str, PodKey] = {}
    preparing: set[str] = set()
    for p, v in zip(pods, per_pod, strict=True):
        if v is None:
            continue
        matched.append(p)
        facts[v.uid] = v.facts
        keys[v.uid] = v.key
        if v.preparing_update:
            preparing.add(v.uid)
    index = {p.metadata.uid: i for i, p in enumerate(matched)}
    return _Matched(version, matched, facts, keys, preparing, index if len(index) == len(matched) else None,
                    want, tally_all(facts.values(), want))


def _patch(got: _Matched, pods: Sequence[Pod], changes: list[tuple[int, _PodView | None, _PodView | None]]) -> bool:
    """Pods replaced by a new version that still matches: patched in place; False for anything else."""
    if got.index is None:
        return False
    for _, old, new in changes:
        if (old is None) != (new is None) or (old is not None and new is not None and old.uid != new.uid):
            return False
    counts = list(got.counts)
    for i, old, new in changes:
        if old is None or new is None:
            continue
        uid = new.uid
        got.pods[got.index[uid]] = pods[i]
        got.facts[uid] = new.facts
        got.keys[uid] = new.key
        if new.preparing_update:
            got.preparing.add(uid)
        else:
            got.preparing.discard(uid)
        for k, (a, b) in enumerate(zip(tally(old.facts, got.want), tally(new.facts, got.want), strict=True)):
            counts[k] += b - a
    got.counts = (counts[0], counts[1], counts[2])
    got.revisions = None
    got.upgrades.clear()
    return True


def _matched(ss: SidecarSet, pods: Sequence[Pod], namespaces: Mapping[str, Mapping[str, str]] | None,
             names: list[str], pairs: dict[str, tuple[str, str, str]]) -> _Matched:
    # not the hashes: a pod's matching and facts do not depend on them (`_Matched.recount`)
    key = (ss.metadata.name, msgspec.json.encode(ss.spec.selector), msgspec.json.encode(namespace_selector(ss)),
           tuple(names), tuple(sorted(pairs.items())),
           None if namespaces is None else tuple(sorted((k, tuple(sorted(v.items()))) for k, v in namespaces.items())))

    # a copy: the memo may call this for later passes whose namespaces equal these (same key)
    ns = None if namespaces is None else {k: dict(v) for k, v in namespaces.items()}

    def view(pod: Pod) -> _PodView | None:
        if not is_matched(ss, pod, ns, names=names, pairs=pairs):
            return None
        return _PodView(pod.metadata.uid, pod_facts(ss, pod, names), active_pods_key(pod),
                        lifecycle_state(pod) == STATE_PREPARING_UPDATE)

    memo = _MATCHES.get(ss.metadata.uid or ss.metadata.name, key, view)
    per_pod = memo.facts(pods)
    want = Wanted.of(ss)
    got: _Matched | None = memo.derived if isinstance(memo.derived, _Matched) else None
    if got is not None and got.version == memo.version:
        got.recount(want)
        return got
    if got is not None and got.version == memo.version - 1 and memo.changes is not None:
        got.recount(want)
        if not _patch(got, pods, memo.changes):
            got = None
    else:
        got = None
    if got is None:
        got = _build(memo.version, pods, per_pod, want)
        memo.derived = got
    got.version = memo.version
    return got


@gc_paused
def plan_sidecarset(ss: SidecarSet, pods: Sequence[Pod], revisions: Sequence[ControllerRevision], *, now: datetime,
                    gates: FeatureGates = DEFAULT_GATES,
                    kruise_namespace: str = DEFAULT_KRUISE_NAMESPACE,
                    namespaces: Mapping[str, Mapping[str, str]] | None = None) -> SidecarSetPlan:
    if ANNOTATION_SIDECARSET_HASH not in ss.metadata.annotations:
        # written while no webhook defaulted it: plan on the object the webhook would have stored
        ss = msgspec.convert(default_sidecarset(msgspec.to_builtins(ss)), SidecarSet)
    # the rules of the SidecarSet alone (admission also checked other SidecarSets and the whitelist)
    errors = validate_sidecarset(ss, gates=gates, lookup=lambda s: find_specific(s, revisions, kruise_namespace))
    errors = [e for e in errors if e.field != "spec.patchPodMetadata"]
    if ss.metadata.deletion_timestamp is not None:
        return SidecarSetPlan()
    b = Builder.of(SIDECARSET, ss, now)
    if errors:  # admitted while no webhook checked it: said in the rollout log, nothing acted on
        b.event("rejected", f"invalid spec: {errors_message(errors)}", reason=REASON_INVALID_SPEC,
                field=errors[0].field)
        return SidecarSetPlan(errors=errors, events=b.events)
    out = SidecarSetPlan()
    names, pairs = sidecar_names(ss), hot_pairs(ss)
    view = _matched(ss, pods, namespaces, names, pairs)
    matched = view.pods
    # 1. revisions
    owner = controller_ref(b.ref)
    reg = register_latest(ss, revisions, kruise_namespace, owner, revisions)
    rev = reg.revision
    if reg.create:
        body = msgspec.to_builtins(rev)
        b.command(f"{b.uid}/{VERB_REVISION_CREATE}/{rev.metadata.name}", VERB_REVISION_CREATE,
                  [CreateOp(resource=CONTROLLER_REVISIONS, namespace=kruise_namespace, body=body)],
                  revision=rev.metadata.name)
    elif reg.renumber:
        b.command(f"{b.uid}/{VERB_REVISION_BUMP}/{rev.metadata.name}/{rev.revision}", VERB_REVISION_BUMP,
                  [PatchOp(resource=CONTROLLER_REVISIONS, namespace=kruise_namespace, name=rev.metadata.name,
                           patch_type="merge", patch={"revision": rev.revision})])
    if reg.relabel:
        version = rev.metadata.labels[LABEL_SIDECARSET_CUSTOM_VERSION]
        b.command(f"{b.uid}/{VERB_REVISION_LABEL}/{rev.metadata.name}/{version}", VERB_REVISION_LABEL,
                  [PatchOp(resource=CONTROLLER_REVISIONS, namespace=kruise_namespace, name=rev.metadata.name,
                           patch_type="merge", patch={"metadata": {"labels": {
                               LABEL_SIDECARSET_CUSTOM_VERSION: version}}})])
    hist = history(ss, [r for r in revisions if r.metadata.name != rev.metadata.name] + [rev], kruise_namespace)
    hist.sort(key=lambda r: r.revision)
    facts = view.facts
    if view.revisions is None:
        view.revisions = {f.revision for f in facts.values() if f.revision}
    active = set(view.revisions)
    active.add(rev.metadata.name)
    doomed, _limit_error = to_truncate(ss, hist, active)
    by_name = {r.metadata.name: r for r in revisions}
    for name in doomed:
        old = by_name.get(name)
        if old is not None:
            b.command(f"{b.uid}/{VERB_REVISION_DELETE}/{name}", VERB_REVISION_DELETE,
                      [DeleteOp(resource=CONTROLLER_REVISIONS, namespace=kruise_namespace, name=name,
                                uid=old.metadata.uid)])
    # 2. status, before any pod change
    ss = msgspec.structs.replace(ss, status=msgspec.structs.replace(ss.status, latest_revision=rev.metadata.name))
    status = status_of(ss, len(matched), view.counts, rev.metadata.name, reg.collision_count)
    out.status = status
    if status != ss.status or ss.status.collision_count is None:
        body = status_body(status)
        b.command(f"{b.uid}/{VERB_STATUS}/{ss.metadata.resource_version}/{short_digest(body)}", VERB_STATUS,
                  [PatchOp(resource=SIDECARSETS, namespace="", name=ss.metadata.name, patch_type="merge",
                           patch={"status": body}, subresource="status")])
    strategy = ss.spec.update_strategy
    if strategy.type == SIDECARSET_NOT_UPDATE or strategy.paused:
        out.commands, out.events = b.commands, b.events
        return out
    # 3. HotUpgrade: pods whose hot upgrade finished are flipped, and that is the whole pass
    if hot_pairs(ss):
        names = sidecar_names(ss)
        flips = [(p, ops) for p in matched if (ops := flip_ops(ss, p, names)) is not None]
        for pod, ops in flips:
            b.command(f"{b.uid}/{VERB_SIDECAR_UPGRADE}/{pod.metadata.uid}/flip/{pod.metadata.resource_version}",
                      VERB_SIDECAR_UPGRADE, list(ops), pod=pod.metadata.name, pod_uid=pod.metadata.uid,
                      on_success=_pod_event(pod, EVENT_RESET_CONTAINER_SUCCEED, RESET_CONTAINER_SUCCEED_MESSAGE),
                      on_failure=_pod_event(pod, EVENT_RESET_CONTAINER_FAILED, RESET_CONTAINER_FAILED_MESSAGE,
                                            warning=True))
        if flips:
            out.commands, out.events, out.requeue_after = b.commands, b.events, 5.0
            return out
    if status.updated_pods >= status.matched_pods:
        out.commands, out.events = b.commands, b.events
        return out
    # 4. upgrades
    strategy_key = msgspec.json.encode(strategy)
    known = view.upgrades.get(strategy_key)
    if known is None:  # a function of the strategy and the matched pods' facts (no clock)
        known = view.upgrades[strategy_key] = next_upgrade_pods(
            ss, matched, facts, keys=view.keys if view.index is not None else None,
            preparing_update=None if view.preparing else False)
    chosen, not_upgradable, budget = known
    for pod in not_upgradable:
        condition = _condition_body(pod, ss.metadata.name, False, now)
        if condition is not None:
            b.command(f"{b.uid}/{VERB_SIDECAR_CONDITION}/{pod.metadata.uid}/{pod.metadata.resource_version}",
                      VERB_SIDECAR_CONDITION, [_status_op(pod, condition)], pod=pod.metadata.name,
                      pod_uid=pod.metadata.uid)
        out.not_upgradable.append(f"{pod.metadata.namespace}/{pod.metadata.name}")
    if not_upgradable:
        message = not_upgradable_message(len(not_upgradable))
        b.command(f"{b.uid}/event/{ss.metadata.resource_version}/{len(not_upgradable)}/{short_digest(out.not_upgradable)}",
                  VERB_EVENT, [], on_success=kube_event(EVENT_NOT_UPGRADABLE_PODS, message))
    hash_ = ss.metadata.annotations.get(ANNOTATION_SIDECARSET_HASH, "")
    for pod in chosen:
        # a pod not Ready in this view is upgraded free (outside maxUnavailable), so only as long as it is
        # this version: one that became Ready since (its restart finished while the command was on its
        # way) would be taken down uncharged; the stale command is rejected and decided again
        charged = facts[pod.metadata.uid].ready
        try:
            ops = upgrade_ops(ss, pod, now, exact=not charged)
        except PatchError as e:
            b.event("rejected", f"pod {pod.metadata.namespace}/{pod.metadata.name}: {e}", reason="patchPodMetadata")
            continue
        # the evidence of the decision (kit.budget)
        b.command(f"{b.uid}/{VERB_SIDECAR_UPGRADE}/{pod.metadata.uid}/{hash_}", VERB_SIDECAR_UPGRADE, list(ops),
                  pod=pod.metadata.name, pod_uid=pod.metadata.uid,
                  data=budget.evidence(charged=charged, resource_version=pod.metadata.resource_version))
        # until the view shows the patched pod, a pass would count it old and consistent and spend its
        # budget again on another pod
        b.expect(pod.metadata.name, "changed", pod.metadata.uid, pod.metadata.resource_version)
        out.upgrade.append(f"{pod.metadata.namespace}/{pod.metadata.name}")
    out.commands, out.events, out.expectations = b.commands, b.events, b.expectations
    if chosen or not_upgradable:
        out.requeue_after = 5.0
    return out


__all__ = ["SidecarSetPlan", "compute_status", "is_consistent", "is_matched", "is_updated", "is_upgradable",
           "UpgradePods", "next_upgrade_pods", "not_upgradable_message", "plan_sidecarset", "upgrade_ops"]
