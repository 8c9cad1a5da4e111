"""The demo's SidecarSet step: the seed canary, version 2 on 10% of the pods, new pods on version 1.

A SidecarSet `log-agent` (custom version 1) is injected by the webhook's pod hook into the ten pods of
CloneSet `web`; the planner records its revision in `kruise-system`. Then version 2 is rolled out with
`partition: 90%` while `injectionStrategy.revision.customVersion: "1"` keeps new pods on version 1:
exactly one pod's sidecar is upgraded in place (same uid), and a pod added by scaling to 11 gets
version 1. Every claim is checked against the API server (docs/sidecarset.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from rich.progress import Progress

from schemas.constants import LABEL_SIDECARSET_CUSTOM_VERSION, LABEL_SIDECARSET_NAME
from schemas.kube import Pod
from schemas.messages import CLONESETS, CONTROLLER_REVISIONS, NAMESPACES, PODS, SIDECARSETS
from services.errors import KubeConflict
from services.kube import Kube
from services.observe import poll

NAME = "log-agent"
CLONESET = "web"
KRUISE_NS = "kruise-system"
V1, V2 = "log-agent:1.0", "log-agent:2.0"
REPLICAS = 10


@dataclass
class SidecarReport:
    revisions: list[str]
    upgraded: str  # the pod upgraded in place
    images: dict[str, str]  # pod -> sidecar image after the canary
    new_pod: str
    new_pod_image: str


def _sidecarset() -> dict[str, Any]:
    return {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "SidecarSet",
            "metadata": {"name": NAME, "labels": {LABEL_SIDECARSET_CUSTOM_VERSION: "1"}},
            "spec": {"selector": {"matchLabels": {"app": CLONESET}},
                     "containers": [{"name": NAME, "image": V1}], "updateStrategy": {"type": "NotUpdate"}}}


def _cloneset(namespace: str, replicas: int) -> dict[str, Any]:
    return {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet",
            "metadata": {"name": CLONESET, "namespace": namespace},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": CLONESET}},
                     "template": {"metadata": {"labels": {"app": CLONESET}},
                                  "spec": {"containers": [{"name": "main", "image": "nginx:1.20"}]}}}}


def sidecar_image(pod: Pod) -> str:
    return next((c.image for c in pod.spec.containers if c.name == NAME), "")


async def _pods(kube: Kube, namespace: str) -> list[Pod]:
    items, _ = await kube.list(PODS, namespace, label_selector=f"app={CLONESET}")
    pods = (msgspec.json.decode(i, type=Pod) for i in items)
    return sorted((p for p in pods if not p.metadata.deletion_timestamp), key=lambda p: p.metadata.name)


async def _status(kube: Kube) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.json.decode(await kube.get(SIDECARSETS, None, NAME)).get("status") or {}
    return out


def _ready(p: Pod) -> bool:
    c = p.status.condition("Ready")
    return c is not None and c.status == "True"


async def run_sidecarset_step(kube: Kube, progress: Progress, *, namespace: str) -> SidecarReport:
    task = progress.add_task("SidecarSet canary: version 2 on 10% of pods, new pods on version 1", total=4)
    try:
        await kube.create(NAMESPACES, None, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": KRUISE_NS}})
    except KubeConflict:
        pass
    await kube.create(SIDECARSETS, None, _sidecarset())
    await kube.create(CLONESETS, namespace, _cloneset(namespace, REPLICAS))
    pods = await poll(lambda: _pods(kube, namespace), lambda ps: len(ps) == REPLICAS and all(
        sidecar_image(p) == V1 and _ready(p) for p in ps), timeout=120, what=f"{REPLICAS} pods with {NAME} {V1}")
    progress.advance(task)
    status = await poll(lambda: _status(kube), lambda s: s.get("matchedPods") == REPLICAS
                        and s.get("readyPods") == REPLICAS and bool(s.get("latestRevision")), timeout=60,
                        what="the SidecarSet's status")
    v1_revision = status["latestRevision"]
    progress.advance(task)
    uids = {p.metadata.name: p.metadata.uid for p in pods}
    await kube.patch(SIDECARSETS, None, NAME, {
        "metadata": {"labels": {LABEL_SIDECARSET_CUSTOM_VERSION: "2"}},
        "spec": {"containers": [{"name": NAME, "image": V2}],
                 "updateStrategy": {"type": "RollingUpdate", "partition": "90%"},
                 "injectionStrategy": {"revision": {"customVersion": "1", "policy": "Always"}}}}, "merge")
    await poll(lambda: _status(kube), lambda s: s.get("updatedReadyPods") == 1 and s.get("latestRevision") != v1_revision,
               timeout=60, what="one pod's sidecar upgraded to version 2")
    pods = await _pods(kube, namespace)
    upgraded = [p for p in pods if sidecar_image(p) == V2]
    if len(upgraded) != 1 or uids.get(upgraded[0].metadata.name) != upgraded[0].metadata.uid:
        raise AssertionError(f"expected exactly one pod upgraded in place, got {[p.metadata.name for p in upgraded]}")
    progress.advance(task)
    await kube.patch(CLONESETS, namespace, CLONESET, {"spec": {"replicas": REPLICAS + 1}}, "merge")
    grown = await poll(lambda: _pods(kube, namespace), lambda ps: len(ps) == REPLICAS + 1, timeout=60,
                       what="the 11th pod")
    new = next(p for p in grown if p.metadata.name not in uids)
    if sidecar_image(new) != V1:
        raise AssertionError(f"the new pod {new.metadata.name} got {sidecar_image(new)}, expected {V1}")
    items, _ = await kube.list(CONTROLLER_REVISIONS, KRUISE_NS, label_selector=f"{LABEL_SIDECARSET_NAME}={NAME}")
    progress.advance(task)
    return SidecarReport(revisions=sorted(msgspec.json.decode(i)["metadata"]["name"] for i in items),
                         upgraded=upgraded[0].metadata.name,
                         images={p.metadata.name: sidecar_image(p) for p in pods},
                         new_pod=new.metadata.name, new_pod_image=sidecar_image(new))


__all__ = ["NAME", "SidecarReport", "run_sidecarset_step"]
