"""``kruisebus plan FILE``: run one planner pass over objects from a file and print what it would do.

The input is what ``kubectl get -o yaml`` prints: one or more YAML (or JSON) documents, each an object of
a kind in the table of kinds (a workload, Pods, ControllerRevisions, PersistentVolumeClaims, ...) or a
``List`` of them. Exactly one workload of a kind in the planner registry is required (besides workloads
it controls, such as an AdvancedCronJob's BroadcastJobs): the preview is that workload planner's (for a
CloneSet: services/planner/cloneset/preview.py, format: docs/plan-format.md; for an AdvancedCronJob:
services/planner/advancedcronjob/planner.py, docs/cronjob.md), so every workload the planner service
plans can be previewed. A file without one may hold one ImagePullJob instead (beside its NodeImages):
its preview says which nodes get the image next and the status the pass would write (docs/prepull.md).

Exit codes: 0 plan printed; 1 the workload's spec is invalid (the plan then only reports it);
2 the input could not be read (the message names the document index, kind/name and field).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import msgspec
import yaml

from schemas.kinds import BY_KUBE_KIND
from services.planner.kit.gates import DEFAULT_GATES, parse_feature_gates
from services.planner.kit.workload import WorkloadPlanner
from services.planner.workloads import PREVIEW_ONLY, REGISTRY


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


def load(text: str, registry: dict[str, WorkloadPlanner] | None = None) -> tuple[WorkloadPlanner, Any, list[Any]]:
    """(the workload's planner, the workload, every other object) from the input documents."""
    planners = {p.kind.kind: p for p in (registry or REGISTRY).values()}
    workloads: list[tuple[WorkloadPlanner, Any]] = []
    others: list[Any] = []
    for i, doc in enumerate(_documents(text)):
        where = _label(i, doc)
        if not isinstance(doc, dict):
            raise InputError(f"{where}: not an object")
        kind = BY_KUBE_KIND.get(str(doc.get("kind")))
        if kind is None:
            raise InputError(f"{where}: kind: unsupported kind {doc.get('kind')!r} (expected {', '.join(BY_KUBE_KIND)})")
        if not isinstance(doc.get("metadata"), dict) or not doc["metadata"].get("name"):
            raise InputError(f"{where}: metadata.name: required")
        try:
            obj = msgspec.convert(doc, kind.object_type)
        except msgspec.ValidationError as exc:
            raise InputError(f"{where}: {_field(exc)}") from None
        planner = planners.get(kind.kind)
        if planner is not None:
            workloads.append((planner, obj))
        else:
            others.append(obj)
    if not workloads and registry is None:
        # no planned workload: a preview-only one (an ImagePullJob beside its NodeImages)
        extra = {p.kind.kind: p for p in PREVIEW_ONLY.values()}
        workloads = [(extra[o.kind], o) for o in others if getattr(o, "kind", "") in extra]
        others = [o for o in others if getattr(o, "kind", "") not in extra]
        planners.update(extra)
    if len(workloads) > 1:
        # a workload another one in the file controls (an AdvancedCronJob's BroadcastJob) is its child here
        controllers = {(obj.kind, obj.metadata.name) for _, obj in workloads}
        children = [(p, obj) for p, obj in workloads
                    if (ref := obj.metadata.controller_ref()) is not None and (ref.kind, ref.name) in controllers]
        workloads = [w for w in workloads if w not in children]
        others.extend(obj for _, obj in children)
    if len(workloads) != 1:
        kinds = list(planners)
        names = kinds[0] if len(kinds) == 1 else f"{', '.join(kinds[:-1])} or {kinds[-1]}"
        raise InputError(f"expected exactly one workload ({names}), found {len(workloads)}")
    planner, workload = workloads[0]
    return planner, workload, others


def run(
    path: str, *, now: str | None, feature_gates: str | None, create_limit: int | None = None,
    registry: dict[str, WorkloadPlanner] | None = None,
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
        planner, workload, others = load(text, registry)
    except InputError as exc:
        return 2, f"error: {path}: {exc}\n"
    code, out = planner.preview(workload, others, now=when, gates=gates, create_limit=create_limit)
    return code, json.dumps(out, indent=2) + "\n"


def _parse_now(text: str | None) -> datetime:
    if not text:
        return datetime.now(UTC)
    value = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
