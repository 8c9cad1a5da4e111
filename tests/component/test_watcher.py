"""The watcher through its bus contract: cluster changes become messages on the state stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from schemas.cloneset import CloneSet
from schemas.constants import (
    CONFIGMAP_KRUISE_CONFIGURATION,
    DEFAULT_KRUISE_NAMESPACE,
    KEY_PATCH_METADATA_WHITELIST,
)
from schemas.kinds import CLONESET, POD
from schemas.kube import Pod
from schemas.messages import (
    CLONESETS,
    CONFIGMAPS,
    NAMESPACES,
    PODS,
    STATE_DECODER,
    STATE_SYNCED_DECODER,
    CloneSetState,
    ConfigMapState,
    PodState,
)
from services.bus import Bus
from services.errors import TransientError
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


async def test_a_fresh_watcher_retires_what_was_deleted_while_none_ran(
        tmp_path: Path, nats_server: NatsServer, uid: str) -> None:
    """A new watcher process remembers nothing: its first list must reconcile against the stream.

    A pod deleted while no watcher ran, and the old routing key of a pod adopted meanwhile, were
    left live on the stream for good (the planner then kept deleting a ghost).
    """
    async with SimCluster(nodes=1, tmpdir=tmp_path, gc_dangling=False, **FAST) as cluster:  # type: ignore[arg-type]
        kube = await Kube.connect(str(cluster.kubeconfig_path))
        bus = await Bus.connect(nats_server.url, name="test-watcher", prefix=f"w{uid}")
        try:
            await bus.ensure_streams()

            async def one_watcher_until_synced() -> asyncio.Task[None]:
                ready = asyncio.Event()
                task = asyncio.create_task(run_watcher(kube, bus, ready=ready))
                await asyncio.wait_for(ready.wait(), 10)
                return task

            gone = msgspec.json.decode(await kube.create(PODS, "default", pod_body("gone", "o1")), type=Pod)
            kept = msgspec.json.decode(await kube.create(PODS, "default", pod_body("kept", "o1")), type=Pod)
            moved = msgspec.json.decode(await kube.create(PODS, "default", pod_body("moved")), type=Pod)
            first = await one_watcher_until_synced()
            subject = {p.metadata.name: bus.subjects.state("default", "o1" if p is not moved else None, "pod",
                                                          p.metadata.uid) for p in (gone, kept, moved)}
            for name in subject:
                await eventually(lambda n=name: last_state(bus, subject[n]),  # type: ignore[misc]
                                 lambda s: s is not None and not s.deleted, what=f"{name} on the stream")
            first.cancel()
            await asyncio.wait({first}, timeout=10)

            # while no watcher runs: one pod deleted, one adopted
            await kube.delete(PODS, "default", "gone", grace_period_seconds=0)
            await kube.patch(PODS, "default", "moved", {"metadata": {"ownerReferences": [
                {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet", "name": "cs", "uid": "o2",
                 "controller": True}]}}, "strategic")
            await eventually(lambda: kube.list(PODS, "default"),
                             lambda r: {msgspec.json.decode(i, type=Pod).metadata.name for i in r[0]}
                             == {"kept", "moved"},
                             what="the deletion on the API server")

            second = await one_watcher_until_synced()
            try:
                # synced means the list's view is on the stream: no polling needed
                tomb = await last_state(bus, subject["gone"])
                assert tomb is not None and tomb.deleted, "the pod deleted meanwhile must be tombstoned"
                old_key = await last_state(bus, subject["moved"])
                assert old_key is not None and old_key.deleted, "the adopted pod's old key must be retired"
                new_key = await last_state(bus, bus.subjects.state("default", "o2", "pod", moved.metadata.uid))
                assert new_key is not None and not new_key.deleted
                still = await last_state(bus, subject["kept"])
                assert still is not None and not still.deleted, "a pod that still exists stays live"
            finally:
                second.cancel()
                await asyncio.wait({second}, timeout=10)
        finally:
            await bus.close()
            await kube.close()


async def test_a_kind_the_server_does_not_serve_does_not_hold_readiness(tmp_path: Path, nats_server: NatsServer,
                                                                       uid: str) -> None:
    """A cluster without one of the CRDs (or without batch/v1 Jobs): the other kinds are listed, watched and
    reported ready; the missing one is listed again later."""
    import dataclasses

    from schemas.kinds import POD
    from schemas.messages import Resource

    unserved = dataclasses.replace(POD, resource=Resource(group="example.com", version="v1", plural="widgets"))
    async with SimCluster(nodes=1, tmpdir=tmp_path, **FAST) as cluster:  # type: ignore[arg-type]
        kube = await Kube.connect(str(cluster.kubeconfig_path))
        bus = await Bus.connect(nats_server.url, name="test-watcher-unserved", prefix=f"u{uid}")
        await bus.ensure_streams()
        ready = asyncio.Event()
        task = asyncio.create_task(run_watcher(kube, bus, ready=ready, kinds=(unserved, POD)))
        try:
            await asyncio.wait_for(ready.wait(), 10)
            pod = msgspec.json.decode(await kube.create(PODS, "default", pod_body("seen", "o-1")), type=Pod)
            subject = bus.subjects.state("default", "o-1", "pod", pod.metadata.uid)
            await eventually(lambda: last_state(bus, subject), lambda s: s is not None, what="the pod's state")
        finally:
            task.cancel()
            await asyncio.wait({task}, timeout=10)
            await bus.close()
            await kube.close()
class _GatedBus(Bus):
    """A bus whose state publishes wait at a gate (a NATS that is slow to answer)."""

    gate: asyncio.Event
    waiting = 0

    async def publish_state(self, *args: Any, **kwargs: Any) -> Any:
        self.waiting += 1
        await self.gate.wait()
        return await super().publish_state(*args, **kwargs)


async def test_a_graceful_stop_publishes_what_is_queued_then_returns(tmp_path: Path, nats_server: NatsServer,
                                                                   uid: str) -> None:
    """SIGTERM: the watcher stops watching, but the states it has already taken from the API server
    still reach the stream before it hands its lease over (a lost lease cancels them instead)."""
    async with SimCluster(nodes=1, tmpdir=tmp_path, **FAST) as cluster:  # type: ignore[arg-type]
        kube = await Kube.connect(str(cluster.kubeconfig_path))
        bus = await _GatedBus.connect(nats_server.url, name="test-watcher", prefix=f"g{uid}")
        assert isinstance(bus, _GatedBus)
        bus.gate = asyncio.Event()
        try:
            await bus.ensure_streams()
            pod = msgspec.json.decode(await kube.create(PODS, "default", pod_body("queued")), type=Pod)
            stop = asyncio.Event()
            task = asyncio.create_task(run_watcher(kube, bus, kinds=(POD,), stop=stop))
            await eventually(lambda: _value(bus.waiting), bool, what="the listed pod's state queued")
            stop.set()
            for _ in range(10):  # let the stop reach the informer while its publish still waits
                await asyncio.sleep(0)
            assert not task.done()
            bus.gate.set()
            await asyncio.wait_for(task, 10)  # returns by itself: no cancellation needed
            state = await last_state(bus, bus.subjects.state("default", None, "pod", pod.metadata.uid))
            assert isinstance(state, PodState) and state.object.metadata.name == "queued"
        finally:
            bus.gate.set()
            await bus.close()
            await kube.close()


async def _value(v: Any) -> Any:
    return v


async def test_only_kruise_configuration_of_the_kruise_namespace_is_published(
        env: tuple[SimCluster, Kube, Bus]) -> None:
    """ConfigMaps are followed for one object only (the SidecarSet whitelist's): other ConfigMaps, and a
    ConfigMap of that name in another namespace, never reach the state stream; its edits and its
    deletion do."""
    _, kube, bus = env
    ns = DEFAULT_KRUISE_NAMESPACE
    await kube.create(NAMESPACES, None, {"metadata": {"name": ns}})

    def cm(name: str, value: str) -> dict[str, object]:
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
                "data": {KEY_PATCH_METADATA_WHITELIST: value}}

    await kube.create(CONFIGMAPS, "default", cm(CONFIGMAP_KRUISE_CONFIGURATION, "elsewhere"))
    await kube.create(CONFIGMAPS, ns, cm("unrelated", "other"))
    await kube.create(CONFIGMAPS, ns, cm(CONFIGMAP_KRUISE_CONFIGURATION, "v1"))

    async def states() -> list[ConfigMapState]:
        found = await bus.last_per_subject(bus.subjects.state_of_kind("configmap"), STATE_DECODER)
        return [e for e in found.values() if isinstance(e, ConfigMapState)]

    (first,) = await eventually(states, lambda evs: len(evs) == 1, what="the kruise-configuration state")
    assert (first.object.metadata.namespace, first.object.metadata.name) == (ns, CONFIGMAP_KRUISE_CONFIGURATION)
    assert first.object.data == {KEY_PATCH_METADATA_WHITELIST: "v1"}
    await kube.patch(CONFIGMAPS, ns, CONFIGMAP_KRUISE_CONFIGURATION, {"data": {KEY_PATCH_METADATA_WHITELIST: "v2"}},
                     patch_type="merge")
    await eventually(states, lambda evs: len(evs) == 1 and evs[0].object.data[KEY_PATCH_METADATA_WHITELIST] == "v2",
                     what="the edited whitelist")
    await kube.delete(CONFIGMAPS, ns, CONFIGMAP_KRUISE_CONFIGURATION)
    await eventually(states, lambda evs: len(evs) == 1 and evs[0].deleted, what="its tombstone")


class _FlakyBus(Bus):
    """A bus whose first CloneSet state publish fails for good (its retries ran through a leader election)."""

    failed = 0

    async def publish_state(self, event: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(event, CloneSetState) and not self.failed:
            self.failed += 1
            raise TransientError("publish to the CloneSet's state failed after 8 attempts: NoRespondersError",
                                 delay=1.0)
        return await super().publish_state(event, *args, **kwargs)


async def test_a_failed_publish_relists_without_waiting_for_the_next_event(
        tmp_path: Path, nats_server: NatsServer, uid: str) -> None:
    """A CloneSet changes once and its state cannot be published: nothing else changes it (the planner waits
    for that very state), so the watcher must relist on the failure itself. Before, the failure waited for
    the kind's next event, and the stream kept the CloneSet's older state for good."""
    from services.demo import load_sample

    async with SimCluster(nodes=1, tmpdir=tmp_path, **FAST) as cluster:  # type: ignore[arg-type]
        kube = await Kube.connect(str(cluster.kubeconfig_path))
        bus = await _FlakyBus.connect(nats_server.url, name="test-watcher-flaky", prefix=f"f{uid}")
        assert isinstance(bus, _FlakyBus)
        await bus.ensure_streams()
        ready = asyncio.Event()
        task = asyncio.create_task(run_watcher(kube, bus, ready=ready, kinds=(CLONESET,)))
        try:
            await asyncio.wait_for(ready.wait(), 10)
            cs = msgspec.json.decode(await kube.create(CLONESETS, "default", load_sample()), type=CloneSet)
            subject = bus.subjects.state("default", cs.metadata.uid, "cloneset", cs.metadata.uid)
            state = await eventually(lambda: last_state(bus, subject), lambda s: s is not None,
                                     what="the CloneSet's state after its publish failed")
            assert bus.failed == 1
            assert isinstance(state, CloneSetState)
            assert state.object.metadata.resource_version == cs.metadata.resource_version
        finally:
            task.cancel()
            await asyncio.wait({task}, timeout=10)
            await bus.close()
            await kube.close()


async def test_a_relist_publishes_the_pods_before_the_workloads(
        tmp_path: Path, nats_server: NatsServer, uid: str) -> None:
    """The planner plans a workload when its state arrives. After a watcher restart, a workload listed
    before its pods was planned on the pod states of before the outage (a chaos soak saw a DaemonSet
    replace a pod that had become Ready meanwhile as if it were not, and take a second node down)."""
    from datetime import UTC, datetime

    from services.demo import load_sample

    async with SimCluster(nodes=1, tmpdir=tmp_path, gc_dangling=False, scheduler=False,
                          **FAST) as cluster:  # type: ignore[arg-type]
        kube = await Kube.connect(str(cluster.kubeconfig_path))
        bus = await Bus.connect(nats_server.url, name="test-watcher", prefix=f"w{uid}")
        try:
            await bus.ensure_streams()
            await asyncio.gather(*(kube.create(PODS, "default", pod_body(f"p{i:03d}")) for i in range(150)))
            await kube.create(CLONESETS, "default", load_sample())
            since = datetime.now(UTC)
            ready = asyncio.Event()
            task = asyncio.create_task(run_watcher(kube, bus, ready=ready))
            try:
                await asyncio.wait_for(ready.wait(), 20)
                states = await bus.read_since(bus.subjects.state_all(), STATE_DECODER, since)
            finally:
                task.cancel()
                await asyncio.wait({task}, timeout=10)
            kinds = [type(s) for s in states]
            assert kinds.count(PodState) == 150 and kinds.count(CloneSetState) == 1
            last_pod = max(i for i, k in enumerate(kinds) if k is PodState)
            assert kinds.index(CloneSetState) > last_pod, "the CloneSet was published before its pods"
        finally:
            await bus.close()
            await kube.close()


async def test_the_state_barrier_is_answered_only_once_the_relist_is_on_the_stream(
        tmp_path: Path, nats_server: NatsServer, uid: str) -> None:
    """A planner that starts together with the watcher asks it whether the state stream is current
    before planning. A pod deleted while no watcher ran is still live on the stream until the new
    watcher's relist retires it: the answer must come after that tombstone, or the planner would count
    a pod that is gone (a chaos soak saw a DaemonSet take a second node down that way)."""
    async with SimCluster(nodes=1, tmpdir=tmp_path, gc_dangling=False, scheduler=False,
                          **FAST) as cluster:  # type: ignore[arg-type]
        kube = await Kube.connect(str(cluster.kubeconfig_path))
        bus = await Bus.connect(nats_server.url, name="test-watcher", prefix=f"w{uid}")
        planner = await Bus.connect(nats_server.url, name="test-planner", prefix=f"w{uid}")
        try:
            await bus.ensure_streams()
            gone = msgspec.json.decode(await kube.create(PODS, "default", pod_body("gone")), type=Pod)
            await kube.create(PODS, "default", pod_body("kept"))
            ready = asyncio.Event()
            first = asyncio.create_task(run_watcher(kube, bus, ready=ready))
            await asyncio.wait_for(ready.wait(), 10)
            first.cancel()
            await asyncio.wait({first}, timeout=10)
            assert await planner.ask(planner.subjects.state_sync(), b"", timeout=1.0) is None, \
                "nobody may answer while no watcher runs"

            await kube.delete(PODS, "default", "gone", grace_period_seconds=0)
            second = asyncio.create_task(run_watcher(kube, bus))
            try:
                reply = None
                deadline = asyncio.get_running_loop().time() + 20
                while reply is None and asyncio.get_running_loop().time() < deadline:
                    reply = await planner.ask(planner.subjects.state_sync(), b"", timeout=5.0)
                assert reply is not None, "the restarted watcher never answered the barrier"
                synced = STATE_SYNCED_DECODER.decode(reply)
                subject = bus.subjects.state("default", None, POD.token, gone.metadata.uid)
                tombstone = await bus.js.get_last_msg(bus.subjects.stream("STATE"), subject)
                assert tombstone.data is not None and STATE_DECODER.decode(tombstone.data).deleted
                assert tombstone.seq is not None and tombstone.seq <= synced.seq, \
                    f"answered through {synced.seq}, before the relist's tombstone at {tombstone.seq}"
            finally:
                second.cancel()
                await asyncio.wait({second}, timeout=10)
        finally:
            await planner.close()
            await bus.close()
            await kube.close()
