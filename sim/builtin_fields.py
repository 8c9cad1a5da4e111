"""Which fields the built-in kinds have, for `fieldValidation` on pods, nodes, events, leases, ...

kube-apiserver decodes a built-in object into its Go struct, so a field it does not know (a typo such
as `imagee`) is dropped and reported as a warning (`Warn`) or rejects the request (`Strict`, what
kubectl sends by default). The sim stores JSON as it comes, so it needs the field tree to do the same.
kubernetes-asyncio's generated models carry it (`openapi_types` and `attribute_map` of every type), so
it stays in step with the pinned client without a copy of the OpenAPI document. The models are imported
on first use (~1 s), and the walk runs only when a request sets `fieldValidation`: the services and
the benchmarks never do, so their hot paths do not pay for it.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

# (group, kind) -> generated model name
MODELS = {
    ("", "Pod"): "V1Pod",
    ("", "Node"): "V1Node",
    ("", "Namespace"): "V1Namespace",
    ("", "Event"): "CoreV1Event",
    ("", "ConfigMap"): "V1ConfigMap",
    ("", "PersistentVolumeClaim"): "V1PersistentVolumeClaim",
    ("apps", "ControllerRevision"): "V1ControllerRevision",
    ("coordination.k8s.io", "Lease"): "V1Lease",
    ("batch", "Job"): "V1Job",
    ("apiextensions.k8s.io", "CustomResourceDefinition"): "V1CustomResourceDefinition",
}

_LIST = re.compile(r"^list\[(.+)\]$")
_DICT = re.compile(r"^dict\(([^,]+), (.+)\)$")


@cache
def _fields(model: str) -> dict[str, str] | None:
    """JSON field name -> type string of a generated model; None for a leaf type (str, object, ...)."""
    from kubernetes_asyncio.client import models

    cls = getattr(models, model, None)
    if cls is None or not hasattr(cls, "openapi_types"):
        return None
    return {cls.attribute_map[attr]: typ for attr, typ in cls.openapi_types.items()}


def unknown_fields(group: str, kind: str, obj: dict[str, Any], *, drop: bool) -> list[str]:
    """Paths of the fields of `obj` its kind does not have (`spec.containers[0].imagee`); removed from
    `obj` when `drop` (what decoding into the Go struct does). Kinds without a model are not checked."""
    model = MODELS.get((group, kind))
    out: list[str] = []
    if model is not None:
        _walk(obj, model, "", out, drop)
    return out


def _walk(value: Any, typ: str, path: str, out: list[str], drop: bool) -> None:
    if m := _LIST.match(typ):
        if isinstance(value, list):
            for i, item in enumerate(value):
                _walk(item, m.group(1), f"{path}[{i}]", out, drop)
        return
    if m := _DICT.match(typ):
        if isinstance(value, dict):
            for k, item in value.items():
                _walk(item, m.group(2), f"{path}.{k}" if path else k, out, drop)
        return
    fields = _fields(typ)
    if fields is None or not isinstance(value, dict):
        return  # a leaf, or a wrong type: the type checks are not this module's
    for key in list(value):
        sub = f"{path}.{key}" if path else key
        field_type = fields.get(key)
        if field_type is None:
            out.append(sub)
            if drop:
                del value[key]
        else:
            _walk(value[key], field_type, sub, out, drop)
