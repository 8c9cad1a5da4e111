"""The Advanced DaemonSet's entry in the registry of workload planners, and its `kruisebus plan` preview.

A DaemonSet owns its pods and ControllerRevisions and reads every Node, which no workload owns: Nodes
are a shared kind, so the engine hands the cluster's Nodes in as `owned["node"]` and re-plans every
DaemonSet when one is added, removed, tainted or labelled.

The registry entry keeps one thing between passes: each DaemonSet's failed-pod deletion backoff
(`backoff.py`), handed to the next pass and replaced by what it returns. It is process memory: a
restarted planner starts with none (see `backoff.py` for what that changes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import msgspec

from schemas.daemonset import DaemonSet
from schemas.kinds import CONTROLLER_REVISION, DAEMONSET, IMAGE_PULL_JOB, NODE, Kind
from schemas.kube import ControllerRevision, Node, Pod
from schemas.messages import CreateOp
from services.planner.daemonset.backoff import BackoffEntry
from services.planner.daemonset.plan import DsPlan, plan_daemonset
from services.planner.kit.gates import FeatureGates
from services.planner.kit.selectors import matches
from services.planner.kit.workload import ORPHAN_PODS, Shared


def node_changed(old: Node, new: Node) -> bool:
    """Whether a Node update can change what a DaemonSet decides (`daemonset_event_handler.go`): its labels,
    taints, `unschedulable`, or the set of its True condition types. A heartbeat (resourceVersion, condition
    times) changes none of them, so 5,000 heartbeating nodes do not re-plan every DaemonSet."""
    def true_types(n: Node) -> set[str]:
        return {c.type for c in n.status.conditions if c.status == "True"}

    return (old.metadata.labels != new.metadata.labels or old.spec.taints != new.spec.taints
            or old.spec.unschedulable != new.spec.unschedulable or true_types(old) != true_types(new))


class DaemonSetPlanner:
    kind: Kind = DAEMONSET
    owned: tuple[Kind, ...] = (CONTROLLER_REVISION, IMAGE_PULL_JOB)  # its pre-download jobs
    shared: tuple[Shared, ...] = (Shared(NODE, relevant=node_changed),)

    def __init__(self) -> None:
        self.backoffs: dict[str, dict[str, BackoffEntry]] = {}  # DaemonSet uid -> its failed-pod backoff

    def plan(self, obj: Any, pods: Sequence[Pod], owned: Mapping[str, Sequence[Any]], previous: Any, *,
             now: datetime, gates: FeatureGates, create_limit: int | None) -> DsPlan:
        assert isinstance(obj, DaemonSet)
        uid = obj.metadata.uid
        plan = plan_daemonset(obj, pods, list(owned.get(NODE.token, ())),
                              list(owned.get(CONTROLLER_REVISION.token, ())), now=now, gates=gates,
                              previous=previous if isinstance(previous, DaemonSet) else None,
                              create_limit=create_limit, jobs=list(owned.get(IMAGE_PULL_JOB.token, ())),
                              backoff=self.backoffs.get(uid), orphans=owned.get(ORPHAN_PODS, ()))
        if plan.backoff:
            self.backoffs[uid] = plan.backoff
        else:
            self.backoffs.pop(uid, None)
        return plan

    def claims(self, obj: Any, pod: Pod) -> bool:
        """`getDaemonSetsForPod`: an orphan pod concerns every DaemonSet of its namespace whose selector
        (not empty) matches its labels."""
        if not isinstance(obj, DaemonSet) or obj.metadata.namespace != pod.metadata.namespace:
            return False
        selector = obj.spec.selector
        if selector is None or not (selector.match_labels or selector.match_expressions):
            return False
        return matches(selector, pod.metadata.labels)

    def preview(self, obj: Any, objects: Sequence[Any], *, now: datetime, gates: FeatureGates,
                create_limit: int | None) -> tuple[int, dict[str, Any]]:
        assert isinstance(obj, DaemonSet)
        uid = obj.metadata.uid

        def mine(o: Any) -> bool:
            return not uid or ((r := o.metadata.controller_ref()) is not None and r.uid == uid)

        pods = sorted((o for o in objects if isinstance(o, Pod) and mine(o)), key=lambda p: p.metadata.name)
        orphans = sorted((o for o in objects if isinstance(o, Pod) and o.metadata.controller_ref() is None
                          and self.claims(obj, o)), key=lambda p: p.metadata.name)
        nodes = sorted((o for o in objects if isinstance(o, Node)), key=lambda n: n.metadata.name)
        revisions = [o for o in objects if isinstance(o, ControllerRevision)]
        plan = plan_daemonset(obj, pods, nodes, revisions, now=now, gates=gates, create_limit=create_limit,
                              orphans=orphans)
        created_revision = ""
        for cmd in plan.commands:  # the template's revision is missing: show the pass after its creation
            if cmd.verb == "revision-create" and isinstance(op := cmd.ops[0], CreateOp):
                created_revision = cmd.revision
                rev = msgspec.convert({**op.body, "metadata": {**op.body["metadata"], "uid": "(new)"}},
                                      ControllerRevision)
                ds = msgspec.structs.replace(obj, status=plan.status)
                plan = plan_daemonset(ds, pods, nodes, [*revisions, rev], now=now, gates=gates,
                                      create_limit=create_limit, orphans=orphans)
                break
        doc: dict[str, Any] = {"kind": "DaemonSet", "namespace": obj.metadata.namespace, "name": obj.metadata.name,
                               "valid": not plan.errors}
        if plan.errors:
            doc["errors"] = [{"field": e.field, "message": str(e)} for e in plan.errors]
            return 1, doc
        doc["revision"] = plan.update_revision
        doc["revisionCreated"] = created_revision or None
        doc["status"] = msgspec.to_builtins(plan.status)
        doc["create"] = [{"pod": p, "node": n, "revision": plan.update_revision} for p, n in plan.created]
        doc["delete"] = plan.deleted
        doc["adopt"] = plan.adopted
        doc["updateInPlace"] = plan.updated_in_place
        # the rolling update's evidence of each delete / in-place update (kit.budget), as the log carries it
        doc["budget"] = {c.pod: c.data for c in plan.commands if c.data}
        doc["relabel"] = [{"pod": p, "revision": plan.update_revision} for p in plan.relabelled]
        doc["revisionsDeleted"] = plan.revisions_deleted
        doc["imagePullJobs"] = [{"name": j["metadata"]["name"], "image": j["spec"]["image"],
                                 "parallelism": j["spec"]["parallelism"]} for j in plan.jobs]
        doc["events"] = [{"type": e.type, "message": e.message} for e in plan.events]
        doc["looksAgain"] = None if plan.requeue_after is None else {"after_seconds": plan.requeue_after}
        return 0, doc


PLANNER = DaemonSetPlanner()
