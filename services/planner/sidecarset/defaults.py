"""`SetDefaultsSidecarSet` and `SetHashSidecarSet`: what the SidecarSet mutating webhook writes.

Kruise's `apis/apps/defaults/v1alpha1.go` on every create and update: container defaults
(podInjectPolicy per list, ColdUpgrade, shareVolumePolicy disabled, Kubernetes' container defaults),
volume defaults, RollingUpdate with partition 0 and maxUnavailable 1, revisionHistoryLimit 10,
patchPolicy Retain, injection revision policy Always; then both hash annotations over the defaulted
containers (a user-supplied hash is overwritten). Works on the raw object so nothing the user wrote
is dropped.
"""

from __future__ import annotations

import copy
from typing import Any

from schemas.constants import (
    ANNOTATION_SIDECARSET_HASH,
    ANNOTATION_SIDECARSET_HASH_WITHOUT_IMAGE,
    DEFAULT_SIDECARSET_HISTORY_LIMIT,
    PATCH_POLICY_RETAIN,
    REVISION_POLICY_ALWAYS,
    SHARE_VOLUME_DISABLED,
    SIDECAR_AFTER_APP,
    SIDECAR_BEFORE_APP,
    SIDECAR_COLD_UPGRADE,
    SIDECARSET_ROLLING_UPDATE,
)
from schemas.kube import JsonObject
from schemas.sidecarset import TARGET_CONTAINERS_NAME_REGEX_DEFAULT
from services.planner.kit.poddefaults import default_container, default_volume
from services.planner.sidecarset.hash import sidecarset_hash, sidecarset_hash_without_image


def _obj(parent: JsonObject, key: str) -> JsonObject:
    value = parent.get(key)
    if not isinstance(value, dict):
        value = {}
        parent[key] = value
    return value


def _dicts(value: object) -> list[JsonObject]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def default_sidecar_container(c: JsonObject, inject_policy: str) -> None:
    if not c.get("podInjectPolicy"):
        c["podInjectPolicy"] = inject_policy
    if not _obj(c, "upgradeStrategy").get("upgradeType"):
        c["upgradeStrategy"]["upgradeType"] = SIDECAR_COLD_UPGRADE
    if not _obj(c, "shareVolumePolicy").get("type"):
        c["shareVolumePolicy"]["type"] = SHARE_VOLUME_DISABLED
    policy = c.get("resourcesPolicy")
    if isinstance(policy, dict) and "targetContainersNameRegex" not in policy:
        policy["targetContainersNameRegex"] = TARGET_CONTAINERS_NAME_REGEX_DEFAULT  # the CRD's default
    default_container(c, pull_always=False)
    for env in _dicts(c.get("transferEnv")):
        ref = (env.get("sourceContainerNameFrom") or {}).get("fieldRef")
        if isinstance(ref, dict) and not ref.get("apiVersion"):
            ref["apiVersion"] = "v1"


def default_sidecarset(obj: JsonObject) -> JsonObject:
    """The defaulted copy of a SidecarSet object, hash annotations included."""
    out: JsonObject = copy.deepcopy(obj)
    spec = _obj(out, "spec")
    strategy = _obj(spec, "updateStrategy")
    if not strategy.get("type"):
        strategy["type"] = SIDECARSET_ROLLING_UPDATE
    if strategy.get("maxUnavailable") is None:
        strategy["maxUnavailable"] = 1
    if strategy.get("partition") is None:
        strategy["partition"] = 0
    for c in _dicts(spec.get("initContainers")):
        default_sidecar_container(c, SIDECAR_AFTER_APP)
    for c in _dicts(spec.get("containers")):
        default_sidecar_container(c, SIDECAR_BEFORE_APP)
    for v in _dicts(spec.get("volumes")):
        default_volume(v)
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = DEFAULT_SIDECARSET_HISTORY_LIMIT
    for patch in _dicts(spec.get("patchPodMetadata")):
        if not patch.get("patchPolicy"):
            patch["patchPolicy"] = PATCH_POLICY_RETAIN
    revision = (spec.get("injectionStrategy") or {}).get("revision")
    if isinstance(revision, dict) and not revision.get("policy"):
        revision["policy"] = REVISION_POLICY_ALWAYS
    annotations: dict[str, Any] = _obj(_obj(out, "metadata"), "annotations")
    containers, inits = _dicts(spec.get("containers")), _dicts(spec.get("initContainers"))
    annotations[ANNOTATION_SIDECARSET_HASH] = sidecarset_hash(containers, inits)
    annotations[ANNOTATION_SIDECARSET_HASH_WITHOUT_IMAGE] = sidecarset_hash_without_image(containers, inits)
    return out


__all__ = ["default_sidecar_container", "default_sidecarset"]
