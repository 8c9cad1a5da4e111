"""A SidecarSet's two hashes, byte for byte as Kruise computes them.

Kruise (`pkg/control/sidecarcontrol/hash.go`) hashes Go's `json.Marshal` of the SidecarSet's
containers: struct members in declaration order (not sorted), `omitempty` honoured, map keys sorted,
compact. Pods record the hash of the version they were injected with (`kruise.io/sidecarset-hash`) and
the hash without images (`-without-image`): a pod whose without-image hash differs from its
SidecarSet's can never be upgraded in place. A takeover from OpenKruise keeps both working only if the
bytes are Go's, so each struct's member order and omission rule is written down here.

Members are `(json name, rule)`: rule "v" is a value with `omitempty` (dropped when zero), "p" a pointer
with `omitempty` (dropped only when absent/null), "a" always written; a third element names the struct
of the member (or of its list items). Unknown members of known structs and unknown structs are
written with sorted keys (Kubernetes' structs the SidecarSet path rarely carries).
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

import msgspec

from schemas.kube import JsonObject
from schemas.sidecarset import sidecar_fields
from services.planner.kit.gojson import canonical_quantity

Member = tuple[str, str] | tuple[str, str, str]

_STRUCTS: Final[dict[str, tuple[Member, ...]]] = {
    "Container": (
        ("name", "a"), ("image", "v"), ("command", "v"), ("args", "v"), ("workingDir", "v"),
        ("ports", "v", "ContainerPort"), ("envFrom", "v", "EnvFromSource"), ("env", "v", "EnvVar"),
        ("resources", "a", "ResourceRequirements"), ("resizePolicy", "v", "ResizePolicy"),
        ("restartPolicy", "p"), ("volumeMounts", "v", "VolumeMount"), ("volumeDevices", "v", "VolumeDevice"),
        ("livenessProbe", "p", "Probe"), ("readinessProbe", "p", "Probe"), ("startupProbe", "p", "Probe"),
        ("lifecycle", "p", "Lifecycle"), ("terminationMessagePath", "v"), ("terminationMessagePolicy", "v"),
        ("imagePullPolicy", "v"), ("securityContext", "p", "SecurityContext"), ("stdin", "v"),
        ("stdinOnce", "v"), ("tty", "v"),
        # SidecarContainer's own members, after the inlined corev1.Container
        ("podInjectPolicy", "v"), ("upgradeStrategy", "a", "UpgradeStrategy"),
        ("shareVolumePolicy", "a", "ShareVolumePolicy"), ("shareVolumeDevicePolicy", "p", "ShareVolumePolicy"),
        ("transferEnv", "v", "TransferEnvVar"), ("resourcesPolicy", "p", "ResourcesPolicy"),
    ),
    "ContainerPort": (("name", "v"), ("hostPort", "v"), ("containerPort", "a"), ("protocol", "v"),
                      ("hostIP", "v")),
    "EnvFromSource": (("prefix", "v"), ("configMapRef", "p", "EnvSource"), ("secretRef", "p", "EnvSource")),
    "EnvSource": (("name", "v"), ("optional", "p")),
    "EnvVar": (("name", "a"), ("value", "v"), ("valueFrom", "p", "EnvVarSource")),
    "EnvVarSource": (("fieldRef", "p", "ObjectFieldSelector"), ("resourceFieldRef", "p", "ResourceFieldSelector"),
                     ("configMapKeyRef", "p", "KeySelector"), ("secretKeyRef", "p", "KeySelector")),
    "ObjectFieldSelector": (("apiVersion", "v"), ("fieldPath", "a")),
    "ResourceFieldSelector": (("containerName", "v"), ("resource", "a"), ("divisor", "q")),
    "KeySelector": (("name", "v"), ("key", "a"), ("optional", "p")),
    "ResourceRequirements": (("limits", "m"), ("requests", "m"), ("claims", "v")),
    "ResizePolicy": (("resourceName", "a"), ("restartPolicy", "a")),
    "VolumeMount": (("name", "a"), ("readOnly", "v"), ("recursiveReadOnly", "p"), ("mountPath", "a"),
                    ("subPath", "v"), ("mountPropagation", "p"), ("subPathExpr", "v")),
    "VolumeDevice": (("name", "a"), ("devicePath", "a")),
    "Probe": (("exec", "p", "ExecAction"), ("httpGet", "p", "HTTPGetAction"), ("tcpSocket", "p", "TCPSocketAction"),
              ("grpc", "p", "GRPCAction"), ("initialDelaySeconds", "v"), ("timeoutSeconds", "v"),
              ("periodSeconds", "v"), ("successThreshold", "v"), ("failureThreshold", "v"),
              ("terminationGracePeriodSeconds", "p")),
    "ExecAction": (("command", "v"),),
    "HTTPGetAction": (("path", "v"), ("port", "a"), ("host", "v"), ("scheme", "v"), ("httpHeaders", "v", "Header")),
    "Header": (("name", "a"), ("value", "a")),
    "TCPSocketAction": (("port", "a"), ("host", "v")),
    "GRPCAction": (("port", "a"), ("service", "a")),
    "Lifecycle": (("postStart", "p", "LifecycleHandler"), ("preStop", "p", "LifecycleHandler")),
    "LifecycleHandler": (("exec", "p", "ExecAction"), ("httpGet", "p", "HTTPGetAction"),
                         ("tcpSocket", "p", "TCPSocketAction"), ("sleep", "p")),
    "SecurityContext": (("capabilities", "p", "Capabilities"), ("privileged", "p"), ("seLinuxOptions", "p"),
                        ("windowsOptions", "p"), ("runAsUser", "p"), ("runAsGroup", "p"), ("runAsNonRoot", "p"),
                        ("readOnlyRootFilesystem", "p"), ("allowPrivilegeEscalation", "p"), ("procMount", "p"),
                        ("seccompProfile", "p"), ("appArmorProfile", "p")),
    "Capabilities": (("add", "v"), ("drop", "v")),
    "UpgradeStrategy": (("upgradeType", "v"), ("hotUpgradeEmptyImage", "v")),
    "ShareVolumePolicy": (("type", "v"),),
    "TransferEnvVar": (("sourceContainerName", "v"), ("sourceContainerNameFrom", "p", "SourceContainerNameSource"),
                       ("envName", "v"), ("envNames", "v")),
    "SourceContainerNameSource": (("fieldRef", "p", "ObjectFieldSelector"),),
    "ResourcesPolicy": (("targetContainersMode", "a"), ("targetContainersNameRegex", "v"),
                        ("resourcesExpr", "a", "ResourcesExpr")),
    "ResourcesExpr": (("limits", "p", "ResourceExprs"), ("requests", "p", "ResourceExprs")),
    "ResourceExprs": (("cpu", "v"), ("memory", "v")),
}

_ALPHABET: Final = "bcdfghjklmnpqrstvwxz2456789"


def _zero(value: Any) -> bool:
    return value is None or value == "" or value == 0 or value is False or value == [] or value == {}


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def _struct(obj: Any, name: str) -> Any:
    """`obj` re-ordered and pruned as Go writes the struct `name`."""
    if not isinstance(obj, dict):
        return obj
    members = _STRUCTS[name]
    out: dict[str, Any] = {}
    known = set()
    for member in members:
        key, rule = member[0], member[1]
        known.add(key)
        sub = member[2] if len(member) == 3 else None
        value = obj.get(key)
        if rule == "q":  # resource.Quantity, a struct: always written, "0" when unset
            out[key] = canonical_quantity(value) if value not in (None, "") else "0"
            continue
        if rule == "m":  # a map of quantities
            if value:
                out[key] = {k: canonical_quantity(value[k]) for k in sorted(value)}
            continue
        if rule == "v" and _zero(value):
            continue
        if rule == "p" and value is None:
            continue
        if rule == "a" and value is None:
            value = {} if sub is not None else ("" if key != "service" else None)
        if sub is not None:
            value = [_struct(v, sub) for v in value] if isinstance(value, list) else _struct(value, sub)
        else:
            value = _sorted(value)
        out[key] = value
    for key in sorted(set(obj) - known):  # members this table does not know: kept, sorted
        if not _zero(obj[key]):
            out[key] = _sorted(obj[key])
    return out


def go_container_json(container: JsonObject) -> JsonObject:
    """One SidecarContainer in Go's member order (a dict whose insertion order is the byte order)."""
    result: JsonObject = _struct(container, "Container")
    return result


def _escape(out: bytes) -> bytes:
    for raw, escaped in ((b"<", b"\\u003c"), (b">", b"\\u003e"), (b"&", b"\\u0026"),
                         ("\u2028".encode(), b"\\u2028"), ("\u2029".encode(), b"\\u2029")):
        if raw in out:
            out = out.replace(raw, escaped)
    return out


def hash_input(containers: list[JsonObject], init_containers: list[JsonObject], *, without_image: bool) -> bytes:
    """The bytes Kruise hashes: `{"containers":[...]}` plus every init container when one is a native
    sidecar (`restartPolicy: Always`)."""
    def prepare(c: JsonObject) -> JsonObject:
        return go_container_json({k: v for k, v in c.items() if k != "image"} if without_image else c)

    doc: dict[str, Any] = {"containers": [prepare(c) for c in containers]}
    if any(sidecar_fields(c).restart_policy == "Always" for c in init_containers):
        doc["initContainers"] = [prepare(c) for c in init_containers]
    return _escape(msgspec.json.encode(doc))


def encode_hash(data: bytes) -> str:
    """SHA-256 hex, each hex character mapped into Kruise's safe alphabet (`rand.SafeEncodeString`)."""
    return "".join(_ALPHABET[ord(c) % len(_ALPHABET)] for c in hashlib.sha256(data).hexdigest())


def sidecarset_hash(containers: list[JsonObject], init_containers: list[JsonObject]) -> str:
    return encode_hash(hash_input(containers, init_containers, without_image=False))


def sidecarset_hash_without_image(containers: list[JsonObject], init_containers: list[JsonObject]) -> str:
    return encode_hash(hash_input(containers, init_containers, without_image=True))


__all__ = ["encode_hash", "go_container_json", "hash_input", "sidecarset_hash", "sidecarset_hash_without_image"]
