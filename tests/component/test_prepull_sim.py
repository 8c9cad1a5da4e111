"""An ImagePullJob on the embedded cluster, end to end in one process: the real watcher, planner
(ImagePullJobGate on), executor and one node agent per node (the `sim` runtime) on NATS. The job hands
its image to two nodes at a time, every node pulls once, NodeImage and job status end exact."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from schemas.messages import CLONESETS, IMAGE_PULL_JOBS, NODE_IMAGES, PODS
from services.bus import Bus
from services.executor.service import run_executor
from services.kube import Kube
from services.natsd import NatsServer
from services.nodeagent.service import NodeAgent, run_node_agent
from services.planner.kit.gates import parse_feature_gates
from services.planner.service import Planner, run_planner
from services.runtime import open_runtime
from services.watcher.service import run_watcher
from sim import SimCluster
from sim.nodes import NodeConfig
from tests.component.helpers import eventually

NODES = [f"sim-node-{i}" for i in range(4)]


class Counting:
    """A runtime that counts how many pulls run at once across all the nodes it wraps."""

    now = 0
    most = 0

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def pull(self, *args: Any, **kw: Any) -> Any:
        Counting.now += 1
        Counting.most = max(Counting.most, Counting.now)
        try:
            return await self.inner.pull(*args, **kw)
        finally:
            Counting.now -= 1


@pytest.fixture
async def stack(tmp_path: Path, nats_server: NatsServer, uid: str,
                request: pytest.FixtureRequest) -> AsyncIterator[tuple[Kube, list[NodeAgent], SimCluster]]:
    gates = getattr(request, "param", "ImagePullJobGate=true")
    cfg = NodeConfig(bandwidth_mb_s=200.0, default_image_size_mb=60.0, start_delay=0.01)  # 0.3 s pulls
    async with SimCluster(nodes=len(NODES), tmpdir=tmp_path, node_config=cfg) as cluster:
        kube = await Kube.connect(str(cluster.kubeconfig_path))
        bus = await Bus.connect(nats_server.url, name=f"prepull-{uid}", prefix=f"s{uid}")
        await bus.ensure_streams()
        stop = asyncio.Event()
        runtimes = [await open_runtime("sim", node=n, kube=kube) for n in NODES]
        Counting.now = Counting.most = 0
        agents = [NodeAgent(bus, n, Counting(rt)) for n, rt in zip(NODES, runtimes, strict=True)]  # type: ignore[arg-type]
        planner = Planner(bus, gates=parse_feature_gates(gates), expectation_timeout=30)
        tasks = [asyncio.create_task(run_watcher(kube, bus)),
                 asyncio.create_task(run_planner(bus, stop=stop, planner=planner)),
                 asyncio.create_task(run_executor(kube, bus, stop=stop))]
        tasks += [asyncio.create_task(run_node_agent(bus, a.node, a.runtime, stop=stop, agent=a)) for a in agents]
        try:
            yield kube, agents, cluster
        finally:
            stop.set()
            tasks[0].cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for rt in runtimes:
                await rt.close()
            await bus.close()
            await kube.close()


async def _get(kube: Kube, resource: Any, namespace: str | None, name: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(await kube.get(resource, namespace, name))
    return out


async def on_the_state_stream(nats_server: NatsServer, uid: str, kind: str, count: int) -> None:
    """Until `count` states of `kind` are on the stream. The planner reads the stream in order, so an
    object created after this is seen after them: a job created right after its NodeImages could
    otherwise overtake them (each kind has its own watch) and find no target at its first pass."""
    bus = await Bus.connect(nats_server.url, name=f"prepull-wait-{uid}", prefix=f"s{uid}")
    try:
        await eventually(lambda: bus.stream_messages("STATE", bus.subjects.state_of_kind(kind)),
                         lambda msgs: len(msgs) >= count, timeout=30, what=f"{count} {kind} states on the stream")
    finally:
        await bus.close()


async def test_an_image_pull_job_completes_on_the_sim(stack: tuple[Kube, list[NodeAgent], SimCluster],
                                                      nats_server: NatsServer, uid: str) -> None:
    kube, agents, _ = stack
    for n in NODES:  # NodeImages exist (the planner makes them only 30 s after a node turned Ready)
        await kube.create(NODE_IMAGES, None, {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "NodeImage",
                                              "metadata": {"name": n}, "spec": {}})
    await on_the_state_stream(nats_server, uid, "nodeimage", len(NODES))
    await kube.create(IMAGE_PULL_JOBS, "default", {
        "apiVersion": "apps.kruise.io/v1alpha1", "kind": "ImagePullJob",
        "metadata": {"name": "warm", "namespace": "default"},
        "spec": {"image": "nginx:1.21", "parallelism": 2, "completionPolicy": {"type": "Always"},
                 "pullPolicy": {"timeoutSeconds": 60, "backoffLimit": 1}, "imagePullPolicy": "IfNotPresent"},
    })
    job = await eventually(lambda: _get(kube, IMAGE_PULL_JOBS, "default", "warm"),
                           lambda j: (j.get("status") or {}).get("completionTime") is not None,
                           timeout=60, what="the job completes")
    status = job["status"]
    assert (status["desired"], status["succeeded"], status["failed"], status["active"]) == (4, 4, 0, 0)
    assert status["message"] == "job has completed"
    await eventually(lambda: _get(kube, IMAGE_PULL_JOBS, "default", "warm"),
                     lambda j: "apps.kruise.io/deletion-protection" not in j["metadata"].get("finalizers", []),
                     timeout=30, what="the protection finalizer dropped once the job finished")
    assert [a.pulls for a in agents] == [1, 1, 1, 1]  # every node pulled once
    assert Counting.most == 2  # parallelism 2: two nodes at a time, never more
    for n in NODES:
        ni = await _get(kube, NODE_IMAGES, None, n)
        [tag] = ni["status"]["imageStatuses"]["nginx"]["tags"]
        assert tag["phase"] == "Succeeded" and tag["imageID"] and ni["status"]["succeeded"] == 1
        assert ni["spec"]["images"]["nginx"]["tags"][0]["ownerReferences"][0]["name"] == "warm"


async def _node_images(kube: Kube) -> None:
    for n in NODES:  # NodeImages exist (the planner makes them only 30 s after a node turned Ready)
        await kube.create(NODE_IMAGES, None, {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "NodeImage",
                                              "metadata": {"name": n}, "spec": {}})


async def _list(kube: Kube, resource: Any, namespace: str) -> list[dict[str, Any]]:
    items, _ = await kube.list(resource, namespace)
    return [msgspec.json.decode(i) for i in items]


@pytest.mark.parametrize("stack", ["PreDownloadImageForInPlaceUpdate=true"], indirect=True, ids=["gate-on"])
async def test_a_cloneset_rollout_pre_downloads_the_new_image(
        stack: tuple[Kube, list[NodeAgent], SimCluster], nats_server: NatsServer, uid: str) -> None:
    kube, agents, cluster = stack
    await _node_images(kube)
    await on_the_state_stream(nats_server, uid, "nodeimage", len(NODES))
    cs = {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet",
          "metadata": {"name": "web", "namespace": "default",
                       "annotations": {"apps.kruise.io/image-predownload-parallelism": "2"}},
          "spec": {"replicas": 5, "selector": {"matchLabels": {"app": "web"}},
                   "updateStrategy": {"type": "InPlaceIfPossible", "partition": 5, "maxUnavailable": "20%"},
                   "template": {"metadata": {"labels": {"app": "web"}},
                                "spec": {"containers": [{"name": "main", "image": "nginx:1.20"}]}}}}
    await kube.create(CLONESETS, "default", cs)
    await eventually(lambda: _get(kube, CLONESETS, "default", "web"),
                     lambda c: (c.get("status") or {}).get("availableReplicas") == 5, timeout=60,
                     what="five pods available")
    await kube.patch(CLONESETS, "default", "web", {"spec": {"template": {"spec": {"containers": [
        {"name": "main", "image": "nginx:1.21"}]}}}}, patch_type="merge")
    jobs = await eventually(lambda: _list(kube, IMAGE_PULL_JOBS, "default"), lambda js: len(js) == 1,
                            timeout=30, what="one pre-download job")
    job = jobs[0]
    assert job["spec"]["image"] == "nginx:1.21" and job["spec"]["parallelism"] == 2
    name = job["metadata"]["name"]
    done = await eventually(lambda: _get(kube, IMAGE_PULL_JOBS, "default", name),
                            lambda j: (j.get("status") or {}).get("completionTime") is not None, timeout=60,
                            what="the pre-download job completes (partition 5: no pod updated yet)")
    pods = await _list(kube, PODS, "default")
    nodes = {p["spec"]["nodeName"] for p in pods}
    assert done["status"]["desired"] == len(nodes) and done["status"]["succeeded"] == len(nodes)
    assert sum(a.pulls for a in agents) == len(nodes)  # the nodes of the pods, once each
    pulled = {n: k.pull_count for n, k in cluster.kubelets.items()}
    await kube.patch(CLONESETS, "default", "web", {"spec": {"updateStrategy": {"partition": 0}}}, patch_type="merge")
    await eventually(lambda: _list(kube, IMAGE_PULL_JOBS, "default"), lambda js: js == [], timeout=90,
                     what="the job deleted once the rollout completed")
    await eventually(lambda: _get(kube, CLONESETS, "default", "web"),
                     lambda c: c["status"].get("updatedReadyReplicas") == 5, timeout=60, what="all pods updated")
    # no in-place update waited for a pull: the kubelets pulled nothing more during the rollout
    assert {n: k.pull_count for n, k in cluster.kubelets.items()} == pulled
