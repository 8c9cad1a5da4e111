"""Types OpenKruise shares between its workloads (`apis/apps/pub`): update priority and scatter,
in-place update strategy, lifecycle hooks.

They are one definition for every workload that has them (CloneSet today, Advanced DaemonSet and
others next), so the planner kit's ordering and lifecycle code takes them without knowing the workload.
"""

from __future__ import annotations

from schemas.kube import LabelSelector, _K8s


class UpdatePriorityOrderTerm(_K8s):
    ordered_key: str = ""


class UpdatePriorityWeightTerm(_K8s):
    weight: int = 0
    match_selector: LabelSelector | None = None


class UpdatePriorityStrategy(_K8s):
    order_priority: list[UpdatePriorityOrderTerm] | None = None
    weight_priority: list[UpdatePriorityWeightTerm] | None = None


class UpdateScatterTerm(_K8s):
    key: str = ""
    value: str = ""


class InPlaceUpdateStrategy(_K8s):
    grace_period_seconds: int = 0


class LifecycleHook(_K8s):
    labels_handler: dict[str, str] = {}
    finalizers_handler: list[str] = []
    mark_pod_not_ready: bool = False


class Lifecycle(_K8s):
    pre_delete: LifecycleHook | None = None
    in_place_update: LifecycleHook | None = None
    pre_normal: LifecycleHook | None = None
