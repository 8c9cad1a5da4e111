"""The CloneSet's entry in the registry of workload planners."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from schemas.cloneset import CloneSet
from schemas.kinds import CLONESET, CONTROLLER_REVISION, IMAGE_PULL_JOB, PVC, Kind
from schemas.kube import Pod
from services.planner.cloneset.plan import plan_cloneset
from services.planner.cloneset.preview import preview
from services.planner.cloneset.view import CloneSetView, Plan
from services.planner.kit.gates import FeatureGates
from services.planner.kit.workload import Shared


class CloneSetPlanner:
    kind: Kind = CLONESET
    owned: tuple[Kind, ...] = (CONTROLLER_REVISION, PVC, IMAGE_PULL_JOB)  # its pre-download jobs
    shared: tuple[Shared, ...] = ()

    def plan(self, obj: Any, pods: Sequence[Pod], owned: Mapping[str, Sequence[Any]], previous: Any, *,
             now: datetime, gates: FeatureGates, create_limit: int | None) -> Plan:
        assert isinstance(obj, CloneSet)
        view = CloneSetView(cloneset=obj, pods=list(pods), revisions=list(owned.get(CONTROLLER_REVISION.token, ())),
                            previous=previous, pvcs=list(owned.get(PVC.token, ())),
                            image_pull_jobs=list(owned.get(IMAGE_PULL_JOB.token, ())))
        return plan_cloneset(view, now=now, gates=gates, create_limit=create_limit)

    def preview(self, obj: Any, objects: Sequence[Any], *, now: datetime, gates: FeatureGates,
                create_limit: int | None) -> tuple[int, dict[str, Any]]:
        assert isinstance(obj, CloneSet)
        return preview(obj, objects, now=now, gates=gates, create_limit=create_limit)


PLANNER = CloneSetPlanner()
