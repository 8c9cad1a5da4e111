"""Advanced DaemonSet between ``apps.kruise.io/v1alpha1`` (what kruisebus stores and plans on) and
``v1beta1`` (what OpenKruise stores, and what users may apply).

The two versions differ in three places only; everything else is copied as it is:

* ``spec.updateStrategy.rollingUpdate.rollingUpdateType: Surging`` exists in v1alpha1 only (deprecated);
  it becomes ``Standard`` in v1beta1, so it does not come back (surge is chosen by maxSurge alone).
* v1beta1 ``spec.scaleStrategy.partitionedScaling: true`` is the v1alpha1 annotation
  ``daemonset.kruise.io/progressive-create-pod: "true"``. Going to v1beta1 the annotation is taken off
  the object (the field says it), going back it is put on again, so both round trips are exact. A
  ``scaleStrategy`` without ``partitionedScaling: true`` has nothing v1alpha1 can hold and is dropped,
  and a v1beta1 object carrying the annotation itself reads back with ``partitionedScaling: true``.
* status ``daemonSetHash`` (v1alpha1) is ``updateRevision`` (v1beta1): the same template hash.

Pure functions over JSON objects (dicts): no I/O, the input is never modified.
"""

from __future__ import annotations

from typing import Any

from schemas.constants import ANNOTATION_DS_PROGRESSIVE_CREATE, DS_STANDARD, DS_SURGING
from services.planner.kit.versions import V1ALPHA1, V1BETA1, converted, put_meta, take_meta


def to_v1beta1(obj: dict[str, Any]) -> dict[str, Any]:
    """A v1alpha1 DaemonSet as v1beta1."""
    out = converted(obj, V1BETA1)
    spec = out.get("spec")
    if isinstance(spec, dict):
        rolling = (spec.get("updateStrategy") or {}).get("rollingUpdate")
        if isinstance(rolling, dict) and rolling.get("rollingUpdateType") == DS_SURGING:
            rolling["rollingUpdateType"] = DS_STANDARD
    annotations = (out.get("metadata") or {}).get("annotations")
    if isinstance(annotations, dict) and annotations.get(ANNOTATION_DS_PROGRESSIVE_CREATE) == "true":
        take_meta(out, "annotations", ANNOTATION_DS_PROGRESSIVE_CREATE)
        out.setdefault("spec", {})["scaleStrategy"] = {"partitionedScaling": True}
    status = out.get("status")
    if isinstance(status, dict) and "daemonSetHash" in status:
        status["updateRevision"] = status.pop("daemonSetHash")
    return out


def to_v1alpha1(obj: dict[str, Any]) -> dict[str, Any]:
    """A v1beta1 DaemonSet as v1alpha1."""
    out = converted(obj, V1ALPHA1)
    spec = out.get("spec")
    if isinstance(spec, dict) and "scaleStrategy" in spec:
        scale = spec.pop("scaleStrategy")
        if isinstance(scale, dict) and scale.get("partitionedScaling") is True:
            put_meta(out, "annotations", ANNOTATION_DS_PROGRESSIVE_CREATE, "true")
    status = out.get("status")
    if isinstance(status, dict) and "updateRevision" in status:
        status["daemonSetHash"] = status.pop("updateRevision")
    return out


__all__ = ["V1ALPHA1", "V1BETA1", "to_v1alpha1", "to_v1beta1"]
