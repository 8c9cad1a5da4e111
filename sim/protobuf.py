"""Just enough of Kubernetes' protobuf encoding to read what `kubectl create <typed>` sends.

Typed kubectl subcommands (`kubectl create namespace`, `kubectl create configmap`) send
`application/vnd.kubernetes.protobuf` and do not fall back to JSON on 415. The body is the magic
`k8s\\x00` followed by a `runtime.Unknown` {typeMeta, raw}; `raw` is the object's own message. Only the
kinds below are decoded (field numbers from k8s.io/api/core/v1 and batch/v1 generated.proto: a Job only
as far as `kubectl create job` fills it in); others get 415.
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


def _container(raw: bytes) -> dict[str, Any]:
    """core/v1 Container: the fields `kubectl create job|deployment` set."""
    c: dict[str, Any] = {}
    scalars = {
        1: "name",
        2: "image",
        5: "workingDir",
        13: "terminationMessagePath",
        14: "imagePullPolicy",
        20: "terminationMessagePolicy",
    }
    for num, _, v in fields(raw):
        if num in scalars:
            if v:
                c[scalars[num]] = v.decode()
        elif num in (3, 4):
            c.setdefault("command" if num == 3 else "args", []).append(v.decode())
        elif num == 8:
            c["resources"] = {}
    return c


def _pod_spec(raw: bytes) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    strings = {
        3: "restartPolicy",
        6: "dnsPolicy",
        8: "serviceAccountName",
        10: "nodeName",
        19: "schedulerName",
    }
    ints = {4: "terminationGracePeriodSeconds", 5: "activeDeadlineSeconds"}
    for num, _, v in fields(raw):
        if num == 2:
            spec.setdefault("containers", []).append(_container(v))
        elif num == 20:
            spec.setdefault("initContainers", []).append(_container(v))
        elif num in strings and v:
            spec[strings[num]] = v.decode()
        elif num in ints:
            spec[ints[num]] = v
        elif num == 7:
            k, val = _map_entry(v)
            spec.setdefault("nodeSelector", {})[k] = val.decode()
    return spec


def _job(raw: bytes) -> dict[str, Any]:
    """batch/v1 Job (`kubectl create job NAME --image=I -- CMD`): metadata, the counts, the template."""
    obj: dict[str, Any] = {"apiVersion": "batch/v1", "kind": "Job"}
    ints = {
        1: "parallelism",
        2: "completions",
        3: "activeDeadlineSeconds",
        7: "backoffLimit",
        8: "ttlSecondsAfterFinished",
    }
    for num, _, v in fields(raw):
        if num == 1:
            obj["metadata"] = _object_meta(v)
        elif num == 2:
            spec: dict[str, Any] = {}
            for n, _, sv in fields(v):
                if n in ints:
                    spec[ints[n]] = sv
                elif n == 5:
                    spec["manualSelector"] = bool(sv)
                elif n == 6:
                    template: dict[str, Any] = {}
                    for tn, _, tv in fields(sv):
                        if tn == 1:
                            template["metadata"] = _object_meta(tv)
                        elif tn == 2:
                            template["spec"] = _pod_spec(tv)
                    spec["template"] = template
            obj["spec"] = spec
    return obj


DECODERS = {"Namespace": _namespace, "ConfigMap": _configmap, "Job": _job}


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
