"""A BroadcastJob end to end on the sim with every service a process: one pod on each of 10 nodes, at most 3
at a time (parallelism 3), then Complete.

The sim's containers do not finish on their own yet, so the test finishes each running pod itself (a
status write to phase Succeeded, which the sim's kubelet then leaves alone), as a batch job's container
would by exiting 0.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from schemas.broadcastjob import BroadcastJob
from schemas.kube import Pod
from schemas.messages import BROADCAST_JOBS, PODS
from services.kube import Kube
from services.observe import pod_ready, poll
from services.stack import Stack
from tests.e2e.helpers import NS

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(180)]


async def pods_of(kube: Kube) -> list[Pod]:
    items, _ = await kube.list(PODS, NS, label_selector="broadcastjob-name=sweep")
    return [msgspec.json.decode(raw, type=Pod) for raw in items]


async def job(kube: Kube) -> BroadcastJob:
    return msgspec.json.decode(await kube.get(BROADCAST_JOBS, NS, "sweep"), type=BroadcastJob)


@pytest.mark.parametrize("stack", [{"nodes": 10}], indirect=True)
async def test_one_pod_per_node_three_at_a_time_then_complete(stack: Stack, kube: Kube) -> None:
    body: dict[str, Any] = {
        "apiVersion": "apps.kruise.io/v1alpha1", "kind": "BroadcastJob", "metadata": {"name": "sweep", "namespace": NS},
        "spec": {"parallelism": 3, "template": {"spec": {"restartPolicy": "Never",
                                                         "containers": [{"name": "main", "image": "busybox"}]}}}}
    await kube.create(BROADCAST_JOBS, NS, body)
    finished: set[str] = set()
    peak = 0
    while len(finished) < 10:
        # a pod is finished once it runs and is ready: the sim's kubelet has written its start by then
        # (finishing it earlier races that write, which would turn the pod back to Running)
        pods = await poll(lambda: pods_of(kube),
                          lambda ps: any(pod_ready(p) and p.metadata.name not in finished for p in ps),
                          timeout=60, what=f"a ready pod after {len(finished)} finished")
        active = [p for p in pods if p.status.phase not in ("Succeeded", "Failed") and not p.metadata.deletion_timestamp]
        peak = max(peak, len(active))
        assert len(active) <= 3, [(p.metadata.name, p.status.phase, p.metadata.name in finished) for p in active]
        nodes = [p.spec.node_name for p in pods]
        assert len(nodes) == len(set(nodes)), "two pods on one node"
        for p in active:
            if p.status.phase == "Running" and pod_ready(p):
                await kube.patch(PODS, NS, p.metadata.name, {"status": {"phase": "Succeeded"}}, "merge",
                                 subresource="status")
                finished.add(p.metadata.name)
    done = await poll(lambda: job(kube), lambda j: j.status.phase == "completed", timeout=60,
                      what="the BroadcastJob to complete")
    assert (done.status.desired, done.status.succeeded, done.status.active) == (10, 10, 0)
    assert [c.type for c in done.status.conditions] == ["Complete"]
    assert done.status.conditions[0].message == "Job completed, 10 pods succeeded, 0 pods failed"
    assert len({p.spec.node_name for p in await pods_of(kube)}) == 10
    assert peak == 3
