"""The scale step (`pkg/controller/cloneset/sync/cloneset_scale.go`): create, delete and un-delete pods to reach the replica count.

Order matters and is Kruise's: regret PreparingDelete pods when replicas grow; compute `calculateDiffsWithExpectation` with the
scaling predicate; scale out (always ends the step); finish pre-deletes; delete specified-delete pods
(not-ready ones freely, ready ones within ``deleteReadyLimit``); scale in (only when no deletion is
pending). The first sub-step that writes anything ends the step, and then the whole pass skips the
update step (Kruise's rule "one kind of mutation per pass").

Kruise creates pods in slow-start batches (1, 2, 4, ...) inside one reconcile and stops after a batch
with a failure, so a quota or admission error costs one failed call, not one per missing pod. Here one
batch is one pass: the planner service passes ``Ctx.create_limit`` (doubled after every pod of the last
batch appeared, back to 1 otherwise), the pass creates that many of the pods it needs, and the next
pass runs once they are observed. The revision split is recomputed each pass from the pods that exist,
so the batches together create what the whole list would have.
"""

from __future__ import annotations

import copy
from typing import Any

from schemas.constants import (
    ANNOTATION_LIFECYCLE_TIMESTAMP,
    CONDITION_INPLACE_UPDATE_READY,
    EVENT_FAILED_CREATE,
    EVENT_FAILED_DELETE,
    EVENT_SCALE_UP_LIMITED,
    EVENT_SUCCESSFUL_CREATE,
    EVENT_SUCCESSFUL_DELETE,
    LABEL_INSTANCE_ID,
    LABEL_LIFECYCLE_STATE,
    LABEL_POD_TEMPLATE_HASH,
    LABEL_REVISION_HASH,
    STATE_PREPARING_DELETE,
    STATE_PREPARING_NORMAL,
)
from schemas.kube import ControllerRevision, JsonObject, Pod
from schemas.messages import (
    PERSISTENT_VOLUME_CLAIMS,
    VERB_CREATE,
    VERB_DELETE,
    VERB_EVENT,
    VERB_LIFECYCLE,
    ApiOp,
    CreateOp,
)
from services.planner.cloneset import pvcs
from services.planner.cloneset.calc import ExpectationDiffs, PodInfo
from services.planner.cloneset.context import Ctx
from services.planner.cloneset.instance_ids import generate_ids
from services.planner.cloneset.revision import owner_reference
from services.planner.kit import lifecycle as lc
from services.planner.kit.builder import kube_event
from services.planner.kit.podpatch import PodPatch
from services.planner.kit.revision import short_hash
from services.planner.kit.sort import sort_scale_in
from services.planner.kit.timeutil import format_time


def scale_step(ctx: Ctx) -> bool:
    """Run the scale step; returns True if anything was written (then the update step is skipped)."""
    specified = ctx.tally.specified
    pre_delete = ctx.tally.pre_delete
    num_to_delete = len({i.name for i in specified} | {i.name for i in pre_delete})

    # 1. regret PreparingDelete when replicas grew
    if manage_preparing_delete(ctx, pre_delete, num_to_delete):
        return True

    # 2. numbers
    diffs = ctx.diffs(scaling=True)
    if diffs.scale_up_num > diffs.scale_up_limit:
        msg = f"scaleUp is limited because of scaleStrategy.maxUnavailable, limit: {diffs.scale_up_limit}"
        ctx.b.event("scale-up-limited", msg, reason=EVENT_SCALE_UP_LIMITED)
        # and the Warning Event Kruise records on the CloneSet (the id changes with the situation)
        ctx.b.command(
            f"{ctx.b.uid}/scale-up-limited/{ctx.cs.metadata.generation}/{diffs.scale_up_limit}/{diffs.scale_up_num}",
            VERB_EVENT,
            [],
            on_success=kube_event(EVENT_SCALE_UP_LIMITED, msg, warning=True),
        )

    # 3. scale out
    if diffs.scale_up_num > 0:
        return create_pods(ctx, diffs.scale_up_limit, diffs.scale_up_num_old_revision)

    # 4. finish pre-deletes
    if pre_delete and delete_pods(ctx, pre_delete):
        return True

    # 5. specified delete
    pre_names = {i.name for i in pre_delete}
    to_delete = [i for i in specified if i.name not in pre_names]
    if to_delete:
        limit = diffs.delete_ready_limit
        can: list[PodInfo] = []
        for info in to_delete:
            if not info.available0:
                can.append(info)
            elif limit > 0:
                can.append(info)
                limit -= 1
        if delete_pods(ctx, can):
            return True

    # 6. scale in
    if diffs.scale_down_num > 0:
        if num_to_delete > 0:
            return False
        return delete_pods(ctx, choose_scale_in(ctx, diffs))
    return False


def manage_preparing_delete(ctx: Ctx, pre_delete: list[PodInfo], num_to_delete: int) -> bool:
    life = ctx.cs.spec.lifecycle
    if life is not None and (
        (life.pre_delete is not None and life.pre_delete.mark_pod_not_ready)
        or (life.in_place_update is not None and life.in_place_update.mark_pod_not_ready)
    ):
        return False
    diff = ctx.replicas - len(ctx.infos) + num_to_delete
    modified = False
    for info in pre_delete:
        if diff <= 0:
            break
        if info.specified_delete:
            continue
        lifecycle_command(ctx, info.pod, STATE_PREPARING_NORMAL, mark_not_ready=False)
        modified = True
        diff -= 1
    return modified


def lifecycle_command(
    ctx: Ctx,
    pod: Pod,
    state: str,
    *,
    mark_not_ready: bool,
    patch: PodPatch | None = None,
    reapply_hook: bool = False,
    lead_ops: list[ApiOp] | None = None,
) -> None:
    """Move a pod to lifecycle ``state`` (label + timestamp; KruisePodReady message with markPodNotReady)."""
    patch = patch or PodPatch(pod)
    patch.test_label(LABEL_LIFECYCLE_STATE)
    lc.set_state(patch, state, ctx.now)
    if reapply_hook:
        lc.apply_hook(patch, lc.in_place_update_hook(ctx.cs.spec.lifecycle))
    ops: list[ApiOp] = list(lead_ops or [])
    if mark_not_ready:
        # status first: it is guarded by the observed resourceVersion, which the label patch changes
        cond = lc.not_ready_condition(pod, state, ctx.now)
        if cond is not None:
            ops.append(ctx.b.pod_status_patch(pod, [cond]))
    ops.append(ctx.b.pod_json_patch(patch))
    meta = pod.metadata
    ctx.b.command(
        f"{ctx.b.uid}/lifecycle/{meta.uid}/{state}/{meta.resource_version}",
        VERB_LIFECYCLE,
        ops,
        pod=meta.name,
        pod_uid=meta.uid,
        revision=meta.labels.get(LABEL_REVISION_HASH, ""),
    )
    ctx.b.expect(meta.name, "label", LABEL_LIFECYCLE_STATE, state)


# --- scale out --------------------------------------------------------------------------------------


def create_pods(ctx: Ctx, expected: int, expected_current: int) -> bool:
    if expected <= 0:
        return False
    used = {p.metadata.labels.get(LABEL_INSTANCE_ID, "") for p in ctx.all_pods}
    used |= {p.metadata.name[len(ctx.cs.metadata.name) + 1 :] for p in ctx.all_pods}
    used.discard("")
    count = expected if ctx.create_limit is None else min(expected, max(ctx.create_limit, 1))
    # a claim whose pod is still terminating keeps its slot for the pod that will replace it
    count = max(count - len(pvcs.waiting_ids(ctx)), 0)
    ids = generate_ids(ctx.cs.metadata.uid, count, used, pvcs.reusable_ids(ctx), pvcs.held_ids(ctx))
    for n, iid in enumerate(ids):
        # Kruise: the first scaleUpNumOldRevision pods come from currentRevision when that is fewer than
        # all creations; all of them when it is not.
        from_current = expected <= expected_current or n < expected_current
        rev = ctx.current_rev if from_current else ctx.update_rev
        create_pod(ctx, rev, iid)
    return True


def pod_name(ctx: Ctx, instance_id: str) -> str:
    return f"{ctx.cs.metadata.name}-{instance_id}"


def pvc_name(template_name: str, cs_name: str, instance_id: str) -> str:
    return f"{template_name}-{cs_name}-{instance_id}"


def new_pod_body(ctx: Ctx, rev: ControllerRevision, instance_id: str) -> JsonObject:
    """The pod Kruise's ``newVersionedPods`` + ``createOnePod`` would create, as an API body."""
    cs = ctx.cs
    tmpl = ctx.template(rev)
    if tmpl is None:
        tmpl = cs.spec.template
    name = pod_name(ctx, instance_id)
    labels = dict(tmpl.metadata.labels)
    labels[LABEL_REVISION_HASH] = ctx.revision_label_value(rev)
    labels[LABEL_POD_TEMPLATE_HASH] = short_hash(rev.metadata.name)
    labels[LABEL_INSTANCE_ID] = instance_id
    labels[LABEL_LIFECYCLE_STATE] = STATE_PREPARING_NORMAL
    annotations = dict(tmpl.metadata.annotations)
    annotations[ANNOTATION_LIFECYCLE_TIMESTAMP] = format_time(ctx.now)
    spec: JsonObject = copy.deepcopy(tmpl.spec)
    gates: list[Any] = list(spec.get("readinessGates") or [])
    if not any(
        isinstance(g, dict) and g.get("conditionType") == CONDITION_INPLACE_UPDATE_READY for g in gates
    ):
        gates.append({"conditionType": CONDITION_INPLACE_UPDATE_READY})
    spec["readinessGates"] = gates
    vcts = cs.spec.volume_claim_templates
    if vcts:
        volumes = [v for v in spec.get("volumes") or [] if isinstance(v, dict)]
        for vct in vcts:
            tname = str((vct.get("metadata") or {}).get("name", ""))
            volumes = [v for v in volumes if v.get("name") != tname]
            volumes.append(
                {
                    "name": tname,
                    "persistentVolumeClaim": {"claimName": pvc_name(tname, cs.metadata.name, instance_id)},
                }
            )
        spec["volumes"] = volumes
    metadata: JsonObject = {
        "name": name,
        "generateName": f"{cs.metadata.name}-",
        "namespace": cs.metadata.namespace,
        "labels": labels,
        "annotations": annotations,
        "ownerReferences": [owner_reference(cs)],
    }
    if tmpl.metadata.finalizers:
        metadata["finalizers"] = list(tmpl.metadata.finalizers)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def pvc_bodies(ctx: Ctx, instance_id: str) -> list[JsonObject]:
    """The claims a new pod needs that do not exist yet (a reused id keeps its claims)."""
    cs = ctx.cs
    existing = pvcs.existing_names(ctx)
    out: list[JsonObject] = []
    selector_labels = dict(cs.spec.selector.match_labels) if cs.spec.selector else {}
    for vct in cs.spec.volume_claim_templates:
        meta = vct.get("metadata") or {}
        tname = str(meta.get("name", ""))
        if pvc_name(tname, cs.metadata.name, instance_id) in existing:
            continue
        labels = dict(meta.get("labels") or {})
        labels.update(selector_labels)
        labels[LABEL_INSTANCE_ID] = instance_id
        out.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {
                    "name": pvc_name(tname, cs.metadata.name, instance_id),
                    "namespace": cs.metadata.namespace,
                    "labels": labels,
                    **({"annotations": dict(meta["annotations"])} if meta.get("annotations") else {}),
                    "ownerReferences": [owner_reference(cs)],
                },
                "spec": copy.deepcopy(vct.get("spec") or {}),
            }
        )
    return out


def create_pod(ctx: Ctx, rev: ControllerRevision, instance_id: str) -> None:
    body = new_pod_body(ctx, rev, instance_id)
    name = str(body["metadata"]["name"])
    ops: list[ApiOp] = [
        CreateOp(resource=PERSISTENT_VOLUME_CLAIMS, namespace=ctx.cs.metadata.namespace, body=p)
        for p in pvc_bodies(ctx, instance_id)
    ]
    ops.append(ctx.b.pod_create(body))
    ctx.b.command(
        f"{ctx.b.uid}/create/{name}/{rev.metadata.name}/{ctx.cs.metadata.resource_version}",
        VERB_CREATE,
        ops,
        pod=name,
        revision=rev.metadata.name,
        on_success=kube_event(EVENT_SUCCESSFUL_CREATE, f"succeed to create pod {name}"),
        on_failure=kube_event(EVENT_FAILED_CREATE, f"failed to create pod {name}", warning=True),
    )
    ctx.b.expect(name, "present")


# --- deletion ---------------------------------------------------------------------------------------


def delete_pods(ctx: Ctx, infos: list[PodInfo]) -> bool:
    """Kruise ``deletePods``: hooked pods go to PreparingDelete, others are deleted (with their PVCs)."""
    hook = lc.pre_delete_hook(ctx.cs.spec.lifecycle)
    modified = False
    for info in infos:
        pod = info.pod
        if hook is not None and lc.is_hooked(hook, pod):
            if info.state != STATE_PREPARING_DELETE:
                lifecycle_command(ctx, pod, STATE_PREPARING_DELETE, mark_not_ready=hook.mark_pod_not_ready)
                modified = True
            continue
        meta = pod.metadata
        ops: list[ApiOp] = [ctx.b.pod_delete(pod)]
        iid = meta.labels.get(LABEL_INSTANCE_ID, "")
        if iid:
            names = [
                pvc_name(str((vct.get("metadata") or {}).get("name", "")), ctx.cs.metadata.name, iid)
                for vct in ctx.cs.spec.volume_claim_templates
            ]
            ops += pvcs.delete_ops(ctx, iid, names)
        ctx.b.command(
            f"{ctx.b.uid}/delete/{meta.uid}",
            VERB_DELETE,
            ops,
            pod=meta.name,
            pod_uid=meta.uid,
            revision=meta.labels.get(LABEL_REVISION_HASH, ""),
            on_success=kube_event(EVENT_SUCCESSFUL_DELETE, f"succeed to delete pod {meta.name}"),
            on_failure=kube_event(EVENT_FAILED_DELETE, f"failed to delete pod {meta.name}", warning=True),
        )
        ctx.b.expect(meta.name, "absent")
        modified = True
    return modified


def choose_scale_in(ctx: Ctx, diffs: ExpectationDiffs) -> list[PodInfo]:
    updated = [i for i in ctx.infos if i.updated]
    not_updated = [i for i in ctx.infos if not i.updated]
    total, current = diffs.scale_down_num, diffs.scale_down_num_old_revision

    def choose(group: list[PodInfo], n: int) -> list[PodInfo]:
        if n < len(group):
            pods = sort_scale_in(
                [i.pod for i in group], [i.pod for i in ctx.infos], ctx.cs.spec.template.spec, ctx.now, ctx.min_ready
            )
            by_uid = {i.pod.metadata.uid or i.name: i for i in group}
            group = [by_uid[p.metadata.uid or p.metadata.name] for p in pods]
        return group[: max(n, 0)]

    if current >= total:
        chosen = choose(not_updated, total)
    elif current > 0:
        chosen = choose(not_updated, current) + choose(updated, total - current)
    else:
        chosen = choose(updated, total)
    out: list[PodInfo] = []
    limit = diffs.delete_ready_limit
    for info in chosen:
        if not info.available0:
            out.append(info)
        elif limit > 0:
            out.append(info)
            limit -= 1
    return out
