"""Pod defaulting and Kubernetes' pod update validation (ValidatePodUpdate's spec rule)."""

from __future__ import annotations

import copy
import json
from typing import Any

FORBIDDEN_UPDATE = (
    "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
    "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
    "(allow it to be set to 1 if it was previously negative)"
)

DEFAULT_TOLERATIONS = [
    {
        "key": "node.kubernetes.io/not-ready",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 300,
    },
    {
        "key": "node.kubernetes.io/unreachable",
        "operator": "Exists",
        "effect": "NoExecute",
        "tolerationSeconds": 300,
    },
]


def _default_container(c: dict[str, Any]) -> None:
    image = str(c.get("image", ""))
    tag = image.rsplit("/", 1)[-1]
    latest = "@" not in tag and (":" not in tag or tag.endswith(":latest"))
    c.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
    c.setdefault("resources", {})
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    for p in c.get("ports") or []:
        if isinstance(p, dict):
            p.setdefault("protocol", "TCP")


def default_pod_spec(spec: dict[str, Any], *, creating: bool) -> None:
    """Apply the defaults kube-apiserver (and its default admission plugins) add to a PodSpec, in place."""
    for c in spec.get("containers") or []:
        if isinstance(c, dict):
            _default_container(c)
    for c in spec.get("initContainers") or []:
        if isinstance(c, dict):
            _default_container(c)
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault("priority", 0)
    if creating:
        spec.setdefault("serviceAccountName", "default")
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
        tolerations = spec.setdefault("tolerations", [])
        keys = {t.get("key") for t in tolerations if isinstance(t, dict)}
        for t in DEFAULT_TOLERATIONS:
            if t["key"] not in keys:
                tolerations.append(dict(t))


def qos_class(spec: dict[str, Any]) -> str:
    containers = [c for c in (spec.get("containers") or []) if isinstance(c, dict)]
    requests_any = False
    guaranteed = bool(containers)
    for c in containers:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        if req or lim:
            requests_any = True
        for r in ("cpu", "memory"):
            if r not in lim or req.get(r, lim.get(r)) != lim.get(r):
                guaranteed = False
    if not requests_any:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def validate_pod_create(pod: dict[str, Any]) -> list[dict[str, str]]:
    causes = []
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return [{"reason": "FieldValueRequired", "message": "Required value", "field": "spec"}]
    containers = spec.get("containers")
    if not containers:
        causes.append(
            {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.containers"}
        )
    names = set()
    for i, c in enumerate(containers or []):
        if not isinstance(c, dict) or not c.get("name"):
            causes.append(
                {
                    "reason": "FieldValueRequired",
                    "message": "Required value",
                    "field": f"spec.containers[{i}].name",
                }
            )
            continue
        if c["name"] in names:
            causes.append(
                {
                    "reason": "FieldValueDuplicate",
                    "message": f'Duplicate value: "{c["name"]}"',
                    "field": f"spec.containers[{i}].name",
                }
            )
        names.add(c["name"])
        if not c.get("image"):
            causes.append(
                {
                    "reason": "FieldValueRequired",
                    "message": "Required value",
                    "field": f"spec.containers[{i}].image",
                }
            )
    return causes


def _tolerations_added_only(old: list[Any], new: list[Any]) -> bool:
    return all(t in new for t in old)


def validate_pod_update(old_spec: dict[str, Any], new_spec: dict[str, Any]) -> str | None:
    """None if the change is allowed, else a diff (for the error message) of what may not change.

    Mirrors ValidatePodUpdate: munge the fields that may change back to their old values, then require
    the rest of the spec to be identical.
    """
    if new_spec == old_spec:
        return None  # the common case (label, annotation, status writes): nothing to munge
    munged = copy.deepcopy(new_spec)
    for field in ("containers", "initContainers"):
        new_list, old_list = munged.get(field) or [], old_spec.get(field) or []
        if len(new_list) == len(old_list):
            for n, o in zip(new_list, old_list, strict=True):
                if isinstance(n, dict) and isinstance(o, dict) and "image" in o:
                    n["image"] = o["image"]
    if "activeDeadlineSeconds" in old_spec:
        munged["activeDeadlineSeconds"] = old_spec["activeDeadlineSeconds"]
    else:
        munged.pop("activeDeadlineSeconds", None)
    if _tolerations_added_only(old_spec.get("tolerations") or [], munged.get("tolerations") or []):
        if "tolerations" in old_spec:
            munged["tolerations"] = old_spec["tolerations"]
        else:
            munged.pop("tolerations", None)
    old_grace, new_grace = (
        old_spec.get("terminationGracePeriodSeconds"),
        munged.get("terminationGracePeriodSeconds"),
    )
    if isinstance(old_grace, int) and old_grace < 0 and new_grace == 1:
        munged["terminationGracePeriodSeconds"] = old_grace
    if munged == old_spec:
        return None
    return _diff(old_spec, munged)


def _diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    lines = ["", "  core.PodSpec{"]
    for k in sorted(set(old) | set(new)):
        if old.get(k) != new.get(k):
            if k in old:
                lines.append(f"- \t{k}: {json.dumps(old[k], sort_keys=True)},")
            if k in new:
                lines.append(f"+ \t{k}: {json.dumps(new[k], sort_keys=True)},")
    lines.append("  }")
    lines.append("")
    return "\n".join(lines)
