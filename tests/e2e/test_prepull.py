"""Image pre-download end to end, as processes: NATS, the sim, the webhook, watcher, planner, executor
and the node agents (`kruisebus executor --node ... --runtime sim`), with the gate on.

What is asserted comes from the simulated kubelets' own record (every pull with its start and end,
every container start that waited for an image), not from the status kruisebus writes.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from typing import Any

import msgspec
import pytest

from schemas.messages import CLONESETS, IMAGE_PULL_JOBS, NODE_IMAGES, PODS
from services.kube import Kube, KubeNotFound
from services.observe import poll
from services.stack import AGENT, Stack

pytestmark = pytest.mark.slow

GATES = {"KRUISEBUS_FEATURE_GATES": "PreDownloadImageForInPlaceUpdate=true"}
FAST_NODEIMAGES = {"planner": ("--nodeimage-creation-delay", "0")}


def _stack(nodes: int, pull_seconds: float, **extra: Any) -> dict[str, Any]:
    return {"nodes": nodes, "node_agents": True, "env": GATES, "service_args": FAST_NODEIMAGES,
            "sim_args": ("--pull-delay", str(pull_seconds)), **extra}


async def kubelets(stack: Stack) -> list[dict[str, Any]]:
    def fetch() -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{stack.sim_url}/sim/nodes", timeout=10) as r:
            out: list[dict[str, Any]] = json.loads(r.read())
        return out

    return await asyncio.to_thread(fetch)


async def pulls_of(stack: Stack, image: str) -> list[tuple[str, float, float]]:
    """(node, start, end) of every finished pull of `image`, from the kubelets' record."""
    return [(k["name"], p["start"], p["end"]) for k in await kubelets(stack) for p in k["pullLog"]
            if p["image"] == image]


def most_at_once(intervals: list[tuple[str, float, float]]) -> int:
    edges = sorted([(s, 1) for _, s, _ in intervals] + [(e, -1) for _, _, e in intervals])
    now = most = 0
    for _, d in edges:
        now += d
        most = max(most, now)
    return most


async def get(kube: Kube, resource: Any, ns: str | None, name: str) -> dict[str, Any] | None:
    try:
        out: dict[str, Any] = json.loads(await kube.get(resource, ns, name))
    except KubeNotFound:
        return None
    return out


async def listed(kube: Kube, resource: Any, ns: str | None = "default") -> list[dict[str, Any]]:
    items, _ = await kube.list(resource, ns)
    return [msgspec.json.decode(i) for i in items]


async def node_images_ready(kube: Kube, stack: Stack) -> None:
    """The planner makes one NodeImage per Ready node (creation delay 0 here)."""
    await poll(lambda: listed(kube, NODE_IMAGES, None), lambda nis: len(nis) == stack.nodes, timeout=60,
               what=f"{stack.nodes} NodeImages")


def job_body(name: str, image: str, parallelism: int, *, backoff: int = 3, timeout: int = 60) -> dict[str, Any]:
    return {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "ImagePullJob",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"image": image, "parallelism": parallelism, "completionPolicy": {"type": "Always"},
                     "pullPolicy": {"timeoutSeconds": timeout, "backoffLimit": backoff}}}


async def finished(kube: Kube, name: str, timeout: float = 120) -> dict[str, Any]:
    job = await poll(lambda: get(kube, IMAGE_PULL_JOBS, "default", name),
                     lambda j: j is not None and (j.get("status") or {}).get("completionTime") is not None,
                     timeout=timeout, what=f"ImagePullJob {name} completes")
    assert job is not None
    return job


@pytest.mark.parametrize("stack", [_stack(8, 1.5)], indirect=True, ids=["8-nodes"])
async def test_a_rollout_with_pre_download_never_waits_for_a_pull(stack: Stack, kube: Kube) -> None:
    """The seed CloneSet with the gate on and parallelism 2: the image change creates one job for the new
    image, aimed at the nodes of the pods not updated yet (5 of 8 nodes), pulling on 2 nodes at a time;
    once it is done the in-place updates find the image on every node; the job goes when the rollout is
    complete."""
    cs = {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet",
          "metadata": {"name": "web", "namespace": "default",
                       "annotations": {"apps.kruise.io/image-predownload-parallelism": "2"}},
          "spec": {"replicas": 5, "selector": {"matchLabels": {"app": "web"}},
                   "updateStrategy": {"type": "InPlaceIfPossible", "partition": 5, "maxUnavailable": "20%"},
                   "template": {"metadata": {"labels": {"app": "web"}},
                                "spec": {"containers": [{"name": "main", "image": "nginx:1.20"}]}}}}
    await kube.create(CLONESETS, "default", cs)
    await node_images_ready(kube, stack)
    await poll(lambda: get(kube, CLONESETS, "default", "web"),
               lambda c: c is not None and (c.get("status") or {}).get("availableReplicas") == 5, timeout=60,
               what="five pods available")
    pods = await listed(kube, PODS)
    uids = {p["metadata"]["uid"] for p in pods}
    pod_nodes = {p["spec"]["nodeName"] for p in pods}
    assert len(pod_nodes) == 5, "the scheduler spreads 5 pods over 5 of the 8 nodes"

    await kube.patch(CLONESETS, "default", "web", {"spec": {"template": {"spec": {"containers": [
        {"name": "main", "image": "nginx:1.21"}]}}}}, patch_type="merge")
    [job] = await poll(lambda: listed(kube, IMAGE_PULL_JOBS), lambda js: len(js) == 1, timeout=30,
                       what="one pre-download job")
    assert job["spec"]["image"] == "nginx:1.21" and job["spec"]["parallelism"] == 2
    done = await finished(kube, job["metadata"]["name"])
    assert (done["status"]["desired"], done["status"]["succeeded"], done["status"]["failed"]) == (5, 5, 0)
    pulled = await pulls_of(stack, "nginx:1.21")
    assert sorted(n for n, _, _ in pulled) == sorted(pod_nodes), "exactly the pods' nodes, once each"
    assert most_at_once(pulled) == 2, "parallelism 2: two nodes at a time"

    await kube.patch(CLONESETS, "default", "web", {"spec": {"updateStrategy": {"partition": 0}}}, patch_type="merge")
    await poll(lambda: get(kube, CLONESETS, "default", "web"),
               lambda c: c is not None and c["status"].get("updatedReadyReplicas") == 5, timeout=90,
               what="all five pods updated")
    await poll(lambda: listed(kube, IMAGE_PULL_JOBS), lambda js: js == [], timeout=60,
               what="the job deleted once the rollout completed")
    after = await listed(kube, PODS)
    assert {p["metadata"]["uid"] for p in after} == uids, "updated in place"
    waits = [w for k in await kubelets(stack) for w in k["pullWaits"] if w["image"] == "nginx:1.21"]
    assert waits == [], f"an in-place update waited for a pull: {waits}"


@pytest.mark.parametrize("stack", [_stack(20, 1.0)], indirect=True, ids=["20-nodes"])
async def test_a_job_over_20_nodes_pulls_on_at_most_3_at_once(stack: Stack, kube: Kube) -> None:
    await node_images_ready(kube, stack)
    await kube.create(IMAGE_PULL_JOBS, "default", job_body("warm", "redis:7", 3))
    job = await finished(kube, "warm")
    assert (job["status"]["desired"], job["status"]["succeeded"], job["status"]["failed"]) == (20, 20, 0)
    assert job["status"]["message"] == "job has completed"
    pulled = await pulls_of(stack, "redis:7")
    assert sorted(n for n, _, _ in pulled) == sorted(stack.node_names), "every node pulled once"
    assert most_at_once(pulled) == 3, "parallelism 3, from the kubelets' record"


@pytest.mark.parametrize("stack", [_stack(6, 3.0, service_args={**FAST_NODEIMAGES, "executor": ("--ack-wait", "5")})],
                         indirect=True, ids=["6-nodes"])
async def test_killed_agent_and_planner_mid_job(stack: Stack, kube: Kube) -> None:
    """SIGKILL of the node agents while pulls run, then of the planner: the job still completes with exact
    counters, and no node pulls more often than the job's attempts (backoffLimit 1: 2) allow."""
    await node_images_ready(kube, stack)
    await kube.create(IMAGE_PULL_JOBS, "default", job_body("survive", "postgres:16", 2, backoff=1))
    await poll(lambda: kubelets(stack), lambda ks: any(k["pullsActive"] for k in ks), timeout=30,
               what="a pull in progress")
    await stack.restart(AGENT)
    await poll(lambda: kubelets(stack), lambda ks: sum(k["pulls"] for k in ks) >= 3, timeout=60,
               what="more pulls done after the agents' restart")
    await stack.restart("planner")
    job = await finished(kube, "survive", timeout=180)
    assert (job["status"]["desired"], job["status"]["succeeded"], job["status"]["failed"]) == (6, 6, 0)
    per_node: dict[str, int] = {}
    for node, _, _ in await pulls_of(stack, "postgres:16"):
        per_node[node] = per_node.get(node, 0) + 1
    assert sorted(per_node) == sorted(stack.node_names)
    assert max(per_node.values()) <= 2, per_node
    for n in stack.node_names:
        ni = await get(kube, NODE_IMAGES, None, n)
        assert ni is not None
        [tag] = ni["status"]["imageStatuses"]["postgres"]["tags"]
        assert tag["phase"] == "Succeeded" and tag["imageID"], tag


@pytest.mark.parametrize("stack", [_stack(3, 0.2)], indirect=True, ids=["3-nodes"])
async def test_a_missing_image_fails_with_the_reason_on_node_image_and_job(stack: Stack, kube: Kube) -> None:
    await node_images_ready(kube, stack)
    await kube.create(IMAGE_PULL_JOBS, "default", job_body("nope", "example/does-not-exist:1", 3, backoff=0))
    job = await finished(kube, "nope", timeout=60)
    st = job["status"]
    assert (st["desired"], st["succeeded"], st["failed"]) == (3, 0, 3)
    assert st["failedNodes"] == sorted(stack.node_names)
    for n in stack.node_names:
        ni = await get(kube, NODE_IMAGES, None, n)
        assert ni is not None
        [tag] = ni["status"]["imageStatuses"]["example/does-not-exist"]["tags"]
        assert tag["phase"] == "Failed" and "does-not-exist" in tag["message"], tag
