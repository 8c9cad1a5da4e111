"""Advanced DaemonSet admission rules and defaults, one implementation for the webhook and the planner.

Defaults are Kruise's `SetDefaultsDaemonSet` (`apis/apps/defaults/v1alpha1.go`) on the JSON the API server
sends (`default_daemonset`); the planner reads every spec through `defaulted`, the same function, so a
DaemonSet written while no webhook ran behaves as one that went through it. The template itself is not
defaulted (stored as written). Validation is `pkg/webhook/daemonset/validating/daemonset_validation.go`:
field paths and messages as Kruise words them, including its doubled
`rollingUpdate.rollingUpdate.type` / `.partition` paths.
"""

from __future__ import annotations

import copy
import re
from typing import Any, Final

import msgspec

from schemas.constants import (
    DEFAULT_REVISION_HISTORY_LIMIT,
    DS_DEFAULT_BURST_REPLICAS,
    DS_ON_DELETE,
    DS_ROLLING_UPDATE,
    DS_STANDARD,
    DS_SURGING,
    STRATEGY_IN_PLACE_IF_POSSIBLE,
)
from schemas.daemonset import DaemonSet, DaemonSetSpec
from services.planner.kit.fielderrors import FieldError, from_issue, go_value, nonnegative
from services.planner.kit.podvalidation import pod_template_errors
from services.planner.kit.selectors import dns1123_subdomain_errors, is_empty, matches, selector_issues

__all__ = ["default_daemonset", "default_spec", "defaulted", "validate_daemonset", "validate_update"]

_PERCENT: Final = re.compile(r"[0-9]+%")
_ATOI: Final = re.compile(r"[+-]?[0-9]+")


def _err(field: str, type_: str, value: object = None, detail: str = "", *, no_value: bool = False) -> FieldError:
    return FieldError(field=field, type=type_, value="" if no_value else go_value(value), detail=detail)


# --- defaults --------------------------------------------------------------------------------------


def default_spec(spec: dict[str, Any]) -> None:
    """`SetDefaultsDaemonSet` in place on a spec's JSON: updateStrategy RollingUpdate with a
    `rollingUpdate` block (type Standard; `Surging` rewritten to Standard; maxUnavailable 1 / maxSurge 0
    only when both are unset, with Surging 0 / 1), burstReplicas 250, revisionHistoryLimit 10. The
    template is left as written."""
    strategy = spec.get("updateStrategy")
    if not isinstance(strategy, dict):
        strategy = spec["updateStrategy"] = {}
    if not strategy.get("type"):
        strategy["type"] = DS_ROLLING_UPDATE
    if strategy["type"] == DS_ROLLING_UPDATE:
        ru = strategy.get("rollingUpdate")
        if not isinstance(ru, dict):
            ru = strategy["rollingUpdate"] = {}
        surging = ru.get("rollingUpdateType") == DS_SURGING
        if not ru.get("rollingUpdateType") or surging:
            ru["rollingUpdateType"] = DS_STANDARD
        if ru.get("maxUnavailable") is None and ru.get("maxSurge") is None:
            ru["maxUnavailable"] = 0 if surging else 1
            ru["maxSurge"] = 1 if surging else 0
    if spec.get("burstReplicas") is None:
        spec["burstReplicas"] = DS_DEFAULT_BURST_REPLICAS
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = DEFAULT_REVISION_HISTORY_LIMIT


def default_daemonset(obj: dict[str, Any]) -> dict[str, Any]:
    """The mutating webhook's object: a copy with `default_spec` applied."""
    out = copy.deepcopy(obj)
    spec = out.get("spec")
    if not isinstance(spec, dict):
        spec = out["spec"] = {}
    default_spec(spec)
    return out


def defaulted(spec: DaemonSetSpec) -> DaemonSetSpec:
    """The spec as the webhook would have stored it (`default_spec` through the wire form)."""
    raw: dict[str, Any] = msgspec.to_builtins(spec)
    default_spec(raw)
    return msgspec.convert(raw, DaemonSetSpec)


# --- validation ------------------------------------------------------------------------------------


def int_or_percent_value(value: object) -> int:
    """Kruise's `getIntOrPercentValue`: an int as is, "N%" -> N, any other string -> its integer value,
    or 0 when it is not one (so "abc" counts as unset)."""
    if isinstance(value, bool) or value is None:
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        if _PERCENT.fullmatch(value):
            return int(value[:-1])
        return int(value) if _ATOI.fullmatch(value) else 0
    return 0


def _positive_int_or_percent(value: object, field: str) -> list[FieldError]:
    """apps `ValidatePositiveIntOrPercent` + `IsNotMoreThan100Percent`."""
    if isinstance(value, str):
        if not _PERCENT.fullmatch(value):
            return [_err(field, "Invalid", value, "must be an integer or percentage (e.g '5%')")]
        if int(value[:-1]) > 100:
            return [_err(field, "Invalid", value, "must not be greater than 100%")]
        return []
    if isinstance(value, int) and not isinstance(value, bool):
        return nonnegative(value, field)
    return [_err(field, "Invalid", value, "must be an integer or percentage (e.g '5%')")]


def _rolling_update(spec: DaemonSetSpec) -> list[FieldError]:
    ru = spec.update_strategy.rolling_update
    assert ru is not None
    base = "spec.updateStrategy.rollingUpdate"
    errs: list[FieldError] = []
    unavailable = ru.max_unavailable is not None and int_or_percent_value(ru.max_unavailable) != 0
    surge = ru.max_surge is not None and int_or_percent_value(ru.max_surge) != 0
    if unavailable:
        errs += _positive_int_or_percent(ru.max_unavailable, f"{base}.maxUnavailable")
    if surge:
        errs += _positive_int_or_percent(ru.max_surge, f"{base}.maxSurge")
    if unavailable and surge:
        errs.append(_err(f"{base}.maxSurge", "Invalid", ru.max_surge, "may not be set when maxUnavailable is non-zero"))
    elif not unavailable and not surge:
        errs.append(_err(f"{base}.maxUnavailable", "Required", detail="cannot be 0 when maxSurge is 0", no_value=True))
    kind = ru.rolling_update_type
    if kind in ("", DS_STANDARD):
        pass
    elif kind == STRATEGY_IN_PLACE_IF_POSSIBLE:
        if surge:
            errs.append(_err(f"{base}.maxSurge", "Required", detail="must be 0 for InPlaceIfPossible type",
                             no_value=True))
    elif kind == DS_SURGING:
        if unavailable:
            errs.append(_err(f"{base}.maxUnavailable", "Required", detail="must be 0 for Surging type", no_value=True))
    else:
        errs.append(_err(f"{base}.rollingUpdate.type", "NotSupported", kind,
                         f'supported values: "{DS_STANDARD}", "{DS_SURGING}", "{STRATEGY_IN_PLACE_IF_POSSIBLE}"'))
    if ru.partition is not None:
        errs += _positive_int_or_percent(ru.partition, f"{base}.rollingUpdate.partition")
    return errs


def validate_spec(spec: DaemonSetSpec) -> list[FieldError]:
    """`validateDaemonSetSpec` over an already-defaulted spec."""
    errs: list[FieldError] = []
    errs += [from_issue(i) for i in selector_issues(spec.selector, "spec.selector")]
    labels = spec.template.metadata.labels
    if spec.selector is not None and not errs and not matches(spec.selector, labels):
        errs.append(_err("spec.template.metadata.labels", "Invalid", labels,
                         "`selector` does not match template `labels`"))
    if spec.selector is not None and is_empty(spec.selector):
        errs.append(_err("spec.selector", "Invalid", spec.selector, "empty selector is invalid for daemonset"))
    if spec.selector is None:
        errs.append(_err("spec.selector", "Required", no_value=True))
    # the throw-away copy Kruise validates is defaulted, so an unset restartPolicy is Always
    errs += pod_template_errors(spec.template, "spec.template", restart_policies=("Always",))
    if spec.template.spec.get("activeDeadlineSeconds") is not None:
        errs.append(_err("spec.template.spec.activeDeadlineSeconds", "Forbidden",
                         detail="activeDeadlineSeconds in DaemonSet is not Supported", no_value=True))
    errs += nonnegative(spec.min_ready_seconds, "spec.minReadySeconds")
    strategy = spec.update_strategy
    if strategy.type == DS_ON_DELETE:
        pass
    elif strategy.type == DS_ROLLING_UPDATE:
        if strategy.rolling_update is None:
            errs.append(_err("spec.updateStrategy.rollingUpdate", "Required", no_value=True))
        else:
            errs += _rolling_update(spec)
    else:
        errs.append(_err("spec.updateStrategy", "NotSupported", strategy.type,
                         f'supported values: "{DS_ROLLING_UPDATE}", "{DS_ON_DELETE}"'))
    if spec.revision_history_limit is not None:
        errs += nonnegative(spec.revision_history_limit, "spec.revisionHistoryLimit")
    if spec.lifecycle is not None and spec.lifecycle.in_place_update is not None:
        errs.append(_err("spec.lifecycle.inPlaceUpdate", "Forbidden", detail="inPlaceUpdate hook has not supported yet",
                         no_value=True))
    return errs


def validate_daemonset(ds: DaemonSet) -> list[FieldError]:
    """Create: the name is a DNS subdomain, then the defaulted spec."""
    errs: list[FieldError] = []
    name = ds.metadata.name
    if not name and not ds.metadata.generate_name:
        errs.append(_err("metadata.name", "Required", detail="name or generateName is required", no_value=True))
    elif name:
        errs += [_err("metadata.name", "Invalid", name, m) for m in dns1123_subdomain_errors(name)]
    return errs + validate_spec(defaulted(ds.spec))


def validate_update(ds: DaemonSet, old: DaemonSet) -> list[FieldError]:
    """Update: every spec field but burstReplicas, template, lifecycle, updateStrategy, minReadySeconds and
    revisionHistoryLimit must be unchanged (in practice the selector), then the new object in full."""
    new_sel = msgspec.to_builtins(ds.spec.selector)
    old_sel = msgspec.to_builtins(old.spec.selector)
    errs: list[FieldError] = []
    if new_sel != old_sel:
        errs.append(_err("spec", "Forbidden", no_value=True,
                         detail="updates to daemonset spec for fields other than 'burstReplicas', 'template', "
                                "'lifecycle', 'updateStrategy', 'minReadySeconds', and 'revisionHistoryLimit' "
                                "are forbidden"))
    return errs + validate_daemonset(ds)
