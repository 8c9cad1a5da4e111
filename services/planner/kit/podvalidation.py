"""The container checks of Kubernetes' ``ValidatePodCreate`` that a user meets with containers written by hand.

``k8s.io/kubernetes/pkg/apis/core/validation`` (``validateContainers``, ``validateInitContainers``,
``validateContainerPorts``, ``AccumulateUniqueHostPorts``, ``ValidateEnv``,
``ValidateContainerResourceRequirements``, ``ValidateVolumeMounts``, ``ValidateVolumeDevices``) with
apimachinery's messages, for containers kept as JSON objects (a SidecarSet's fake pod). A subset:
names, images, ports, env names, requests against limits, mounts and devices; probes, lifecycle
handlers, security contexts and resource names are not checked. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from schemas.kube import JsonObject
from services.planner.kit.fielderrors import FieldError, field_error
from services.planner.kit.gojson import format_quantity, parse_quantity
from services.planner.kit.selectors import dns1123_label_errors, max_len_error, regex_error

_PORT_CHARSET: Final = re.compile(r"^[-a-z0-9]+$")
_PORT_LETTER: Final = re.compile(r"[a-z]")
_ENV_NAME_FMT: Final = "[-._a-zA-Z][-._a-zA-Z0-9]*"
_ENV_NAME_RE: Final = re.compile(f"^{_ENV_NAME_FMT}$")
_ENV_NAME_MSG: Final = ("a valid environment variable name must consist of alphabetic characters, digits, '_', "
                        "'-', or '.', and must not start with a digit")
PORT_PROTOCOLS: Final = ("SCTP", "TCP", "UDP")
_PVC_SOURCES: Final = ("persistentVolumeClaim", "ephemeral")


def port_name_errors(name: str) -> list[str]:
    """apimachinery ``IsValidPortName`` (an IANA_SVC_NAME)."""
    errs: list[str] = []
    if len(name) > 15:
        errs.append(max_len_error(15))
    if not _PORT_CHARSET.match(name):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not _PORT_LETTER.search(name):
        errs.append("must contain at least one letter (a-z)")
    if "--" in name:
        errs.append("must not contain consecutive hyphens")
    if name and (name[0] == "-" or name[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def port_num_errors(port: int) -> list[str]:
    """apimachinery ``IsValidPortNum``."""
    return [] if 1 <= port <= 65535 else ["must be between 1 and 65535, inclusive"]


def env_name_errors(name: str) -> list[str]:
    """apimachinery ``IsEnvVarName`` (the strict form: relaxed names are an opt-in Kruise does not take)."""
    errs: list[str] = []
    if not _ENV_NAME_RE.match(name):
        errs.append(regex_error(_ENV_NAME_MSG, _ENV_NAME_FMT, "my.env-name", "MY_ENV.NAME", "MyEnvName1"))
    if name == ".":
        errs.append("must not be '.'")
    elif name == "..":
        errs.append("must not be '..'")
    elif name.startswith(".."):
        errs.append("must not start with '..'")
    return errs


def _dicts(value: Any) -> list[JsonObject]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _port_errors(c: JsonObject, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    names: set[str] = set()
    for i, port in enumerate(_dicts(c.get("ports"))):
        p = f"{path}.ports[{i}]"
        name = str(port.get("name") or "")
        if name:
            problems = port_name_errors(name)
            errs.extend(field_error(f"{p}.name", "Invalid", name, m) for m in problems)
            if not problems and name in names:
                errs.append(field_error(f"{p}.name", "Duplicate", name))
            names.add(name)
        container_port = _int(port.get("containerPort"))
        if container_port == 0:
            errs.append(field_error(f"{p}.containerPort", "Required", no_value=True))
        else:
            errs.extend(field_error(f"{p}.containerPort", "Invalid", container_port, m)
                        for m in port_num_errors(container_port))
        host_port = _int(port.get("hostPort"))
        if host_port != 0:
            errs.extend(field_error(f"{p}.hostPort", "Invalid", host_port, m) for m in port_num_errors(host_port))
        protocol = str(port.get("protocol") or "")
        if not protocol:
            errs.append(field_error(f"{p}.protocol", "Required", no_value=True))
        elif protocol not in PORT_PROTOCOLS:
            errs.append(field_error(f"{p}.protocol", "NotSupported", protocol,
                                    "supported values: " + ", ".join(f'"{v}"' for v in PORT_PROTOCOLS)))
    return errs


def _host_port_errors(containers: Sequence[JsonObject], path: str) -> list[FieldError]:
    """``AccumulateUniqueHostPorts``: one hostIP/protocol/hostPort per pod."""
    errs: list[FieldError] = []
    seen: set[str] = set()
    for ci, c in enumerate(containers):
        for pi, port in enumerate(_dicts(c.get("ports"))):
            host_port = _int(port.get("hostPort"))
            if host_port == 0:
                continue
            key = f"{port.get('hostIP') or ''}/{port.get('protocol') or ''}/{host_port}"
            if key in seen:
                errs.append(field_error(f"{path}[{ci}].ports[{pi}].hostPort", "Duplicate", key))
            seen.add(key)
    return errs


def _env_errors(c: JsonObject, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, env in enumerate(_dicts(c.get("env"))):
        name = str(env.get("name") or "")
        if not name:
            errs.append(field_error(f"{path}.env[{i}].name", "Required", no_value=True))
        else:
            errs.extend(field_error(f"{path}.env[{i}].name", "Invalid", name, m) for m in env_name_errors(name))
    for i, source in enumerate(_dicts(c.get("envFrom"))):
        prefix = str(source.get("prefix") or "")
        if prefix:
            errs.extend(field_error(f"{path}.envFrom[{i}].prefix", "Invalid", prefix, m)
                        for m in env_name_errors(prefix))
    return errs


def _quantities(value: Any) -> dict[str, tuple[int, str]]:
    out: dict[str, tuple[int, str]] = {}
    if isinstance(value, dict):
        for name, raw in value.items():
            parsed = parse_quantity(str(raw)) if isinstance(raw, str | int | float) else None
            if parsed is not None:
                out[str(name)] = parsed
    return out


def _resource_errors(c: JsonObject, path: str) -> list[FieldError]:
    """Negative quantities and requests above limits (``ValidateContainerResourceRequirements``)."""
    resources = c.get("resources") or {}
    limits, requests = _quantities(resources.get("limits")), _quantities(resources.get("requests"))
    errs: list[FieldError] = []
    for kind, values in (("limits", limits), ("requests", requests)):
        for name in sorted(values):
            nanos, fmt = values[name]
            if nanos < 0:
                errs.append(field_error(f"{path}.resources.{kind}[{name}]", "Invalid", format_quantity(nanos, fmt),
                                        "must be greater than or equal to 0"))
    for name in sorted(requests):
        if name in limits and requests[name][0] > limits[name][0]:
            errs.append(field_error(f"{path}.resources.requests", "Invalid", format_quantity(*requests[name]),
                                    f"must be less than or equal to {name} limit of {format_quantity(*limits[name])}"))
    return errs


def _mount_errors(c: JsonObject, path: str, volumes: Mapping[str, JsonObject]) -> list[FieldError]:
    mounts, devices = _dicts(c.get("volumeMounts")), _dicts(c.get("volumeDevices"))
    device_names = {str(d.get("name") or "") for d in devices}
    device_paths = {str(d.get("devicePath") or "") for d in devices}
    mount_names = {str(m.get("name") or "") for m in mounts}
    mount_paths = {str(m.get("mountPath") or "") for m in mounts}
    errs: list[FieldError] = []
    seen_paths: set[str] = set()
    for i, m in enumerate(mounts):
        p = f"{path}.volumeMounts[{i}]"
        name, mount_path = str(m.get("name") or ""), str(m.get("mountPath") or "")
        if not name:
            errs.append(field_error(f"{p}.name", "Required", no_value=True))
        if name not in volumes:
            errs.append(field_error(f"{p}.name", "NotFound", name))
        if not mount_path:
            errs.append(field_error(f"{p}.mountPath", "Required", no_value=True))
        if mount_path in seen_paths:
            errs.append(field_error(f"{p}.mountPath", "Invalid", mount_path, "must be unique"))
        seen_paths.add(mount_path)
        if name in device_names:
            errs.append(field_error(f"{p}.name", "Invalid", name, "must not already exist in volumeDevices"))
        if mount_path in device_paths:
            errs.append(field_error(f"{p}.mountPath", "Invalid", mount_path,
                                    "must not already exist as a path in volumeDevices"))
        if m.get("subPath") and m.get("subPathExpr"):
            errs.append(field_error(f"{p}.subPathExpr", "Invalid", m.get("subPathExpr"),
                                    "subPathExpr and subPath are mutually exclusive"))
    seen_names: set[str] = set()
    seen_devices: set[str] = set()
    for i, d in enumerate(devices):
        p = f"{path}.volumeDevices[{i}]"
        name, device_path = str(d.get("name") or ""), str(d.get("devicePath") or "")
        if not name:
            errs.append(field_error(f"{p}.name", "Required", no_value=True))
        if name in seen_names:
            errs.append(field_error(f"{p}.name", "Invalid", name, "must be unique"))
        volume = volumes.get(name)
        if volume is not None and not any(volume.get(k) is not None for k in _PVC_SOURCES):
            errs.append(field_error(f"{p}.name", "Invalid", name,
                                    "can only use volume source type of PersistentVolumeClaim or Ephemeral for block mode"))
        if volume is None:
            errs.append(field_error(f"{p}.name", "NotFound", name))
        if not device_path:
            errs.append(field_error(f"{p}.devicePath", "Required", no_value=True))
        if device_path in seen_devices:
            errs.append(field_error(f"{p}.devicePath", "Invalid", device_path, "must be unique"))
        if device_path and ".." in device_path.split("/"):
            errs.append(field_error(f"{p}.devicePath", "Invalid", device_path, "can not contain backsteps ('..')"))
        else:
            seen_devices.add(device_path)
        if name in mount_names:
            errs.append(field_error(f"{p}.name", "Invalid", name, "must not already exist in volumeMounts"))
        if device_path in mount_paths:
            errs.append(field_error(f"{p}.devicePath", "Invalid", device_path,
                                    "must not already exist as a path in volumeMounts"))
        if name:
            seen_names.add(name)
    return errs


def _container_list_errors(containers: Sequence[JsonObject], path: str, volumes: Mapping[str, JsonObject],
                           names: set[str]) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, c in enumerate(containers):
        p = f"{path}[{i}]"
        name = str(c.get("name") or "")
        if not name:
            errs.append(field_error(f"{p}.name", "Required", no_value=True))
        else:
            errs.extend(field_error(f"{p}.name", "Invalid", name, m) for m in dns1123_label_errors(name))
            if name in names:
                errs.append(field_error(f"{p}.name", "Duplicate", name))
            names.add(name)
        if not c.get("image"):
            errs.append(field_error(f"{p}.image", "Required", no_value=True))
        errs.extend(_port_errors(c, p))
        errs.extend(_env_errors(c, p))
        errs.extend(_mount_errors(c, p, volumes))
        errs.extend(_resource_errors(c, p))
    errs.extend(_host_port_errors(containers, path))
    return errs


def container_errors(containers: Sequence[JsonObject], init_containers: Sequence[JsonObject],
                     volumes: Sequence[JsonObject], path: str = "spec") -> list[FieldError]:
    """The pod's containers, then its init containers (whose names must differ from the containers'),
    in ``ValidatePodSpec``'s order and field paths."""
    by_name = {str(v.get("name") or ""): v for v in volumes}
    names: set[str] = set()
    errs = _container_list_errors(containers, f"{path}.containers", by_name, names)
    errs.extend(_container_list_errors(init_containers, f"{path}.initContainers", by_name, names))
    return errs


__all__ = ["PORT_PROTOCOLS", "container_errors", "env_name_errors", "port_name_errors", "port_num_errors"]
