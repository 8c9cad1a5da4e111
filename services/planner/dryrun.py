"""``kruisebus plan FILE``: run one planner pass over objects from a file and print what it would do.

The input is what ``kubectl get -o yaml`` prints: one or more YAML (or JSON) documents, each a CloneSet,
a Pod, a ControllerRevision or a ``List`` of them. Exactly one CloneSet is required; pods are the ones
it controls (ownerReference uid) or, for hand-written files without uids, the ones its selector
matches. Output is one JSON object: ``{"actions": [...], "status": {...}, "requeueAfter": ..., ...}``
(format: docs/plan-format.md).

Revisions: with ControllerRevisions in the file they are the history (matched by data, as Kruise does).
Without them, the current template's revision is synthesised as existing, and for every other
``controller-revision-hash`` the pods carry, a revision is reconstructed from the current template
with the container images those pods run (so an image-only change is recognised as in-place-able).
If the pass must first create or renumber a revision, that action is listed and the pass continues on
the result, as Kruise does within one reconcile.

Exit codes: 0 plan printed; 1 the CloneSet spec is invalid (the plan then only reports it);
2 the input could not be read (the message names the document index, kind/name and field).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import msgspec
import yaml

from schemas.cloneset import CloneSet
from schemas.constants import LABEL_REVISION_HASH
from schemas.kube import ControllerRevision, PersistentVolumeClaim, Pod
from schemas.messages import CreateOp, PatchOp
from services.planner.cloneset.gates import DEFAULT_GATES, FeatureGates, parse_feature_gates
from services.planner.cloneset.plan import plan_cloneset
from services.planner.cloneset.revision import build_revision, revision_data, select_revisions
from services.planner.cloneset.selectors import matches
from services.planner.cloneset.status import status_json
from services.planner.cloneset.view import CloneSetView, Plan

_KINDS = {
    "CloneSet": CloneSet,
    "Pod": Pod,
    "ControllerRevision": ControllerRevision,
    "PersistentVolumeClaim": PersistentVolumeClaim,
}


class InputError(Exception):
    pass


def _documents(text: str) -> list[Any]:
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise InputError(f"cannot parse input: {exc}") from None
    out: list[Any] = []
    for doc in docs:
        if (
            isinstance(doc, dict)
            and str(doc.get("kind", "")).endswith("List")
            and isinstance(doc.get("items"), list)
        ):
            out.extend(doc["items"])
        else:
            out.append(doc)
    return out


def _label(i: int, doc: Any) -> str:
    if not isinstance(doc, dict):
        return f"document {i}"
    name = (doc.get("metadata") or {}).get("name", "") if isinstance(doc.get("metadata"), dict) else ""
    return f"document {i} ({doc.get('kind', '?')}/{name or '?'})"


def _field(err: msgspec.ValidationError) -> str:
    text = str(err)
    # msgspec: "Expected `int`, got `str` - at `$.spec.replicas`" -> "spec.replicas: Expected `int`, got `str`"
    if " - at `$." in text:
        msg, _, path = text.rpartition(" - at `$.")
        return f"{path.rstrip('`')}: {msg}"
    return text


def load(text: str) -> tuple[CloneSet, list[Pod], list[ControllerRevision], list[PersistentVolumeClaim]]:
    clonesets: list[CloneSet] = []
    pods: list[Pod] = []
    revisions: list[ControllerRevision] = []
    claims: list[PersistentVolumeClaim] = []
    for i, doc in enumerate(_documents(text)):
        where = _label(i, doc)
        if not isinstance(doc, dict):
            raise InputError(f"{where}: not an object")
        kind = doc.get("kind")
        typ = _KINDS.get(str(kind))
        if typ is None:
            raise InputError(
                f"{where}: kind: unsupported kind {kind!r} "
                "(expected CloneSet, Pod, ControllerRevision, PersistentVolumeClaim)"
            )
        if not isinstance(doc.get("metadata"), dict) or not doc["metadata"].get("name"):
            raise InputError(f"{where}: metadata.name: required")
        try:
            obj = msgspec.convert(doc, typ)
        except msgspec.ValidationError as exc:
            raise InputError(f"{where}: {_field(exc)}") from None
        if isinstance(obj, CloneSet):
            clonesets.append(obj)
        elif isinstance(obj, Pod):
            pods.append(obj)
        elif isinstance(obj, ControllerRevision):
            revisions.append(obj)
        elif isinstance(obj, PersistentVolumeClaim):
            claims.append(obj)
    if len(clonesets) != 1:
        raise InputError(f"expected exactly one CloneSet, found {len(clonesets)}")
    cs = clonesets[0]
    if not cs.metadata.uid:
        cs = msgspec.structs.replace(
            cs, metadata=msgspec.structs.replace(cs.metadata, uid=f"dryrun-{cs.metadata.name}")
        )
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
            data=revision_data(template),
        )
        out.append(rev)
        number += 1
    out.append(msgspec.structs.replace(current, revision=number))
    return out


def _images(body: dict[str, Any]) -> dict[str, str]:
    return {str(c.get("name")): str(c.get("image")) for c in (body.get("spec") or {}).get("containers") or []}


def _action(cmd: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"verb": cmd.verb}
    if cmd.pod:
        out["pod"] = cmd.pod
    if cmd.revision:
        out["revision"] = cmd.revision
    for op in cmd.ops:
        if isinstance(op, CreateOp) and op.resource.plural == "pods":
            out["images"] = _images(op.body)
        if op.resource.plural == "persistentvolumeclaims":
            name = op.body["metadata"]["name"] if isinstance(op, CreateOp) else op.name
            out.setdefault("pvcs", []).append(name)
        if isinstance(op, PatchOp) and op.patch_type == "json" and isinstance(op.patch, list):
            for o in op.patch:
                path = str(o.get("path", ""))
                if o.get("op") in ("add", "replace") and path.startswith("/spec/containers/"):
                    out.setdefault("images", {})[path.split("/")[3]] = o.get("value")
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


def plan_file(
    text: str, *, now: datetime, gates: FeatureGates, create_limit: int | None = None
) -> tuple[Plan, list[Plan]]:
    cs, pods, revisions, claims = load(text)
    if not revisions:
        revisions = synthesise_revisions(cs, pods)
    plans: list[Plan] = []
    view = CloneSetView(cloneset=cs, pods=pods, revisions=revisions, pvcs=claims)
    plan = plan_cloneset(view, now=now, gates=gates, create_limit=create_limit)
    plans.append(plan)
    if not plan.errors and any(c.verb in ("revision-create", "revision-bump") for c in plan.commands):
        sel = select_revisions(cs, revisions, pods)
        revisions = _apply_revisions(plan, revisions)
        if sel.bump is not None:
            revisions = [sel.bump if r.metadata.name == sel.bump.metadata.name else r for r in revisions]
        status = msgspec.structs.replace(cs.status, update_revision=sel.update.metadata.name)
        cs2 = msgspec.structs.replace(cs, status=status)
        view2 = CloneSetView(cloneset=cs2, pods=pods, revisions=revisions, pvcs=claims)
        plan = plan_cloneset(view2, now=now, gates=gates, create_limit=create_limit)
        plans.append(plan)
    return plan, plans


def run(
    path: str, *, now: str | None, feature_gates: str | None, create_limit: int | None = None
) -> tuple[int, str]:
    """The CLI entry point: (exit code, stdout text)."""
    if create_limit is not None and create_limit < 1:
        return 2, f"error: --create-limit must be at least 1, got {create_limit}\n"
    try:
        when = _parse_now(now)
        gates = parse_feature_gates(feature_gates) if feature_gates else DEFAULT_GATES
    except ValueError as exc:
        return 2, f"error: {exc}\n"
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        return 2, f"error: cannot read {path}: {exc.strerror or exc}\n"
    try:
        final, plans = plan_file(text, now=when, gates=gates, create_limit=create_limit)
    except InputError as exc:
        return 2, f"error: {path}: {exc}\n"
    actions = [_action(c) for p in plans for c in p.commands if c.verb != "status"]
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
    return (1 if final.errors else 0), json.dumps(out, indent=2) + "\n"


def _parse_now(text: str | None) -> datetime:
    if not text:
        return datetime.now(UTC)
    value = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
