"""Advanced DaemonSets end to end on the sim, every service a process.

A rolling update over 20 nodes with maxUnavailable 2 and partition 5 updates exactly 15 nodes and never
has more than 2 nodes without an available pod; a node added mid-rollout gets the new revision; a
NoExecute taint (`kubectl taint`) removes the pod and none comes back until the taint is gone; a node
labelled to match the DaemonSet's nodeSelector (`kubectl label`) gets a pod. InPlaceIfPossible keeps
every pod (same uid, restartCount + 1); maxSurge runs at most two pods per node and at most 3 extra;
`paused` stops the rollout where it is. With PreDownloadImageForDaemonSetUpdate, the new image is pulled on
3 nodes at a time (the kubelets' record) before any update needs it. An orphan pod the selector matches is
adopted and its node gets no second pod.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from typing import Any

import aiohttp
import msgspec
import pytest

from schemas.daemonset import DaemonSet
from schemas.kube import Pod
from schemas.messages import CONTROLLER_REVISIONS, DAEMONSETS, IMAGE_PULL_JOBS, PODS
from services.kube import Kube
from services.observe import pod_ready, poll, restart_count
from services.planner.kit.revision import hash_revision, revision_bytes, revision_name, template_patch_data
from services.stack import Stack
from tests.e2e.helpers import NS
from tests.e2e.test_prepull import kubelets, listed, most_at_once, node_images_ready, pulls_of

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(240)]


def body(name: str, strategy: dict[str, Any], **pod_spec: Any) -> dict[str, Any]:
    return {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "DaemonSet", "metadata": {"name": name, "namespace": NS},
            "spec": {"selector": {"matchLabels": {"app": name}}, "updateStrategy": strategy,
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "main", "image": "nginx:1.0"}], **pod_spec}}}}


async def get_ds(kube: Kube, name: str) -> DaemonSet:
    return msgspec.json.decode(await kube.get(DAEMONSETS, NS, name), type=DaemonSet)


async def pods_of(kube: Kube, name: str) -> list[Pod]:
    items, _ = await kube.list(PODS, NS, label_selector=f"app={name}")
    return [msgspec.json.decode(raw, type=Pod) for raw in items]


async def settled(kube: Kube, name: str, nodes: int, *, timeout: float = 90) -> DaemonSet:
    """Every node runs one Ready pod of the DaemonSet's current revision."""
    def done(ds: DaemonSet) -> bool:
        s = ds.status
        return (s.observed_generation == ds.metadata.generation and s.desired_number_scheduled == nodes
                and s.number_available == nodes and s.updated_number_scheduled == nodes)

    return await poll(lambda: get_ds(kube, name), done, timeout=timeout, what=f"{name} on {nodes} nodes")


async def set_image(kube: Kube, name: str, image: str) -> None:
    await kube.patch(DAEMONSETS, NS, name, {"spec": {"template": {"spec": {"containers": [
        {"name": "main", "image": image}]}}}}, "merge")


def per_node(pods: list[Pod]) -> dict[str, list[Pod]]:
    out: dict[str, list[Pod]] = {}
    for p in pods:
        if p.spec.node_name and p.metadata.deletion_timestamp is None:
            out.setdefault(p.spec.node_name, []).append(p)
    return out


async def kubectl(stack: Stack, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec("kubectl", "--kubeconfig", stack.kubeconfig, *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()
    return out.decode()


@pytest.mark.parametrize("stack", [{"nodes": 20}], indirect=True)
async def test_partitioned_rolling_update_new_nodes_taints_and_labels(stack: Stack, kube: Kube) -> None:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl not installed (make test installs Debian's kubernetes-client)")
    await kube.create(DAEMONSETS, NS, body("agent", {"type": "RollingUpdate", "rollingUpdate": {
        "maxUnavailable": 2, "partition": 5}}))
    ds = await settled(kube, "agent", 20)
    old_hash = ds.status.daemon_set_hash
    await set_image(kube, "agent", "nginx:2.0")

    worst = 0

    async def watch() -> tuple[DaemonSet, list[Pod]]:
        nonlocal worst
        pods = await pods_of(kube, "agent")
        nodes = per_node(pods)
        available = sum(1 for ps in nodes.values() if any(pod_ready(p) for p in ps))
        worst = max(worst, 20 - available)
        return await get_ds(kube, "agent"), pods

    def rolled(state: tuple[DaemonSet, list[Pod]]) -> bool:
        ds, pods = state
        return ds.status.daemon_set_hash != old_hash and ds.status.updated_number_scheduled == 15 \
            and ds.status.number_available == 20

    ds, pods = await poll(watch, rolled, timeout=120, what="15 of 20 nodes updated (partition 5)")
    assert worst <= 2, f"{worst} nodes without an available pod (maxUnavailable 2)"
    new_hash = ds.status.daemon_set_hash
    hashes = [p.metadata.labels["controller-revision-hash"] for p in pods]
    assert sorted(hashes).count(old_hash) == 5 and hashes.count(new_hash) == 15
    assert ds.status.observed_generation == ds.metadata.generation  # a full pass saw it: the partition holds

    # a node added mid-rollout gets a pod of the new revision
    async with aiohttp.ClientSession() as s, s.post(f"{stack.sim_url}/sim/nodes", json={"name": "late-node"}) as r:
        assert r.status == 201, await r.text()
    pods = await poll(lambda: pods_of(kube, "agent"),
                      lambda ps: any(p.spec.node_name == "late-node" and pod_ready(p) for p in ps), timeout=60,
                      what="a ready pod on the added node")
    assert [p.metadata.labels["controller-revision-hash"] for p in pods if p.spec.node_name == "late-node"] == [new_hash]

    # a NoExecute taint removes the pod, and it is not recreated while the taint stays
    await kubectl(stack, "taint", "nodes", "late-node", "dedicated=x:NoExecute")
    await poll(lambda: get_ds(kube, "agent"), lambda d: d.status.desired_number_scheduled == 20, timeout=60,
               what="the tainted node no longer desired")
    await poll(lambda: pods_of(kube, "agent"), lambda ps: not any(p.spec.node_name == "late-node" for p in ps),
               timeout=60, what="the pod on the tainted node gone")
    ds = await settled_status(kube, "agent")
    assert ds.status.number_misscheduled == 0 and "late-node" not in per_node(await pods_of(kube, "agent"))

    # a node labelled to match a nodeSelector gets the pod of a second DaemonSet
    await kube.create(DAEMONSETS, NS, body("blue", {}, nodeSelector={"color": "blue"}))
    await poll(lambda: get_ds(kube, "blue"), lambda d: d.status.observed_generation == 1, timeout=60,
               what="the blue DaemonSet observed")
    assert await pods_of(kube, "blue") == []
    await kubectl(stack, "label", "nodes", "sim-node-7", "color=blue")
    pods = await poll(lambda: pods_of(kube, "blue"), lambda ps: len(ps) == 1 and pod_ready(ps[0]), timeout=60,
                      what="the blue pod on the labelled node")
    assert pods[0].spec.node_name == "sim-node-7"
    out = await kubectl(stack, "get", "ads", "blue")
    assert "blue" in out


async def settled_status(kube: Kube, name: str) -> DaemonSet:
    return await poll(lambda: get_ds(kube, name),
                      lambda d: d.status.observed_generation == d.metadata.generation
                      and d.status.number_available == d.status.desired_number_scheduled, timeout=60,
                      what=f"{name}'s status settled")


@pytest.mark.parametrize("stack", [{"nodes": 5}], indirect=True)
async def test_in_place_surge_and_paused(stack: Stack, kube: Kube) -> None:
    # InPlaceIfPossible: the same pods run the new image, each container restarted once
    await kube.create(DAEMONSETS, NS, body("inplace", {"type": "RollingUpdate", "rollingUpdate": {
        "rollingUpdateType": "InPlaceIfPossible", "maxUnavailable": 5}}))
    await settled(kube, "inplace", 5)
    before = {p.metadata.uid: p.spec.node_name for p in await pods_of(kube, "inplace")}
    await set_image(kube, "inplace", "nginx:2.0")
    pods = await poll(lambda: pods_of(kube, "inplace"),
                      lambda ps: len(ps) == 5 and all(pod_ready(p) and p.spec.containers[0].image == "nginx:2.0"
                                                      for p in ps), timeout=90, what="every pod on nginx:2.0")
    assert {p.metadata.uid: p.spec.node_name for p in pods} == before
    assert [restart_count(p) for p in pods] == [1] * 5
    await settled(kube, "inplace", 5)

    # surge: a new pod beside the old one on at most 3 nodes at a time, never two new or three pods
    await kube.create(DAEMONSETS, NS, body("surge", {"type": "RollingUpdate", "rollingUpdate": {
        "maxSurge": 3, "maxUnavailable": 0}}))
    await settled(kube, "surge", 5)
    # every pod event, from a watch (a poll can miss a surge pod that lives a fraction of a second)
    items, rv = await kube.list(PODS, NS, label_selector="app=surge")
    live = {p.metadata.uid: p for p in (msgspec.json.decode(raw, type=Pod) for raw in items)}
    peak, crowded = 0, 0

    async def follow() -> None:
        nonlocal peak, crowded
        async for ev in kube.watch(PODS, rv, namespace=NS, label_selector="app=surge"):
            if ev.type not in ("ADDED", "MODIFIED", "DELETED"):
                continue
            pod = msgspec.json.decode(ev.object, type=Pod)
            if ev.type == "DELETED":
                live.pop(pod.metadata.uid, None)
            else:
                live[pod.metadata.uid] = pod
            nodes = per_node(list(live.values()))
            crowded = max([crowded, *(len(ps) for ps in nodes.values())])
            peak = max(peak, sum(len(ps) - 1 for ps in nodes.values()))

    watching = asyncio.create_task(follow())
    try:
        await set_image(kube, "surge", "nginx:2.0")
        await poll(lambda: pods_of(kube, "surge"), lambda ps: len(per_node(ps)) == 5 and all(
            len(v) == 1 and v[0].spec.containers[0].image == "nginx:2.0" and pod_ready(v[0])
            for v in per_node(ps).values()), timeout=90, what="every node on nginx:2.0 with one pod")
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
    assert crowded <= 2, crowded
    assert 1 <= peak <= 3, peak

    # paused: the rollout stops where it is; a deleted pod still comes back on the new revision
    await kube.create(DAEMONSETS, NS, body("paused", {"type": "RollingUpdate", "rollingUpdate": {
        "maxUnavailable": 1, "paused": True}}))
    await settled(kube, "paused", 5)
    await set_image(kube, "paused", "nginx:2.0")
    ds = await poll(lambda: get_ds(kube, "paused"), lambda d: d.status.observed_generation == 2, timeout=60,
                    what="the paused DaemonSet observed")
    assert ds.status.updated_number_scheduled == 0
    victim = (await pods_of(kube, "paused"))[0]
    await kube.delete(PODS, NS, victim.metadata.name)
    ds = await poll(lambda: get_ds(kube, "paused"), lambda d: d.status.updated_number_scheduled == 1
                    and d.status.number_available == 5, timeout=60, what="the deleted pod back on the new revision")
    await kube.patch(DAEMONSETS, NS, "paused", {"spec": {"updateStrategy": {"rollingUpdate": {"paused": False}}}},
                     "merge")
    await settled(kube, "paused", 5)


PREDOWNLOAD = {"nodes": 20, "node_agents": True, "env": {"KRUISEBUS_FEATURE_GATES": "PreDownloadImageForDaemonSetUpdate=true"},
               "service_args": {"planner": ("--nodeimage-creation-delay", "0")}, "sim_args": ("--pull-delay", "1.0")}


@pytest.mark.parametrize("stack", [PREDOWNLOAD], indirect=True, ids=["20-nodes"])
async def test_pre_download_pulls_on_3_nodes_at_a_time_and_no_update_waits(stack: Stack, kube: Kube) -> None:
    """Parallelism 3 over 20 nodes, held by partition 20 until the job is done, then updated in place: the
    kubelets' own record shows at most 3 pulls at once, every node pulled once, no container start waited
    for the image; the job is deleted once the rollout is complete."""

    obj = body("agent", {"type": "RollingUpdate", "rollingUpdate": {
        "rollingUpdateType": "InPlaceIfPossible", "maxUnavailable": 4, "partition": 20}})
    obj["metadata"]["annotations"] = {"apps.kruise.io/image-predownload-parallelism": "3"}
    await kube.create(DAEMONSETS, NS, obj)
    await node_images_ready(kube, stack)
    await settled(kube, "agent", 20)
    uids = {p.metadata.uid for p in await pods_of(kube, "agent")}
    await set_image(kube, "agent", "nginx:2.0")
    [job] = await poll(lambda: listed(kube, IMAGE_PULL_JOBS), lambda js: len(js) == 1, timeout=30,
                       what="one pre-download job")
    assert job["spec"]["image"] == "nginx:2.0" and job["spec"]["parallelism"] == 3
    await poll(lambda: pulls_of(stack, "nginx:2.0"), lambda ps: len(ps) == 20, timeout=90,
               what="the image pulled on the 20 nodes")
    pulled = await pulls_of(stack, "nginx:2.0")
    assert sorted(n for n, _, _ in pulled) == sorted(stack.node_names), "every node pulled once"
    assert most_at_once(pulled) == 3, "parallelism 3, from the kubelets' record"
    await kube.patch(DAEMONSETS, NS, "agent", {"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}},
                     "merge")
    await settled(kube, "agent", 20)
    assert {p.metadata.uid for p in await pods_of(kube, "agent")} == uids, "updated in place"
    waits = [w for k in await kubelets(stack) for w in k["pullWaits"] if w["image"] == "nginx:2.0"]
    assert waits == [], f"an update waited for a pull: {waits}"
    await poll(lambda: listed(kube, IMAGE_PULL_JOBS), lambda js: js == [], timeout=60,
               what="the job deleted once the rollout completed")


async def test_an_orphan_pod_is_adopted_and_its_node_gets_no_second_pod(stack: Stack, kube: Kube) -> None:
    """A pod without a controller that the selector matches, running on a node, becomes the DaemonSet's
    (Kruise's ClaimPods): it gets the controller reference and its node no pod of its own."""
    node = stack.node_names[1]
    await kube.create(PODS, NS, {"apiVersion": "v1", "kind": "Pod",
                                 "metadata": {"name": "stray", "namespace": NS, "labels": {"app": "claimer"}},
                                 "spec": {"nodeName": node, "containers": [{"name": "main", "image": "nginx:1.0"}]}})
    await kube.create(DAEMONSETS, NS, body("claimer", {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}))
    ds = await get_ds(kube, "claimer")

    async def stray() -> Pod:
        return msgspec.json.decode(await kube.get(PODS, NS, "stray"), type=Pod)

    adopted = await poll(stray, lambda p: p.metadata.controller_ref() is not None, timeout=60, what="stray adopted")
    ref = adopted.metadata.controller_ref()
    assert ref is not None and (ref.kind, ref.uid) == ("DaemonSet", ds.metadata.uid)
    await poll(lambda: pods_of(kube, "claimer"), lambda ps: len(per_node(ps)) == stack.nodes, timeout=60,
               what="a pod on every node")
    assert [p.metadata.name for p in per_node(await pods_of(kube, "claimer"))[node]] == ["stray"]


async def test_a_revision_name_held_by_an_object_the_planner_cannot_see_raises_the_collision_count(
        stack: Stack, kube: Kube) -> None:
    """The name of the next template's revision is already held by a ControllerRevision of no owner (so
    not in the planner's view): the create meets AlreadyExists, the executor reports the name taken, and
    the planner hashes again with `status.collisionCount` 1, as Kubernetes' CreateControllerRevision does.
    Before, the create counted as done and the rollout waited for a revision that never appeared."""
    await kube.create(DAEMONSETS, NS, body("held", {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}))
    await settled(kube, "held", stack.nodes)
    stored = msgspec.json.decode(await kube.get(DAEMONSETS, NS, "held"))
    stored["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2.0"
    upcoming = msgspec.convert(stored, DaemonSet)
    taken = revision_name("held", hash_revision(revision_bytes(template_patch_data(upcoming.spec.template)),
                                                upcoming.status.collision_count))
    await kube.create(CONTROLLER_REVISIONS, NS, {
        "apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": {"name": taken, "namespace": NS},
        "revision": 1, "data": {"someone": "else"}})
    await set_image(kube, "held", "nginx:2.0")
    ds = await settled(kube, "held", stack.nodes)
    assert ds.status.collision_count == 1
    assert {p.spec.containers[0].image for p in await pods_of(kube, "held")} == {"nginx:2.0"}
    foreign = msgspec.json.decode(await kube.get(CONTROLLER_REVISIONS, NS, taken))
    assert foreign["data"] == {"someone": "else"} and not foreign["metadata"].get("ownerReferences")
