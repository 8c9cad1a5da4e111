"""Which pods and namespaces a SidecarSet concerns, and when two SidecarSets overlap.

Kruise's `pkg/control/sidecarcontrol/util.go` (PodMatchedSidecarSet, IsCanarySidecarSet) and
`pkg/util/selector.go` (IsSelectorOverlapping). A v1alpha1 `spec.namespace` is the namespace selector
`{kubernetes.io/metadata.name: <namespace>}` it converts to (a `namespaceSelector` beside it is
dropped, as Kruise's conversion drops it).
"""

from __future__ import annotations

from collections.abc import Mapping

from schemas.constants import ANNOTATION_SIDECARSET_BASE, ANNOTATION_SIDECARSET_CANARY, LABEL_NAMESPACE_NAME
from schemas.kube import LabelSelector
from schemas.sidecarset import SidecarSet
from services.planner.kit.selectors import OP_DOES_NOT_EXIST, OP_EXISTS, OP_IN, OP_NOT_IN, is_empty, matches

_ALL = "\x00ALL"


def namespace_selector(ss: SidecarSet) -> LabelSelector | None:
    """The SidecarSet's effective namespace selector (v1beta1's), None: every namespace."""
    if ss.spec.namespace:
        return LabelSelector(match_labels={LABEL_NAMESPACE_NAME: ss.spec.namespace})
    return ss.spec.namespace_selector


def is_canary(ss: SidecarSet) -> tuple[bool, str]:
    """(canary, base name): annotation canary exactly "true" and a non-empty base."""
    annotations = ss.metadata.annotations
    base = annotations.get(ANNOTATION_SIDECARSET_BASE, "")
    return annotations.get(ANNOTATION_SIDECARSET_CANARY) == "true" and bool(base), base


def pod_matches(ss: SidecarSet, pod_labels: Mapping[str, str], namespace_labels: Mapping[str, str] | None) -> bool:
    """`PodMatchedSidecarSet`: the namespace (labels of the Namespace object; None: no such namespace)
    passes the namespace selector, and the non-empty selector matches the pod."""
    ns_sel = namespace_selector(ss)
    if ns_sel is not None and (namespace_labels is None or not matches(ns_sel, namespace_labels)):
        return False
    selector = ss.spec.selector
    if selector is None or is_empty(selector):
        return False
    return matches(selector, pod_labels)


def _disjoint(a: LabelSelector, b: LabelSelector) -> bool:
    values: dict[str, list[str]] = {k: [v] for k, v in a.match_labels.items()}
    for req in a.match_expressions:
        if req.operator == OP_IN:
            values.setdefault(req.key, []).extend(req.values)
        elif req.operator == OP_EXISTS:
            values[req.key] = [_ALL]
    for key, value in b.match_labels.items():
        have = values.get(key)
        if have is not None and _ALL not in have and value not in have:
            return True
    for req in b.match_expressions:
        have = values.get(req.key)
        if req.operator == OP_IN:
            if have is not None and _ALL not in have and not set(have) & set(req.values):
                return True
        elif req.operator == OP_NOT_IN:
            if have is not None and set(have) <= set(req.values):
                return True
        elif req.operator == OP_EXISTS:
            if have is None:
                return True
        elif req.operator == OP_DOES_NOT_EXIST and have is not None:
            return True
    return False


def selector_overlapping(a: LabelSelector | None, b: LabelSelector | None) -> bool:
    """`IsSelectorOverlapping`: neither is disjoint from the other (keys on one side only never are)."""
    a, b = a or LabelSelector(), b or LabelSelector()
    return not (_disjoint(a, b) or _disjoint(b, a))


def namespace_overlapping(a: SidecarSet, b: SidecarSet) -> bool:
    """False only when both have a namespace selector and these are disjoint."""
    sa, sb = namespace_selector(a), namespace_selector(b)
    if sa is None or sb is None:
        return True
    return selector_overlapping(sa, sb)


__all__ = ["is_canary", "namespace_overlapping", "namespace_selector", "pod_matches", "selector_overlapping"]
