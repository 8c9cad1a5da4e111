"""The `kube` runtime: pulls by short-lived pods through the API server, against the embedded cluster
(its simulated kubelets pull, fail with ErrImagePull, and report imageIDs) and, marker `real`, against
kube-apiserver 1.20 with the same kubelets. The pull pod is gone after every outcome."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from schemas.constants import LABEL_IMAGE_PULL_POD
from schemas.messages import PODS
from services.errors import ImageNotFound, ImagePullTimeout
from services.kube import Kube
from services.observe import poll
from services.runtime import PullProgress, open_runtime
from services.runtime.kubepod import KubePodRuntime, pull_pod
from sim import SimCluster
from tests.component.runtime_fixtures import cluster, kube
from tests.conftest import RealCluster

__all__ = ["cluster", "kube"]  # the shared fixtures, used by name

NODE = "sim-node-1"


async def pull_pods(kube: Kube) -> list[dict[str, Any]]:
    items, _ = await kube.list(PODS, None, label_selector=f"{LABEL_IMAGE_PULL_POD}=true")
    return [msgspec.json.decode(i) for i in items]


async def no_pull_pods(kube: Kube) -> None:
    await poll(
        lambda: pull_pods(kube), lambda pods: not pods, timeout=10, interval=0.05, what="no pull pods left"
    )


async def test_pull_by_pod_reports_the_kubelets_image_id_and_deletes_the_pod(
    cluster: SimCluster, kube: Kube
) -> None:
    rt = await open_runtime("kube", node=NODE, kube=kube)
    assert isinstance(rt, KubePodRuntime)
    seen: list[PullProgress] = []
    pulled = await rt.pull("nginx:1.27", on_progress=seen.append, timeout=30)
    assert pulled.image_id.startswith("nginx:1.27@sha256:")
    assert cluster.kubelets[NODE].has_image("nginx:1.27")
    assert not cluster.kubelets["sim-node-0"].has_image("nginx:1.27")  # pinned: only that node pulled
    assert [p.phase for p in seen][0] == "Waiting" and seen[-1].phase == "Succeeded"
    assert len(rt.deleted) == 1
    await no_pull_pods(kube)
    status = await rt.image_status("nginx:1.27")  # from the Node's status.images
    assert status is not None and status.image_id == pulled.image_id
    assert await rt.image_status("redis:7") is None
    # IfNotPresent and the Node lists it: no second pod
    assert await rt.pull("nginx:1.27") == status and len(rt.deleted) == 1
    # Always: a pod again, the kubelet decides
    await rt.pull("nginx:1.27", policy="Always")
    assert len(rt.deleted) == 2


async def test_nonexistent_image_fails_with_the_kubelets_reason_and_deletes_the_pod(
    cluster: SimCluster, kube: Kube
) -> None:
    rt = await open_runtime("kube", node=NODE, kube=kube)
    with pytest.raises(ImageNotFound) as e:
        await rt.pull("app-does-not-exist:3", timeout=30)
    assert e.value.kube_reason == "ErrImagePull"
    assert 'failed to pull and unpack image "app-does-not-exist:3"' in e.value.message
    await no_pull_pods(kube)


async def test_timeout_deletes_the_pod(cluster: SimCluster, kube: Kube) -> None:
    rt = await open_runtime("kube", node=NODE, kube=kube)
    with pytest.raises(ImagePullTimeout):
        await rt.pull("huge:1", timeout=0.5)
    await no_pull_pods(kube)


async def test_cancelled_pull_deletes_the_pod(cluster: SimCluster, kube: Kube) -> None:
    rt = await open_runtime("kube", node=NODE, kube=kube)
    task = asyncio.ensure_future(rt.pull("huge:1", timeout=60))
    await poll(lambda: pull_pods(kube), bool, timeout=10, interval=0.05, what="the pull pod")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await no_pull_pods(kube)


async def test_pull_pod_uses_the_secrets_namespace_policy_and_sandbox_labels(
    cluster: SimCluster, kube: Kube
) -> None:
    from services.runtime import PullAuth, SandboxConfig, SecretRef

    cluster.store.create(cluster.store.rt("namespaces"), "", {"metadata": {"name": "pull-secrets"}})
    rt = await open_runtime("kube", node=NODE, kube=kube)
    task = asyncio.ensure_future(
        rt.pull(
            "huge:1",
            policy="Always",
            timeout=60,
            auth=PullAuth(secrets=(SecretRef(namespace="pull-secrets", name="regcred"),)),
            sandbox=SandboxConfig(labels={"team": "a"}),
        )
    )
    [pod] = await poll(lambda: pull_pods(kube), bool, timeout=10, interval=0.05, what="the pull pod")
    task.cancel()
    assert pod["metadata"]["namespace"] == "pull-secrets"
    assert pod["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == "Always"
    assert pod["metadata"]["labels"]["team"] == "a"
    with pytest.raises(asyncio.CancelledError):
        await task
    await no_pull_pods(kube)


async def test_open_sweeps_pull_pods_left_behind_on_its_node(cluster: SimCluster, kube: Kube) -> None:
    for node in (NODE, "sim-node-0"):
        await kube.create(
            PODS,
            "default",
            pull_pod(
                "huge:1", node, name=f"left-{node}", namespace="default", policy="IfNotPresent", timeout=60
            ),
        )
    await open_runtime("kube", node=NODE, kube=kube)
    names = {p["metadata"]["name"] for p in await pull_pods(kube)}
    assert names == {"left-sim-node-0"}  # another node's agent sweeps its own


@pytest.mark.real
async def test_pull_by_pod_on_a_real_api_server(real_cluster: RealCluster) -> None:
    kube = await Kube.connect(real_cluster.kubeconfig)
    try:
        node = f"{real_cluster.nodes.prefix}0"
        rt = await open_runtime("kube", node=node, kube=kube)
        pulled = await rt.pull("nginx:1.27-real", timeout=60)
        assert len(rt.deleted) == 1
        status = await rt.image_status("nginx:1.27-real")  # the sim kubelet's Node status.images
        assert status is not None and status.image_id == pulled.image_id
        assert await rt.pull("nginx:1.27-real") == status and len(rt.deleted) == 1  # IfNotPresent: no pod
        assert pulled.image_id.startswith("nginx:1.27-real@sha256:")
        with pytest.raises(ImageNotFound):
            await rt.pull("real-does-not-exist:1", timeout=60)
        await no_pull_pods(kube)
    finally:
        await kube.close()
