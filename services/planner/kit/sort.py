"""Pod orderings: which pods to update first (`SortUpdateIndexes`, `scatterSort`) and which to delete first on scale-in (`choosePodsToDelete`).

Kubernetes/Kruise express these as ``Less`` functions over several criteria; each criterion here is a
total preorder, so the same ordering is written as a sort *key* and Python's stable sort is used.
Where Go uses the unstable ``sort.Sort``/``sort.Slice`` the only possible difference is the relative
order of pods that tie on every criterion; kruisebus keeps their input order (deterministic plans).

Pure functions: timestamps are parsed from the pods, nothing reads a clock.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Final, Protocol

from schemas.constants import ANNOTATION_DELETION_COST, STATE_PREPARING_UPDATE
from schemas.kube import JsonObject, Pod
from schemas.pub import UpdatePriorityStrategy, UpdateScatterTerm
from services.planner.kit.podstate import (
    PHASE_PENDING,
    PHASE_RUNNING,
    PHASE_UNKNOWN,
    is_available,
    lifecycle_state,
)
from services.planner.kit.selectors import conversion_error, matches
from services.planner.kit.timeutil import parse_time

LABEL_HOSTNAME: Final = "kubernetes.io/hostname"
_PHASE_ORDINAL: Final = {PHASE_PENDING: 0, PHASE_UNKNOWN: 1, PHASE_RUNNING: 2}
_DELETION_COST: Final = re.compile(r"-?[0-9]+")
_TRAILING_DIGITS: Final = re.compile(r"[0-9]+$")

PodKey = tuple[float, ...]


@lru_cache(maxsize=65536)
def _epoch(text: str) -> float | None:
    """Seconds since the epoch of an RFC3339 timestamp (cached: the same strings recur across pods)."""
    parsed = parse_time(text)
    return None if parsed is None else parsed.timestamp()


def _newest_first(text: str | None) -> tuple[float, float]:
    """Kubernetes ``afterOrZero`` as a key: zero time first, then later times before earlier ones."""
    when = _epoch(text) if text else None
    return (0.0, 0.0) if when is None else (1.0, -when)


def _ready_and_since(pod: Pod) -> tuple[bool, str | None]:
    """(Ready condition True, its lastTransitionTime) in one pass (Kubernetes reads the first Ready condition)."""
    for cond in pod.status.conditions:
        if cond.type == "Ready":
            return (True, cond.last_transition_time) if cond.status == "True" else (False, None)
    return False, None


def _max_restarts(pod: Pod) -> int:
    most = 0
    for status in pod.status.container_statuses:
        if status.restart_count > most:
            most = status.restart_count
    return most


def active_pods_key(pod: Pod) -> PodKey:
    """Sort key for Kubernetes ``controller.ActivePods`` ("least valuable first").

    Unscheduled < scheduled; Pending < Unknown < Running (other phases rank with Pending); not ready <
    ready; both ready -> more recently ready first (missing time first); more restarts first; newer
    (or missing) creationTimestamp first.
    """
    ready, since = _ready_and_since(pod)
    ready_key = _newest_first(since) if ready else (0.0, 0.0)
    created = _newest_first(pod.metadata.creation_timestamp)
    return (
        1.0 if pod.spec.node_name else 0.0,
        float(_PHASE_ORDINAL.get(pod.status.phase, 0)),
        1.0 if ready else 0.0,
        ready_key[0],
        ready_key[1],
        -float(_max_restarts(pod)),
        created[0],
        created[1],
    )


def sort_active_pods(pods: Sequence[Pod], now: datetime | None = None) -> list[Pod]:
    """Pods in ActivePods order (``now`` is accepted for symmetry; this ordering needs no clock)."""
    del now
    return sorted(pods, key=active_pods_key)


def deletion_cost(pod: Pod) -> int:
    """``controller.kubernetes.io/pod-deletion-cost`` as int32; invalid ("+1", "007", overflow) -> 0.

    Mirrors Kubernetes: the value must start with '-', be exactly "0", or start with 1-9, and then
    parse as a base-10 int32.
    """
    value = pod.metadata.annotations.get(ANNOTATION_DELETION_COST)
    if not value:
        return 0
    first = value[0]
    if not (first == "-" or value == "0" or "1" <= first <= "9") or not _DELETION_COST.fullmatch(value):
        return 0
    number = int(value)
    return number if -(2**31) <= number < 2**31 else 0


# ---------------------------------------------------------------------------------------------------
# Update order (`SortUpdateIndexes`)


def _weight(strategy: UpdatePriorityStrategy, labels: Mapping[str, str]) -> int:
    """Sum of the weights of matching weightPriority terms (terms with invalid selectors are skipped)."""
    total = 0
    for term in strategy.weight_priority or ():
        selector = term.match_selector
        if selector is None or conversion_error(selector) is not None:
            continue
        if matches(selector, labels):
            total += term.weight
    return total


def _trailing_int(value: str) -> int:
    """The integer formed by the value's trailing digits (Kruise ``getIntFromStringSuffix``); none -> 0."""
    found = _TRAILING_DIGITS.search(value)
    if found is None:
        return 0
    number = int(found.group())
    return number if number < 2**63 else 0


def _order(strategy: UpdatePriorityStrategy, labels: Mapping[str, str]) -> tuple[int, int]:
    """(level, order): index of the first orderedKey present (-1 if none) and its trailing number."""
    for level, term in enumerate(strategy.order_priority or ()):
        if term.ordered_key in labels:
            return level, _trailing_int(labels[term.ordered_key])
    return -1, 0


def priority_sort(pods: Sequence[Pod], strategy: UpdatePriorityStrategy | None) -> list[Pod]:
    """Kruise ``prioritySort``: stable; higher weight first, or lower level then *larger* number first.

    QUIRK kept: with orderPriority, pods carrying none of the keys (level -1) come before every keyed pod.
    """
    if strategy is None or (not strategy.weight_priority and not strategy.order_priority):
        return list(pods)
    if strategy.weight_priority:
        weights = {id(p): _weight(strategy, p.metadata.labels) for p in pods}
        return sorted(pods, key=lambda p: -weights[id(p)])
    orders = {id(p): _order(strategy, p.metadata.labels) for p in pods}
    return sorted(pods, key=lambda p: (orders[id(p)][0], -orders[id(p)][1]))


def _f32(x: float) -> float:
    """Round to float32 (Kruise compares pod densities as float32)."""
    rounded: float = struct.unpack("f", struct.pack("f", x))[0]
    return rounded


def _go_round(x: float) -> int:
    """Go ``math.Round``: halves away from zero (Python's ``round`` is banker's rounding)."""
    return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(-x + 0.5))


class _ScatterGroup:
    """How matched/unmatched candidates are interleaved: groups of sizes (matched, unmatched)."""

    __slots__ = ("group_num", "matched_size", "unmatched_size", "unmatched_remainder")

    def __init__(self, group_num: int, matched_size: int, unmatched_size: int, unmatched_remainder: int = 0):
        self.group_num = group_num
        self.matched_size = matched_size
        self.unmatched_size = unmatched_size
        self.unmatched_remainder = unmatched_remainder


def _scatter_group(matched: int, unmatched: int) -> _ScatterGroup:
    groups = min(matched, unmatched)
    return _ScatterGroup(groups, _go_round(matched / groups), _go_round(unmatched / groups))


def _group_by_density(
    total_matched: int, total_unmatched: int, upd_matched: int, upd_unmatched: int
) -> _ScatterGroup:
    """Kruise ``calculateGroupByDensity``: candidates' own ratio, unless the whole set is denser in matched.

    When matched pods are relatively rarer among all pods than among candidates, group sizes follow the
    global ratio and the leftover unmatched candidates go first (``unmatched_remainder``).
    """
    total = _scatter_group(total_matched, total_unmatched)
    update = _scatter_group(upd_matched, upd_unmatched)
    if _f32(_f32(total_unmatched) / _f32(total_matched)) >= _f32(_f32(upd_unmatched) / _f32(upd_matched)):
        return update
    group = _ScatterGroup(0, total.matched_size, total.unmatched_size)
    by_matched = upd_matched // group.matched_size
    by_unmatched = upd_unmatched // group.unmatched_size
    group.group_num = by_matched if by_matched < by_unmatched else by_unmatched
    group.unmatched_remainder = upd_unmatched - group.group_num * group.unmatched_size
    return group


def _scatter_by_term(term: UpdateScatterTerm, candidates: list[Pod], all_pods: Sequence[Pod]) -> list[Pod]:
    """Kruise ``scatterPodsByRule`` for one term (a missing label counts as value "")."""
    matched = [p for p in candidates if p.metadata.labels.get(term.key, "") == term.value]
    unmatched = [p for p in candidates if p.metadata.labels.get(term.key, "") != term.value]
    if len(matched) <= 1 or len(unmatched) <= 1:
        return candidates
    total_matched = sum(1 for p in all_pods if p.metadata.labels.get(term.key, "") == term.value)
    total_unmatched = len(all_pods) - total_matched
    last_matched = matched.pop()
    total_matched -= 1
    group = _group_by_density(total_matched, total_unmatched, len(matched), len(unmatched))
    out: list[Pod] = []
    mi = ui = 0  # cursors instead of re-slicing: O(n) for 10k-pod CloneSets
    if group.unmatched_remainder > 0:
        out.extend(unmatched[: group.unmatched_remainder])
        ui = group.unmatched_remainder
    for _ in range(group.group_num):
        if mi >= len(matched) and ui >= len(unmatched):
            break
        out.extend(matched[mi : mi + group.matched_size])
        mi += group.matched_size
        out.extend(unmatched[ui : ui + group.unmatched_size])
        ui += group.unmatched_size
    out.extend(matched[mi:])
    out.extend(unmatched[ui:])
    out.append(last_matched)
    return out


def _scatter_terms(terms: Sequence[UpdateScatterTerm], candidates: Sequence[Pod]) -> list[UpdateScatterTerm]:
    """Kruise ``getScatterTerms``: one term as is; several -> those matching a candidate, most matches first."""
    if len(terms) == 1:
        return list(terms)
    counts: dict[tuple[str, str], int] = {}
    ordered: list[UpdateScatterTerm] = []
    for term in terms:
        for pod in candidates:
            value = pod.metadata.labels.get(term.key)
            if value is not None and value == term.value:
                ident = (term.key, value)
                if ident not in counts:
                    counts[ident] = 0
                    ordered.append(UpdateScatterTerm(key=term.key, value=value))
                counts[ident] += 1
    return sorted(ordered, key=lambda t: -counts[(t.key, t.value)])


def scatter_sort(
    candidates: Sequence[Pod], all_pods: Sequence[Pod], terms: Sequence[UpdateScatterTerm] | None
) -> list[Pod]:
    """Kruise ``scatterSort.Sort`` (`scatterSort`): spread pods carrying each term's label across the update order.

    ``all_pods`` (every pod of the CloneSet, candidates included) supplies the global matched/unmatched
    density that decides the interleaving.
    """
    ordered = list(candidates)
    if not terms or len(ordered) <= 1:
        return ordered
    for term in _scatter_terms(terms, ordered):
        ordered = _scatter_by_term(term, ordered, all_pods)
    return ordered


class UpdateOrdering(Protocol):
    """What of a workload's update strategy orders its updates (Kruise's shared priority and scatter)."""

    @property
    def priority_strategy(self) -> UpdatePriorityStrategy | None: ...

    @property
    def scatter_strategy(self) -> list[UpdateScatterTerm] | None: ...


def sort_update_candidates(
    candidates: list[Pod], strategy: UpdateOrdering, all_pods: list[Pod], now: datetime | None = None, *,
    keys: Sequence[PodKey] | None = None, preparing_update: bool | None = None,
) -> list[Pod]:
    """Kruise ``SortUpdateIndexes``: ActivePods order, then priority, then scatter, then PreparingUpdate first.

    A caller that memoises per-pod facts may pass each candidate's ``active_pods_key`` (``keys``, aligned
    with ``candidates``) and whether any candidate is in lifecycle PreparingUpdate (``preparing_update``);
    the order is the same."""
    del now
    if keys is None:
        ordered = sorted(candidates, key=active_pods_key)
    else:
        ordered = [candidates[i] for i in sorted(range(len(candidates)), key=keys.__getitem__)]
    if strategy.priority_strategy is not None:
        ordered = priority_sort(ordered, strategy.priority_strategy)
    if strategy.scatter_strategy is not None:
        ordered = scatter_sort(ordered, all_pods, strategy.scatter_strategy)
    if preparing_update is False:
        return ordered  # the stable sort below would keep this order
    return sorted(ordered, key=lambda p: 0 if lifecycle_state(p) == STATE_PREPARING_UPDATE else 1)


# ---------------------------------------------------------------------------------------------------
# Scale-in order (`choosePodsToDelete`)


def _pod_id(pod: Pod) -> str:
    """Rankers key pods by UID (name for UID-less test pods)."""
    return pod.metadata.uid or pod.metadata.name


_Parts = tuple[tuple[float, float], tuple[float, float], tuple[float, float, float, float, float]]


def _deletion_parts(pod: Pod) -> _Parts:
    """The rank- and availability-independent pieces of :func:`deletion_key`, computed once per pod."""
    ready, since = _ready_and_since(pod)
    ready_key = _newest_first(since) if ready else (0.0, 0.0)
    created = _newest_first(pod.metadata.creation_timestamp)
    return (
        (1.0 if pod.spec.node_name else 0.0, float(_PHASE_ORDINAL.get(pod.status.phase, 0))),
        (1.0 if ready else 0.0, float(deletion_cost(pod))),
        (ready_key[0], ready_key[1], -float(_max_restarts(pod)), created[0], created[1]),
    )


def _compose(parts: _Parts, available: float, rank: float) -> PodKey:
    head, mid, tail = parts
    return (*head, available, *mid, -rank, *tail)


def deletion_key(
    pod: Pod,
    rank: float = 0.0,
    available: Callable[[Pod], bool] | None = None,
) -> PodKey:
    """Sort key for Kruise ``ActivePodsWithRanks`` ("delete first" order).

    Unscheduled < scheduled; Pending < Unknown < Running; not available < available (when an
    availability function is given); not ready < ready; lower deletion cost; higher rank; both ready ->
    more recently ready first; more restarts; newer creation first.
    """
    avail = (1.0 if available(pod) else 0.0) if available is not None else 0.0
    return _compose(_deletion_parts(pod), avail, rank)


def same_node_ranks(pods: Sequence[Pod], _parts: Mapping[int, _Parts] | None = None) -> dict[str, float]:
    """Kruise ``NewSameNodeRanker``: on a node with k > 1 of these pods, the k-1 least valuable get k-1..1.

    The most valuable pod per node (last in delete-first order, without ranks or availability) keeps
    rank 0, so scale-in drains crowded nodes first. Keys are pod UIDs (name when the UID is empty).
    """
    parts = _parts if _parts is not None else {id(p): _deletion_parts(p) for p in pods}
    by_node: dict[str, list[Pod]] = {}
    for pod in pods:
        if pod.spec.node_name:
            by_node.setdefault(pod.spec.node_name, []).append(pod)
    ranks: dict[str, float] = {}
    for on_node in by_node.values():
        if len(on_node) <= 1:
            continue
        ordered = sorted(on_node, key=lambda p: _compose(parts[id(p)], 0.0, 0.0))[:-1]
        for i, pod in enumerate(ordered):
            ranks[_pod_id(pod)] = float(len(ordered) - i)
    return ranks


@lru_cache(maxsize=64)
def _topology_weight(size: int) -> float:
    """``ln(#domains + 2)``: constraints with more domains weigh more."""
    return math.log(size + 2)


def spread_constraint_ranks(
    pods: Sequence[Pod],
    topology_keys: Sequence[str],
    nodes: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, float]:
    """Kruise ``NewSpreadConstraintsRanker`` (LimitedValues unused by CloneSet).

    For each topology key, pods are grouped by their node's label value; inside a domain they are
    ordered delete-first (using the same-node rank unless the key is the hostname) and get ranks
    n..1 times ``ln(#domains + 2)``, summed over constraints. ``nodes`` maps node name -> labels;
    without it only ``kubernetes.io/hostname`` (= node name) is known, so other keys rank nothing —
    the same result Kruise gets for nodes it cannot read.
    """
    node_order: list[str] = []
    pods_on_node: dict[str, list[Pod]] = {}
    for pod in pods:
        name = pod.spec.node_name
        if not name:
            continue
        if nodes is not None and name not in nodes:
            continue
        if name not in pods_on_node:
            node_order.append(name)
            pods_on_node[name] = []
        pods_on_node[name].append(pod)

    def node_labels(name: str) -> Mapping[str, str]:
        return nodes[name] if nodes is not None else {LABEL_HOSTNAME: name}

    same_node = same_node_ranks(pods)
    ranks: dict[str, float] = {}
    for key in topology_keys:
        domains: dict[str, list[Pod]] = {}
        for name in node_order:
            value = node_labels(name).get(key)
            if value is None:
                continue
            domains.setdefault(value, []).extend(pods_on_node[name])
        weight = _topology_weight(len(domains))
        use_same_node = key != LABEL_HOSTNAME
        for members in domains.values():
            ordered = sorted(
                members,
                key=lambda p: deletion_key(p, same_node.get(_pod_id(p), 0.0) if use_same_node else 0.0),
            )
            for i, pod in enumerate(ordered):
                pid = _pod_id(pod)
                ranks[pid] = ranks.get(pid, 0.0) + float(len(ordered) - i) * weight
    return ranks


def topology_spread_keys(template_spec: JsonObject) -> list[str]:
    """topologyKey of each ``template.spec.topologySpreadConstraints`` entry, in order."""
    raw = template_spec.get("topologySpreadConstraints") or []
    if not isinstance(raw, list):
        return []
    return [str(c.get("topologyKey", "")) for c in raw if isinstance(c, dict)]


def sort_scale_in(
    pods: list[Pod],
    all_pods: list[Pod],
    template_spec: JsonObject,
    now: datetime,
    min_ready_seconds: int,
    *,
    nodes: Mapping[str, Mapping[str, str]] | None = None,
) -> list[Pod]:
    """Kruise ``choosePodsToDelete``'s sort: ``pods`` (one revision group) in delete-first order.

    Ranks come from the topology-spread ranker when the template has topologySpreadConstraints, else
    from the same-node ranker; like Kruise, both rank within ``pods`` only (``all_pods`` is accepted
    for callers' convenience and not used). Availability is lifecycle-aware and uses minReadySeconds.
    """
    del all_pods
    keys = topology_spread_keys(template_spec)
    parts = {id(p): _deletion_parts(p) for p in pods}
    ranks = spread_constraint_ranks(pods, keys, nodes) if keys else same_node_ranks(pods, parts)

    def key(pod: Pod) -> PodKey:
        avail = 1.0 if is_available(pod, min_ready_seconds, now) else 0.0
        return _compose(parts[id(pod)], avail, ranks.get(_pod_id(pod), 0.0))

    return sorted(pods, key=key)
