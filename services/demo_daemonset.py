"""The demo's Advanced DaemonSet step: a node agent DaemonSet rolled out with image pre-download.

A DaemonSet runs one pod on every node; the new image is pre-downloaded on 3 nodes at a time (the
`apps.kruise.io/image-predownload-parallelism` annotation, gate PreDownloadImageForDaemonSetUpdate) while
a partition holds the rollout, then the partition goes to 0 and the pods are updated in place. The progress
bars follow the pulls (the simulated kubelets' record) and then the updates (the DaemonSet's status); the
kubelets' record shows no update waited for a pull.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import msgspec
from rich.progress import Progress

from schemas.messages import DAEMONSETS, IMAGE_PULL_JOBS, PODS
from services.demo_prepull import kubelet_record, most_at_once
from services.kube import Kube
from services.observe import poll
from services.planner.kit.inplace import normalise_image  # the image as a kubelet reports it

DAEMONSET = "node-agent"
OLD_IMAGE = "fluentd:v1.16"
NEW_IMAGE = "fluentd:v1.17"
PARALLELISM = 3


@dataclass
class DaemonSetReport:
    nodes: int
    most_at_once: int
    pull_waits: int
    same_pods: bool


async def run_daemonset_step(kube: Kube, sim_url: str, progress: Progress, *, namespace: str = "default",
                             nodes: int) -> DaemonSetReport:
    body = {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "DaemonSet",
            "metadata": {"name": DAEMONSET, "namespace": namespace,
                         "annotations": {"apps.kruise.io/image-predownload-parallelism": str(PARALLELISM)}},
            "spec": {"selector": {"matchLabels": {"app": DAEMONSET}},
                     "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {
                         "rollingUpdateType": "InPlaceIfPossible", "maxUnavailable": 2, "partition": nodes}},
                     "template": {"metadata": {"labels": {"app": DAEMONSET}},
                                  "spec": {"containers": [{"name": "agent", "image": OLD_IMAGE}]}}}}
    await kube.create(DAEMONSETS, namespace, body)

    async def ds() -> dict[str, Any]:
        out: dict[str, Any] = msgspec.json.decode(await kube.get(DAEMONSETS, namespace, DAEMONSET))
        return out

    def updated_all(d: dict[str, Any]) -> bool:
        st = d.get("status") or {}
        return (st.get("observedGeneration") == d["metadata"]["generation"] and st.get("desiredNumberScheduled") == nodes
                and st.get("updatedNumberScheduled") == nodes and st.get("numberAvailable") == nodes)

    start = progress.add_task(f"DaemonSet {DAEMONSET}: a pod on each of {nodes} nodes", total=nodes)
    await poll(ds, updated_all, timeout=120, what=f"{DAEMONSET} on every node",
               on_sample=lambda d: progress.update(start, completed=(d.get("status") or {}).get("numberAvailable", 0)))
    pods_before = await _pod_uids(kube, namespace)
    await kube.patch(DAEMONSETS, namespace, DAEMONSET, {"spec": {"template": {"spec": {"containers": [
        {"name": "agent", "image": NEW_IMAGE}]}}}}, patch_type="merge")
    pulls_task = progress.add_task(f"pre-download {NEW_IMAGE} ({PARALLELISM} nodes at a time)", total=nodes)

    async def pulls() -> list[tuple[float, float]]:
        record = await asyncio.to_thread(kubelet_record, sim_url)
        return [(p["start"], p["end"]) for k in record for p in k["pullLog"]
                if normalise_image(p["image"]) == normalise_image(NEW_IMAGE)]

    pulled = await poll(pulls, lambda ps: len(ps) >= nodes, timeout=120, what=f"{NEW_IMAGE} on every node",
                        on_sample=lambda ps: progress.update(pulls_task, completed=len(ps)))
    await kube.patch(DAEMONSETS, namespace, DAEMONSET, {"spec": {"updateStrategy": {"rollingUpdate": {
        "partition": 0}}}}, patch_type="merge")
    roll = progress.add_task(f"in-place update to {NEW_IMAGE}", total=nodes)
    await poll(ds, updated_all, timeout=120, what=f"{DAEMONSET} on {NEW_IMAGE}",
               on_sample=lambda d: progress.update(roll, completed=(d.get("status") or {}).get("updatedNumberScheduled", 0)))
    await poll(lambda: _jobs(kube, namespace), lambda js: js == 0, timeout=60, what="the pre-download job deleted")
    record = await asyncio.to_thread(kubelet_record, sim_url)
    waits = sum(1 for k in record for w in k["pullWaits"] if normalise_image(w["image"]) == normalise_image(NEW_IMAGE))
    return DaemonSetReport(nodes=nodes, most_at_once=most_at_once(pulled), pull_waits=waits,
                           same_pods=await _pod_uids(kube, namespace) == pods_before)


async def _pod_uids(kube: Kube, namespace: str) -> set[str]:
    items, _ = await kube.list(PODS, namespace, label_selector=f"app={DAEMONSET}")
    return {msgspec.json.decode(i)["metadata"]["uid"] for i in items}


async def _jobs(kube: Kube, namespace: str) -> int:
    items, _ = await kube.list(IMAGE_PULL_JOBS, namespace)
    return sum(1 for i in items if msgspec.json.decode(i)["metadata"]["name"].startswith(f"{DAEMONSET}-"))


__all__ = ["DaemonSetReport", "run_daemonset_step"]
