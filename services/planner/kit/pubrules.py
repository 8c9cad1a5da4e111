"""Validation of Kruise's shared update strategies (`apis/apps/pub`): priority and scatter.

`UpdatePriorityStrategy.FieldsValidation` and `UpdateScatterStrategy.FieldsValidation` are one rule set
for every workload that has them (CloneSet, SidecarSet, ...); each returns the first problem found, as
Kruise returns one error.
"""

from __future__ import annotations

from collections.abc import Sequence

from schemas.pub import UpdatePriorityStrategy, UpdateScatterTerm
from services.planner.kit.selectors import conversion_error, is_empty


def priority_error(priority: UpdatePriorityStrategy | None) -> str | None:
    """``UpdatePriorityStrategy.FieldsValidation``: first problem found, as Kruise returns one error."""
    if priority is None:
        return None
    if priority.weight_priority and priority.order_priority:
        return "only one of weightPriority and orderPriority can be used"
    for term in priority.weight_priority or ():
        if term.weight < 0 or term.weight > 100:
            return "weight must be valid number in the range 1-100"
        if term.match_selector is None or is_empty(term.match_selector):
            return "selector can not be empty"
        problem = conversion_error(term.match_selector)
        if problem is not None:
            return f"invalid selector {problem}"
    for order in priority.order_priority or ():
        if not order.ordered_key:
            return "order key can not be empty"
    return None


def scatter_error(terms: Sequence[UpdateScatterTerm] | None) -> str | None:
    """``UpdateScatterStrategy.FieldsValidation``: non-empty keys, unique key:value pairs."""
    seen: set[str] = set()
    for term in terms or ():
        if not term.key:
            return "key should not be empty"
        ident = f"{term.key}:{term.value}"
        if ident in seen:
            return f"duplicated key={term.key} value={term.value}"
        seen.add(ident)
    return None


__all__ = ["priority_error", "scatter_error"]
