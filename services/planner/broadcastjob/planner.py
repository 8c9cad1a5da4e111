"""The BroadcastJob's entry in the registry of workload planners, and its `kruisebus plan` preview.

A BroadcastJob needs every Node, which no workload owns: it declares Nodes a shared kind, and the
engine hands the cluster's Nodes in as `owned["node"]`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import msgspec

from schemas.broadcastjob import BroadcastJob
from schemas.kinds import BROADCAST_JOB, NODE, Kind
from schemas.kube import Node, Pod
from services.planner.broadcastjob.plan import BcjPlan, plan_broadcastjob
from services.planner.kit.gates import FeatureGates
from services.planner.kit.workload import Shared


class BroadcastJobPlanner:
    kind: Kind = BROADCAST_JOB
    owned: tuple[Kind, ...] = ()
    shared: tuple[Shared, ...] = (Shared(NODE),)  # every Node: read whole, not routed by owner

    def plan(self, obj: Any, pods: Sequence[Pod], owned: Mapping[str, Sequence[Any]], previous: Any, *,
             now: datetime, gates: FeatureGates, create_limit: int | None) -> BcjPlan:
        assert isinstance(obj, BroadcastJob)
        return plan_broadcastjob(obj, pods, list(owned.get(NODE.token, ())), now=now, create_limit=create_limit)

    def preview(self, obj: Any, objects: Sequence[Any], *, now: datetime, gates: FeatureGates,
                create_limit: int | None) -> tuple[int, dict[str, Any]]:
        assert isinstance(obj, BroadcastJob)
        uid = obj.metadata.uid
        pods = sorted((o for o in objects if isinstance(o, Pod)
                       and (not uid or ((r := o.metadata.controller_ref()) is not None and r.uid == uid))),
                      key=lambda p: p.metadata.name)
        nodes = sorted((o for o in objects if isinstance(o, Node)), key=lambda n: n.metadata.name)
        plan = plan_broadcastjob(obj, pods, nodes, now=now, create_limit=create_limit)
        doc: dict[str, Any] = {"kind": "BroadcastJob", "namespace": obj.metadata.namespace, "name": obj.metadata.name,
                               "valid": not plan.errors}
        if plan.errors:
            doc["errors"] = [{"field": e.field, "message": str(e)} for e in plan.errors]
            return 1, doc
        doc["status"] = msgspec.to_builtins(plan.status)
        doc["create"] = [{"pod": p, "node": n} for p, n in zip(plan.created, plan.nodes_created, strict=True)]
        doc["delete"] = plan.deleted
        doc["events"] = [{"type": e.type, "message": e.message} for e in plan.events]
        doc["looksAgain"] = None if plan.requeue_after is None else {"after_seconds": plan.requeue_after}
        return 0, doc


PLANNER = BroadcastJobPlanner()
