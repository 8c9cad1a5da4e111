"""PodProbeMarker admission rules (Kruise's `pkg/webhook/podprobemarker/validating/probe_create_update_handler.go`).

One implementation for both places a spec is judged: the validating webhook refuses an invalid
PodProbeMarker at admission, and the planner refuses to run one that reached the cluster while no
webhook checked it (reported as the `InvalidSpec` condition, a Warning Event and a `rejected` rollout
event naming the field). Rules and messages are Kruise's, including where it stops at the first
problem of a probe (so a spec shows the errors Kruise would show). Field paths carry the list indexes
(`spec.probes[1].name`) where Kruise names only the list, so the user can tell which probe is meant.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import urlsplit

import msgspec

from schemas.constants import PROBE_FAILED, PROBE_SUCCEEDED, RESERVED_PROBE_NAMES
from schemas.kube import IntOrString
from schemas.podprobemarker import (
    ContainerProbeSpec,
    HTTPGetAction,
    PodProbeMarker,
    ProbeMarkerPolicy,
    TCPSocketAction,
)
from services.planner.kit.fielderrors import FieldError, field_error
from services.planner.kit.gates import DEFAULT_GATES, FeatureGates
from services.planner.kit.selectors import (
    SelectorIssue,
    conversion_error,
    is_empty,
    label_issues,
    qualified_name_errors,
    selector_issues,
)

SUPPORTED_SCHEMES: Final = ("HTTP", "HTTPS")
_HTTP_HEADER_NAME_RE: Final = re.compile(r"[-A-Za-z0-9]+")
_HTTP_HEADER_NAME_MSG: Final = (
    "a valid HTTP header must consist of alphanumeric characters or '-' (e.g. 'X-Header-Name', "
    "regex used for validation is '[-A-Za-z0-9]+')"
)
_PORT_NAME_MAX: Final = 15
_TOTAL_ANNOTATION_SIZE_LIMIT: Final = 256 * (1 << 10)


def _issue(issue: SelectorIssue) -> FieldError:
    return field_error(issue.field, issue.type, issue.value, issue.detail,
                       no_value=issue.type in ("Required", "Forbidden"))


def port_num_errors(port: int) -> list[str]:
    """apimachinery `IsValidPortNum`."""
    return [] if 1 <= port <= 65535 else ["must be between 1 and 65535, inclusive"]


def port_name_errors(name: str) -> list[str]:
    """apimachinery `IsValidPortName` (an IANA_SVC_NAME)."""
    errs: list[str] = []
    if len(name) < 1 or len(name) > _PORT_NAME_MAX:
        errs.append(f"must be no more than {_PORT_NAME_MAX} characters")
    if not re.fullmatch(r"[-a-z0-9]+", name):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if "--" in name:
        errs.append("must not contain consecutive hyphens")
    if not re.search(r"[a-z]", name):
        errs.append("must contain at least one letter (a-z)")
    if name.startswith("-") or name.endswith("-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def _port_errors(port: IntOrString, path: str) -> list[FieldError]:
    if isinstance(port, bool):
        return [field_error(path, "InternalError", port, f"unknown type: {type(port).__name__}")]
    if isinstance(port, int):
        return [field_error(path, "Invalid", port, m) for m in port_num_errors(port)]
    return [field_error(path, "Invalid", port, m) for m in port_name_errors(port)]


def _tcp_errors(tcp: TCPSocketAction, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    if tcp.host:
        errs.append(field_error(f"{path}.host", "Invalid", tcp.host, "host field in probes is not allowed"))
    errs.extend(_port_errors(tcp.port, f"{path}.port"))
    return errs


def _http_errors(http: HTTPGetAction, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    if not http.path:
        errs.append(field_error(f"{path}.path", "Required", no_value=True))
    if http.host:
        errs.append(field_error(f"{path}.host", "Invalid", http.host, "host field in probes is not allowed"))
    try:
        urlsplit(http.path)
    except ValueError:
        errs.append(field_error(f"{path}.path", "Invalid", http.path, "must be a valid URL path"))
    errs.extend(_port_errors(http.port, f"{path}.port"))
    if http.scheme not in SUPPORTED_SCHEMES:
        errs.append(field_error(f"{path}.scheme", "NotSupported", http.scheme,
                                "supported values: " + ", ".join(f'"{s}"' for s in SUPPORTED_SCHEMES)))
    for i, header in enumerate(http.http_headers):
        if not _HTTP_HEADER_NAME_RE.fullmatch(header.name):
            errs.append(field_error(f"{path}.httpHeaders[{i}].name", "Invalid", header.name, _HTTP_HEADER_NAME_MSG))
    return errs


def handler_errors(probe: ContainerProbeSpec, path: str) -> list[FieldError]:
    """Exactly one handler (`validateHandler`), each valid."""
    errs: list[FieldError] = []
    count = 0
    if probe.exec is not None:
        count += 1
        if not probe.exec.command:
            errs.append(field_error(f"{path}.exec.command", "Required", no_value=True))
    if probe.http_get is not None:
        if count:
            errs.append(field_error(f"{path}.httpGet", "Forbidden", detail="may not specify more than 1 handler type",
                                    no_value=True))
        else:
            count += 1
            errs.extend(_http_errors(probe.http_get, f"{path}.httpGet"))
    if probe.tcp_socket is not None:
        if count:
            errs.append(field_error(f"{path}.tcpSocket", "Forbidden",
                                    detail="may not specify more than 1 handler type", no_value=True))
        else:
            count += 1
            errs.extend(_tcp_errors(probe.tcp_socket, f"{path}.tcpSocket"))
    if count == 0:
        errs.append(field_error(path, "Required", detail="must specify a handler type", no_value=True))
    return errs


def _probe_errors(probe: ContainerProbeSpec, path: str) -> list[FieldError]:
    errs = handler_errors(probe, path)
    for name, value in (("initialDelaySeconds", probe.initial_delay_seconds),
                        ("timeoutSeconds", probe.timeout_seconds), ("periodSeconds", probe.period_seconds),
                        ("successThreshold", probe.success_threshold),
                        ("failureThreshold", probe.failure_threshold)):
        if value < 0:
            errs.append(field_error(f"{path}.{name}", "Invalid", value, "must be greater than or equal to 0"))
    return errs


def _annotation_errors(annotations: dict[str, str], path: str) -> list[FieldError]:
    """apimachinery `ValidateAnnotations`: qualified-name keys, 256 KiB in total."""
    errs: list[FieldError] = []
    total = 0
    for key in sorted(annotations):
        errs.extend(field_error(path, "Invalid", key, m) for m in qualified_name_errors(key.lower()))
        total += len(key) + len(annotations[key])
    if total > _TOTAL_ANNOTATION_SIZE_LIMIT:
        errs.append(field_error(path, "TooLong", detail=f"may not be more than {_TOTAL_ANNOTATION_SIZE_LIMIT} bytes",
                                no_value=True))
    return errs


def _policy_errors(policy: ProbeMarkerPolicy, path: str) -> list[FieldError]:
    if policy.state not in (PROBE_SUCCEEDED, PROBE_FAILED):
        return [field_error(f"{path}.state", "Required", detail="marker policy state must be 'True' or 'False'",
                            no_value=True)]
    if not policy.labels and not policy.annotations:
        return [field_error(path, "Required", detail="marker policy annotations or labels can't be both empty",
                            no_value=True)]
    errs = [_issue(i) for i in label_issues(policy.labels, f"{path}.labels")]
    errs.extend(_annotation_errors(policy.annotations, f"{path}.annotations"))
    return errs


def _selector_errors(ppm: PodProbeMarker) -> list[FieldError]:
    selector = ppm.spec.selector
    if selector is None:
        return [field_error("spec.selector", "Invalid", None, "empty Selector is not valid for PodProbeMarker.")]
    errs = [_issue(i) for i in selector_issues(selector, "spec.selector")]
    if is_empty(selector):
        errs.append(field_error("spec.selector", "Invalid", msgspec.to_builtins(selector),
                                "empty selector is not valid for podProbeMarker."))
    if conversion_error(selector) is not None:
        errs.append(field_error("spec.selector.selector", "Invalid", msgspec.to_builtins(selector)))
    return errs


def _spec_errors(ppm: PodProbeMarker) -> list[FieldError]:
    errs = _selector_errors(ppm)
    probes = ppm.spec.probes
    if not probes:
        errs.append(field_error("spec.probes", "Invalid", None, "empty probes is not valid for PodProbeMarker."))
        return errs
    names: set[str] = set()
    condition_types: set[str] = set()
    for i, probe in enumerate(probes):
        path = f"spec.probes[{i}]"
        if "#" in probe.name:
            errs.append(field_error(f"{path}.name", "Invalid", probe.name, "probe name can't contains '#'."))
            return errs
        if not probe.name:
            errs.append(field_error(f"{path}.name", "Invalid", probe.name,
                                    "probe name can't be empty in PodProbeMarker."))
            return errs
        if not probe.container_name:
            errs.append(field_error(f"{path}.containerName", "Invalid", probe.container_name,
                                    "probe containerName can't be empty in PodProbeMarker."))
            return errs
        if probe.name in RESERVED_PROBE_NAMES:
            errs.append(field_error(f"{path}.name", "Invalid", probe.name, f"probe name can't be {probe.name}"))
            return errs
        if probe.name in names:
            errs.append(field_error(f"{path}.name", "Invalid", probe.name,
                                    "probe name must be unique in PodProbeMarker."))
            return errs
        names.add(probe.name)
        errs.extend(_probe_errors(probe.probe, f"{path}.probe"))
        if not probe.pod_condition_type and not probe.marker_policy:
            errs.append(field_error(path, "Invalid", probe.name,
                                    "podConditionType and markerPolicy cannot be empty at the same time"))
            return errs
        ctype = probe.pod_condition_type
        if ctype and ctype in condition_types:
            errs.append(field_error(f"{path}.podConditionType", "Invalid", ctype,
                                    f"podConditionType {ctype} must be unique in podProbeMarker"))
            return errs
        if ctype:
            condition_types.add(ctype)
            errs.extend(field_error(f"{path}.podConditionType", "Invalid", ctype, m)
                        for m in qualified_name_errors(ctype))
        states: set[str] = set()
        for j, policy in enumerate(probe.marker_policy):
            ppath = f"{path}.markerPolicy[{j}]"
            if policy.state in states:
                errs.append(field_error(f"{ppath}.state", "Invalid", policy.state, "marker policy state must be unique."))
                return errs
            states.add(policy.state)
            errs.extend(_policy_errors(policy, ppath))
    return errs


def validate_podprobemarker(ppm: PodProbeMarker, old: PodProbeMarker | None = None,
                            gates: FeatureGates = DEFAULT_GATES) -> list[FieldError]:
    """Every violation of `ppm` (an update when `old` is given), Kruise's rules and messages."""
    for gate, on in (("PodProbeMarkerGate", gates.pod_probe_marker_gate), ("KruiseDaemon", gates.kruise_daemon)):
        if not on:
            return [field_error("spec", "Forbidden", detail=f"feature-gate {gate} is not enabled", no_value=True)]
    errs = _spec_errors(ppm)
    if old is not None and old.spec.selector != ppm.spec.selector:
        errs.append(field_error("spec.selector", "Invalid",
                                msgspec.to_builtins(ppm.spec.selector) if ppm.spec.selector else None,
                                "selector must be immutable"))
    return errs


__all__ = ["handler_errors", "port_name_errors", "port_num_errors", "validate_podprobemarker"]
