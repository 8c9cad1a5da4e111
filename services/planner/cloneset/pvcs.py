"""The claims a CloneSet makes from its volumeClaimTemplates (`cloneset_controller.go`, `sync/cloneset_scale.go`).

Kruise lists the PersistentVolumeClaims a CloneSet owns on every reconcile. By default
(``scaleStrategy.disablePVCReuse: false``) a claim whose pod went away without the controller deleting
it (evicted, deleted by hand) is kept, and the next scale-out gives its instance id to the new pod,
which then mounts the same volume again. With ``disablePVCReuse: true`` such claims are handed to their
pod while it still exists but is no longer active (the ownerReference moves to the pod, so the claim
goes with it) and deleted when no pod has their id. Claims of the pods the controller deletes are
deleted with them either way (``deletePods``).
"""

from __future__ import annotations

from schemas.constants import EVENT_FAILED_DELETE, EVENT_FAILED_UPDATE, LABEL_INSTANCE_ID
from schemas.kube import JsonObject, PersistentVolumeClaim, Pod
from schemas.messages import PERSISTENT_VOLUME_CLAIMS, VERB_PVC_DELETE, VERB_PVC_RELEASE, DeleteOp, PatchOp
from services.planner.cloneset.context import Ctx
from services.planner.kit.builder import kube_event


def instance_id(obj: PersistentVolumeClaim | Pod) -> str:
    return obj.metadata.labels.get(LABEL_INSTANCE_ID, "")


def live_claims(ctx: Ctx) -> list[PersistentVolumeClaim]:
    """Owned claims that are not being deleted and carry an instance id, in the view's order."""
    return [c for claims in ctx.claims_by_id().values() for c in claims]


def reusable_ids(ctx: Ctx) -> list[str]:
    """Ids of kept claims no pod uses (sorted: deterministic), for the next pods to be created."""
    if ctx.cs.spec.scale_strategy.disable_pvc_reuse:
        return []  # `release_orphans` hands these to their pod or deletes them
    used = {instance_id(p) for p in ctx.all_pods}
    return sorted({iid for c in live_claims(ctx) if (iid := instance_id(c)) not in used})


def waiting_ids(ctx: Ctx) -> list[str]:
    """Ids of kept claims whose pod is still terminating (deleted by hand, evicted): the replacement
    will take the id once that pod is gone. Kruise tries to create it at once and fails with
    AlreadyExists until then; here the slot simply waits, and the pod's disappearance re-plans."""
    if ctx.cs.spec.scale_strategy.disable_pvc_reuse:
        return []
    by_id: dict[str, list[Pod]] = {}
    for p in ctx.all_pods:
        by_id.setdefault(instance_id(p), []).append(p)
    out = set()
    for c in live_claims(ctx):
        pods = by_id.get(instance_id(c), [])
        if pods and all(p.metadata.deletion_timestamp is not None for p in pods):
            out.add(instance_id(c))
    return sorted(out)


def held_ids(ctx: Ctx) -> set[str]:
    """Every id a claim holds: a new id must not collide with one."""
    return {iid for c in ctx.pvcs if (iid := instance_id(c))}


def existing_names(ctx: Ctx) -> set[str]:
    return {c.metadata.name for c in live_claims(ctx)}


def delete_ops(ctx: Ctx, iid: str, template_names: list[str]) -> list[DeleteOp]:
    """Delete every claim with this instance id: the ones observed (guarded by uid) and, in case the
    watcher has not reported one yet, the names the templates give (a missing one is already done)."""
    ns = ctx.cs.metadata.namespace
    ops = [
        DeleteOp(resource=PERSISTENT_VOLUME_CLAIMS, namespace=ns, name=c.metadata.name, uid=c.metadata.uid)
        for c in ctx.claims_by_id().get(iid, [])
    ]
    seen = {op.name for op in ops}
    ops += [
        DeleteOp(resource=PERSISTENT_VOLUME_CLAIMS, namespace=ns, name=name)
        for name in template_names
        if name not in seen
    ]
    return ops


def release_orphans(ctx: Ctx) -> None:
    """``disablePVCReuse``: claims of no active pod go to their inactive pod, or are deleted."""
    if not ctx.cs.spec.scale_strategy.disable_pvc_reuse:
        return
    active = {instance_id(i.pod) for i in ctx.infos}
    active_names = {i.name for i in ctx.infos}
    inactive: dict[str, Pod] = {}
    for p in ctx.all_pods:
        iid = instance_id(p)
        if iid and iid not in active and p.metadata.name not in active_names:
            inactive.setdefault(iid, p)
    ns = ctx.cs.metadata.namespace
    for claim in live_claims(ctx):
        iid = instance_id(claim)
        if iid in active:
            continue
        meta = claim.metadata
        pod = inactive.get(iid)
        if pod is not None:
            owner = {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": pod.metadata.name,
                "uid": pod.metadata.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
            patch: list[JsonObject] = [
                {"op": "test", "path": "/metadata/uid", "value": meta.uid},
                {"op": "replace", "path": "/metadata/ownerReferences", "value": [owner]},
            ]
            ctx.b.command(
                f"{ctx.b.uid}/pvc-release/{meta.uid}/{pod.metadata.uid}",
                VERB_PVC_RELEASE,
                [
                    PatchOp(
                        resource=PERSISTENT_VOLUME_CLAIMS,
                        namespace=ns,
                        name=meta.name,
                        patch_type="json",
                        patch=patch,
                    )
                ],
                pod=pod.metadata.name,
                on_failure=kube_event(
                    EVENT_FAILED_UPDATE,
                    f"failed to update owner of pvc {meta.name} to pod {pod.metadata.name}",
                    warning=True,
                ),
            )
        else:
            ctx.b.command(
                f"{ctx.b.uid}/pvc-delete/{meta.uid}",
                VERB_PVC_DELETE,
                [DeleteOp(resource=PERSISTENT_VOLUME_CLAIMS, namespace=ns, name=meta.name, uid=meta.uid)],
                on_failure=kube_event(EVENT_FAILED_DELETE, f"failed to delete pvc {meta.name}", warning=True),
            )
