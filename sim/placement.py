"""Which nodes a pod may run on: the scheduler's filters and the taint manager's NoExecute rule.

Pure functions over the store's pod and node dicts (the matching itself is `schemas.placement`, which
the planners use too), shared by the sim's scheduler (`sim/nodes.py`) and its
node lifecycle controller (`sim/node_lifecycle.py`), written after kube-scheduler 1.20's filter
plugins (NodeUnschedulable, NodeAffinity with nodeSelector, TaintToleration, NodeResourcesFit's pod
count) and `k8s.io/api/core/v1` toleration matching.
"""

from __future__ import annotations

from typing import Any

import msgspec

from schemas import placement
from schemas.constants import TAINT_UNSCHEDULABLE
from schemas.kube import Node, NodeSelectorTerm, ObjectMeta, PodPlacementView, Taint, Toleration

# reasons as kube-scheduler 1.20 words them in "0/N nodes are available: ..." (nodeSelector and
# required node affinity share one; newer versions say "didn't match Pod's node affinity/selector")
REASON_SELECTOR = "node(s) didn't match Pod's node affinity"
REASON_UNSCHEDULABLE = "node(s) were unschedulable"
REASON_NOT_READY = "node(s) were not ready"
REASON_TOO_MANY_PODS = "Too many pods"

_NO_TOLERATIONS: list[Toleration] = []


def _tolerations(items: list[dict[str, Any]]) -> list[Toleration]:
    return [msgspec.convert(t, Toleration) for t in items] if items else _NO_TOLERATIONS


def tolerates(toleration: dict[str, Any], taint: dict[str, Any]) -> bool:
    """`schemas.placement.tolerates` over the store's dicts."""
    return placement.tolerates(msgspec.convert(toleration, Toleration), msgspec.convert(taint, Taint))


def untolerated(
    taints: list[dict[str, Any]], tolerations: list[dict[str, Any]], effects: tuple[str, ...]
) -> dict[str, Any] | None:
    """The first taint with one of `effects` that no toleration tolerates."""
    tols = _tolerations(tolerations)
    for t in taints:
        if t.get("effect") in effects and placement.untolerated([msgspec.convert(t, Taint)], tols, effects):
            return t
    return None


def _node(node: dict[str, Any]) -> Node:
    """The part of a Node that affinity reads (its name and labels)."""
    meta = node["metadata"]
    return Node(metadata=ObjectMeta(name=meta["name"], labels=meta.get("labels") or {}))


def term_matches(term: dict[str, Any], node: dict[str, Any]) -> bool:
    """`schemas.placement.term_matches` over the store's dicts."""
    return placement.term_matches(msgspec.convert(term, NodeSelectorTerm), _node(node))


def matches_node_selector(pod: dict[str, Any], node: dict[str, Any]) -> bool:
    """spec.nodeSelector and the required node affinity (terms ORed)."""
    spec = pod.get("spec") or {}
    view = msgspec.convert({k: spec[k] for k in ("nodeSelector", "affinity") if spec.get(k)}, PodPlacementView)
    return placement.matches_required(view, _node(node))


def node_ready(node: dict[str, Any]) -> bool:
    conds = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def filter_reason(pod: dict[str, Any], node: dict[str, Any], pods_on_node: int) -> str | None:
    """Why `node` cannot take `pod` (None: it can), as the scheduler reports it."""
    spec = pod.get("spec") or {}
    tolerations = spec.get("tolerations") or []
    if (node.get("spec") or {}).get("unschedulable") and not any(
        tolerates(t, {"key": TAINT_UNSCHEDULABLE, "effect": "NoSchedule"}) for t in tolerations
    ):
        return REASON_UNSCHEDULABLE
    if not node_ready(node):
        return REASON_NOT_READY
    if not matches_node_selector(pod, node):
        return REASON_SELECTOR
    taint = untolerated(
        (node.get("spec") or {}).get("taints") or [], tolerations, ("NoSchedule", "NoExecute")
    )
    if taint is not None:
        return f"node(s) had taint {{{taint.get('key', '')}: {taint.get('value', '')}}}, that the pod didn't tolerate"
    cap = int(((node.get("status") or {}).get("allocatable") or {}).get("pods", "110"))
    if pods_on_node >= cap:
        return REASON_TOO_MANY_PODS
    return None


def unschedulable_message(total: int, reasons: list[str]) -> str:
    """`0/3 nodes are available: 1 node(s) didn't match Pod's node affinity, 2 node(s) had taint {...}.`"""
    counts: dict[str, int] = {}
    for r in reasons:
        counts[r] = counts.get(r, 0) + 1
    parts = sorted(f"{n} {r}" for r, n in counts.items())
    return f"0/{total} nodes are available: {', '.join(parts)}."
