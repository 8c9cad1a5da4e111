"""The executor through its bus contract: commands in, API calls, Events and rollout events out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from schemas.cloneset import CloneSet
from schemas.kube import Pod
from schemas.messages import CLONESETS, EVENTS, PODS, Command, CreateOp, DeleteOp, KubeEvent, PatchOp
from services.bus import Bus
from services.demo import load_sample
from services.executor.service import run_executor
from services.kube import Kube, KubeNotFound
from services.natsd import NatsServer
from sim.cluster import SimCluster
from tests.component.helpers import all_events, eventually

FAST = {"pull_delay": 0.05, "start_delay": 0.05, "bookmark_interval": 0.2}


@pytest.fixture
async def env(tmp_path: Path, nats_server: NatsServer, uid: str
              ) -> AsyncIterator[tuple[SimCluster, Kube, Bus, CloneSet]]:
    async with SimCluster(nodes=2, tmpdir=tmp_path, **FAST) as cluster:  # type: ignore[arg-type]
        kube = await Kube.connect(str(cluster.kubeconfig_path))
        bus = await Bus.connect(nats_server.url, name="test-executor", prefix=f"x{uid}")
        await bus.ensure_streams()
        cs = msgspec.json.decode(await kube.create(CLONESETS, "default", load_sample()), type=CloneSet)
        stop = asyncio.Event()
        task = asyncio.create_task(run_executor(kube, bus, stop=stop))
        try:
            yield cluster, kube, bus, cs
        finally:
            stop.set()
            await asyncio.wait_for(task, 15)
            await bus.close()
            await kube.close()


def command(cs: CloneSet, cid: str, verb: str, ops: list[object], **kw: object) -> Command:
    return Command(id=cid, verb=verb, namespace="default", workload=cs.metadata.name, workload_uid=cs.metadata.uid,
                   ops=ops, **kw)  # type: ignore[arg-type]


def pod_body(cs: CloneSet, name: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": "sample"},
                         "ownerReferences": [{"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet",
                                              "name": cs.metadata.name, "uid": cs.metadata.uid, "controller": True}]},
            "spec": {"containers": [{"name": "nginx", "image": "nginx:1.20"}]}}


async def get_pod(kube: Kube, name: str) -> Pod | None:
    try:
        return msgspec.json.decode(await kube.get(PODS, "default", name), type=Pod)
    except KubeNotFound:
        return None


async def test_create_then_guarded_patch_then_delete(env: tuple[SimCluster, Kube, Bus, CloneSet]) -> None:
    _, kube, bus, cs = env
    await bus.publish_command(command(cs, "c1", "create", [CreateOp(resource=PODS, namespace="default",
                                                                    body=pod_body(cs, "sample-a"))],
                                      pod="sample-a", on_success=KubeEvent(reason="SuccessfulCreate",
                                                                           message="succeed to create pod sample-a")))
    pod = await eventually(lambda: get_pod(kube, "sample-a"), lambda p: p is not None, what="the created pod")
    assert pod is not None

    patch = [{"op": "test", "path": "/metadata/uid", "value": pod.metadata.uid},
             {"op": "add", "path": "/metadata/labels/stage", "value": "one"}]
    await bus.publish_command(command(cs, "c2", "label", [PatchOp(resource=PODS, namespace="default",
                                                                  name="sample-a", patch_type="json", patch=patch)]))
    await eventually(lambda: get_pod(kube, "sample-a"),
                     lambda p: p is not None and p.metadata.labels.get("stage") == "one", what="the label")

    await bus.publish_command(command(cs, "c3", "delete", [DeleteOp(resource=PODS, namespace="default",
                                                                    name="sample-a", uid=pod.metadata.uid,
                                                                    grace_period_seconds=0)]))
    await eventually(lambda: get_pod(kube, "sample-a"), lambda p: p is None, what="the pod to be deleted")

    # A Kubernetes Event with Kruise's reason on the CloneSet, and the outcome on the rollout log.
    items, _ = await kube.list(EVENTS, "default")
    events = [msgspec.json.decode(raw) for raw in items]
    assert any(e["reason"] == "SuccessfulCreate" and e["involvedObject"]["uid"] == cs.metadata.uid
               and e["message"] == "succeed to create pod sample-a" for e in events)
    log = await eventually(lambda: all_events(bus), lambda evs: len(evs) >= 3, what="three rollout events")
    assert [e.type for e in log][:3] == ["create", "label", "delete"]


async def test_stale_precondition_is_dropped_with_a_rejected_event(
        env: tuple[SimCluster, Kube, Bus, CloneSet]) -> None:
    _, kube, bus, cs = env
    await kube.create(PODS, "default", pod_body(cs, "sample-b"))
    stale = [{"op": "test", "path": "/metadata/labels/controller-revision-hash", "value": "sample-old"},
             {"op": "replace", "path": "/spec/containers/0/image", "value": "nginx:1.21"}]
    await bus.publish_command(command(cs, "stale-1", "update-in-place", [
        PatchOp(resource=PODS, namespace="default", name="sample-b", patch_type="json", patch=stale)],
        pod="sample-b"))
    # A later good command still runs: a stale one does not block the queue.
    await bus.publish_command(command(cs, "after-stale", "label", [PatchOp(
        resource=PODS, namespace="default", name="sample-b", patch_type="merge",
        patch={"metadata": {"labels": {"after": "yes"}}})], pod="sample-b"))
    await eventually(lambda: get_pod(kube, "sample-b"),
                     lambda p: p is not None and p.metadata.labels.get("after") == "yes", what="the later command")
    rejected = await eventually(lambda: all_events(bus, f"{bus.prefix}.events.*.*.rejected"), lambda evs: evs,
                                what="a rejected event")
    assert rejected[0].reason == "stale" and rejected[0].command_id == "stale-1"
    assert "precondition" in rejected[0].message
    pod = await get_pod(kube, "sample-b")
    assert pod is not None and pod.spec.containers[0].image == "nginx:1.20", "a stale update must not apply"


async def test_forbidden_change_is_reported_on_the_workload(env: tuple[SimCluster, Kube, Bus, CloneSet]) -> None:
    _, kube, bus, cs = env
    await kube.create(PODS, "default", pod_body(cs, "sample-c"))
    await bus.publish_command(command(cs, "bad-1", "update-in-place", [PatchOp(
        resource=PODS, namespace="default", name="sample-c", patch_type="strategic",
        patch={"spec": {"containers": [{"name": "nginx", "env": [{"name": "A", "value": "b"}]}]}})],
        pod="sample-c", on_failure=KubeEvent(type="Warning", reason="FailedUpdatePodInPlace",
                                             message="failed to update pod sample-c in-place")))
    rejected = await eventually(lambda: all_events(bus, f"{bus.prefix}.events.*.*.rejected"), lambda evs: evs,
                                what="a rejected event")
    assert "pod updates may not change fields" in rejected[0].message
    items, _ = await kube.list(EVENTS, "default")
    events = [msgspec.json.decode(raw) for raw in items]
    warning = [e for e in events if e["reason"] == "FailedUpdatePodInPlace"]
    assert warning and warning[0]["type"] == "Warning" and "may not change fields" in warning[0]["message"]


async def test_api_outage_is_retried_not_lost(env: tuple[SimCluster, Kube, Bus, CloneSet]) -> None:
    cluster, kube, bus, cs = env
    cluster.faults.update(error_rate={"create": 1.0}, error_codes=[500], resources=["pods"])
    await bus.publish_command(command(cs, "retry-1", "create", [CreateOp(resource=PODS, namespace="default",
                                                                         body=pod_body(cs, "sample-d"))]))
    # the executor has received the command while every create fails
    await eventually(lambda: bus.js.consumer_info(bus.subjects.stream("CMD"), "executor"),
                     lambda info: info.delivered.consumer_seq >= 1, what="the command to be delivered")
    assert await get_pod(kube, "sample-d") is None
    cluster.faults.reset()
    pod = await eventually(lambda: get_pod(kube, "sample-d"), lambda p: p is not None, timeout=30,
                           what="the pod once the API server recovers")
    assert pod is not None
