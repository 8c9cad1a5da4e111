"""Which nodes a pod may run on: toleration and node-affinity matching, written once.

The sim's scheduler and taint manager (`sim/placement.py`, `sim/node_lifecycle.py`), the BroadcastJob
planner and the Advanced DaemonSet planner all decide "does this pod fit this node" with these pure
functions over `schemas.kube` views, so the cluster and the controllers cannot disagree about a taint
or an affinity term. They follow `k8s.io/api/core/v1` (`Toleration.ToleratesTaint`), the node affinity
of `k8s.io/component-helpers/scheduling/corev1` and, for DaemonSets, Kubernetes'
`pkg/controller/daemon/util` (the default tolerations, the pod's target node) with Kruise's
`nodeShouldRunDaemonPod` (`pkg/controller/daemonset/daemonset_util.go`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

from schemas.constants import (
    EFFECT_NO_EXECUTE,
    EFFECT_NO_SCHEDULE,
    FIELD_NODE_NAME,
    TAINT_DISK_PRESSURE,
    TAINT_MEMORY_PRESSURE,
    TAINT_NETWORK_UNAVAILABLE,
    TAINT_NOT_READY,
    TAINT_PID_PRESSURE,
    TAINT_UNREACHABLE,
    TAINT_UNSCHEDULABLE,
)
from schemas.kube import (
    Affinity,
    Node,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    PodPlacementView,
    Taint,
    Toleration,
)

__all__ = [
    "DaemonFit",
    "daemon_should_run",
    "daemon_tolerations",
    "matches_required",
    "requirement_matches",
    "target_node",
    "term_matches",
    "tolerates",
    "untolerated",
]


def tolerates(toleration: Toleration, taint: Taint) -> bool:
    """`Toleration.ToleratesTaint`: effect and key must match when set; `Exists` matches any value,
    `Equal` (or no operator) the same value; any other operator matches nothing."""
    if toleration.effect and toleration.effect != taint.effect:
        return False
    if toleration.key and toleration.key != taint.key:
        return False
    op = toleration.operator or "Equal"
    if op == "Exists":
        return True
    if op == "Equal":
        return toleration.value == taint.value
    return False


def untolerated(taints: Iterable[Taint], tolerations: Sequence[Toleration], effects: tuple[str, ...]) -> Taint | None:
    """The first taint with one of `effects` that no toleration tolerates (None: all tolerated)."""
    for t in taints:
        if t.effect in effects and not any(tolerates(tol, t) for tol in tolerations):
            return t
    return None


def requirement_matches(req: NodeSelectorRequirement, value: str | None) -> bool:
    """One NodeSelectorRequirement against a label value (None: the label is absent)."""
    op = req.operator
    if op == "In":
        return value is not None and value in req.values
    if op == "NotIn":
        return value is None or value not in req.values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt") and value is not None and len(req.values) == 1:
        try:
            have, want = int(value), int(req.values[0])
        except ValueError:
            return False
        return have > want if op == "Gt" else have < want
    return False


def term_matches(term: NodeSelectorTerm, node: Node) -> bool:
    """A NodeSelectorTerm: every matchExpression (labels) and matchField (only `metadata.name` exists)
    holds; a term with neither matches no node."""
    if not term.match_expressions and not term.match_fields:
        return False
    labels = node.metadata.labels
    if not all(requirement_matches(r, labels.get(r.key)) for r in term.match_expressions):
        return False
    return all(r.key == FIELD_NODE_NAME and requirement_matches(r, node.metadata.name) for r in term.match_fields)


def matches_required(placement: PodPlacementView, node: Node) -> bool:
    """The pod's required node affinity: `spec.nodeSelector` (every key=value) and the required terms
    of `affinity.nodeAffinity` (ORed; an empty term list matches nothing)."""
    labels = node.metadata.labels
    if any(labels.get(k) != v for k, v in placement.node_selector.items()):
        return False
    affinity = placement.affinity.node_affinity if placement.affinity is not None else None
    required = affinity.required_during_scheduling_ignored_during_execution if affinity is not None else None
    if required is None:
        return True
    return any(term_matches(t, node) for t in required.node_selector_terms)


# --- DaemonSets ------------------------------------------------------------------------------------

_DAEMON_NO_EXECUTE = (TAINT_NOT_READY, TAINT_UNREACHABLE)
_DAEMON_NO_SCHEDULE = (TAINT_DISK_PRESSURE, TAINT_MEMORY_PRESSURE, TAINT_PID_PRESSURE, TAINT_UNSCHEDULABLE)


def _defaults(host_network: bool) -> list[Toleration]:
    out = [Toleration(key=k, operator="Exists", effect=EFFECT_NO_EXECUTE) for k in _DAEMON_NO_EXECUTE]
    out += [Toleration(key=k, operator="Exists", effect=EFFECT_NO_SCHEDULE) for k in _DAEMON_NO_SCHEDULE]
    if host_network:
        out.append(Toleration(key=TAINT_NETWORK_UNAVAILABLE, operator="Exists", effect=EFFECT_NO_SCHEDULE))
    return out


def daemon_tolerations(tolerations: Sequence[Toleration], host_network: bool) -> list[Toleration]:
    """The pod's tolerations plus the DaemonSet defaults (`AddOrUpdateDaemonPodTolerations`): not-ready
    and unreachable NoExecute, disk/memory/pid-pressure and unschedulable NoSchedule, network-unavailable
    NoSchedule with hostNetwork; all `Exists` without tolerationSeconds. A user toleration equal in key,
    operator, value and effect is replaced by the default (which then carries no tolerationSeconds)."""
    out = list(tolerations)
    for d in _defaults(host_network):
        same = next((i for i, t in enumerate(out) if (t.key, t.operator, t.value, t.effect)
                     == (d.key, d.operator, d.value, d.effect)), None)
        if same is None:
            out.append(d)
        else:
            out[same] = d
    return out


class DaemonFit(NamedTuple):
    should_run: bool  # a pod should be created here
    should_continue_running: bool  # an existing pod may stay


def daemon_should_run(node: Node, placement: PodPlacementView,
                      tolerations: Sequence[Toleration] | None = None) -> DaemonFit:
    """Kruise's `nodeShouldRunDaemonPod` over the simulated daemon pod (`placement` = the template's
    spec; `tolerations`: its `daemon_tolerations`, computed here when not given): `spec.nodeName` and the
    required node affinity decide both; an untolerated NoSchedule or NoExecute taint stops new pods, only
    an untolerated NoExecute one evicts. Nothing else is checked (no Ready condition, resources, ports or
    pod count)."""
    if placement.node_name and placement.node_name != node.metadata.name:
        return DaemonFit(False, False)
    if not matches_required(placement, node):
        return DaemonFit(False, False)
    taints = node.spec.taints
    if not taints:
        return DaemonFit(True, True)
    if tolerations is None:
        tolerations = daemon_tolerations(placement.tolerations, placement.host_network)
    if untolerated(taints, tolerations, (EFFECT_NO_EXECUTE,)) is not None:
        return DaemonFit(False, False)
    if untolerated(taints, tolerations, (EFFECT_NO_SCHEDULE,)) is not None:
        return DaemonFit(False, True)
    return DaemonFit(True, True)


def target_node(node_name: str, affinity: Affinity | None) -> str:
    """The node a daemon pod is meant for (`GetTargetNodeName`): `spec.nodeName`, else the one value of
    a required term's `matchFields metadata.name In [x]`; "" when it has neither."""
    if node_name:
        return node_name
    na = affinity.node_affinity if affinity is not None else None
    required = na.required_during_scheduling_ignored_during_execution if na is not None else None
    if required is None:
        return ""
    for term in required.node_selector_terms:
        for f in term.match_fields:
            if f.key == FIELD_NODE_NAME and f.operator == "In" and len(f.values) == 1:
                return f.values[0]
    return ""
