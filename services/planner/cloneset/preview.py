"""`kruisebus plan` for a CloneSet: one planner pass over a saved view, as the JSON docs/plan-format.md
describes.

Pods are the ones the CloneSet controls (ownerReference uid) or, for hand-written files without uids,
the ones its selector matches. Revisions: with ControllerRevisions in the file they are the history
(matched by data, as Kruise does). Without them, the current template's revision is synthesised as
existing, and for every other `controller-revision-hash` the pods carry, a revision is reconstructed from
the current template with the container images those pods run (so an image-only change is recognised
as in-place-able). If the pass must first create or renumber a revision, that action is listed and the
pass continues on the result, as Kruise does within one reconcile.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec

from schemas.cloneset import CloneSet
from schemas.constants import LABEL_REVISION_HASH
from schemas.imagepulljob import ImagePullJob
from schemas.kube import ControllerRevision, PersistentVolumeClaim, Pod
from schemas.messages import CreateOp, PatchOp
from services.planner.cloneset.plan import plan_cloneset
from services.planner.cloneset.revision import build_revision, select_revisions
from services.planner.cloneset.status import status_json
from services.planner.cloneset.view import CloneSetView, Plan
from services.planner.kit.gates import FeatureGates
from services.planner.kit.revision import template_patch_data
from services.planner.kit.selectors import matches


def view_of(cs: CloneSet, objects: Sequence[Any]) -> tuple[CloneSet, list[Pod], list[ControllerRevision],
                                                            list[PersistentVolumeClaim]]:
    """The CloneSet (given a uid if the file has none) and the pods, revisions and claims it owns."""
    if not cs.metadata.uid:
        cs = msgspec.structs.replace(
            cs, metadata=msgspec.structs.replace(cs.metadata, uid=f"dryrun-{cs.metadata.name}")
        )
    pods = [o for o in objects if isinstance(o, Pod)]
    revisions = [o for o in objects if isinstance(o, ControllerRevision)]
    claims = [o for o in objects if isinstance(o, PersistentVolumeClaim)]
    owned = []
    for pod in pods:
        ref = pod.metadata.controller_ref()
        if ref is not None and ref.uid:
            if ref.uid == cs.metadata.uid:
                owned.append(pod)
        elif matches(cs.spec.selector, pod.metadata.labels):
            owned.append(pod)
    # claims count when the CloneSet owns them (a claim handed to a pod no longer does)
    owned_claims = [
        c for c in claims if (ref := c.metadata.controller_ref()) is not None and ref.uid == cs.metadata.uid
    ]
    return cs, owned, revisions, owned_claims


def synthesise_revisions(cs: CloneSet, pods: list[Pod]) -> list[ControllerRevision]:
    """The current template's revision plus one reconstructed revision per other pod revision label."""
    labels = sorted({p.metadata.labels.get(LABEL_REVISION_HASH, "") for p in pods} - {""})
    current = build_revision(cs, len(labels) + 1, cs.status.collision_count or 0)
    out: list[ControllerRevision] = []
    number = 1
    for label in labels:
        if label == current.metadata.name:
            continue
        pod = next(p for p in pods if p.metadata.labels.get(LABEL_REVISION_HASH) == label)
        images = {c.name: c.image for c in pod.spec.containers}
        template = msgspec.structs.replace(
            cs.spec.template, spec=json.loads(json.dumps(cs.spec.template.spec))
        )
        for c in template.spec.get("containers") or []:
            if isinstance(c, dict) and c.get("name") in images:
                c["image"] = images[c["name"]]
        rev = msgspec.structs.replace(
            current,
            metadata=msgspec.structs.replace(current.metadata, name=label),
            revision=number,
            data=template_patch_data(template),
        )
        out.append(rev)
        number += 1
    out.append(msgspec.structs.replace(current, revision=number))
    return out


def _images(body: dict[str, Any]) -> dict[str, str]:
    return {str(c.get("name")): str(c.get("image")) for c in (body.get("spec") or {}).get("containers") or []}


def _action(cmd: Any, containers: dict[str, list[str]]) -> dict[str, Any]:
    """One command as a preview action; `containers`: each pod's container names, in spec order (an
    in-place patch addresses a container by its index)."""
    out: dict[str, Any] = {"verb": cmd.verb}
    if cmd.pod:
        out["pod"] = cmd.pod
    if cmd.revision:
        out["revision"] = cmd.revision
    for op in cmd.ops:
        if isinstance(op, CreateOp) and op.resource.plural == "pods":
            out["images"] = _images(op.body)
        if isinstance(op, CreateOp) and op.resource.plural == "imagepulljobs":  # gate PreDownloadImageForInPlaceUpdate
            spec = op.body.get("spec") or {}
            out["imagePullJob"] = {"name": op.body["metadata"]["name"], "image": spec.get("image"),
                                   "parallelism": spec.get("parallelism"), "podSelector": spec.get("podSelector")}
        if op.resource.plural == "persistentvolumeclaims":
            name = op.body["metadata"]["name"] if isinstance(op, CreateOp) else op.name
            out.setdefault("pvcs", []).append(name)
        if isinstance(op, PatchOp) and op.patch_type == "json" and isinstance(op.patch, list):
            for o in op.patch:
                path = str(o.get("path", ""))
                if o.get("op") in ("add", "replace") and path.startswith("/spec/containers/") \
                        and path.endswith("/image"):
                    index = path.split("/")[3]
                    names = containers.get(cmd.pod, [])
                    name = names[int(index)] if index.isdigit() and int(index) < len(names) else index
                    out.setdefault("images", {})[name] = o.get("value")
                if path == "/metadata/labels/lifecycle.apps.kruise.io~1state" and o.get("op") == "add":
                    out["state"] = o.get("value")
                if (
                    path == "/metadata/annotations/apps.kruise.io~1inplace-update-grace"
                    and o.get("op") == "add"
                ):
                    out["graceSeconds"] = json.loads(str(o.get("value"))).get("graceSeconds", 0)
    if cmd.on_success is not None:
        out["event"] = {
            "type": cmd.on_success.type,
            "reason": cmd.on_success.reason,
            "message": cmd.on_success.message,
        }
    out["id"] = cmd.id
    return out


def _apply_revisions(plan: Plan, revisions: list[ControllerRevision]) -> list[ControllerRevision]:
    out = list(revisions)
    for cmd in plan.commands:
        for op in cmd.ops:
            if cmd.verb == "revision-create" and isinstance(op, CreateOp):
                out.append(msgspec.convert(op.body, ControllerRevision))
    return out


def plan_view(
    cs: CloneSet, objects: Sequence[Any], *, now: datetime, gates: FeatureGates, create_limit: int | None = None
) -> tuple[Plan, list[Plan]]:
    cs, pods, revisions, claims = view_of(cs, objects)
    if not revisions:
        revisions = synthesise_revisions(cs, pods)
    plans: list[Plan] = []
    jobs = [o for o in objects if isinstance(o, ImagePullJob)
            and (ref := o.metadata.controller_ref()) is not None and ref.uid == cs.metadata.uid]
    view = CloneSetView(cloneset=cs, pods=pods, revisions=revisions, pvcs=claims, image_pull_jobs=jobs)
    plan = plan_cloneset(view, now=now, gates=gates, create_limit=create_limit)
    plans.append(plan)
    if not plan.errors and any(c.verb in ("revision-create", "revision-bump") for c in plan.commands):
        sel = select_revisions(cs, revisions, pods)
        revisions = _apply_revisions(plan, revisions)
        if sel.bump is not None:
            revisions = [sel.bump if r.metadata.name == sel.bump.metadata.name else r for r in revisions]
        status = msgspec.structs.replace(cs.status, update_revision=sel.update.metadata.name)
        cs2 = msgspec.structs.replace(cs, status=status)
        view2 = CloneSetView(cloneset=cs2, pods=pods, revisions=revisions, pvcs=claims, image_pull_jobs=jobs)
        plan = plan_cloneset(view2, now=now, gates=gates, create_limit=create_limit)
        plans.append(plan)
    return plan, plans




def preview(cs: CloneSet, objects: Sequence[Any], *, now: datetime, gates: FeatureGates,
            create_limit: int | None = None) -> tuple[int, dict[str, Any]]:
    """(exit code, the JSON document): 0 planned, 1 the spec is invalid (the plan only reports it)."""
    final, plans = plan_view(cs, objects, now=now, gates=gates, create_limit=create_limit)
    containers = {o.metadata.name: [c.name for c in o.spec.containers] for o in objects if isinstance(o, Pod)}
    actions = [_action(c, containers) for p in plans for c in p.commands if c.verb != "status"]
    out: dict[str, Any] = {
        "actions": actions,
        "status": status_json(final.status),
        "statusWritten": any(c.verb == "status" for p in plans for c in p.commands),
        "requeueAfter": final.requeue_after,
        "expectations": [msgspec.to_builtins(e) for e in final.expectations],
        "events": [
            {"type": e.type, "reason": e.reason, "message": e.message} for p in plans for e in p.events
        ],
    }
    if final.errors:
        out["errors"] = [{"field": e.field, "message": str(e)} for e in final.errors]
    return (1 if final.errors else 0), out
