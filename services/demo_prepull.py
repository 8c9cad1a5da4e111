"""The demo's image pre-download step: warm the next image on every node, then roll it out in place.

In-place update is fast only when the new image is already on the node. This step shows it: an
ImagePullJob pulls `nginx:1.22` on every node, two at a time (the node agents do the pulls, the
progress bar follows the job's status), then the sample CloneSet moves to that image and no container
start waits for a pull, which the simulated kubelets' own record proves.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from dataclasses import dataclass
from typing import Any

import msgspec
from rich.progress import Progress

from schemas.messages import CLONESETS, IMAGE_PULL_JOBS
from services.kube import Kube
from services.observe import poll

WARM_IMAGE = "nginx:1.22"
JOB = "warm-nginx"
PARALLELISM = 2


@dataclass
class PrepullReport:
    nodes: int
    most_at_once: int
    pull_waits: int  # container starts that waited for WARM_IMAGE after the job


def kubelet_record(sim_url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{sim_url}/sim/nodes", timeout=10) as r:
        out: list[dict[str, Any]] = json.loads(r.read())
    return out


def most_at_once(pulls: list[tuple[float, float]]) -> int:
    edges = sorted([(s, 1) for s, _ in pulls] + [(e, -1) for _, e in pulls])
    now = most = 0
    for _, d in edges:
        now += d
        most = max(most, now)
    return most


async def run_prepull_step(kube: Kube, sim_url: str, progress: Progress, *, namespace: str = "default",
                           cloneset: str = "sample", nodes: int) -> PrepullReport:
    job = {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "ImagePullJob",
           "metadata": {"name": JOB, "namespace": namespace},
           "spec": {"image": WARM_IMAGE, "parallelism": PARALLELISM, "completionPolicy": {"type": "Always"}}}
    await kube.create(IMAGE_PULL_JOBS, namespace, job)
    task = progress.add_task(f"pre-download {WARM_IMAGE} on every node ({PARALLELISM} at a time)", total=nodes)

    async def status() -> dict[str, Any]:
        out: dict[str, Any] = msgspec.json.decode(await kube.get(IMAGE_PULL_JOBS, namespace, JOB)).get("status") or {}
        return out

    def show(st: dict[str, Any]) -> None:
        progress.update(task, completed=st.get("succeeded", 0) + st.get("failed", 0))

    st = await poll(status, lambda s: s.get("completionTime") is not None, timeout=120, on_sample=show,
                    what=f"ImagePullJob {JOB} completes")
    show(st)
    if st.get("succeeded") != nodes:
        raise AssertionError(f"ImagePullJob {JOB}: {st.get('succeeded')} of {nodes} nodes pulled ({st})")
    record = await asyncio.to_thread(kubelet_record, sim_url)
    pulls = [(p["start"], p["end"]) for k in record for p in k["pullLog"] if p["image"] == WARM_IMAGE]

    await kube.patch(CLONESETS, namespace, cloneset, {"spec": {"template": {"spec": {"containers": [
        {"name": "nginx", "image": WARM_IMAGE}]}}}}, patch_type="merge")
    roll = progress.add_task(f"in-place update to {WARM_IMAGE}", total=5)

    async def updated() -> dict[str, Any]:
        out: dict[str, Any] = msgspec.json.decode(await kube.get(CLONESETS, namespace, cloneset))
        return out

    await poll(updated, lambda c: (c.get("status") or {}).get("updatedReadyReplicas") == c["spec"]["replicas"]
               and c["status"].get("observedGeneration") == c["metadata"]["generation"], timeout=120,
               on_sample=lambda c: progress.update(roll, completed=(c.get("status") or {}).get("updatedReadyReplicas", 0)),
               what=f"{cloneset} on {WARM_IMAGE}")
    record = await asyncio.to_thread(kubelet_record, sim_url)
    waits = sum(1 for k in record for w in k["pullWaits"] if w["image"] == WARM_IMAGE)
    return PrepullReport(nodes=nodes, most_at_once=most_at_once(pulls), pull_waits=waits)


__all__ = ["PrepullReport", "run_prepull_step"]
