"""SidecarSet between ``apps.kruise.io/v1alpha1`` (what kruisebus stores and plans on) and ``v1beta1``
(what OpenKruise stores, and what users may apply).

Two differences, everything else is copied as it is:

* v1alpha1 ``spec.namespace: X`` has no v1beta1 field: it becomes
  ``namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: X}}`` (every Namespace carries its
  own name as that label), and a v1alpha1 ``namespaceSelector`` written next to it is dropped, as
  OpenKruise drops it. Coming back, the selector stays a selector: a v1alpha1 SidecarSet with
  ``namespace`` reads back, through v1beta1, with ``namespaceSelector`` instead (the same pods match).
* v1alpha1 label ``apps.kruise.io/sidecarset-custom-version`` is v1beta1 ``spec.customVersion``: the
  label is taken off going to v1beta1 and put back (when the field is not empty) coming back.

So every v1beta1 object survives v1beta1 -> v1alpha1 -> v1beta1 unchanged (an empty ``customVersion``
reads back as absent, which means the same), and a v1alpha1 object survives the other round trip unless
it uses ``namespace`` or an empty custom-version label.

Pure functions over JSON objects (dicts): no I/O, the input is never modified.
"""

from __future__ import annotations

from typing import Any

from schemas.constants import LABEL_NAMESPACE_NAME, LABEL_SIDECARSET_CUSTOM_VERSION
from services.planner.kit.versions import V1ALPHA1, V1BETA1, converted, put_meta, take_meta


def to_v1beta1(obj: dict[str, Any]) -> dict[str, Any]:
    """A v1alpha1 SidecarSet as v1beta1."""
    out = converted(obj, V1BETA1)
    spec = out.get("spec")
    if isinstance(spec, dict) and "namespace" in spec:
        namespace = spec.pop("namespace")
        if namespace:
            spec["namespaceSelector"] = {"matchLabels": {LABEL_NAMESPACE_NAME: namespace}}
    version = take_meta(out, "labels", LABEL_SIDECARSET_CUSTOM_VERSION)
    if version:
        out.setdefault("spec", {})["customVersion"] = version
    return out


def to_v1alpha1(obj: dict[str, Any]) -> dict[str, Any]:
    """A v1beta1 SidecarSet as v1alpha1."""
    out = converted(obj, V1ALPHA1)
    spec = out.get("spec")
    if isinstance(spec, dict) and "customVersion" in spec:
        version = spec.pop("customVersion")
        if version:
            put_meta(out, "labels", LABEL_SIDECARSET_CUSTOM_VERSION, str(version))
    return out


__all__ = ["V1ALPHA1", "V1BETA1", "to_v1alpha1", "to_v1beta1"]
