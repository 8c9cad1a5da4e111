"""`patchPodMetadata`: the annotations a SidecarSet writes on its pods, and the whitelist that allows them.

Kruise's `pkg/control/sidecarcontrol/util.go` (PatchPodMetadata, ValidateSidecarSetPatchMetadataWhitelist)
and `pkg/util/configuration` (the `SidecarSet_PatchPodMetadata_WhiteList` key of ConfigMap
`kruise-configuration`). Applied at injection and on each in-place sidecar upgrade; the whitelist is
checked only when a SidecarSet is written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import msgspec

from schemas.constants import PATCH_POLICY_MERGE_JSON, PATCH_POLICY_OVERWRITE, PATCH_POLICY_RETAIN
from schemas.jsonmerge import merge_patch
from schemas.kube import LabelSelector
from schemas.sidecarset import SidecarSet, SidecarSetPatchPodMetadata
from services.planner.kit.gojson import go_json_bytes
from services.planner.kit.selectors import SelectorError, conversion_error, matches


class WhitelistError(ValueError):
    """The SidecarSet's patchPodMetadata is not allowed (Kruise's error text)."""


class PatchError(ValueError):
    """A MergePatchJson patch could not be applied (the existing value is not JSON)."""


class WhitelistRule(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    selector: LabelSelector | None = None
    allowed_annotation_key_exprs: list[str] = []


class Whitelist(msgspec.Struct, omit_defaults=True, kw_only=True):
    rules: list[WhitelistRule] = []


def check_whitelist(ss: SidecarSet, value: str | None, *, defaults_allowed: bool) -> None:
    """Raise WhitelistError unless every patch key is allowed. `value`: the ConfigMap key's value (None or
    "": the ConfigMap, its data or the key is missing); `defaults_allowed`: the gate
    SidecarSetPatchPodMetadataDefaultsAllowed, which only helps when no rule applies."""
    if not ss.spec.patch_pod_metadata:
        return
    if not value:
        if defaults_allowed:
            return
        raise WhitelistError("SidecarSet patch metadata whitelist not found")
    try:
        whitelist = msgspec.json.decode(value, type=Whitelist)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise WhitelistError(str(e)) from None
    regexes: list[re.Pattern[str]] = []
    for rule in whitelist.rules:
        if rule.selector is not None:
            problem = conversion_error(rule.selector)
            if problem is not None:
                raise WhitelistError(problem)
            if not matches(rule.selector, ss.metadata.labels):
                continue
        for expr in rule.allowed_annotation_key_exprs:
            try:
                regexes.append(re.compile(expr))
            except re.error as e:
                raise WhitelistError(f"error parsing regexp: {e}") from None
    if not regexes:
        if defaults_allowed:
            return
        raise WhitelistError("sidecarSet patch metadata annotation is not allowed")
    for patch in ss.spec.patch_pod_metadata:
        for key in patch.annotations:
            if not any(r.search(key) for r in regexes):  # unanchored, as Go's MatchString
                raise WhitelistError(f"sidecarSet patch metadata annotation({key}) is not allowed")


def patch_pod_metadata(annotations: dict[str, str], patches: Sequence[SidecarSetPatchPodMetadata]) -> bool:
    """Apply `patches` to `annotations` in place; True when something changed. Raises PatchError."""
    before = dict(annotations)
    for patch in patches:
        policy = patch.patch_policy or PATCH_POLICY_RETAIN
        for key, value in patch.annotations.items():
            if policy == PATCH_POLICY_RETAIN:
                annotations.setdefault(key, value)
            elif policy == PATCH_POLICY_OVERWRITE:
                annotations[key] = value
            elif policy == PATCH_POLICY_MERGE_JSON:
                old = annotations.get(key, "")
                if not old:
                    annotations[key] = value
                    continue
                try:
                    merged = merge_patch(json.loads(old), json.loads(value))
                except ValueError as e:
                    raise PatchError(f"invalid character in annotation {key}: {e}") from None
                annotations[key] = go_json_bytes(merged).decode()
    return annotations != before


__all__ = ["PatchError", "SelectorError", "Whitelist", "WhitelistError", "check_whitelist", "patch_pod_metadata"]
