"""Just enough of Kubernetes' protobuf encoding to read what `kubectl create <typed>` sends.

Typed kubectl subcommands (`kubectl create namespace`, `kubectl create configmap`) send
`application/vnd.kubernetes.protobuf` and do not fall back to JSON on 415. The body is the magic
`k8s\\x00` followed by a `runtime.Unknown` {typeMeta, raw}; `raw` is the object's own message. Only the
kinds below are decoded (field numbers from k8s.io/api/core/v1/generated.proto); others get 415.
"""

from __future__ import annotations

from typing import Any

MAGIC = b"k8s\x00"


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def fields(buf: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, value) for every field of one message; value is int or bytes."""
    out: list[tuple[int, int, Any]] = []
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wt = key >> 3, key & 7
        v: Any
        if wt == 0:
            v, i = _varint(buf, i)
        elif wt == 2:
            n, i = _varint(buf, i)
            v = buf[i : i + n]
            i += n
        elif wt == 1:
            v = int.from_bytes(buf[i : i + 8], "little")
            i += 8
        elif wt == 5:
            v = int.from_bytes(buf[i : i + 4], "little")
            i += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wt}")
        out.append((num, wt, v))
    return out


def _map_entry(b: bytes) -> tuple[str, bytes]:
    k, v = "", b""
    for num, _, val in fields(b):
        if num == 1:
            k = val.decode()
        elif num == 2:
            v = val
    return k, v


def _object_meta(b: bytes) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    names = {1: "name", 2: "generateName", 3: "namespace", 5: "uid", 6: "resourceVersion"}
    for num, _, v in fields(b):
        if num in names:
            if v:  # gogo-protobuf writes empty strings too
                meta[names[num]] = v.decode()
        elif num in (11, 12):
            k, val = _map_entry(v)
            meta.setdefault("labels" if num == 11 else "annotations", {})[k] = val.decode()
        elif num == 14:
            meta.setdefault("finalizers", []).append(v.decode())
    return meta


def _namespace(raw: bytes) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Namespace"}
    for num, _, v in fields(raw):
        if num == 1:
            obj["metadata"] = _object_meta(v)
        elif num == 2:
            obj["spec"] = {"finalizers": [f.decode() for n, _, f in fields(v) if n == 1]}
    return obj


def _configmap(raw: bytes) -> dict[str, Any]:
    import base64

    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap"}
    for num, _, v in fields(raw):
        if num == 1:
            obj["metadata"] = _object_meta(v)
        elif num == 2:
            k, val = _map_entry(v)
            obj.setdefault("data", {})[k] = val.decode()
        elif num == 3:
            k, val = _map_entry(v)
            obj.setdefault("binaryData", {})[k] = base64.b64encode(val).decode()
        elif num == 4:
            obj["immutable"] = bool(v)
    return obj


DECODERS = {"Namespace": _namespace, "ConfigMap": _configmap}


def decode(body: bytes) -> dict[str, Any] | None:
    """The object as JSON-shaped dict, or None when the kind is not one we can decode."""
    if not body.startswith(MAGIC):
        raise ValueError("protobuf body without the k8s magic prefix")
    kind, raw = "", b""
    for num, _, v in fields(body[len(MAGIC) :]):
        if num == 1:
            for n, _, tv in fields(v):
                if n == 2:
                    kind = tv.decode()
        elif num == 2:
            raw = v
    fn = DECODERS.get(kind)
    return fn(raw) if fn else None
