"""Status conditions as Kruise's controllers keep them: get, set (keeping lastTransitionTime), remove.

Every Kruise workload status has a list of conditions with a type, a status, a reason and times, and
every controller updates them the same way (Kubernetes' Deployment utilities, which Kruise copies as
``SetCloneSetCondition``, ``SetDaemonSetCondition``, ...): a condition with the same status and reason
is left untouched (its times are not refreshed), one whose status is unchanged keeps its
lastTransitionTime, anything else is a transition at ``now``. The helpers take any msgspec condition
struct with ``type``, ``status``, ``reason`` and ``last_transition_time``; a struct that also has
``last_update_time`` or ``last_probe_time`` gets ``now`` there on every change.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

import msgspec

from services.planner.kit.timeutil import format_time

_TOUCHED_ON_CHANGE = ("last_update_time", "last_probe_time")


class Condition(Protocol):
    """What the helpers read of a condition (a msgspec Struct)."""

    @property
    def type(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def reason(self) -> str: ...

    @property
    def last_transition_time(self) -> str | None: ...


C = TypeVar("C", bound=Condition)


def get_condition(conditions: Sequence[C], type_: str) -> C | None:
    """The condition of ``type_``, or None."""
    for c in conditions:
        if c.type == type_:
            return c
    return None


def set_condition(conditions: list[C], cond: C, now: datetime) -> list[C]:
    """Kruise ``Set*Condition``: same status+reason -> unchanged (the same list); same status -> keep
    lastTransitionTime; otherwise the condition replaces the old one at the end of the list, stamped ``now``."""
    old = get_condition(conditions, cond.type)
    if old is not None and old.status == cond.status and old.reason == cond.reason:
        return conditions
    ts = format_time(now)
    transition = old.last_transition_time if old is not None and old.status == cond.status else ts
    times: dict[str, Any] = {"last_transition_time": transition}
    fields = getattr(cond, "__struct_fields__", ())
    times.update({name: ts for name in _TOUCHED_ON_CHANGE if name in fields})
    new: C = msgspec.structs.replace(cond, **times)  # type: ignore[type-var]
    return [c for c in conditions if c.type != cond.type] + [new]


def remove_condition(conditions: Sequence[C], type_: str) -> list[C]:
    """The conditions without ``type_``."""
    return [c for c in conditions if c.type != type_]
