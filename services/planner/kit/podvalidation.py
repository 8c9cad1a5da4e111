"""One validator for the pod templates and containers of every workload: Kubernetes' core pod checks.

Kruise's webhooks hand a workload's pod template to ``ValidatePodTemplateSpec`` (CloneSet, Advanced
DaemonSet, AdvancedCronJob's and BroadcastJob's templates) and a SidecarSet's containers, in a fake
pod, to ``ValidatePodCreate``. Both end in the same container checks of
``k8s.io/kubernetes/pkg/apis/core/validation``, so every workload calls this module and a user sees
one wording for one mistake, whatever kind carries it. `pod_template_errors` is the template's entry
(labels, annotation keys, containers present, volume names, restartPolicy); `container_errors` the
containers' (used directly for a SidecarSet, whose volumes it validates itself).

Checked per container, with apimachinery's messages and field paths: name (a DNS-1123 label, unique
across containers and init containers), image (present, no surrounding whitespace), ports, env and
envFrom names, volume mounts and devices against the pod's volumes, resource names (a standard name
or a fully-qualified one) and quantities (non-negative, requests not above limits), the security
context (runAsUser/runAsGroup in range, ``allowPrivilegeEscalation: false`` against ``privileged``
and ``CAP_SYS_ADMIN``), lifecycle handlers and the liveness, readiness and startup probes (one
handler each, its port, scheme, header names and command, the probe's counters). An init container
may carry lifecycle or probes only with ``restartPolicy: Always``.

Defaults are assumed, as the mutating webhook would have filled them before validation: a template's
containers are checked as a defaulted copy (`kit.poddefaults`, so a port without a protocol is TCP),
and a probe's zero timeout/period/thresholds or an httpGet's empty path and scheme are not errors
anywhere. Not checked: hugepages quantities, extended resources' integer and requests-equal-limits
rules, seccomp/AppArmor/procMount/Windows options, resize policies, pod-level fields beyond
restartPolicy. Pure.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from schemas.constants import MAX_INT32
from schemas.kube import JsonObject, PodTemplateSpec
from services.planner.kit.fielderrors import FieldError, field_error, from_issue, nonnegative
from services.planner.kit.gojson import format_quantity, parse_quantity
from services.planner.kit.poddefaults import default_container
from services.planner.kit.selectors import (
    dns1123_label_errors,
    label_issues,
    max_len_error,
    qualified_name_errors,
    regex_error,
)

_PORT_CHARSET: Final = re.compile(r"^[-a-z0-9]+$")
_PORT_LETTER: Final = re.compile(r"[a-z]")
_ENV_NAME_FMT: Final = "[-._a-zA-Z][-._a-zA-Z0-9]*"
_ENV_NAME_RE: Final = re.compile(f"^{_ENV_NAME_FMT}$")
_ENV_NAME_MSG: Final = ("a valid environment variable name must consist of alphabetic characters, digits, '_', "
                        "'-', or '.', and must not start with a digit")
PORT_PROTOCOLS: Final = ("SCTP", "TCP", "UDP")
_PVC_SOURCES: Final = ("persistentVolumeClaim", "ephemeral")
RESTART_POLICIES: Final = ("Always", "OnFailure", "Never")
DEFAULT_TERMINATION_GRACE_SECONDS: Final = 30
HTTP_SCHEMES: Final = ("HTTP", "HTTPS")
_HEADER_FMT: Final = "[-A-Za-z0-9]+"
_HEADER_RE: Final = re.compile(f"^{_HEADER_FMT}$")
_HEADER_MSG: Final = "a valid HTTP header must consist of alphanumeric characters or '-'"
_PROBE_HANDLERS: Final = ("exec", "httpGet", "tcpSocket", "grpc")
_LIFECYCLE_HANDLERS: Final = ("exec", "httpGet", "tcpSocket", "sleep")
_PROBE_COUNTERS: Final = ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold",
                          "failureThreshold")
_MAX_ID: Final = MAX_INT32  # apimachinery IsValidUserID / IsValidGroupID
_STANDARD_CONTAINER_RESOURCES: Final = frozenset({"cpu", "memory", "ephemeral-storage"})
_STANDARD_RESOURCES: Final = _STANDARD_CONTAINER_RESOURCES | frozenset({
    "requests.cpu", "requests.memory", "requests.ephemeral-storage", "limits.cpu", "limits.memory",
    "limits.ephemeral-storage", "pods", "resourcequotas", "services", "replicationcontrollers", "secrets",
    "persistentvolumeclaims", "configmaps", "services.nodeports", "services.loadbalancers", "storage",
    "requests.storage",
})
_NATIVE_PREFIX: Final = "kubernetes.io/"
_REQUESTS_PREFIX: Final = "requests."
_INIT_ONLY_ALWAYS: Final = "may not be set for init containers without restartPolicy=Always"


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


def _is_hugepages(name: str) -> bool:
    return name.startswith("hugepages-")


def _is_native(name: str) -> bool:
    return "/" not in name or _NATIVE_PREFIX in name


def _is_extended(name: str) -> bool:
    """``IsExtendedResourceName``: not native, not ``requests.``-prefixed, and still a qualified name as a
    quota key (``requests.<name>``)."""
    if _is_native(name) or name.startswith(_REQUESTS_PREFIX):
        return False
    return not qualified_name_errors(_REQUESTS_PREFIX + name)


def resource_name_errors(name: str) -> list[str]:
    """``validateContainerResourceName``: a qualified name; without a domain, a standard resource
    (``validateResourceName``) that a container may ask for; with one, native or an extended resource."""
    errs = qualified_name_errors(name)
    if not errs and "/" not in name and not (name in _STANDARD_RESOURCES or _is_hugepages(name)
                                             or name.startswith("requests.hugepages-")):
        errs.append("must be a standard resource type or fully qualified")
    if "/" not in name:
        if name not in _STANDARD_CONTAINER_RESOURCES and not _is_hugepages(name):
            errs.append("must be a standard resource for containers")
    elif not _is_native(name) and not _is_extended(name):
        errs.append("doesn't follow extended resource name standard")
    return errs


def _resource_errors(c: JsonObject, path: str) -> list[FieldError]:
    """Resource names, negative quantities and requests above limits (``ValidateResourceRequirements``)."""
    resources = c.get("resources") or {}
    if not isinstance(resources, dict):
        return []
    errs: list[FieldError] = []
    for kind in ("limits", "requests"):
        raw = resources.get(kind)
        for name in sorted(raw) if isinstance(raw, dict) else ():
            errs.extend(field_error(f"{path}.resources.{kind}[{name}]", "Invalid", str(name), m)
                        for m in resource_name_errors(str(name)))
    limits, requests = _quantities(resources.get("limits")), _quantities(resources.get("requests"))
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


def _port_ref_errors(port: Any, path: str) -> list[FieldError]:
    """``ValidatePortNumOrName``: an int is a port number, a string a port name (a missing port is 0)."""
    if isinstance(port, str):
        return [field_error(path, "Invalid", port, m) for m in port_name_errors(port)]
    number = _int(port)
    return [field_error(path, "Invalid", number, m) for m in port_num_errors(number)]


def _action_errors(kind: str, action: Any, path: str, grace_period: int) -> list[FieldError]:
    """One handler's own checks (exec, httpGet, tcpSocket, grpc, sleep)."""
    a: JsonObject = action if isinstance(action, dict) else {}
    if kind == "exec":
        return [] if a.get("command") else [field_error(f"{path}.command", "Required", no_value=True)]
    if kind == "httpGet":
        errs = _port_ref_errors(a.get("port"), f"{path}.port")
        scheme = a.get("scheme") or ""
        if scheme and scheme not in HTTP_SCHEMES:
            errs.append(field_error(f"{path}.scheme", "NotSupported", scheme,
                                    "supported values: " + ", ".join(f'"{v}"' for v in HTTP_SCHEMES)))
        for header in _dicts(a.get("httpHeaders")):
            name = str(header.get("name") or "")
            if not _HEADER_RE.match(name):
                errs.append(field_error(f"{path}.httpHeaders", "Invalid", name,
                                        regex_error(_HEADER_MSG, _HEADER_FMT, "X-Header-Name")))
        return errs
    if kind == "tcpSocket":
        return _port_ref_errors(a.get("port"), f"{path}.port")
    if kind == "grpc":
        port = _int(a.get("port"))
        return [field_error(f"{path}.port", "Invalid", port, m) for m in port_num_errors(port)]
    seconds = _int(a.get("seconds"))  # sleep
    if seconds <= 0 or seconds > grace_period:
        return [field_error(path, "Invalid", seconds, "must be greater than 0 and less than "
                                                      f"terminationGracePeriodSeconds ({grace_period})")]
    return []


def handler_errors(handler: JsonObject, path: str, kinds: Sequence[str],
                   grace_period: int = DEFAULT_TERMINATION_GRACE_SECONDS) -> list[FieldError]:
    """``validateHandler``: exactly one of ``kinds`` set (a second one is Forbidden, none is Required),
    and that one valid."""
    errs: list[FieldError] = []
    found = False
    for kind in kinds:
        if handler.get(kind) is None:
            continue
        if found:
            errs.append(field_error(f"{path}.{kind}", "Forbidden", no_value=True,
                                    detail="may not specify more than 1 handler type"))
        else:
            found = True
            errs.extend(_action_errors(kind, handler[kind], f"{path}.{kind}", grace_period))
    if not found:
        errs.append(field_error(path, "Required", no_value=True, detail="must specify a handler type"))
    return errs


def probe_errors(probe: JsonObject, path: str, kind: str,
                 grace_period: int = DEFAULT_TERMINATION_GRACE_SECONDS) -> list[FieldError]:
    """``validateLivenessProbe`` / ``validateReadinessProbe`` / ``validateStartupProbe`` (``kind`` is
    "liveness", "readiness" or "startup"): the handler, non-negative counters, a positive
    terminationGracePeriodSeconds (not at all on a readiness probe), successThreshold 1 unless it
    only tells whether the container is ready. A zero counter is the default, not an error."""
    errs = handler_errors(probe, path, _PROBE_HANDLERS, grace_period)
    for name in _PROBE_COUNTERS:
        errs.extend(nonnegative(_int(probe.get(name)), f"{path}.{name}"))
    grace = probe.get("terminationGracePeriodSeconds")
    if isinstance(grace, int) and not isinstance(grace, bool) and grace <= 0:
        errs.append(field_error(f"{path}.terminationGracePeriodSeconds", "Invalid", grace, "must be greater than 0"))
    success = _int(probe.get("successThreshold"))
    if kind != "readiness" and success not in (0, 1):
        errs.append(field_error(f"{path}.successThreshold", "Invalid", success, "must be 1"))
    if kind == "readiness" and grace is not None:
        errs.append(field_error(f"{path}.terminationGracePeriodSeconds", "Invalid", grace,
                                "must not be set for readinessProbes"))
    return errs


def lifecycle_errors(lifecycle: JsonObject, path: str,
                     grace_period: int = DEFAULT_TERMINATION_GRACE_SECONDS) -> list[FieldError]:
    """``validateLifecycle``: postStart and preStop, each one valid handler when set."""
    errs: list[FieldError] = []
    for hook in ("postStart", "preStop"):
        handler = lifecycle.get(hook)
        if handler is not None:
            errs.extend(handler_errors(handler if isinstance(handler, dict) else {}, f"{path}.{hook}",
                                       _LIFECYCLE_HANDLERS, grace_period))
    return errs


def security_context_errors(sc: JsonObject, path: str) -> list[FieldError]:
    """The parts of ``ValidateSecurityContext`` that do not depend on the cluster: user and group ids in
    range, and ``allowPrivilegeEscalation: false`` contradicted by ``privileged`` or CAP_SYS_ADMIN."""
    errs: list[FieldError] = []
    for name in ("runAsUser", "runAsGroup"):
        value = sc.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and not 0 <= value <= _MAX_ID:
            errs.append(field_error(f"{path}.{name}", "Invalid", value, f"must be between 0 and {_MAX_ID}, inclusive"))
    if sc.get("allowPrivilegeEscalation") is False:
        if sc.get("privileged") is True:
            errs.append(field_error(path, "Invalid", sc,
                                    "cannot set `allowPrivilegeEscalation` to false and `privileged` to true"))
        caps = sc.get("capabilities")
        added = caps.get("add") if isinstance(caps, dict) else None
        for cap in added if isinstance(added, list) else ():
            if cap == "CAP_SYS_ADMIN":
                errs.append(field_error(path, "Invalid", sc, "cannot set `allowPrivilegeEscalation` to false "
                                                             "and `capabilities.Add` CAP_SYS_ADMIN"))
    return errs


def _hook_errors(c: JsonObject, path: str, init: bool, grace_period: int) -> list[FieldError]:
    """Lifecycle and probes: validated for containers and restartable init containers, Forbidden on
    other init containers."""
    fields = ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe")
    if init and c.get("restartPolicy") != "Always":
        return [field_error(f"{path}.{f}", "Forbidden", no_value=True, detail=_INIT_ONLY_ALWAYS)
                for f in fields if c.get(f) is not None]
    errs: list[FieldError] = []
    lifecycle = c.get("lifecycle")
    if isinstance(lifecycle, dict):
        errs.extend(lifecycle_errors(lifecycle, f"{path}.lifecycle", grace_period))
    for f, kind in (("livenessProbe", "liveness"), ("readinessProbe", "readiness"), ("startupProbe", "startup")):
        probe = c.get(f)
        if isinstance(probe, dict):
            errs.extend(probe_errors(probe, f"{path}.{f}", kind, grace_period))
    return errs


def _container_list_errors(containers: Sequence[JsonObject], path: str, volumes: Mapping[str, JsonObject],
                           names: set[str], *, init: bool, grace_period: int) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, c in enumerate(containers):
        p = f"{path}[{i}]"
        name = c.get("name")
        if not name:
            errs.append(field_error(f"{p}.name", "Required", no_value=True))
        elif not isinstance(name, str):
            errs.append(field_error(f"{p}.name", "Invalid", name, "must be a string"))
        else:
            errs.extend(field_error(f"{p}.name", "Invalid", name, m) for m in dns1123_label_errors(name))
            if name in names:
                errs.append(field_error(f"{p}.name", "Duplicate", name))
            names.add(name)
        image = c.get("image")
        if not image:
            errs.append(field_error(f"{p}.image", "Required", no_value=True))
        elif not isinstance(image, str):
            errs.append(field_error(f"{p}.image", "Invalid", image, "must be a string"))
        elif image.strip() != image:
            errs.append(field_error(f"{p}.image", "Invalid", image, "must not have leading or trailing whitespace"))
        errs.extend(_port_errors(c, p))
        errs.extend(_env_errors(c, p))
        errs.extend(_mount_errors(c, p, volumes))
        errs.extend(_resource_errors(c, p))
        sc = c.get("securityContext")
        if isinstance(sc, dict):
            errs.extend(security_context_errors(sc, f"{p}.securityContext"))
        errs.extend(_hook_errors(c, p, init, grace_period))
    errs.extend(_host_port_errors(containers, path))
    return errs


def container_errors(containers: Sequence[JsonObject], init_containers: Sequence[JsonObject],
                     volumes: Sequence[JsonObject], path: str = "spec", *,
                     grace_period: int = DEFAULT_TERMINATION_GRACE_SECONDS) -> list[FieldError]:
    """The pod's containers, then its init containers (whose names must differ from the containers'),
    in ``ValidatePodSpec``'s order and field paths. ``grace_period`` is the pod's
    terminationGracePeriodSeconds, the bound of a lifecycle ``sleep``."""
    by_name = {str(v.get("name") or ""): v for v in volumes}
    names: set[str] = set()
    errs = _container_list_errors(containers, f"{path}.containers", by_name, names, init=False,
                                  grace_period=grace_period)
    errs.extend(_container_list_errors(init_containers, f"{path}.initContainers", by_name, names, init=True,
                                       grace_period=grace_period))
    return errs


def _objects(raw: object, path: str, kind: str) -> tuple[list[JsonObject], list[FieldError]]:
    """A list of JSON objects at ``path`` (containers, volumes), or an error if it is not one."""
    if raw is None:
        return [], []
    if not isinstance(raw, list) or not all(isinstance(x, dict) for x in raw):
        return [], [field_error(path, "Invalid", None, f"must be a list of {kind} objects")]
    return list(raw), []


def _defaulted(containers: Sequence[JsonObject]) -> list[JsonObject]:
    out = copy.deepcopy(list(containers))
    for c in out:
        default_container(c, pull_always=False)
    return out


def pod_template_errors(template: PodTemplateSpec, base: str, *,
                        restart_policies: Sequence[str] | None = RESTART_POLICIES,
                        extra_volumes: Sequence[JsonObject] = ()) -> list[FieldError]:
    """``ValidatePodTemplateSpec`` at ``base`` (``spec.template``): template labels and annotation keys,
    containers present, every container check of `container_errors`, volume names (DNS labels, unique)
    and the restartPolicy.

    The options are what the workloads genuinely differ in: ``restart_policies`` the policies the kind
    accepts (None: not checked here, the kind has its own rule); ``extra_volumes`` the volumes Kruise
    mocks in after the template's own (a CloneSet's volumeClaimTemplates), which count for names and
    for mounts.
    """
    errs: list[FieldError] = [from_issue(i) for i in label_issues(template.metadata.labels, f"{base}.metadata.labels")]
    for key in sorted(template.metadata.annotations):
        errs.extend(field_error(f"{base}.metadata.annotations", "Invalid", key, m)
                    for m in qualified_name_errors(key.lower()))
    spec = template.spec
    containers, c_errs = _objects(spec.get("containers"), f"{base}.spec.containers", "container")
    init_containers, i_errs = _objects(spec.get("initContainers"), f"{base}.spec.initContainers", "container")
    volumes, v_errs = _objects(spec.get("volumes"), f"{base}.spec.volumes", "volume")
    errs.extend(c_errs + i_errs + v_errs)
    if not containers and not c_errs:
        errs.append(field_error(f"{base}.spec.containers", "Required", no_value=True))
    # Kruise validates a defaulted copy of the template: a port without a protocol is TCP there
    containers, init_containers = _defaulted(containers), _defaulted(init_containers)
    all_volumes = [*volumes, *extra_volumes]
    grace = spec.get("terminationGracePeriodSeconds")
    grace_period = grace if isinstance(grace, int) and not isinstance(grace, bool) else DEFAULT_TERMINATION_GRACE_SECONDS
    errs.extend(container_errors(containers, init_containers, all_volumes, f"{base}.spec", grace_period=grace_period))
    seen: set[str] = set()
    for i, v in enumerate(all_volumes):
        path = f"{base}.spec.volumes[{i}].name"
        name = v.get("name")
        if not name or not isinstance(name, str):
            errs.append(field_error(path, "Required", no_value=True))
            continue
        errs.extend(field_error(path, "Invalid", name, m) for m in dns1123_label_errors(name))
        if name in seen:
            errs.append(field_error(path, "Duplicate", name))
        seen.add(name)
    restart = spec.get("restartPolicy")
    if restart_policies is not None and restart not in (None, "", *restart_policies):
        errs.append(field_error(f"{base}.spec.restartPolicy", "NotSupported", restart,
                                "supported values: " + ", ".join(f'"{p}"' for p in restart_policies)))
    return errs


__all__ = [
    "DEFAULT_TERMINATION_GRACE_SECONDS",
    "HTTP_SCHEMES",
    "PORT_PROTOCOLS",
    "RESTART_POLICIES",
    "container_errors",
    "env_name_errors",
    "handler_errors",
    "lifecycle_errors",
    "pod_template_errors",
    "port_name_errors",
    "port_num_errors",
    "probe_errors",
    "resource_name_errors",
    "security_context_errors",
]
