"""RFC 6902 JSON patch and Kubernetes strategic merge patch (the common subset); the RFC 7386 merge patch
is `schemas.jsonmerge` (the planner applies it too)."""

from __future__ import annotations

import copy
from typing import Any

import msgspec


class PatchError(Exception):
    """The patch document does not apply (-> 422 like kube-apiserver)."""


class PatchDecodeError(Exception):
    """The patch document is malformed (-> 400)."""


# ---------------------------------------------------------------- RFC 6902


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _split(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchDecodeError(f"invalid JSON pointer: {path!r}")
    return [_unescape(t) for t in path[1:].split("/")]


def _parent(doc: Any, tokens: list[str], op: str, path: str) -> Any:
    cur = doc
    for t in tokens[:-1]:
        if isinstance(cur, dict):
            if t not in cur:
                raise PatchError(f"{op} operation does not apply: doc is missing path: {path}")
            cur = cur[t]
        elif isinstance(cur, list):
            try:
                cur = cur[int(t)]
            except (ValueError, IndexError):
                raise PatchError(f"{op} operation does not apply: doc is missing path: {path}") from None
        else:
            raise PatchError(f"{op} operation does not apply: doc is missing path: {path}")
    return cur


def _get(doc: Any, path: str, op: str) -> Any:
    cur = doc
    for t in _split(path):
        if isinstance(cur, dict) and t in cur:
            cur = cur[t]
        elif isinstance(cur, list) and t.isdigit() and int(t) < len(cur):
            cur = cur[int(t)]
        else:
            raise PatchError(f"{op} operation does not apply: doc is missing path: {path}")
    return cur


def _index(lst: list[Any], t: str, op: str, path: str, allow_end: bool) -> int:
    if t == "-" and allow_end:
        return len(lst)
    try:
        i = int(t)
    except ValueError:
        raise PatchError(f"{op} operation does not apply: invalid index {t!r} at {path}") from None
    limit = len(lst) if allow_end else len(lst) - 1
    if i < 0 or i > limit:
        raise PatchError(f"{op} operation does not apply: index out of bounds at {path}")
    return i


def _add(doc: Any, path: str, value: Any, op: str = "add") -> Any:
    tokens = _split(path)
    if not tokens:
        return value
    parent = _parent(doc, tokens, op, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, op, path, True), value)
    else:
        raise PatchError(f"{op} operation does not apply: doc is missing path: {path}")
    return doc


def _remove(doc: Any, path: str, op: str = "remove") -> tuple[Any, Any]:
    tokens = _split(path)
    if not tokens:
        raise PatchError(f"{op} operation does not apply: cannot remove the root")
    parent = _parent(doc, tokens, op, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"{op} operation does not apply: doc is missing key: {path}")
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_index(parent, last, op, path, False))
    raise PatchError(f"{op} operation does not apply: doc is missing path: {path}")


def json_patch(doc: Any, ops: Any) -> Any:
    """Apply an RFC 6902 patch to a copy of `doc`; raises PatchError / PatchDecodeError."""
    if not isinstance(ops, list):
        raise PatchDecodeError("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = msgspec.json.decode(msgspec.json.encode(doc))
    for op in ops:
        if not isinstance(op, dict) or "op" not in op:
            raise PatchDecodeError("invalid JSON patch operation")
        kind, path = op["op"], op.get("path")
        if not isinstance(path, str):
            raise PatchDecodeError(f"{kind} operation requires a path")
        if kind in ("add", "replace", "test") and "value" not in op:
            raise PatchDecodeError(f"{kind} operation requires a value")
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            doc, _ = _remove(doc, path)
        elif kind == "replace":
            tokens = _split(path)
            if not tokens:
                doc = copy.deepcopy(op["value"])
                continue
            parent = _parent(doc, tokens, "replace", path)
            last = tokens[-1]
            if isinstance(parent, dict):
                if last not in parent:
                    raise PatchError(f"replace operation does not apply: doc is missing key: {path}")
                parent[last] = copy.deepcopy(op["value"])
            elif isinstance(parent, list):
                parent[_index(parent, last, "replace", path, False)] = copy.deepcopy(op["value"])
            else:
                raise PatchError(f"replace operation does not apply: doc is missing path: {path}")
        elif kind == "move":
            src = op.get("from")
            if not isinstance(src, str):
                raise PatchDecodeError("move operation requires from")
            doc, value = _remove(doc, src, "move")
            doc = _add(doc, path, value, "move")
        elif kind == "copy":
            src = op.get("from")
            if not isinstance(src, str):
                raise PatchDecodeError("copy operation requires from")
            doc = _add(doc, path, copy.deepcopy(_get(doc, src, "copy")), "copy")
        elif kind == "test":
            try:
                actual = _get(doc, path, "test")
            except PatchError:
                # Like evanphx/json-patch (kube-apiserver): a missing member of an existing object
                # equals null, so `{"op":"test","value":null}` asserts absence; a missing parent fails.
                tokens = _split(path)
                try:
                    parent = _parent(doc, tokens, "test", path) if tokens else None
                except PatchError:
                    parent = None
                if op["value"] is None and isinstance(parent, dict) and tokens[-1] not in parent:
                    continue
                raise PatchError(f"test operation does not apply: is missing path: {path}") from None
            if not _json_equal(actual, op["value"]):
                raise PatchError(f"testing value {path} failed: test failed")
        else:
            raise PatchDecodeError(f"Unexpected kind: {kind}")
    return doc


def _json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(a == b)


# ---------------------------------------------------------------- strategic merge

# List field name -> merge key, for the built-in types the sim serves (k8s `patchMergeKey` tags).
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "conditions": "type",
    "readinessGates": "conditionType",
    "ownerReferences": "uid",
    "env": "name",
    "ports": "containerPort",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "addresses": "type",
    "podIPs": "ip",
    "hostIPs": "ip",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
    "schedulingGates": "name",
}
# Lists of scalars with patchStrategy=merge (set semantics).
MERGE_SETS = {"finalizers"}


def strategic_merge(target: Any, patch: Any) -> Any:
    """Strategic merge patch: like merge patch, but lists with a merge key merge element-wise.

    Supports `$patch: replace|delete` on maps and list items, `$deleteFromPrimitiveList/<f>`, and ignores
    `$setElementOrder/<f>` and `$retainKeys` (ordering/pruning hints kubectl apply sends). Like
    `merge_patch`, the result shares structure with its inputs.
    """
    if not isinstance(patch, dict):
        return patch
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: _strip_directives(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if k in ("$patch", "$retainKeys") or k.startswith("$setElementOrder/"):
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            f = k.split("/", 1)[1]
            if isinstance(out.get(f), list) and isinstance(v, list):
                out[f] = [x for x in out[f] if x not in v]
            continue
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict):
            merged = strategic_merge(out.get(k), v)
            if merged is None:
                out.pop(k, None)
            else:
                out[k] = merged
        elif isinstance(v, list) and k in MERGE_KEYS and isinstance(out.get(k), list):
            out[k] = _merge_list(out[k], v, MERGE_KEYS[k])
        elif isinstance(v, list) and k in MERGE_SETS and isinstance(out.get(k), list):
            out[k] = list(out[k]) + [x for x in v if x not in out[k]]
        else:
            out[k] = _strip_directives(v)
    return out


def _merge_list(current: list[Any], patch: list[Any], key: str) -> list[Any]:
    if any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
        return [
            _strip_directives(p) for p in patch if not (isinstance(p, dict) and p.get("$patch") == "replace")
        ]
    out = list(current)
    for p in patch:
        if not isinstance(p, dict) or key not in p:
            out.append(p)
            continue
        idx = next((i for i, c in enumerate(out) if isinstance(c, dict) and c.get(key) == p[key]), None)
        if p.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
            continue
        if idx is None:
            out.append(strategic_merge({}, p))  # a new element: nulls mean "absent", as after typed decoding
        else:
            out[idx] = strategic_merge(out[idx], p)
    return out


def _has_directive(v: Any) -> bool:
    if isinstance(v, dict):
        return any(k.startswith("$") or _has_directive(x) for k, x in v.items())
    if isinstance(v, list):
        return any(_has_directive(x) for x in v)
    return False


def _strip_directives(v: Any) -> Any:
    if not isinstance(v, dict | list) or not _has_directive(v):
        return v
    if isinstance(v, dict):
        return {
            k: _strip_directives(x)
            for k, x in v.items()
            if not (k.startswith("$setElementOrder/") or k in ("$patch", "$retainKeys"))
        }
    if isinstance(v, list):
        return [_strip_directives(x) for x in v]
    return v
