"""The SidecarSet validating webhook's rules (`pkg/webhook/sidecarset/validating/sidecarset_create_update_handler.go`).

Order as Kruise: metadata, canary annotations, spec, (update) container immutability; the check
against other SidecarSets runs only when nothing failed before. Pure: the other SidecarSets, the
revision lookup and the whitelist ConfigMap's value are handed in by the caller (the webhook's view).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Final

import msgspec

from schemas.constants import (
    ANNOTATION_SIDECARSET_BASE,
    PATCH_POLICY_OVERWRITE,
    PATCH_POLICY_RETAIN,
    REVISION_POLICY_ALWAYS,
    REVISION_POLICY_PARTIAL,
    SHARE_VOLUME_DISABLED,
    SHARE_VOLUME_ENABLED,
    SIDECAR_AFTER_APP,
    SIDECAR_BEFORE_APP,
    SIDECARSET_NOT_UPDATE,
    SIDECARSET_ROLLING_UPDATE,
)
from schemas.kube import ControllerRevision, JsonObject, LabelSelector
from schemas.sidecarset import ResourcesPolicy, SidecarSet, SidecarSetUpdateStrategy, sidecar_fields
from services.planner.kit.fielderrors import FieldError, field_error, from_issue
from services.planner.kit.gates import DEFAULT_GATES, FeatureGates
from services.planner.kit.podvalidation import container_errors
from services.planner.kit.pubrules import priority_error, scatter_error
from services.planner.kit.selectors import (
    conversion_error,
    selector_issues,
)
from services.planner.sidecarset.matching import (
    is_canary,
    namespace_overlapping,
    selector_overlapping,
)
from services.planner.sidecarset.metadata import WhitelistError, check_whitelist
from services.planner.sidecarset.resources import CPU, MEMORY, expression_error
from services.planner.sidecarset.revisions import not_found_message

NAME_RE: Final = re.compile(r"^[a-zA-Z0-9\-]+$")
NAME_MAX: Final = 63
_PERCENT_RE: Final = re.compile(r"^[0-9]+%$")
_VOLUME_SOURCES: Final = frozenset({
    "hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret", "nfs", "iscsi",
    "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder", "cephfs", "flocker", "downwardAPI",
    "fc", "azureFile", "configMap", "vsphereVolume", "quobyte", "azureDisk", "photonPersistentDisk",
    "projected", "portworxVolume", "scaleIO", "storageos", "csi", "ephemeral", "image",
})
_FIELD_REF_RE: Final = re.compile(r"^metadata\.(labels|annotations)\['[^']+'\]$")

RevisionLookup = Callable[[SidecarSet], ControllerRevision | None]
"""Finds the revision `spec.injectionStrategy.revision` names (None: not found)."""


def _selector_errors(selector: LabelSelector, path: str) -> list[FieldError]:
    errs = [from_issue(i) for i in selector_issues(selector, path)]
    if not selector.match_labels and not selector.match_expressions:
        errs.append(field_error(path, "Invalid", msgspec.to_builtins(selector),
                                "empty selector is not valid for sidecarset."))
    if conversion_error(selector) is not None:
        errs.append(field_error(f"{path}.selector", "Invalid", msgspec.to_builtins(selector), ""))
    return errs


def _int_or_percent_errors(value: object, path: str) -> list[FieldError]:
    """`ValidatePositiveIntOrPercent`: a non-negative int or `^[0-9]+%$`."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return [field_error(path, "Invalid", value, "must be an integer or percentage (e.g '5%')")]
    if isinstance(value, str):
        if not _PERCENT_RE.match(value):
            return [field_error(path, "Invalid", value, "must be an integer or percentage (e.g '5%')")]
        return []
    if value < 0:
        return [field_error(path, "Invalid", value, "must be greater than or equal to 0")]
    return []


def _partition_set(value: object) -> bool:
    """`intStrIsSet`: any string, or an int other than 0."""
    return value is not None and (isinstance(value, str) or value != 0)


def _update_strategy_errors(strategy: SidecarSetUpdateStrategy) -> list[FieldError]:
    base = "spec.updateStrategy"
    errs: list[FieldError] = []
    if strategy.type != SIDECARSET_ROLLING_UPDATE:
        return errs
    if _partition_set(strategy.partition) and strategy.selector is not None:
        errs.append(field_error("updateStrategy", "Invalid", "", "Partition and Selector cannot be used together"))
    if strategy.selector is not None:
        errs.extend(_selector_errors(strategy.selector, f"{base}.selector"))
    if strategy.partition is not None:
        errs.extend(_int_or_percent_errors(strategy.partition, f"{base}.partition"))
    if strategy.max_unavailable is not None:
        errs.extend(_int_or_percent_errors(strategy.max_unavailable, f"{base}.maxUnavailable"))
    problem = priority_error(strategy.priority_strategy)
    if problem is not None:
        errs.append(field_error(f"{base}.priorityStrategy", "Required", detail=problem, no_value=True))
    problem = scatter_error(strategy.scatter_strategy)
    if problem is not None:
        errs.append(field_error(f"{base}.scatterStrategy", "Required", detail=problem, no_value=True))
    return errs


_FAKE_CONTAINER: Final = {"name": "test", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                          "terminationMessagePolicy": "File"}


def _container_errors(ss: SidecarSet) -> list[FieldError]:
    """The SidecarSet-specific container rules, then the fake pod's `ValidatePodCreate` container
    checks: the validator every workload shares (`kit.podvalidation.container_errors`), at
    ``spec.containers[i]`` / ``spec.initContainers[i]``."""
    spec = ss.spec
    errs: list[FieldError] = []
    for i, c in enumerate(spec.init_containers):
        f = sidecar_fields(c)
        if f.resources_policy is not None:
            if f.restart_policy != "Always":
                errs.append(field_error(f"spec[{i}].resourcesPolicy", "Invalid", f.resources_policy,
                                        "resourcesPolicy is only supported for containers with RestartPolicy Always"))
            errs.extend(_resources_policy_errors(c, f.resources_policy, f"spec[{i}].resourcesPolicy"))
    for i, c in enumerate(spec.containers):
        f = sidecar_fields(c)
        if f.pod_inject_policy not in (SIDECAR_BEFORE_APP, SIDECAR_AFTER_APP):
            errs.append(field_error("spec.container.podInjectPolicy", "Invalid", f.pod_inject_policy,
                                    "unsupported pod inject policy"))
        if f.share_volume_policy.type not in (SHARE_VOLUME_ENABLED, SHARE_VOLUME_DISABLED):
            errs.append(field_error("spec.container.shareVolumePolicy", "Invalid",
                                    msgspec.to_builtins(f.share_volume_policy), "unsupported share volume policy"))
        if f.resources_policy is not None:
            errs.extend(_resources_policy_errors(c, f.resources_policy, f"spec[{i}].resourcesPolicy"))
        for j, env in enumerate(f.transfer_env):
            ref = env.source_container_name_from.field_ref if env.source_container_name_from else None
            if ref is None:
                continue
            path = f"spec[{i}].transferEnv[{j}].sourceContainerNameFrom.fieldRef"
            if not ref.api_version:
                errs.append(field_error(f"{path}.apiVersion", "Required", no_value=True))
            if not ref.field_path:
                errs.append(field_error(f"{path}.fieldPath", "Required", no_value=True))
            elif not _FIELD_REF_RE.match(ref.field_path):
                errs.append(field_error(f"{path}.fieldPath", "Invalid", ref.field_path,
                                        "error converting fieldPath: field label not supported"))
    # Kruise's fake pod: with no containers ValidatePodCreate gets one named "test" (so an init
    # container "test" is a duplicate there too)
    containers = spec.containers or [_FAKE_CONTAINER]
    errs.extend(container_errors(containers, spec.init_containers, spec.volumes))
    return errs


def _resources_policy_errors(c: JsonObject, policy: JsonObject, path: str) -> list[FieldError]:
    """`validateResourcesPolicy`: not with resources, a valid regex, limits or requests expressions
    that the calculator accepts (each evaluated with its variable = 1)."""
    resources = c.get("resources") or {}
    if resources.get("limits") or resources.get("requests"):
        return [field_error(path, "Invalid", policy, "resourcesPolicy and resources cannot be configured together")]
    errs: list[FieldError] = []
    try:
        typed = msgspec.convert(policy, ResourcesPolicy)
    except msgspec.ValidationError as e:
        return [field_error(path, "Invalid", policy, str(e))]
    regex = typed.target_containers_name_regex
    if not regex:
        errs.append(field_error(f"{path}.targetContainersNameRegex", "Required", no_value=True,
                                detail="invalid empty regex"))
    else:
        try:
            re.compile(regex)
        except re.error as e:
            errs.append(field_error(f"{path}.targetContainersNameRegex", "Invalid", regex,
                                    f"invalid regex pattern: {e}"))
    expr = typed.resources_expr
    if expr.limits is None and expr.requests is None:
        errs.append(field_error(f"{path}.resourcesExpr", "Invalid", policy.get("resourcesExpr") or {},
                                "at least one of limits or requests must be configured"))
        return errs
    for kind, exprs in (("limits", expr.limits), ("requests", expr.requests)):
        if exprs is None:
            continue
        for variable, text in ((CPU, exprs.cpu), (MEMORY, exprs.memory)):
            problem = expression_error(text, variable)
            if problem is not None:
                errs.append(field_error(f"{path}.resourcesExpr.{kind}.{variable}", "Invalid", text, problem))
    return errs


def _volume_errors(ss: SidecarSet) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, v in enumerate(ss.spec.volumes):
        if not v.get("name"):
            errs.append(field_error(f"spec.volumes[{i}].name", "Required", no_value=True))
        if not any(v.get(k) is not None for k in _VOLUME_SOURCES):
            errs.append(field_error(f"spec.volumes[{i}]", "Required", no_value=True,
                                    detail="must specify a volume type"))
    return errs


def _patch_errors(ss: SidecarSet, whitelist: str | None, gates: FeatureGates) -> list[FieldError]:
    errs: list[FieldError] = []
    try:
        check_whitelist(ss, whitelist, defaults_allowed=gates.sidecar_set_patch_pod_metadata_defaults_allowed)
    except WhitelistError as e:
        errs.append(field_error("spec.patchPodMetadata", "Required", detail=str(e), no_value=True))
    keys: set[str] = set()
    for patch in ss.spec.patch_pod_metadata:
        if not patch.annotations:
            errs.append(field_error("spec.patchPodMetadata", "Required", no_value=True,
                                    detail="no annotations defined for SidecarSet"))
        if not patch.patch_policy:
            errs.append(field_error("spec.patchPodMetadata", "Required", no_value=True,
                                    detail="no patchPolicy defined for patchPodMetadata"))
        for k in patch.annotations:
            if k in keys:
                errs.append(field_error("spec.patchPodMetadata", "Required", no_value=True,
                                        detail=f"patch annotation[{k}] already exist"))
            keys.add(k)
    return errs


def _canary_errors(ss: SidecarSet, old: SidecarSet | None, others: Sequence[SidecarSet]) -> list[FieldError]:
    canary, base = is_canary(ss)
    if not canary:
        return []
    annotations = ss.metadata.annotations
    if base == ss.metadata.name:
        return [field_error("metadata", "Invalid", annotations, "base sidecarSet cannot be itself")]
    if old is not None and old.metadata.annotations.get(ANNOTATION_SIDECARSET_BASE) != base:
        return [field_error("metadata", "Invalid", annotations,
                            f"annotations[{ANNOTATION_SIDECARSET_BASE}] is immutable")]
    found = next((o for o in others if o.metadata.name == base), None)
    if found is None:
        return [field_error("metadata", "Invalid", annotations,
                            f'fetch base sidecarSet[{base}] failed: sidecarsets.apps.kruise.io "{base}" not found')]
    if is_canary(found)[0]:
        return [field_error("metadata", "Invalid", annotations, "base sidecarSet cannot be canary")]
    if ss.spec.update_strategy.type != SIDECARSET_NOT_UPDATE:
        return [field_error("metadata", "Invalid", annotations, "RollingUpdate is not supported for canary sidecarSet")]
    return []


def _injection_errors(ss: SidecarSet, lookup: RevisionLookup) -> list[FieldError]:
    revision = ss.spec.injection_strategy.revision
    if revision is None:
        return []
    errs: list[FieldError] = []
    if revision.revision_name is None and revision.custom_version is None:
        errs.append(field_error("revision", "Invalid", msgspec.to_builtins(revision),
                                "revisionName and customVersion cannot be empty simultaneously"))
    elif lookup(ss) is None:
        errs.append(field_error("revision", "Invalid", None,
                                f"Cannot find specific ControllerRevision, err: {not_found_message(ss)}"))
    if revision.policy not in ("", REVISION_POLICY_ALWAYS, REVISION_POLICY_PARTIAL):
        errs.append(field_error("revision.policy", "Invalid", msgspec.to_builtins(revision),
                                f"Invalid policy {revision.policy}, supported: "
                                f"[{REVISION_POLICY_ALWAYS}, {REVISION_POLICY_PARTIAL}]"))
    return errs


def _spec_errors(ss: SidecarSet, lookup: RevisionLookup, whitelist: str | None,
                 gates: FeatureGates) -> list[FieldError]:
    spec = ss.spec
    errs: list[FieldError] = []
    for c in spec.init_containers:
        if sidecar_fields(c).restart_policy == "Always" and spec.update_strategy.type == SIDECARSET_ROLLING_UPDATE:
            errs.append(field_error("spec.updateStrategy", "Required", no_value=True,
                                    detail="The initContainer in-place upgrade is not currently supported."))
    if spec.selector is None:
        errs.append(field_error("spec.selector", "Required", no_value=True, detail="no selector defined for SidecarSet"))
    else:
        errs.extend(_selector_errors(spec.selector, "spec.selector"))
    if spec.namespace_selector is not None:
        errs.extend(_selector_errors(spec.namespace_selector, "spec.namespaceSelector"))
    errs.extend(_injection_errors(ss, lookup))
    errs.extend(_update_strategy_errors(spec.update_strategy))
    errs.extend(_volume_errors(ss))
    if not spec.init_containers and not spec.containers:
        errs.append(field_error("spec", "Required", no_value=True, detail="no initContainer or container defined for SidecarSet"))
    else:
        errs.extend(_container_errors(ss))
    errs.extend(_patch_errors(ss, whitelist, gates))
    return errs


def _update_errors(ss: SidecarSet, old: SidecarSet) -> list[FieldError]:
    old_types = {str(c.get("name")): sidecar_fields(c).upgrade_strategy.upgrade_type for c in old.spec.containers}
    errs: list[FieldError] = []
    for c in ss.spec.containers:
        f = sidecar_fields(c)
        if f.name not in old_types:
            errs.append(field_error("spec.containers.name", "Invalid", f.name, f"container {f.name} is not found"))
        elif old_types[f.name] and f.upgrade_strategy.upgrade_type != old_types[f.name]:
            errs.append(field_error("spec.containers.upgradeStrategy.upgradeType", "Invalid", f.name,
                                    f"container {f.name} upgradeType is immutable"))
    return errs


def conflict_errors(ss: SidecarSet, others: Sequence[SidecarSet]) -> list[FieldError]:
    """`validateSidecarConflict`: names, volumes and non-Retain patch keys shared with overlapping SidecarSets."""
    canary, base = is_canary(ss)
    init_in: dict[str, str] = {}
    containers_in: dict[str, str] = {}
    volumes_in: dict[str, tuple[str, object]] = {}
    annotations_in: dict[str, tuple[str, str]] = {}
    for other in others:
        name = other.metadata.name
        if name == ss.metadata.name or (canary and base == name):
            continue
        if not (namespace_overlapping(ss, other) and selector_overlapping(ss.spec.selector, other.spec.selector)):
            continue
        for c in other.spec.init_containers:
            init_in[str(c.get("name"))] = name
        for c in other.spec.containers:
            containers_in[str(c.get("name"))] = name
        for v in other.spec.volumes:
            volumes_in[str(v.get("name"))] = (name, v)
        for patch in other.spec.patch_pod_metadata:
            if patch.patch_policy == PATCH_POLICY_RETAIN:
                continue
            for key in patch.annotations:
                annotations_in[key] = (name, patch.patch_policy)
    errs: list[FieldError] = []
    for c in ss.spec.init_containers:
        cname = str(c.get("name"))
        if cname in init_in:
            errs.append(field_error("spec.containers", "Invalid", cname,
                                    f"container {cname} already exist in {init_in[cname]}"))
    for c in ss.spec.containers:
        cname = str(c.get("name"))
        if cname in containers_in:
            errs.append(field_error("spec.containers", "Invalid", cname,
                                    f"container {cname} already exist in {containers_in[cname]}"))
    for v in ss.spec.volumes:
        vname = str(v.get("name"))
        if vname in volumes_in and volumes_in[vname][1] != v:
            errs.append(field_error("spec.volumes", "Invalid", vname,
                                    f"volume {vname} is in conflict with sidecarset {volumes_in[vname][0]}"))
    for patch in ss.spec.patch_pod_metadata:
        if patch.patch_policy == PATCH_POLICY_RETAIN:
            continue
        for key in patch.annotations:
            if key not in annotations_in:
                continue
            other_name, other_policy = annotations_in[key]
            if PATCH_POLICY_OVERWRITE in (patch.patch_policy, other_policy):
                errs.append(field_error("spec.patchPodMetadata", "Invalid", key,
                                        f"annotation {key} is in conflict with sidecarset {other_name}"))
    return errs


def validate_sidecarset(ss: SidecarSet, old: SidecarSet | None = None, *, others: Sequence[SidecarSet] = (),
                        lookup: RevisionLookup = lambda _: None, whitelist: str | None = None,
                        gates: FeatureGates = DEFAULT_GATES) -> list[FieldError]:
    """Every rule, in Kruise's order. `others`: the cluster's SidecarSets (this one may be among them)."""
    meta = ss.metadata
    errs: list[FieldError] = []
    if not meta.name:
        errs.append(field_error("metadata.name", "Required", no_value=True, detail="name or generateName is required"))
    elif not NAME_RE.match(meta.name):
        errs.append(field_error("metadata.name", "Invalid", meta.name,
                                "sidecarset name must consist of alphanumeric characters or '-'"))
    elif len(meta.name) > NAME_MAX:
        errs.append(field_error("metadata.name", "Invalid", meta.name,
                                f"must be no more than {NAME_MAX} characters"))
    if meta.namespace:
        errs.append(field_error("metadata.namespace", "Forbidden", no_value=True, detail="not allowed on this type"))
    errs.extend(_canary_errors(ss, old, others))
    errs.extend(_spec_errors(ss, lookup, whitelist, gates))
    if old is not None:
        errs.extend(_update_errors(ss, old))
    if errs:
        return errs
    return conflict_errors(ss, others)


__all__ = ["NAME_MAX", "RevisionLookup", "conflict_errors", "validate_sidecarset"]
