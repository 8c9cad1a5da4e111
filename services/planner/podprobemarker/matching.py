"""Which marker probes run on which pods: Kruise's PodProbeMarker controller, without NodePodProbe.

Kruise's manager merges every marker's probes into one NodePodProbe per node, which kruise-daemon then
runs (`pkg/controller/podprobemarker/pod_probe_marker_controller.go`). kruisebus has no such object:
the prober of a node computes the same list itself from the markers and pods it follows on KB_STATE,
and the planner counts `matchedPods` from the same rules. Both call this module, so "which pods does a
marker probe" is decided once.

A pod is matched when it is in the marker's namespace, selected, active (not terminating, not finished),
scheduled and `Initialized`. Each probe becomes one `PodProbe` named `<ppm>#<probe>`; a named port in
tcpSocket/httpGet is resolved to the number the container declares, and a probe whose port name the
container does not declare is skipped (as Kruise skips it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec

from schemas.constants import CONDITION_INITIALIZED
from schemas.kube import IntOrString, Pod
from schemas.podprobemarker import ContainerProbeSpec, PodProbeMarker, probe_key
from services.planner.kit.selectors import matches


class PodProbe(msgspec.Struct, frozen=True, kw_only=True):
    """One probe to run on one pod: a worker of the node's prober."""

    namespace: str
    pod: str
    pod_uid: str
    ip: str
    name: str  # `<ppm>#<probe>`
    container: str
    probe: ContainerProbeSpec  # ports resolved to numbers

    @property
    def key(self) -> tuple[str, str]:
        return (self.pod_uid, self.name)


def is_matched(ppm: PodProbeMarker, pod: Pod) -> bool:
    """Kruise's matching rule (see the module docstring)."""
    meta = pod.metadata
    if meta.namespace != ppm.metadata.namespace or meta.deletion_timestamp:
        return False
    if pod.status.phase in ("Succeeded", "Failed") or not pod.spec.node_name:
        return False
    initialized = pod.status.condition(CONDITION_INITIALIZED)
    if initialized is None or initialized.status != "True":
        return False
    return ppm.spec.selector is not None and matches(ppm.spec.selector, meta.labels)


def matched_pods(ppm: PodProbeMarker, pods: Iterable[Pod]) -> list[Pod]:
    return [p for p in pods if is_matched(ppm, p)]


def _resolve(port: IntOrString, pod: Pod, container: str) -> int | None:
    if isinstance(port, int):
        return port
    for c in pod.spec.containers:
        if c.name == container:
            for p in c.ports:
                if p.name == port:
                    return p.container_port
    return None


def resolve_ports(probe: ContainerProbeSpec, pod: Pod, container: str) -> ContainerProbeSpec | None:
    """The probe with a named tcpSocket/httpGet port replaced by its number; None when unresolvable."""
    if probe.tcp_socket is not None:
        number = _resolve(probe.tcp_socket.port, pod, container)
        if number is None:
            return None
        return msgspec.structs.replace(probe, tcp_socket=msgspec.structs.replace(probe.tcp_socket, port=number))
    if probe.http_get is not None:
        number = _resolve(probe.http_get.port, pod, container)
        if number is None:
            return None
        return msgspec.structs.replace(probe, http_get=msgspec.structs.replace(probe.http_get, port=number))
    return probe


def pod_probes(ppms: Sequence[PodProbeMarker], pod: Pod) -> list[PodProbe]:
    """Every probe of every (valid, live) marker that matches `pod`, in marker then probe order."""
    out: list[PodProbe] = []
    for ppm in ppms:
        if ppm.metadata.deletion_timestamp or not is_matched(ppm, pod):
            continue
        for probe in ppm.spec.probes:
            spec = resolve_ports(probe.probe, pod, probe.container_name)
            if spec is None:
                continue
            out.append(PodProbe(namespace=pod.metadata.namespace, pod=pod.metadata.name, pod_uid=pod.metadata.uid,
                                ip=pod.status.pod_ip, name=probe_key(ppm.metadata.name, probe.name),
                                container=probe.container_name, probe=spec))
    return out


__all__ = ["PodProbe", "is_matched", "matched_pods", "pod_probes", "resolve_ports"]
