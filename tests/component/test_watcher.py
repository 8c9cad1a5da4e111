"""The watcher through its bus contract: cluster changes become messages on the state stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from schemas.kube import Pod
from schemas.messages import PODS, CloneSetState, PodState
from services.bus import Bus
from services.kube import Kube
from services.natsd import NatsServer
from services.watcher.service import run_watcher
from sim.cluster import SimCluster
from sim.faults import Faults
from tests.component.helpers import eventually, last_state

FAST = {"pull_delay": 0.05, "start_delay": 0.05, "bookmark_interval": 0.2}


def pod_body(name: str, owner_uid: str | None = None) -> dict[str, object]:
    meta: dict[str, object] = {"name": name, "labels": {"app": "w"}}
    if owner_uid:
        meta["ownerReferences"] = [{"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet", "name": "cs",
                                    "uid": owner_uid, "controller": True}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"containers": [{"name": "c", "image": "nginx:1.20"}]}}


@pytest.fixture
async def env(tmp_path: Path, nats_server: NatsServer, uid: str) -> AsyncIterator[tuple[SimCluster, Kube, Bus]]:
    async with SimCluster(nodes=2, tmpdir=tmp_path, watch_history=20, gc_dangling=False, **FAST) as cluster:  # type: ignore[arg-type]
        kube = await Kube.connect(str(cluster.kubeconfig_path))
        bus = await Bus.connect(nats_server.url, name="test-watcher", prefix=f"w{uid}")
        await bus.ensure_streams()
        ready = asyncio.Event()
        task = asyncio.create_task(run_watcher(kube, bus, ready=ready))
        try:
            await asyncio.wait_for(ready.wait(), 10)
            yield cluster, kube, bus
        finally:
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=10)
            assert done, "the watcher did not stop when cancelled"
            await bus.close()
            await kube.close()


async def test_pod_changes_and_deletion_reach_the_state_stream(env: tuple[SimCluster, Kube, Bus]) -> None:
    cluster, kube, bus = env
    pod = msgspec.json.decode(await kube.create(PODS, "default", pod_body("web.1", "owner-1")), type=Pod)
    subject = bus.subjects.state("default", "owner-1", "pod", pod.metadata.uid)
    assert "web.1" not in subject, "a pod name with a dot must never become subject tokens"

    # the kubelet runs it: the state message follows the pod to Running
    state = await eventually(lambda: last_state(bus, subject),
                             lambda s: isinstance(s, PodState) and s.object.status.phase == "Running",
                             what="the running pod on the state stream")
    assert isinstance(state, PodState) and state.object.metadata.name == "web.1" and not state.deleted

    await kube.delete(PODS, "default", "web.1", grace_period_seconds=0)
    gone = await eventually(lambda: last_state(bus, subject), lambda s: s is not None and s.deleted,
                            what="a tombstone for the deleted pod")
    assert isinstance(gone, PodState) and gone.object.metadata.uid == pod.metadata.uid


async def test_adoption_tombstones_the_old_routing_key(env: tuple[SimCluster, Kube, Bus]) -> None:
    _, kube, bus = env
    pod = msgspec.json.decode(await kube.create(PODS, "default", pod_body("orphan")), type=Pod)
    old = bus.subjects.state("default", None, "pod", pod.metadata.uid)
    await eventually(lambda: last_state(bus, old), lambda s: s is not None and not s.deleted,
                     what="the orphan on the no-owner subject")
    await kube.patch(PODS, "default", "orphan", {"metadata": {"ownerReferences": [
        {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet", "name": "cs", "uid": "adopter",
         "controller": True}]}}, "strategic")
    new = bus.subjects.state("default", "adopter", "pod", pod.metadata.uid)
    await eventually(lambda: last_state(bus, new), lambda s: s is not None and not s.deleted,
                     what="the adopted pod under its owner's key")
    retired = await last_state(bus, old)
    assert retired is not None and retired.deleted, "the old routing key must hold a tombstone"


async def test_relists_after_watch_history_is_gone(env: tuple[SimCluster, Kube, Bus]) -> None:
    """A cut watch whose resourceVersion expired (410) relists; deletions missed meanwhile are tombstoned."""
    cluster, kube, bus = env
    pod = msgspec.json.decode(await kube.create(PODS, "default", pod_body("victim", "o2")), type=Pod)
    subject = bus.subjects.state("default", "o2", "pod", pod.metadata.uid)
    await eventually(lambda: last_state(bus, subject), lambda s: s is not None and not s.deleted,
                     what="the pod on the state stream")
    # Cut every watch after each event; churn more objects than the sim keeps history for.
    cluster.faults.update(watch_cut_after=1, resources=["pods"])
    await kube.delete(PODS, "default", "victim", grace_period_seconds=0)
    for i in range(30):
        await kube.create(PODS, "default", pod_body(f"churn-{i}", "o3"))
    gone = await eventually(lambda: last_state(bus, subject), lambda s: s is not None and s.deleted,
                            timeout=20, what="the tombstone after relist")
    assert gone is not None and gone.deleted
    cluster.faults.reset()


async def test_cloneset_is_routed_by_its_own_uid(env: tuple[SimCluster, Kube, Bus]) -> None:
    _, kube, bus = env
    from schemas.cloneset import CloneSet
    from schemas.messages import CLONESETS
    from services.demo import load_sample

    cs = msgspec.json.decode(await kube.create(CLONESETS, "default", load_sample()), type=CloneSet)
    subject = bus.subjects.state("default", cs.metadata.uid, "cloneset", cs.metadata.uid)
    state = await eventually(lambda: last_state(bus, subject), lambda s: s is not None,
                             what="the CloneSet on the state stream")
    assert isinstance(state, CloneSetState)
    assert state.object.spec.template.containers()[0].image == "nginx:1.20"
    assert Faults().active is False
