"""Objects the PodProbeMarker tests build again and again: Kruise's test marker, pods, results."""

from __future__ import annotations

from typing import Any

import msgspec

from schemas.kube import Pod
from schemas.messages import ProbeResult
from schemas.podprobemarker import PodProbeMarker

NOW = "2026-01-01T00:00:00Z"


def ppm(name: str = "ppm-1", **spec: Any) -> PodProbeMarker:
    """Kruise's `ppmDemo` (probe_validating_test.go): probe `healthy` on `main`, two policies."""
    body: dict[str, Any] = {
        "metadata": {"name": name, "namespace": "default", "uid": f"{name}-uid", "generation": 1,
                     "resourceVersion": "1", "finalizers": ["kruise.io/node-pod-probe-cleanup"]},
        "spec": {
            "selector": {"matchLabels": {"app": "test"}},
            "probes": [{
                "name": "healthy", "containerName": "main",
                "probe": {"exec": {"command": ["/bin/sh", "-c", "/healthy.sh"]}},
                "podConditionType": "game.kruise.io/healthy",
                "markerPolicy": [
                    {"state": "Succeeded", "annotations": {"controller.kubernetes.io/pod-deletion-cost": "10"},
                     "labels": {"server-healthy": "true"}},
                    {"state": "Failed", "annotations": {"controller.kubernetes.io/pod-deletion-cost": "-10"},
                     "labels": {"server-healthy": "false"}},
                ],
            }],
        },
        "status": {"observedGeneration": 1, "matchedPods": 1},
    }
    body["spec"].update(spec)
    return msgspec.convert(body, PodProbeMarker)


def pod(name: str = "pod-1", *, labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None,
        conditions: list[dict[str, Any]] | None = None, ports: list[dict[str, Any]] | None = None,
        node: str = "node-1", initialized: bool = True) -> Pod:
    conds = [{"type": "Initialized", "status": "True" if initialized else "False"}, *(conditions or [])]
    return msgspec.convert({
        "metadata": {"name": name, "namespace": "default", "uid": f"{name}-uid", "resourceVersion": "7",
                     "labels": {"app": "test", **(labels or {})}, "annotations": annotations or {}},
        "spec": {"nodeName": node, "containers": [{"name": "main", "image": "nginx", "ports": ports or []}]},
        "status": {"phase": "Running", "podIP": "127.1.0.1", "conditions": conds},
    }, Pod)


def result(probe: str = "ppm-1#healthy", state: str = "Succeeded", message: str = "", *, pod_name: str = "pod-1",
           transition: str = NOW) -> ProbeResult:
    return msgspec.convert({"namespace": "default", "pod": pod_name, "pod_uid": f"{pod_name}-uid", "probe": probe,
                            "state": state, "message": message, "time": NOW, "last_transition_time": transition},
                           ProbeResult)
