"""PodProbeMarker `apps.kruise.io/v1alpha1`, field for field as OpenKruise serves it.

Kruise's `apis/apps/v1alpha1/pod_probe_marker_types.go`: user-defined probes run on each node against
the pods a marker selects, whose results become pod labels, annotations and a pod condition. Fields are
loosely typed where users write loosely typed YAML (a port is a number or a name), so a bad value
decodes and the validation rules report it with its field path instead of the decoder refusing the
whole object.
"""

from __future__ import annotations

import msgspec

from schemas.constants import API_VERSION, KIND_PODPROBEMARKER
from schemas.kube import IntOrString, LabelSelector, ObjectMeta, _K8s


class ExecAction(_K8s):
    command: list[str] = []


class HTTPHeader(_K8s):
    name: str = ""
    value: str = ""


class HTTPGetAction(_K8s):
    path: str = ""
    port: IntOrString = 0
    host: str = ""
    scheme: str = ""
    http_headers: list[HTTPHeader] = []


class TCPSocketAction(_K8s):
    port: IntOrString = 0
    host: str = ""


class ContainerProbeSpec(_K8s):
    """Kubernetes' `Probe` handler (exec | httpGet | tcpSocket) plus its timing and thresholds."""

    exec: ExecAction | None = None
    http_get: HTTPGetAction | None = None
    tcp_socket: TCPSocketAction | None = None
    initial_delay_seconds: int = 0
    timeout_seconds: int = 0
    period_seconds: int = 0
    success_threshold: int = 0
    failure_threshold: int = 0


class ProbeMarkerPolicy(_K8s):
    state: str = ""  # Succeeded | Failed
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}


class PodContainerProbe(_K8s):
    name: str = ""
    container_name: str = ""
    probe: ContainerProbeSpec = msgspec.field(default_factory=ContainerProbeSpec)
    marker_policy: list[ProbeMarkerPolicy] = []
    pod_condition_type: str = ""


class PodProbeMarkerSpec(_K8s):
    selector: LabelSelector | None = None
    probes: list[PodContainerProbe] = []


class PodProbeMarkerCondition(_K8s):
    type: str
    status: str
    reason: str = ""
    message: str = ""
    last_transition_time: str | None = None


class PodProbeMarkerStatus(_K8s):
    observed_generation: int = 0
    matched_pods: int = 0
    conditions: list[PodProbeMarkerCondition] = []  # kruisebus: InvalidSpec while the spec is rejected


class PodProbeMarker(_K8s):
    metadata: ObjectMeta
    spec: PodProbeMarkerSpec = msgspec.field(default_factory=PodProbeMarkerSpec)
    status: PodProbeMarkerStatus = msgspec.field(default_factory=PodProbeMarkerStatus)
    api_version: str = API_VERSION
    kind: str = KIND_PODPROBEMARKER


def probe_key(marker: str, probe: str) -> str:
    """`<ppm>#<probe>`: the name of one marker probe on a pod (Kruise's NodePodProbe probe name)."""
    return f"{marker}#{probe}"


def split_probe_key(key: str) -> tuple[str, str]:
    """(marker, probe) of a `<ppm>#<probe>` name; probe names cannot contain `#` (validation)."""
    marker, _, probe = key.partition("#")
    return marker, probe


__all__ = [
    "ContainerProbeSpec",
    "ExecAction",
    "HTTPGetAction",
    "HTTPHeader",
    "PodContainerProbe",
    "PodProbeMarker",
    "PodProbeMarkerCondition",
    "PodProbeMarkerSpec",
    "PodProbeMarkerStatus",
    "ProbeMarkerPolicy",
    "TCPSocketAction",
    "probe_key",
    "split_probe_key",
]
