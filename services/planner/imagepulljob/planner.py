"""The pre-download entries of the registry of workload planners, and the ImagePullJob preview.

Three planners, each reading cluster-wide kinds the engine shares with it (`Shared`):

* `ImagePullJobPlanner` (one per job): every NodeImage, every pod (a `podSelector` names pods the job
  does not own; a pod re-plans only the jobs whose podSelector selects it) and every CloneSet (the
  owner's update order; a CloneSet re-plans only the jobs it controls); `plan_image_pull_job`.
* `NodeImagePlanner` (one per NodeImage): its Node (by name), the node agent's `PullResult`s for its node
  (by node) and every ImagePullJob's identity (to drop tags of jobs that are gone; a job re-plans only
  the NodeImages whose tags it owns, and only when it comes or goes); `plan_node_image`: spec upkeep,
  pulls to send (node work), results folded into status, timeouts, deletion with the Node.
* `NodePlanner` (one per Node): creates the Node's NodeImage once the Node has been Ready for 30 s.

A planned pass may look at thousands of shared objects; the per-node indexes are built once per
version of the shared list (the engine hands the same list object until the kind changes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar

import msgspec

from schemas.cloneset import CloneSet
from schemas.constants import (
    KIND_IMAGE_PULL_JOB,
    NODE_IMAGE_CREATION_DELAY_SECONDS,
    PULL_START_DEADLINE_SECONDS,
)
from schemas.imagepulljob import ImagePullJob
from schemas.kinds import CLONESET, IMAGE_PULL_JOB, NODE, NODE_IMAGE, POD, PULL_RESULT, Kind
from schemas.kube import Node, ObjectMeta, Pod
from schemas.nodeimage import NodeImage
from schemas.nodework import PullResult
from services.planner.imagepulljob.job import JobPlan, JobView, plan_image_pull_job, preview_document
from services.planner.imagepulljob.nodeimage import NodeImagePlan, plan_node_image
from services.planner.kit.gates import FeatureGates
from services.planner.kit.selectors import matches
from services.planner.kit.workload import Shared

T = TypeVar("T")


class _Memo(Generic[T]):
    """One derived index of one shared list, rebuilt when the engine hands a new list."""

    def __init__(self, build: Callable[[Sequence[Any]], T]) -> None:
        self.build = build
        self.source: Sequence[Any] | None = None  # kept alive, so its id is not reused
        self.value: T | None = None

    def __call__(self, objs: Sequence[Any]) -> T:
        if self.source is not objs or self.value is None:
            self.source, self.value = objs, self.build(objs)
        return self.value


def _by_name(objs: Sequence[Any]) -> dict[str, Any]:
    return {o.metadata.name: o for o in objs}


def _by_node(objs: Sequence[Any]) -> dict[str, list[PullResult]]:
    out: dict[str, list[PullResult]] = {}
    for r in objs:
        out.setdefault(r.node, []).append(r)
    return out


def _job_uids(objs: Sequence[Any]) -> dict[tuple[str, str], str]:
    return {(j.metadata.namespace, j.metadata.name): j.metadata.uid for j in objs}


def _enabled(gates: FeatureGates) -> bool:
    return gates.kruise_daemon and gates.image_pull_job_gate


def view_of(job: ImagePullJob, objects: Sequence[Any]) -> JobView:
    """The job's view from a saved file: NodeImages, the namespace's pods, its controlling CloneSet."""
    if not job.metadata.uid:
        job = msgspec.structs.replace(
            job, metadata=msgspec.structs.replace(job.metadata, uid=f"dryrun-{job.metadata.name}")
        )
    return JobView(
        job=job,
        node_images=sorted((o for o in objects if isinstance(o, NodeImage)), key=lambda n: n.metadata.name),
        pods=sorted(
            (o for o in objects if isinstance(o, Pod) and o.metadata.namespace in ("", job.metadata.namespace)),
            key=lambda p: p.metadata.name,
        ),
        owner=_owner(job, [o for o in objects if isinstance(o, CloneSet)], by_name_too=True),
    )


def _owner(job: ImagePullJob, clonesets: Sequence[Any], *, by_name_too: bool = False) -> CloneSet | None:
    ref = job.metadata.controller_ref()
    if ref is None:
        return None
    for cs in clonesets:
        if not isinstance(cs, CloneSet):
            continue
        if cs.metadata.uid == ref.uid and cs.metadata.namespace in ("", job.metadata.namespace):
            return cs
        if by_name_too and not cs.metadata.uid and cs.metadata.name == ref.name:
            return msgspec.structs.replace(cs, metadata=msgspec.structs.replace(cs.metadata, uid=ref.uid))
    return None


def _selects_pod(job: ImagePullJob, pod: Pod) -> bool:
    """A pod concerns a job only through its podSelector (without one the job reads no pod)."""
    ps = job.spec.pod_selector
    return ps is not None and pod.metadata.namespace == job.metadata.namespace and matches(
        ps.label_selector(), pod.metadata.labels)


def _owns_job(job: ImagePullJob, cs: CloneSet) -> bool:
    """A CloneSet concerns the jobs it controls (their podSelector's update order)."""
    ref = job.metadata.controller_ref()
    return ref is not None and ref.uid == cs.metadata.uid


class JobIdentity(msgspec.Struct, frozen=True):
    """What a NodeImage reads of an ImagePullJob: that it exists, under this uid (tags whose owner job is
    gone are dropped). Its status changing (every finished node) then re-plans no NodeImage."""

    metadata: ObjectMeta


def job_identity(job: ImagePullJob) -> JobIdentity:
    m = job.metadata
    return JobIdentity(metadata=ObjectMeta(name=m.name, namespace=m.namespace, uid=m.uid))


def _tag_owned_by(ni: NodeImage, job: JobIdentity) -> bool:
    """A job concerns the NodeImages one of whose tags names it as owner (by namespace and name: a job
    re-created under another uid makes them drop the old owner)."""
    m = job.metadata
    return any(ref.kind == KIND_IMAGE_PULL_JOB and ref.name == m.name and ref.namespace == m.namespace
               for ispec in ni.spec.images.values() for t in ispec.tags for ref in t.owner_references)


class ImagePullJobPlanner:
    kind: Kind = IMAGE_PULL_JOB
    owned: tuple[Kind, ...] = ()
    shared: tuple[Shared, ...] = (Shared(NODE_IMAGE), Shared(POD, match=_selects_pod),
                                  Shared(CLONESET, match=_owns_job))

    def plan(self, obj: Any, pods: Sequence[Pod], owned: Mapping[str, Sequence[Any]], previous: Any, *,
             now: datetime, gates: FeatureGates, create_limit: int | None) -> JobPlan:
        assert isinstance(obj, ImagePullJob)
        job_pods: Sequence[Pod] = owned.get(POD.token, ()) if obj.spec.pod_selector is not None else ()
        view = JobView(job=obj, node_images=list(owned.get(NODE_IMAGE.token, ())), pods=list(job_pods),
                       owner=_owner(obj, owned.get(CLONESET.token, ())))
        return plan_image_pull_job(view, now=now, gates=gates)

    def preview(self, obj: Any, objects: Sequence[Any], *, now: datetime, gates: FeatureGates,
                create_limit: int | None) -> tuple[int, dict[str, Any]]:
        assert isinstance(obj, ImagePullJob)
        view = view_of(obj, objects)
        plan = plan_image_pull_job(view, now=now, gates=gates)
        doc = preview_document(plan, view.job)
        if not _enabled(gates):
            doc["note"] = "feature gate ImagePullJobGate is off: the controller does not run (--feature-gates)"
        return (1 if plan.error is not None else 0), doc


def _empty(name: str) -> NodeImagePlan:
    return NodeImagePlan(name=name)


class NodeImagePlanner:
    kind: Kind = NODE_IMAGE
    owned: tuple[Kind, ...] = ()
    shared: tuple[Shared, ...] = (
        Shared(NODE, key=lambda n: n.metadata.name),
        Shared(PULL_RESULT, key=lambda r: r.node),
        Shared(IMAGE_PULL_JOB, compact=job_identity, match=_tag_owned_by),
    )

    def __init__(self, pull_start_deadline: float = PULL_START_DEADLINE_SECONDS) -> None:
        self.pull_start_deadline = pull_start_deadline  # seconds a pull may wait for the node's agent
        self._nodes = _Memo(_by_name)
        self._results = _Memo(_by_node)
        self._jobs = _Memo(_job_uids)

    def plan(self, obj: Any, pods: Sequence[Pod], owned: Mapping[str, Sequence[Any]], previous: Any, *,
             now: datetime, gates: FeatureGates, create_limit: int | None) -> NodeImagePlan:
        assert isinstance(obj, NodeImage)
        if not _enabled(gates):
            return _empty(obj.metadata.name)
        name = obj.metadata.name
        node: Node | None = self._nodes(owned.get(NODE.token, ())).get(name)
        results = self._results(owned.get(PULL_RESULT.token, ())).get(name, [])
        return plan_node_image(node, obj, self._jobs(owned.get(IMAGE_PULL_JOB.token, ())), now, results,
                               pull_start_deadline=self.pull_start_deadline)

    def preview(self, obj: Any, objects: Sequence[Any], *, now: datetime, gates: FeatureGates,
                create_limit: int | None) -> tuple[int, dict[str, Any]]:
        assert isinstance(obj, NodeImage)
        by_kind: dict[str, list[Any]] = {
            NODE.token: [o for o in objects if isinstance(o, Node)],
            PULL_RESULT.token: [o for o in objects if isinstance(o, PullResult)],
            IMAGE_PULL_JOB.token: [o for o in objects if isinstance(o, ImagePullJob)],
        }
        plan = self.plan(obj, [], by_kind, None, now=now, gates=gates, create_limit=create_limit)
        return 0, {"nodeImage": obj.metadata.name,
                   "commands": [msgspec.to_builtins(c) for c in plan.commands],
                   "status": msgspec.to_builtins(plan.status) if plan.status is not None else None,
                   "requeueAfter": plan.requeue_after}


class NodePlanner:
    """A Node's part of the NodeImage lifecycle: the create (the NodeImage's own planner does the rest)."""

    kind: Kind = NODE
    owned: tuple[Kind, ...] = ()
    shared: tuple[Shared, ...] = (Shared(NODE_IMAGE, key=lambda ni: ni.metadata.name),)

    def __init__(self, creation_delay: float = NODE_IMAGE_CREATION_DELAY_SECONDS) -> None:
        self._node_images = _Memo(_by_name)
        self.creation_delay = creation_delay  # Kruise's --nodeimage-creation-delay

    def plan(self, obj: Any, pods: Sequence[Pod], owned: Mapping[str, Sequence[Any]], previous: Any, *,
             now: datetime, gates: FeatureGates, create_limit: int | None) -> NodeImagePlan:
        assert isinstance(obj, Node)
        name = obj.metadata.name
        if not _enabled(gates) or name in self._node_images(owned.get(NODE_IMAGE.token, ())):
            return _empty(name)
        return plan_node_image(obj, None, {}, now, creation_delay=self.creation_delay)

    def preview(self, obj: Any, objects: Sequence[Any], *, now: datetime, gates: FeatureGates,
                create_limit: int | None) -> tuple[int, dict[str, Any]]:
        assert isinstance(obj, Node)
        nis = [o for o in objects if isinstance(o, NodeImage)]
        plan = self.plan(obj, [], {NODE_IMAGE.token: nis}, None, now=now, gates=gates, create_limit=create_limit)
        return 0, {"node": obj.metadata.name, "commands": [msgspec.to_builtins(c) for c in plan.commands],
                   "requeueAfter": plan.requeue_after}


PLANNER = ImagePullJobPlanner()
NODE_IMAGE_PLANNER = NodeImagePlanner()
NODE_PLANNER = NodePlanner()
