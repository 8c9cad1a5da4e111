"""CloneSet v1alpha1 admission rules (Kruise's validating webhook, `pkg/webhook/cloneset/validating/validation.go`), applied by the planner.

kruisebus has no admission webhook, so a spec Kruise would have rejected can reach the planner. The
planner runs these rules first and reports violations (InvalidSpec condition/event) instead of acting on
them. Rules, field paths and messages follow ``pkg/webhook/cloneset/validating/validation.go`` so users
see what Kruise would have told them.

Because Kruise's *mutating* webhook runs before validation, the defaults it would have filled are
assumed here: replicas None -> 1, type None -> ReCreate, partition None -> 0, maxUnavailable None ->
"20%", maxSurge None -> 0, and pod-template defaults (restartPolicy, dnsPolicy, ...) are not required.
An explicit empty ``type: ""`` is defaulted too: in Go an empty string and a missing field are the
same value, so on a real cluster the mutating webhook turns it into ReCreate before Kruise's validator
(whose unit test "invalid-update-type" calls it directly and sees "") could reject it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

import msgspec

from schemas.cloneset import CloneSet, CloneSetScaleStrategy, CloneSetSpec, CloneSetUpdateStrategy
from schemas.constants import (
    DEFAULT_MAX_UNAVAILABLE,
    MAX_INT32,
    STRATEGY_IN_PLACE_IF_POSSIBLE,
    STRATEGY_IN_PLACE_ONLY,
    STRATEGY_RECREATE,
    UPDATE_STRATEGY_TYPES,
)
from schemas.kube import Pod
from services.planner.kit.fielderrors import FieldError, field_error, from_issue, nonnegative
from services.planner.kit.gates import DEFAULT_GATES, FeatureGates
from services.planner.kit.intstr import IntOrPercentError, validate_int_or_percent
from services.planner.kit.podvalidation import pod_template_errors
from services.planner.kit.pubrules import priority_error, scatter_error
from services.planner.kit.selectors import (
    conversion_error,
    dns1123_label_errors,
    dns1123_subdomain_errors,
    is_empty,
    label_issues,
    matches,
    qualified_name_errors,
    selector_issues,
)

_INPLACE_ONLY_PATCH_PATH: Final = re.compile(r"^/containers/([0-9]+)/image$")
_UPDATABLE_SPEC_FIELDS: Final = (
    "replicas",
    "template",
    "scale_strategy",
    "update_strategy",
    "min_ready_seconds",
    "lifecycle",
    "revision_history_limit",
    "volume_claim_templates",
    "progress_deadline_seconds",
)
_FORBIDDEN_SPEC_UPDATE: Final = (
    "updates to cloneset spec for fields other than 'replicas', 'template', 'lifecycle', 'scaleStrategy', "
    "'updateStrategy', 'minReadySeconds', 'progressDeadlineSeconds', 'volumeClaimTemplates' and "
    "'revisionHistoryLimit' are forbidden"
)


def _intstr_text(value: object) -> str:
    """``IntOrString.String()``: the int in decimal or the string as is."""
    return str(value)


def _replicas(spec: CloneSetSpec) -> tuple[int, list[FieldError]]:
    """spec.replicas as an int32 (None -> default 1); anything else is reported, then 1 is assumed."""
    raw = spec.replicas
    if raw is None:
        return 1, []
    if isinstance(raw, bool) or not isinstance(raw, int):
        return 1, [
            field_error("spec.replicas", "Invalid", raw, f"must be an integer, got {type(raw).__name__}")
        ]
    if not -(2**31) <= raw <= MAX_INT32:
        return 1, [field_error("spec.replicas", "Invalid", raw, "must fit in a 32-bit integer")]
    return raw, nonnegative(raw, "spec.replicas")


def _metadata_errors(cs: CloneSet) -> list[FieldError]:
    """``ValidateObjectMeta(..., NameIsDNSSubdomain)``: name, namespace format, labels, annotation keys."""
    meta = cs.metadata
    errs: list[FieldError] = []
    if meta.generate_name:
        prefix = meta.generate_name[:-1] if meta.generate_name.endswith("-") else meta.generate_name
        errs.extend(
            field_error("metadata.generateName", "Invalid", meta.generate_name, m)
            for m in dns1123_subdomain_errors(prefix)
        )
    if not meta.name:
        errs.append(
            field_error("metadata.name", "Required", detail="name or generateName is required", no_value=True)
        )
    else:
        errs.extend(
            field_error("metadata.name", "Invalid", meta.name, m) for m in dns1123_subdomain_errors(meta.name)
        )
    if meta.namespace:
        errs.extend(
            field_error("metadata.namespace", "Invalid", meta.namespace, m)
            for m in dns1123_label_errors(meta.namespace)
        )
    errs.extend(from_issue(i) for i in label_issues(meta.labels, "metadata.labels"))
    for key in sorted(meta.annotations):
        errs.extend(
            field_error("metadata.annotations", "Invalid", key, m) for m in qualified_name_errors(key.lower())
        )
    return errs


def _selector_errors(spec: CloneSetSpec) -> list[FieldError]:
    """Selector required, syntactically valid, non-empty, and matching the template labels."""
    errs: list[FieldError] = []
    selector = spec.selector
    if selector is None:
        errs.append(field_error("spec.selector", "Required", no_value=True))
        return errs
    errs.extend(from_issue(i) for i in selector_issues(selector, "spec.selector"))
    if is_empty(selector):
        errs.append(field_error("spec.selector", "Invalid", {}, "empty selector is invalid for cloneset"))
        return errs
    if conversion_error(selector) is not None:
        errs.append(field_error("spec.selector", "Invalid", msgspec.to_builtins(selector)))
    elif not matches(selector, spec.template.metadata.labels):
        errs.append(
            field_error(
                "spec.template.metadata.labels",
                "Invalid",
                spec.template.metadata.labels,
                "`selector` does not match template `labels`",
            )
        )
    return errs


def _template_errors(spec: CloneSetSpec) -> list[FieldError]:
    """The kit's ``ValidatePodTemplateSpec`` (restartPolicy Always only) plus Kruise's activeDeadline rule.

    PVC templates are mocked in as volumes after the template's own (as Kruise does), so a template
    volume named like a claim template is a duplicate and a mount may name a claim template.
    """
    base = "spec.template"
    claims = [str((t.get("metadata") or {}).get("name", "")) for t in spec.volume_claim_templates]
    mocked = [{"name": n, "persistentVolumeClaim": {"claimName": n}} for n in claims]
    errs = pod_template_errors(spec.template, base, restart_policies=("Always",), extra_volumes=mocked)
    if spec.template.spec.get("activeDeadlineSeconds") is not None:
        errs.append(
            field_error(
                f"{base}.spec.activeDeadlineSeconds",
                "Forbidden",
                detail="activeDeadlineSeconds in cloneset is not Supported",
                no_value=True,
            )
        )
    return errs


def _scale_strategy_errors(
    cs: CloneSet, old: CloneSetScaleStrategy | None, pods: Sequence[Pod]
) -> list[FieldError]:
    """podsToDelete: no duplicates; every *newly added* name an existing, live pod controlled by this CloneSet."""
    path = "spec.scaleStrategy.podsToDelete"
    names = cs.spec.scale_strategy.pods_to_delete
    seen: set[str] = set()
    dups: list[str] = []
    for name in names:
        if name in seen:
            dups.append(name)
        seen.add(name)
    if dups:
        return [field_error(path, "Invalid", list(names), f"duplicated items [{' '.join(dups)}]")]
    added = set(names) - set(old.pods_to_delete if old is not None else ())
    ns = cs.metadata.namespace
    by_name = {
        p.metadata.name: p for p in pods if not ns or not p.metadata.namespace or p.metadata.namespace == ns
    }
    errs: list[FieldError] = []
    for name in sorted(added):
        pod = by_name.get(name)
        if pod is None:
            errs.append(
                field_error(path, "Invalid", name, f'find pod {name} failed: pods "{name}" not found')
            )
        elif pod.metadata.deletion_timestamp is not None:
            errs.append(field_error(path, "Invalid", name, f"find pod {name} already terminating"))
        else:
            ref = pod.metadata.controller_ref()
            if ref is None or ref.uid != cs.metadata.uid:
                errs.append(field_error(path, "Invalid", name, f"find pod {name} owner is not this CloneSet"))
    return errs


def _scaled(raw: object, replicas: int, base: str, name: str, errs: list[FieldError]) -> int:
    """Kruise's float-capable int-or-percent parse of one strategy field (0 and an error if invalid)."""
    try:
        return validate_int_or_percent(raw, replicas, True)
    except IntOrPercentError as exc:
        errs.append(
            field_error(
                f"{base}.{name}",
                "Invalid",
                _intstr_text(raw),
                f"failed GetScaledValueFromIntOrPercent for {name}: {exc.message}",
            )
        )
        return 0


def _update_strategy_errors(strategy: CloneSetUpdateStrategy, replicas: int) -> list[FieldError]:
    """Type enum, partition >= 0, percent syntax, InPlaceOnly without surge, not both budgets < 1."""
    base = "spec.updateStrategy"
    errs: list[FieldError] = []
    type_ = strategy.type or STRATEGY_RECREATE  # the mutating webhook's default, for None and ""
    if type_ not in UPDATE_STRATEGY_TYPES:
        errs.append(
            field_error(
                f"{base}.type",
                "Invalid",
                type_,
                f"must be '{STRATEGY_RECREATE}', {STRATEGY_IN_PLACE_IF_POSSIBLE} or '{STRATEGY_IN_PLACE_ONLY}'",
            )
        )

    raw_partition = 0 if strategy.partition is None else strategy.partition
    partition = _scaled(raw_partition, replicas, base, "partition", errs)
    errs.extend(nonnegative(partition, f"{base}.partition"))

    priority_problem = priority_error(strategy.priority_strategy)
    if priority_problem is not None:
        errs.append(
            field_error(f"{base}.priorityStrategy", "Required", detail=priority_problem, no_value=True)
        )
    scatter_problem = scatter_error(strategy.scatter_strategy)
    if scatter_problem is not None:
        errs.append(field_error(f"{base}.scatterStrategy", "Required", detail=scatter_problem, no_value=True))

    raw_mu = DEFAULT_MAX_UNAVAILABLE if strategy.max_unavailable is None else strategy.max_unavailable
    max_unavailable = _scaled(raw_mu, replicas, base, "maxUnavailable", errs)
    raw_ms = 0 if strategy.max_surge is None else strategy.max_surge
    max_surge = _scaled(raw_ms, replicas, base, "maxSurge", errs)
    if type_ == STRATEGY_IN_PLACE_ONLY and max_surge > 0:
        errs.append(
            field_error(
                f"{base}.maxSurge",
                "Invalid",
                _intstr_text(raw_ms),
                "can not use maxSurge with strategy type InPlaceOnly",
            )
        )
    if replicas > 0 and max_unavailable < 1 and max_surge < 1:
        errs.append(
            field_error(
                f"{base}.maxUnavailable",
                "Invalid",
                _intstr_text(raw_mu),
                "maxUnavailable and maxSurge should not both be less than 1",
            )
        )
    return errs


def _progress_deadline_errors(spec: CloneSetSpec) -> list[FieldError]:
    """progressDeadlineSeconds >= 0 and, unless MaxInt32 ("never"), strictly greater than minReadySeconds."""
    pds = spec.progress_deadline_seconds
    if pds is None:
        return []
    errs = nonnegative(pds, "spec.progressDeadlineSeconds")
    if pds != MAX_INT32 and pds <= spec.min_ready_seconds:
        errs.append(
            field_error(
                "spec.progressDeadlineSeconds", "Invalid", pds, "must be greater than minReadySeconds"
            )
        )
    return errs


def _json_pointer(parts: Sequence[str | int]) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def json_patch_ops(old: Any, new: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str, str]]:
    """(op, path) pairs of a JSON patch turning ``old`` into ``new``, shaped like gomodules jsonpatch.

    Objects recurse per key (add/remove/replace), equal-length arrays recurse per index, longer/shorter
    arrays add/remove trailing indexes, and any other difference (including a type change) replaces.
    Only the ops and paths matter to the InPlaceOnly rule, not the values.
    """
    if isinstance(old, dict) and isinstance(new, dict):
        ops: list[tuple[str, str]] = []
        for key in sorted(set(old) | set(new)):
            if key not in old:
                ops.append(("add", _json_pointer((*path, key))))
            elif key not in new:
                ops.append(("remove", _json_pointer((*path, key))))
            else:
                ops.extend(json_patch_ops(old[key], new[key], (*path, key)))
        return ops
    if isinstance(old, list) and isinstance(new, list):
        ops = []
        for i in range(min(len(old), len(new))):
            ops.extend(json_patch_ops(old[i], new[i], (*path, i)))
        ops.extend(("add", _json_pointer((*path, i))) for i in range(len(old), len(new)))
        ops.extend(("remove", _json_pointer((*path, i))) for i in range(len(new), len(old)))
        return ops
    if old == new and type(old) is type(new):
        return []
    return [("replace", _json_pointer(path))]


def _normalise(value: Any) -> Any:
    """Drop null/empty values the way Go's ``omitempty`` would before ``json.Marshal`` of a PodSpec."""
    if isinstance(value, dict):
        out = {k: _normalise(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, "", [], {})}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return value


def inplace_only_violation(old_spec: Mapping[str, Any], new_spec: Mapping[str, Any]) -> str | None:
    """The first template.spec change InPlaceOnly forbids (anything but ``replace /containers/<i>/image``)."""
    for op, path in json_patch_ops(_normalise(dict(old_spec)), _normalise(dict(new_spec))):
        if op != "replace" or not _INPLACE_ONLY_PATCH_PATH.match(path):
            return f"{op} {path}"
    return None


def _update_errors(cs: CloneSet, old: CloneSet) -> list[FieldError]:
    """Update-only rules: immutable metadata identity, frozen spec fields, InPlaceOnly image-only changes."""
    errs: list[FieldError] = []
    for field, new_value, old_value in (
        ("metadata.name", cs.metadata.name, old.metadata.name),
        ("metadata.namespace", cs.metadata.namespace, old.metadata.namespace),
        ("metadata.uid", cs.metadata.uid, old.metadata.uid),
    ):
        if new_value and old_value and new_value != old_value:
            errs.append(field_error(field, "Invalid", new_value, "field is immutable"))
    frozen_new = msgspec.structs.replace(
        cs.spec, **{name: getattr(old.spec, name) for name in _UPDATABLE_SPEC_FIELDS}
    )
    if msgspec.to_builtins(frozen_new) != msgspec.to_builtins(old.spec):
        errs.append(field_error("spec", "Forbidden", detail=_FORBIDDEN_SPEC_UPDATE, no_value=True))
    if cs.spec.update_strategy.type == STRATEGY_IN_PLACE_ONLY:
        violation = inplace_only_violation(old.spec.template.spec, cs.spec.template.spec)
        if violation is not None:
            errs.append(
                field_error(
                    "spec",
                    "Forbidden",
                    detail=f"only allowed to update images in spec for {STRATEGY_IN_PLACE_ONLY}, but found {violation}",
                    no_value=True,
                )
            )
    return errs


def validate_cloneset(
    cs: CloneSet,
    *,
    old: CloneSet | None = None,
    pods: Sequence[Pod] = (),
    gates: FeatureGates = DEFAULT_GATES,
) -> list[FieldError]:
    """Every v1alpha1 webhook rule for creating (``old`` None) or updating (``old`` given) a CloneSet.

    ``pods`` are the pods of the CloneSet's namespace the podsToDelete check looks names up in (only
    names not already in ``old``'s list are checked, as Kruise does). ``gates`` is accepted for parity
    with Kruise's process-wide gates; no v1alpha1 rule depends on one today. An empty list means valid.
    """
    del gates  # no v1alpha1 validation rule is gated
    errs: list[FieldError] = []
    if old is not None:
        errs.extend(_update_errors(cs, old))
    errs.extend(_metadata_errors(cs))
    replicas, replica_errs = _replicas(cs.spec)
    errs.extend(replica_errs)
    errs.extend(_selector_errors(cs.spec))
    errs.extend(_template_errors(cs.spec))
    errs.extend(_scale_strategy_errors(cs, old.spec.scale_strategy if old is not None else None, pods))
    errs.extend(_update_strategy_errors(cs.spec.update_strategy, replicas))
    errs.extend(_progress_deadline_errors(cs.spec))
    return errs


__all__ = [
    "FieldError",  # re-exported: the field errors live in the kit (services.planner.kit.fielderrors)
    "inplace_only_violation",
    "json_patch_ops",
    "validate_cloneset",
]
