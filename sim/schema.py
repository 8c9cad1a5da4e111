"""Structural openAPIV3Schema handling for custom resources, as kube-apiserver's apiextensions does it.

Order (like the apiextensions request path): drop nulls of non-nullable fields (a `default` then applies),
prune fields the schema does not declare (unless `x-kubernetes-preserve-unknown-fields`), apply `default`s,
validate. Validation covers `type` (incl. `x-kubernetes-int-or-string`), `nullable`, `required`, `enum`,
`minimum`/`maximum` (+ exclusive), `multipleOf`, `pattern`, `minLength`/`maxLength`, `minItems`/`maxItems`,
`uniqueItems`, `minProperties`/`maxProperties`, `additionalProperties`, `allOf`/`anyOf`/`oneOf`/`not`
(for their value constraints), and `x-kubernetes-list-type: set|map` uniqueness. Not covered: CEL
(`x-kubernetes-validations`) and string `format`s.

Errors are `field.Error`-style causes: `{"reason", "field", "message"}` with Kubernetes' wording, e.g.
`Invalid value: "string": spec.replicas in body must be of type integer: "string"`.
"""

from __future__ import annotations

import copy
import re
from functools import lru_cache
from typing import Any

Cause = dict[str, str]

PRESERVE = "x-kubernetes-preserve-unknown-fields"
INT_OR_STRING = "x-kubernetes-int-or-string"
EMBEDDED = "x-kubernetes-embedded-resource"


def json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def fmt_value(v: Any) -> str:
    """How Go's field.Error prints a value: strings quoted, numbers and booleans bare."""
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, (int, float)):
        return str(v)
    return '"' + json_type(v) + '"'


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


# ------------------------------------------------------------------------------------------ prune/default


def _nullable(s: dict[str, Any]) -> bool:
    return bool(s.get("nullable"))


def prune(obj: Any, schema: dict[str, Any] | None, path: str = "", root: bool = True) -> list[str]:
    """Remove (in place) fields the schema does not declare; returns the pruned paths."""
    pruned: list[str] = []
    if schema is None:
        return pruned
    _prune(obj, schema, path, root, pruned)
    return pruned


def _prune(obj: Any, s: dict[str, Any], path: str, root: bool, out: list[str]) -> None:
    if isinstance(obj, dict):
        props = s.get("properties")
        addl = s.get("additionalProperties")
        preserve = bool(s.get(PRESERVE))
        embedded = bool(s.get(EMBEDDED))
        for k in list(obj):
            sub = props.get(k) if props else None
            if sub is None and isinstance(addl, dict):
                sub = addl
            if (root or embedded) and k in ("apiVersion", "kind", "metadata"):
                if k == "metadata" and (root or embedded):
                    continue  # ObjectMeta has its own rules; never pruned by the schema
                if sub is None:
                    continue
            if sub is None:
                if preserve or addl is True:
                    continue
                del obj[k]
                out.append(_join(path, k))
                continue
            v = obj[k]
            if v is None and not _nullable(sub):
                del obj[k]  # a non-nullable null is dropped (and defaulted if the schema has a default)
                continue
            _prune(v, sub, _join(path, k), False, out)
    elif isinstance(obj, list):
        items = s.get("items")
        if isinstance(items, dict):
            for i, v in enumerate(obj):
                _prune(v, items, f"{path}[{i}]", False, out)


def apply_defaults(obj: Any, s: dict[str, Any] | None) -> None:
    """Set `default`s (in place) for missing fields of objects that exist; recurses into defaulted values."""
    if s is None:
        return
    if isinstance(obj, dict):
        props = s.get("properties") or {}
        for k, sub in props.items():
            if k not in obj and "default" in sub:
                obj[k] = copy.deepcopy(sub["default"])
            if k in obj:
                apply_defaults(obj[k], sub)
        addl = s.get("additionalProperties")
        if isinstance(addl, dict):
            for k, v in obj.items():
                if k not in props:
                    apply_defaults(v, addl)
    elif isinstance(obj, list):
        items = s.get("items")
        if isinstance(items, dict):
            for v in obj:
                apply_defaults(v, items)


# ------------------------------------------------------------------------------------------ validate


def validate(obj: Any, schema: dict[str, Any] | None, path: str = "") -> list[Cause]:
    causes: list[Cause] = []
    if schema is not None:
        _validate(obj, schema, path, causes, root=True)
    return causes


def _invalid(path: str, value: Any, detail: str) -> Cause:
    return {
        "reason": "FieldValueInvalid",
        "field": path,
        "message": f"Invalid value: {fmt_value(value)}: {detail}",
    }


def _type_ok(v: Any, t: str) -> bool:
    if t == "integer":
        return (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer())
    if t == "number":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if t == "string":
        return isinstance(v, str)
    if t == "boolean":
        return isinstance(v, bool)
    if t == "array":
        return isinstance(v, list)
    if t == "object":
        return isinstance(v, dict)
    return True


def _validate(v: Any, s: dict[str, Any], path: str, out: list[Cause], root: bool = False) -> None:
    where = path or "<root>"
    if v is None:
        if not _nullable(s) and (s.get("type") or s.get(INT_OR_STRING)):
            t = "integer,string" if s.get(INT_OR_STRING) else s.get("type")
            out.append(
                {
                    "reason": "FieldValueTypeInvalid",
                    "field": path,
                    "message": f'Invalid value: "null": {where} in body must be of type {t}: "null"',
                }
            )
        return
    t = s.get("type")
    if s.get(INT_OR_STRING):
        if not (_type_ok(v, "integer") or isinstance(v, str)):
            jt = json_type(v)
            out.append(
                {
                    "reason": "FieldValueTypeInvalid",
                    "field": path,
                    "message": f'Invalid value: "{jt}": {where} in body must be of type integer,string: "{jt}"',
                }
            )
            return
    elif t and not _type_ok(v, t):
        jt = json_type(v)
        out.append(
            {
                "reason": "FieldValueTypeInvalid",
                "field": path,
                "message": f'Invalid value: "{jt}": {where} in body must be of type {t}: "{jt}"',
            }
        )
        return
    _value_constraints(v, s, path, where, out)
    for sub in s.get("allOf") or []:
        _validate(v, sub, path, out)
    if s.get("anyOf") and not s.get(INT_OR_STRING):
        if all(_check(v, sub, path) for sub in s["anyOf"]):
            out.append(_invalid(path, v, f"{where} in body must validate at least one schema (anyOf)"))
    if s.get("oneOf"):
        n = sum(1 for sub in s["oneOf"] if not _check(v, sub, path))
        if n != 1:
            out.append(_invalid(path, v, f"{where} in body must validate one and only one schema (oneOf)"))
    if isinstance(s.get("not"), dict) and not _check(v, s["not"], path):
        out.append(_invalid(path, v, f"{where} in body should not validate the schema (not)"))
    if isinstance(v, dict):
        props = s.get("properties") or {}
        for req in s.get("required") or []:
            if req not in v:
                out.append(
                    {"reason": "FieldValueRequired", "field": _join(path, req), "message": "Required value"}
                )
        addl = s.get("additionalProperties")
        for k, child in v.items():
            if root and k == "metadata":
                continue
            sub = props.get(k)
            if sub is None and isinstance(addl, dict):
                sub = addl
            if sub is not None:
                _validate(child, sub, _join(path, k), out)
        if "minProperties" in s and len(v) < s["minProperties"]:
            out.append(
                _invalid(
                    path, len(v), f"{where} in body should have at least {s['minProperties']} properties"
                )
            )
        if "maxProperties" in s and len(v) > s["maxProperties"]:
            out.append(
                {
                    "reason": "FieldValueTooMany",
                    "field": path,
                    "message": f"Too many: {len(v)}: must have at most {s['maxProperties']} items",
                }
            )
    elif isinstance(v, list):
        items = s.get("items")
        if isinstance(items, dict):
            for i, child in enumerate(v):
                _validate(child, items, f"{path}[{i}]", out)
        if "minItems" in s and len(v) < s["minItems"]:
            out.append(_invalid(path, len(v), f"{where} in body should have at least {s['minItems']} items"))
        if "maxItems" in s and len(v) > s["maxItems"]:
            out.append(
                {
                    "reason": "FieldValueTooMany",
                    "field": path,
                    "message": f"Too many: {len(v)}: must have at most {s['maxItems']} items",
                }
            )
        list_type = s.get("x-kubernetes-list-type")
        if s.get("uniqueItems") or list_type == "set":
            seen: list[Any] = []
            for i, child in enumerate(v):
                if child in seen:
                    out.append(
                        {
                            "reason": "FieldValueDuplicate",
                            "field": f"{path}[{i}]",
                            "message": f"Duplicate value: {fmt_value(child)}",
                        }
                    )
                else:
                    seen.append(child)
        elif list_type == "map":
            keys = s.get("x-kubernetes-list-map-keys") or []
            seen_keys: list[Any] = []
            for i, child in enumerate(v):
                if not isinstance(child, dict):
                    continue
                key = {k: child.get(k) for k in keys}
                if key in seen_keys:
                    out.append(
                        {
                            "reason": "FieldValueDuplicate",
                            "field": f"{path}[{i}]",
                            "message": "Duplicate value: map["
                            + " ".join(f"{k}:{child.get(k)}" for k in keys)
                            + "]",
                        }
                    )
                else:
                    seen_keys.append(key)


def _check(v: Any, s: dict[str, Any], path: str) -> list[Cause]:
    out: list[Cause] = []
    _validate(v, s, path, out)
    return out


def _value_constraints(v: Any, s: dict[str, Any], path: str, where: str, out: list[Cause]) -> None:
    if "enum" in s and v not in s["enum"]:
        supported = ", ".join(fmt_value(e) for e in s["enum"])
        out.append(
            {
                "reason": "FieldValueNotSupported",
                "field": path,
                "message": f"Unsupported value: {fmt_value(v)}: supported values: {supported}",
            }
        )
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if "minimum" in s:
            m = s["minimum"]
            if s.get("exclusiveMinimum") and v <= m:
                out.append(_invalid(path, v, f"{where} in body should be greater than {fmt_value(m)}"))
            elif v < m:
                out.append(
                    _invalid(path, v, f"{where} in body should be greater than or equal to {fmt_value(m)}")
                )
        if "maximum" in s:
            m = s["maximum"]
            if s.get("exclusiveMaximum") and v >= m:
                out.append(_invalid(path, v, f"{where} in body should be less than {fmt_value(m)}"))
            elif v > m:
                out.append(
                    _invalid(path, v, f"{where} in body should be less than or equal to {fmt_value(m)}")
                )
        if s.get("multipleOf"):
            q = v / s["multipleOf"]
            if q != int(q):
                out.append(
                    _invalid(path, v, f"{where} in body should be a multiple of {fmt_value(s['multipleOf'])}")
                )
    if isinstance(v, str):
        if "minLength" in s and len(v) < s["minLength"]:
            out.append(_invalid(path, v, f"{where} in body should be at least {s['minLength']} chars long"))
        if "maxLength" in s and len(v) > s["maxLength"]:
            out.append(
                {
                    "reason": "FieldValueTooLong",
                    "field": path,
                    "message": f"Too long: may not be more than {s['maxLength']} bytes",
                }
            )
        if "pattern" in s and not _regex(s["pattern"]).search(v):
            out.append(_invalid(path, v, f"{where} in body should match '{s['pattern']}'"))


# ------------------------------------------------------------------------------------------ entry point


def admit(obj: dict[str, Any], schema: dict[str, Any] | None) -> tuple[list[str], list[Cause]]:
    """Prune, default and validate `obj` in place: (pruned field paths, validation causes)."""
    if not schema:
        return [], []
    pruned = prune(obj, schema)
    apply_defaults(obj, schema)
    return pruned, validate(obj, schema)


_GO_TYPES = {str: "string", bool: "bool", float: "float64", dict: "map[string]interface {}", list: "[]interface {}"}


def scale_replicas_causes(obj: Any, path: str) -> list[Cause]:
    """The scale subresource's check of `specReplicasPath` on every write of a custom resource
    (apiextensions-apiserver customResourceValidator.ValidateScaleSpec): an int64, 0..MaxInt32."""
    fields = path.lstrip(".").split(".")
    cur: Any = obj
    for f in fields:
        if not isinstance(cur, dict) or f not in cur:
            return []  # absent: nothing to check
        cur = cur[f]
    if cur is None:
        return []
    if isinstance(cur, bool) or not isinstance(cur, int):
        detail = f"{path} accessor error: {cur} is of the type {_GO_TYPES.get(type(cur), type(cur).__name__)}, expected int64"
        return [{"reason": "FieldValueInvalid", "message": f"Invalid value: 0: {detail}", "field": path}]
    if cur < 0:
        return [{"reason": "FieldValueInvalid", "message": f"Invalid value: {cur}: should be a non-negative integer",
                 "field": path}]
    if cur > 2**31 - 1:
        return [{"reason": "FieldValueInvalid",
                 "message": f"Invalid value: {cur}: should be less than or equal to 2147483647", "field": path}]
    return []
