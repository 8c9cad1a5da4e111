"""ImagePullJob defaults (`apis/apps/defaults/v1alpha1.go` SetDefaultsImagePullJob), on the raw object.

The mutating webhook applies them as a JSON patch, so they work on the JSON the API server sent (fields
kruisebus does not model pass through untouched). On create the protection finalizer is added too;
the controller removes it once the job finished.
"""

from __future__ import annotations

import copy
from typing import Any

from schemas.constants import (
    COMPLETION_ALWAYS,
    DEFAULT_PULL_BACKOFF_LIMIT,
    DEFAULT_PULL_TIMEOUT_SECONDS,
    FINALIZER_DELETION_PROTECTION,
    PULL_IF_NOT_PRESENT,
)


def _obj(parent: dict[str, Any], key: str) -> dict[str, Any]:
    value = parent.get(key)
    if not isinstance(value, dict):
        value = {}
        parent[key] = value
    return value


def default_image_pull_job(obj: dict[str, Any], *, add_protection: bool) -> dict[str, Any]:
    """A defaulted copy of `obj`: completionPolicy.type Always, pullPolicy {timeoutSeconds 600,
    backoffLimit 3}, imagePullPolicy IfNotPresent; on create the `apps.kruise.io/deletion-protection`
    finalizer."""
    out = copy.deepcopy(obj)
    spec = _obj(out, "spec")
    completion = _obj(spec, "completionPolicy")
    if not completion.get("type"):
        completion["type"] = COMPLETION_ALWAYS
    pull = _obj(spec, "pullPolicy")
    if pull.get("timeoutSeconds") is None:
        pull["timeoutSeconds"] = DEFAULT_PULL_TIMEOUT_SECONDS
    if pull.get("backoffLimit") is None:
        pull["backoffLimit"] = DEFAULT_PULL_BACKOFF_LIMIT
    if not spec.get("imagePullPolicy"):
        spec["imagePullPolicy"] = PULL_IF_NOT_PRESENT
    if add_protection:
        meta = _obj(out, "metadata")
        raw = meta.get("finalizers")
        finalizers: list[Any] = raw if isinstance(raw, list) else []
        if FINALIZER_DELETION_PROTECTION not in finalizers:
            meta["finalizers"] = [*finalizers, FINALIZER_DELETION_PROTECTION]
    return out


def default_node_image(obj: dict[str, Any], now: str) -> dict[str, Any]:
    """A defaulted copy of a NodeImage (`SetDefaultsNodeImage` plus the tag sorting its webhook does):
    every tag gets `createdAt` (`now`, RFC 3339) and `pullPolicy.timeoutSeconds` 600 / `backoffLimit` 3;
    spec and status tags sorted by tag."""
    out = copy.deepcopy(obj)
    images = (out.get("spec") or {}).get("images")
    for spec in (images or {}).values():
        if not isinstance(spec, dict):
            continue
        tags = [t for t in spec.get("tags") or [] if isinstance(t, dict)]
        for tag in tags:
            if not tag.get("createdAt"):
                tag["createdAt"] = now
            policy = _obj(tag, "pullPolicy")
            if policy.get("timeoutSeconds") is None:
                policy["timeoutSeconds"] = DEFAULT_PULL_TIMEOUT_SECONDS
            if policy.get("backoffLimit") is None:
                policy["backoffLimit"] = DEFAULT_PULL_BACKOFF_LIMIT
        if tags:
            spec["tags"] = sorted(tags, key=lambda t: str(t.get("tag", "")))
    statuses = (out.get("status") or {}).get("imageStatuses")
    for status in (statuses or {}).values():
        if isinstance(status, dict) and isinstance(status.get("tags"), list):
            status["tags"] = sorted(
                status["tags"], key=lambda t: str(t.get("tag", "")) if isinstance(t, dict) else ""
            )
    return out


__all__ = ["default_image_pull_job", "default_node_image"]
