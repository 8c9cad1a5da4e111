"""Which NodeImages a job is for (`pkg/util/imagejob/imagejob_reader.go` GetNodeImagesForJob), in the
order the job hands the image out.

* `podSelector`: the distinct nodes of the active, scheduled pods in the job's namespace that match,
  in the owning CloneSet's update order (`pkg/control/sorting` SortPods -> SortUpdateIndexes), so the
  nodes of the pods updated first pull first; nodes without a NodeImage are skipped.
* `selector.names`: those NodeImages, in the order given (missing ones skipped).
* `selector` label selector: the NodeImages whose labels (a mirror of the Node's) match.
* no selector: every NodeImage.

QUIRK kept out: Kruise collects the not-yet-synced nodes into a string set and hands them out in
*name* order, which throws the update order away again; kruisebus keeps the target order, which is
what the sort exists for (the pods updated first find their image first).
"""

from __future__ import annotations

from collections.abc import Sequence

from schemas.cloneset import CloneSet
from schemas.constants import KIND_CLONESET
from schemas.imagepulljob import ImagePullJob
from schemas.kube import Pod
from schemas.nodeimage import NodeImage
from services.planner.kit.podstate import is_active
from services.planner.kit.selectors import matches
from services.planner.kit.sort import sort_update_candidates


def owner_cloneset(job: ImagePullJob, owner: CloneSet | None) -> CloneSet | None:
    """`owner` if it is the job's controlling CloneSet (same uid), else None."""
    ref = job.metadata.controller_ref()
    if owner is None or ref is None or ref.kind != KIND_CLONESET or ref.uid != owner.metadata.uid:
        return None
    return owner


def target_pods(job: ImagePullJob, pods: Sequence[Pod], owner: CloneSet | None = None) -> list[Pod]:
    """The podSelector's pods in hand-out order (empty without a podSelector)."""
    if job.spec.pod_selector is None:
        return []
    selector = job.spec.pod_selector.label_selector()
    ns = job.metadata.namespace
    chosen = [
        p
        for p in pods
        if p.metadata.namespace == ns
        and is_active(p)
        and p.spec.node_name
        and matches(selector, p.metadata.labels)
    ]
    cs = owner_cloneset(job, owner)
    if cs is not None:
        chosen = sort_update_candidates(chosen, cs.spec.update_strategy, chosen)
    return chosen


def select_targets(
    job: ImagePullJob,
    node_images: Sequence[NodeImage],
    pods: Sequence[Pod] = (),
    owner: CloneSet | None = None,
) -> list[NodeImage]:
    """The job's NodeImages, in the order it hands the image out."""
    spec = job.spec
    if spec.pod_selector is not None:
        by_name = {ni.metadata.name: ni for ni in node_images}
        out: list[NodeImage] = []
        seen: set[str] = set()
        for pod in target_pods(job, pods, owner):
            node = pod.spec.node_name
            if node in seen:
                continue
            seen.add(node)
            if node in by_name:
                out.append(by_name[node])
        return out
    if spec.selector is None:
        return list(node_images)
    if spec.selector.names is not None:
        by_name = {ni.metadata.name: ni for ni in node_images}
        return [by_name[n] for n in spec.selector.names if n in by_name]
    selector = spec.selector.label_selector()
    return [ni for ni in node_images if matches(selector, ni.metadata.labels)]


__all__ = ["owner_cloneset", "select_targets", "target_pods"]
