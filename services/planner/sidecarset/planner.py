"""The SidecarSet's entry in the registry of workload planners.

A SidecarSet is cluster-scoped and owns no pod: it reads every pod and every Namespace as shared kinds
(a pod change re-plans the SidecarSets), and owns its ControllerRevisions (controlled by it, in
Kruise's namespace).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import msgspec

from schemas.kinds import CONTROLLER_REVISION, NAMESPACE, POD, SIDECARSET, Kind
from schemas.kube import ControllerRevision, Namespace, Pod
from schemas.sidecarset import SidecarSet
from services.planner.kit.gates import FeatureGates
from services.planner.kit.workload import Shared
from services.planner.sidecarset.plan import SidecarSetPlan, plan_sidecarset


class SidecarSetPlanner:
    kind: Kind = SIDECARSET
    owned: tuple[Kind, ...] = (CONTROLLER_REVISION,)
    shared: tuple[Shared, ...] = (Shared(POD), Shared(NAMESPACE))

    def plan(self, obj: Any, pods: Sequence[Pod], owned: Mapping[str, Sequence[Any]], previous: Any, *,
             now: datetime, gates: FeatureGates, create_limit: int | None) -> SidecarSetPlan:
        assert isinstance(obj, SidecarSet)
        # before any Namespace is read every namespace counts as existing with only its name label
        namespaces = {n.metadata.name: n.metadata.labels for n in owned.get(NAMESPACE.token, ())} or None
        return plan_sidecarset(obj, owned.get(POD.token, ()), owned.get(CONTROLLER_REVISION.token, ()),
                               now=now, gates=gates, namespaces=namespaces)

    def preview(self, obj: Any, objects: Sequence[Any], *, now: datetime, gates: FeatureGates,
                create_limit: int | None) -> tuple[int, dict[str, Any]]:
        assert isinstance(obj, SidecarSet)
        pods = sorted((o for o in objects if isinstance(o, Pod)), key=lambda p: p.metadata.name)
        revisions = [o for o in objects if isinstance(o, ControllerRevision)]
        namespaces = {o.metadata.name: o.metadata.labels for o in objects if isinstance(o, Namespace)}
        plan = plan_sidecarset(obj, pods, revisions, now=now, gates=gates, namespaces=namespaces or None)
        doc: dict[str, Any] = {
            "commands": msgspec.to_builtins(plan.commands),
            "errors": [str(e) for e in plan.errors],
            "status": msgspec.to_builtins(plan.status),
            "upgrade": plan.upgrade,
            "notUpgradable": plan.not_upgradable,
        }
        return (1 if plan.errors else 0), doc


PLANNER = SidecarSetPlanner()
