"""Node placement, checked on the sim's scheduler and taint manager (`[sim]`) and on kube-scheduler and
kube-controller-manager 1.20 with the sim's kubelets as nodes (`[real]`): node affinity on
`metadata.name`, nodeSelector, NoSchedule and NoExecute taints, and nodes tainted and labelled at run
time with `kubectl taint` / `kubectl label`.

The nodes are shared by the session, so every test uses a taint or label key of its own (the test's
namespace) and removes it afterwards.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import pytest
from conftest import Cluster

KUBECTL = shutil.which("kubectl")


def pod(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "containers": [{"name": "main", "image": "registry.k8s.io/pause:3.9"}],
            "terminationGracePeriodSeconds": 1,
            **spec,
        },
    }


def pinned(node: str) -> dict[str, Any]:
    """Required node affinity on the node's name: how DaemonSet-style controllers place pods."""
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
                ]
            }
        }
    }


@pytest.fixture
async def node(cluster: Cluster) -> AsyncIterator[str]:
    """A Ready node; every taint and label keyed with the test's namespace is removed from it afterwards."""
    name = await cluster.node_name()
    try:
        yield name
    finally:
        n = await cluster.core.read_node(name)
        taints = [t for t in n.spec.taints or [] if t.key != cluster.ns]
        await cluster.core.patch_node(
            name,
            {
                "metadata": {"labels": {cluster.ns: None}},
                "spec": {"taints": [cluster.api.sanitize_for_serialization(t) for t in taints] or None},
            },
        )


async def set_taints(cluster: Cluster, node: str, *effects: str) -> None:
    n = await cluster.core.read_node(node)
    keep = [cluster.api.sanitize_for_serialization(t) for t in n.spec.taints or [] if t.key != cluster.ns]
    mine = [{"key": cluster.ns, "value": "x", "effect": e} for e in effects]
    await cluster.core.patch_node(node, {"spec": {"taints": keep + mine or None}})


async def bound_node(cluster: Cluster, name: str) -> str:
    async def bound() -> str | None:
        p = await cluster.core.read_namespaced_pod(name, cluster.ns)
        return p.spec.node_name if p.spec.node_name and p.status.phase == "Running" else None

    result: str = await cluster.wait_for(bound, what=f"pod {name} to run")
    return result


async def unschedulable(cluster: Cluster, name: str) -> str:
    """The scheduler's verdict on a pod it cannot place: PodScheduled False, Unschedulable."""

    async def verdict() -> str | None:
        p = await cluster.core.read_namespaced_pod(name, cluster.ns)
        for c in p.status.conditions or []:
            if c.type == "PodScheduled" and c.status == "False" and c.reason == "Unschedulable":
                return str(c.message)
        return None

    msg: str = await cluster.wait_for(verdict, what=f"pod {name} to be reported unschedulable")
    p = await cluster.core.read_namespaced_pod(name, cluster.ns)
    assert p.spec.node_name is None and p.status.phase == "Pending"
    return msg


async def test_node_affinity_on_metadata_name_pins_pods(cluster: Cluster, node: str) -> None:
    for i in range(3):
        await cluster.core.create_namespaced_pod(cluster.ns, pod(f"pin-{i}", affinity=pinned(node)))
    assert [await bound_node(cluster, f"pin-{i}") for i in range(3)] == [node] * 3


async def test_affinity_to_a_node_that_does_not_exist_stays_pending(cluster: Cluster) -> None:
    await cluster.core.create_namespaced_pod(cluster.ns, pod("nowhere", affinity=pinned("no-such-node")))
    msg = await unschedulable(cluster, "nowhere")
    assert msg.startswith("0/") and "node(s) didn't match Pod's node affinity" in msg


async def test_untolerated_no_schedule_taint_keeps_a_pod_pending(cluster: Cluster, node: str) -> None:
    await set_taints(cluster, node, "NoSchedule")
    await cluster.core.create_namespaced_pod(cluster.ns, pod("kept-out", affinity=pinned(node)))
    tolerant = pod(
        "tolerant",
        affinity=pinned(node),
        tolerations=[{"key": cluster.ns, "operator": "Equal", "value": "x", "effect": "NoSchedule"}],
    )
    await cluster.core.create_namespaced_pod(cluster.ns, tolerant)
    msg = await unschedulable(cluster, "kept-out")
    assert f"node(s) had taint {{{cluster.ns}: x}}, that the pod didn't tolerate" in msg
    assert await bound_node(cluster, "tolerant") == node
    await set_taints(cluster, node)  # the taint goes: the pending pod is placed
    assert await bound_node(cluster, "kept-out") == node


async def test_prefer_no_schedule_taint_does_not_filter(cluster: Cluster, node: str) -> None:
    await set_taints(cluster, node, "PreferNoSchedule")
    await cluster.core.create_namespaced_pod(cluster.ns, pod("preferred", affinity=pinned(node)))
    assert await bound_node(cluster, "preferred") == node


async def test_no_execute_taint_evicts_pods_that_do_not_tolerate_it(cluster: Cluster, node: str) -> None:
    await cluster.core.create_namespaced_pod(cluster.ns, pod("evicted", affinity=pinned(node)))
    stays = pod("stays", affinity=pinned(node), tolerations=[{"key": cluster.ns, "operator": "Exists"}])
    await cluster.core.create_namespaced_pod(cluster.ns, stays)
    assert await bound_node(cluster, "evicted") == node
    assert await bound_node(cluster, "stays") == node
    await set_taints(cluster, node, "NoExecute")
    await cluster.wait_for(
        lambda: cluster.gone(lambda: cluster.core.read_namespaced_pod("evicted", cluster.ns)),
        what="the pod without a toleration to be evicted",
    )
    p = await cluster.core.read_namespaced_pod("stays", cluster.ns)
    assert p.metadata.deletion_timestamp is None and p.status.phase == "Running"
    # and a new pod without the toleration is not placed there
    await cluster.core.create_namespaced_pod(cluster.ns, pod("late", affinity=pinned(node)))
    assert f"had taint {{{cluster.ns}: x}}" in await unschedulable(cluster, "late")


async def test_pod_with_node_name_bypasses_the_scheduler(cluster: Cluster, node: str) -> None:
    await set_taints(cluster, node, "NoSchedule")  # the scheduler would keep it out; nodeName skips it
    await cluster.core.create_namespaced_pod(cluster.ns, pod("direct", nodeName=node))
    assert await bound_node(cluster, "direct") == node


@pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed")
async def test_kubectl_label_and_taint_nodes_at_run_time(cluster: Cluster, node: str) -> None:
    def kubectl(*args: str) -> str:
        assert KUBECTL is not None
        out = subprocess.run([KUBECTL, "--kubeconfig", cluster.kubeconfig, *args],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout

    key = cluster.ns
    assert "labeled" in await asyncio.to_thread(kubectl, "label", "node", node, f"{key}=yes")
    await cluster.core.create_namespaced_pod(cluster.ns, pod("selected", nodeSelector={key: "yes"}))
    assert await bound_node(cluster, "selected") == node

    assert "tainted" in await asyncio.to_thread(kubectl, "taint", "nodes", node, f"{key}=x:NoSchedule")
    n = await cluster.core.read_node(node)
    assert [(t.key, t.value, t.effect) for t in n.spec.taints if t.key == key] == [(key, "x", "NoSchedule")]
    await cluster.core.create_namespaced_pod(cluster.ns, pod("blocked", nodeSelector={key: "yes"}))
    assert f"had taint {{{key}: x}}" in await unschedulable(cluster, "blocked")
    assert "untainted" in await asyncio.to_thread(kubectl, "taint", "nodes", node, f"{key}:NoSchedule-")
    assert await bound_node(cluster, "blocked") == node

    await asyncio.to_thread(kubectl, "label", "node", node, f"{key}-")
    n = await cluster.core.read_node(node)
    assert key not in (n.metadata.labels or {})
    await cluster.core.create_namespaced_pod(cluster.ns, pod("unmatched", nodeSelector={key: "yes"}))
    assert "didn't match Pod's node affinity" in await unschedulable(cluster, "unmatched")


async def test_nodes_added_and_removed_at_run_time(cluster: Cluster) -> None:
    cluster.require_sim("nodes are added through the sim's control API (POST/DELETE /sim/nodes)")
    assert cluster.sim is not None
    import aiohttp

    name = f"{cluster.ns}-extra"
    async with aiohttp.ClientSession(cluster.sim.url) as http:
        async with http.post("/sim/nodes", json={"name": name, "labels": {"pool": cluster.ns}}) as r:
            assert r.status == 201, await r.text()
        async with http.post("/sim/nodes", json={"name": name}) as r:
            assert r.status == 409
        async with http.post("/sim/nodes", json={"labels": {}}) as r:
            assert r.status == 400 and "name is required" in (await r.json())["message"]
        n = await cluster.core.read_node(name)
        assert n.metadata.labels["pool"] == cluster.ns
        assert any(c.type == "Ready" and c.status == "True" for c in n.status.conditions)
        await cluster.core.create_namespaced_pod(cluster.ns, pod("on-extra", nodeSelector={"pool": cluster.ns}))
        assert await bound_node(cluster, "on-extra") == name
        async with http.delete(f"/sim/nodes/{name}") as r:
            assert r.status == 200
        async with http.delete(f"/sim/nodes/{name}") as r:
            assert r.status == 404
    await cluster.wait_for(lambda: cluster.gone(lambda: cluster.core.read_node(name)), what="the node to go")
    await cluster.wait_for(
        lambda: cluster.gone(lambda: cluster.core.read_namespaced_pod("on-extra", cluster.ns)),
        what="the removed node's pod to be deleted (pod GC)",
    )

