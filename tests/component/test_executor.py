"""The executor through its bus contract: commands in, API calls, Events and rollout events out."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from schemas.cloneset import CloneSet
from schemas.kinds import CLONESET
from schemas.kube import ObjectReference, Pod
from schemas.messages import (
    CLONESETS,
    CONTROLLER_REVISIONS,
    EVENTS,
    PODS,
    Command,
    CreateOp,
    DeleteOp,
    KubeEvent,
    OwnerCurrent,
    PatchOp,
    Resource,
    WorkloadRef,
)
from schemas.timefmt import parse_time
from services.bus import Bus
from services.demo import load_sample
from services.executor.service import Executor, run_executor
from services.kube import Kube, KubeNotFound
from services.natsd import NatsServer
from sim.cluster import SimCluster
from tests.component.helpers import all_events, eventually
from tests.conftest import RealCluster

NAMESPACES = Resource(plural="namespaces", namespaced=False)
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
    return Command(id=cid, verb=verb, workload=CLONESET.ref(cs.metadata), ops=ops, **kw)  # type: ignore[arg-type]


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


async def test_a_commands_evidence_reaches_the_log_with_its_outcome_done_or_rejected(
        env: tuple[SimCluster, Kube, Bus, CloneSet]) -> None:
    """`Command.data` (a decision's budget evidence, kit.budget) is on the command's `done` event and,
    when the command is dropped as stale, on its `rejected` event: the log says what the decision saw."""
    _, kube, bus, cs = env
    created = msgspec.json.decode(await kube.create(PODS, "default", pod_body(cs, "sample-v")), type=Pod)
    seen = {"budget": "charged", "resourceVersion": created.metadata.resource_version, "maxUnavailable": 1,
            "unavailable": 0, "counted": ""}
    label = [{"op": "test", "path": "/metadata/uid", "value": created.metadata.uid},
             {"op": "add", "path": "/metadata/labels/stage", "value": "one"}]
    await bus.publish_command(command(cs, "ev-done", "label", [PatchOp(
        resource=PODS, namespace="default", name="sample-v", patch_type="json", patch=label)], pod="sample-v",
        data=seen))
    stale = [{"op": "test", "path": "/metadata/labels/controller-revision-hash", "value": "sample-old"},
             {"op": "replace", "path": "/spec/containers/0/image", "value": "nginx:1.21"}]
    await bus.publish_command(command(cs, "ev-stale", "update-in-place", [PatchOp(
        resource=PODS, namespace="default", name="sample-v", patch_type="json", patch=stale)], pod="sample-v",
        data={**seen, "budget": "free"}))
    log = await eventually(lambda: all_events(bus), lambda evs: {e.command_id for e in evs} >= {"ev-done", "ev-stale"},
                           what="both outcomes")
    outcome = {e.command_id: (e.type, e.data) for e in log}
    assert outcome["ev-done"] == ("label", seen)
    assert outcome["ev-stale"] == ("rejected", {**seen, "budget": "free"})


async def test_a_done_event_says_to_the_microsecond_when_its_command_was_queued_and_done(
        env: tuple[SimCluster, Kube, Bus, CloneSet]) -> None:
    """The `done` event's `time` and `queued` (the command's JetStream timestamp on KB_CMD) carry
    microseconds: the log splits a decision's latency into the planner's part and the executor's."""
    _, kube, bus, cs = env
    await kube.create(PODS, "default", pod_body(cs, "sample-t"))
    before = datetime.now(UTC)
    await bus.publish_command(command(cs, "timed", "label", [PatchOp(
        resource=PODS, namespace="default", name="sample-t", patch_type="merge",
        patch={"metadata": {"labels": {"timed": "yes"}}})], pod="sample-t"))
    published = datetime.now(UTC)
    log = await eventually(lambda: all_events(bus), lambda evs: any(e.command_id == "timed" for e in evs),
                           what="the done event")
    done = next(e for e in log if e.command_id == "timed")
    micro = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
    assert micro.match(done.time) and micro.match(done.queued), (done.time, done.queued)
    queued, finished = parse_time(done.queued), parse_time(done.time)
    assert queued is not None and finished is not None
    slack = timedelta(milliseconds=5)  # the server's clock is this machine's; its stamp is to the ns
    assert before - slack <= queued <= published + slack <= finished + slack
    pod = await get_pod(kube, "sample-t")
    assert pod is not None and pod.metadata.labels.get("timed") == "yes"


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


async def test_a_failure_event_has_the_type_the_planner_gave_it(env: tuple[SimCluster, Kube, Bus, CloneSet]) -> None:
    """FailedCreateImagePullJob is a Normal Event (as in Kruise); other failures are Warnings."""
    _, kube, bus, cs = env
    await kube.create(PODS, "default", pod_body(cs, "sample-d"))
    await bus.publish_command(command(cs, "bad-2", "imagepulljob-create", [PatchOp(
        resource=PODS, namespace="default", name="sample-d", patch_type="strategic",
        patch={"spec": {"containers": [{"name": "nginx", "env": [{"name": "A", "value": "b"}]}]}})],
        pod="sample-d", on_failure=KubeEvent(type="Normal", reason="FailedCreateImagePullJob",
                                             message="failed to create ImagePullJob j")))

    async def failed() -> list[dict[str, Any]]:
        items, _ = await kube.list(EVENTS, "default")
        return [e for e in (msgspec.json.decode(raw) for raw in items) if e["reason"] == "FailedCreateImagePullJob"]

    events = await eventually(failed, lambda evs: evs, what="the FailedCreateImagePullJob Event")
    assert events[0]["type"] == "Normal" and events[0]["message"].startswith("failed to create ImagePullJob j: ")


async def test_a_failed_pod_change_of_a_cluster_scoped_workload_is_an_event_of_the_pod(
        env: tuple[SimCluster, Kube, Bus, CloneSet]) -> None:
    """A SidecarSet (cluster-scoped) command whose pod patch is refused: its failure Event is the pod's,
    in the pod's namespace (Kruise's ResetContainerFailed), with the API server's error appended."""
    _, kube, bus, cs = env
    await kube.create(NAMESPACES, None, {"metadata": {"name": "ns-a"}})
    body = pod_body(cs, "hot-pod")
    body["metadata"] = {"name": "hot-pod", "namespace": "ns-a"}
    created = msgspec.json.decode(await kube.create(PODS, "ns-a", body))
    ref = WorkloadRef(api_version="apps.kruise.io/v1alpha1", kind="SidecarSet",
                      resource=Resource(group="apps.kruise.io", version="v1alpha1", plural="sidecarsets",
                                        namespaced=False), namespace="", name="hot", uid="ss-uid")
    pod_ref = ObjectReference(api_version="v1", kind="Pod", namespace="ns-a", name="hot-pod",
                              uid=created["metadata"]["uid"])
    await bus.publish_command(Command(
        id="flip-1", verb="sidecar-upgrade", workload=ref, pod="hot-pod", ops=[PatchOp(
            resource=PODS, namespace="ns-a", name="hot-pod", patch_type="strategic",
            patch={"spec": {"containers": [{"name": "nginx", "env": [{"name": "A", "value": "b"}]}]}})],
        on_failure=KubeEvent(type="Warning", reason="ResetContainerFailed",
                             message="reset sidecar container image empty failed", involved=pod_ref)))

    async def failed() -> list[dict[str, Any]]:
        items, _ = await kube.list(EVENTS, "ns-a")
        return [e for e in map(msgspec.json.decode, items) if e["reason"] == "ResetContainerFailed"]

    (event,) = await eventually(failed, lambda evs: evs, what="the ResetContainerFailed Event")
    assert event["type"] == "Warning"
    assert event["involvedObject"]["kind"] == "Pod" and event["involvedObject"]["name"] == "hot-pod"
    assert event["message"].startswith("reset sidecar container image empty failed: ")
    assert "may not change fields" in event["message"]


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


def owned_create(cs: CloneSet, name: str, generation: int) -> CreateOp:
    return CreateOp(resource=PODS, namespace="default", body=pod_body(cs, name),
                    owner=OwnerCurrent(resource=CLONESETS, name=cs.metadata.name, uid=cs.metadata.uid,
                                       generation=generation))


async def test_a_create_redelivered_after_the_spec_moved_on_is_stale(
        env: tuple[SimCluster, Kube, Bus, CloneSet]) -> None:
    """An executor killed after a create gets the command again 30 s later; by then the pod may have been
    created, deleted and the spec changed: the redelivered create must not bring the pod back.

    A redelivery is the same command delivered again; publishing it under a second message id (past the
    duplicate window) is exactly what the executor then sees.
    """
    _, kube, bus, cs = env
    create = command(cs, "create-e", "create", [owned_create(cs, "sample-e", cs.metadata.generation)],
                     pod="sample-e")
    await bus.publish_command(create)
    pod = await eventually(lambda: get_pod(kube, "sample-e"), lambda p: p is not None, what="the first create")
    assert pod is not None
    await kube.delete(PODS, "default", "sample-e", grace_period_seconds=0)
    await eventually(lambda: get_pod(kube, "sample-e"), lambda p: p is None, what="the pod to be deleted")
    moved = msgspec.json.decode(await kube.patch(CLONESETS, "default", cs.metadata.name, {"spec": {"template": {
        "spec": {"containers": [{"name": "nginx", "image": "nginx:1.21"}]}}}}, "merge"), type=CloneSet)
    assert moved.metadata.generation > cs.metadata.generation

    await bus.publish_command(create, msg_id="create-e@retry1")
    rejected = await eventually(lambda: all_events(bus, f"{bus.prefix}.events.*.*.rejected"), lambda evs: evs,
                                what="the redelivered create to be rejected")
    assert rejected[0].reason == "stale" and rejected[0].command_id == "create-e@retry1"
    assert f"generation {moved.metadata.generation}" in rejected[0].message
    assert await get_pod(kube, "sample-e") is None, "a stale create must not bring the pod back"

    # a create decided on the current spec still goes through
    await bus.publish_command(command(cs, "create-f", "create", [
        owned_create(cs, "sample-f", moved.metadata.generation)], pod="sample-f"))
    assert await eventually(lambda: get_pod(kube, "sample-f"), lambda p: p is not None, what="a fresh create")


async def test_a_create_redelivered_after_it_was_made_and_the_spec_moved_on_is_done_not_rejected(
        tmp_path: Path, nats_server: NatsServer, uid: str) -> None:
    """A NATS restart can lose the ack of a create whose pod was made: the command comes again (delivery
    2) after the CloneSet's spec moved on. That delivery must not report `rejected`: the planner would
    drop its expectation of the pod and, not seeing the pod yet, create another beside it (a pod above
    maxSurge). One message, one outcome on the rollout log: `done`, once.

    The deliveries are real JetStream deliveries of one stream message (the second after a `nak`),
    each handled by the executor's own `handle`.
    """
    async with SimCluster(nodes=2, tmpdir=tmp_path, **FAST) as cluster:  # type: ignore[arg-type]
        kube = await Kube.connect(str(cluster.kubeconfig_path))
        bus = await Bus.connect(nats_server.url, name="test-executor", prefix=f"x{uid}")
        try:
            await bus.ensure_streams()
            cs = msgspec.json.decode(await kube.create(CLONESETS, "default", load_sample()), type=CloneSet)
            executor = Executor(kube, bus)
            sub = await bus.js.pull_subscribe(bus.subjects.command_all(), durable="redelivery-test",
                                              stream=bus.subjects.stream("CMD"))
            create = command(cs, "create-r", "create", [owned_create(cs, "sample-r", cs.metadata.generation)],
                             pod="sample-r")
            await bus.publish_command(create)
            [first] = await sub.fetch(1, timeout=10)
            await executor.handle(create, first)
            assert await get_pod(kube, "sample-r") is not None
            await kube.patch(CLONESETS, "default", cs.metadata.name, {"spec": {"template": {
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.21"}]}}}}, "merge")
            await first.nak()  # the ack that never arrived
            [second] = await sub.fetch(1, timeout=10)
            assert second.metadata.num_delivered == 2
            await executor.handle(create, second)  # StaleError here would be a `rejected` event
            # and were a rejection still sent for this delivery, the first outcome keeps its place
            await bus.reject(second, reason="stale", message="a second outcome for one message")
            log = [e for e in await all_events(bus) if e.command_id == "create-r"]
            assert [e.type for e in log] == ["create"], log
            assert await get_pod(kube, "sample-r") is not None
        finally:
            await bus.close()
            await kube.close()


async def test_a_create_whose_name_another_owner_holds_is_rejected_as_name_taken(
        env: tuple[SimCluster, Kube, Bus, CloneSet]) -> None:
    """AlreadyExists is the create done only when the holder has the body's controller; a pod of no
    controller under that name is reported (reason `name-taken`, naming both), not taken for ours."""
    _, kube, bus, cs = env
    foreign = pod_body(cs, "sample-t")
    foreign["metadata"] = {k: v for k, v in foreign["metadata"].items() if k != "ownerReferences"}  # type: ignore[union-attr]
    await kube.create(PODS, "default", foreign)
    await bus.publish_command(command(cs, "create-t", "create", [owned_create(cs, "sample-t", cs.metadata.generation)],
                                      pod="sample-t"))
    rejected = await eventually(lambda: all_events(bus, f"{bus.prefix}.events.*.*.rejected"), lambda evs: evs,
                                what="the create to be rejected")
    assert rejected[0].reason == "name-taken" and rejected[0].command_id == "create-t"
    assert "pods sample-t already exists and is controlled by no controller, not by CloneSet sample" \
        in rejected[0].message
    pod = await get_pod(kube, "sample-t")
    assert pod is not None and pod.metadata.controller_ref() is None


async def test_an_orphaned_revision_with_the_same_data_is_adopted_not_taken_for_a_collision(
        env: tuple[SimCluster, Kube, Bus, CloneSet]) -> None:
    """A workload deleted with `--cascade=orphan` and applied again hashes its template to the name its
    old revision still holds, with the same data and no controller: the create adopts it (controller
    reference added) instead of a `name-taken` rejection that would re-hash and roll every pod."""
    _, kube, bus, cs = env
    data = {"spec": {"template": {"$patch": "replace", "spec": {"containers": [{"name": "a", "image": "x:1"}]}}}}
    await kube.create(CONTROLLER_REVISIONS, "default", {
        "apiVersion": "apps/v1", "kind": "ControllerRevision", "revision": 1, "data": data,
        "metadata": {"name": "sample-abc", "namespace": "default", "labels": {"app": "sample"}}})
    ref = {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "CloneSet", "name": cs.metadata.name,
           "uid": cs.metadata.uid, "controller": True, "blockOwnerDeletion": True}
    body = {"apiVersion": "apps/v1", "kind": "ControllerRevision", "revision": 1, "data": data,
            "metadata": {"name": "sample-abc", "namespace": "default", "labels": {"app": "sample"},
                         "ownerReferences": [ref]}}
    await bus.publish_command(command(cs, "revision-a", "revision-create", [
        CreateOp(resource=CONTROLLER_REVISIONS, namespace="default", body=body)], revision="sample-abc"))

    async def controller() -> str | None:
        raw = msgspec.json.decode(await kube.get(CONTROLLER_REVISIONS, "default", "sample-abc"))
        refs = [r for r in raw["metadata"].get("ownerReferences", []) if r.get("controller")]
        return refs[0]["uid"] if refs else None

    assert await eventually(controller, lambda u: u is not None, what="the revision adopted") == cs.metadata.uid
    assert not await all_events(bus, f"{bus.prefix}.events.*.*.rejected")


async def test_a_redelivered_command_records_its_event_once(env: tuple[SimCluster, Kube, Bus, CloneSet]) -> None:
    _, kube, bus, cs = env
    await kube.create(PODS, "default", pod_body(cs, "sample-g"))
    pod = await eventually(lambda: get_pod(kube, "sample-g"), lambda p: p is not None, what="the pod")
    assert pod is not None
    delete = command(cs, "recreate-g", "update-recreate", [
        DeleteOp(resource=PODS, namespace="default", name="sample-g", uid=pod.metadata.uid, grace_period_seconds=0)],
        pod="sample-g", on_success=KubeEvent(reason="SuccessfulUpdatePodReCreate",
                                             message="succeed to update pod sample-g by recreate"))
    await bus.publish_command(delete)
    await bus.publish_command(delete, msg_id="recreate-g@retry1")
    await eventually(lambda: bus.js.consumer_info(bus.subjects.stream("CMD"), "executor"),
                     lambda info: info.ack_floor.consumer_seq >= 2, what="both deliveries to be handled")

    async def recreate_events() -> list[dict[str, object]]:
        items, _ = await kube.list(EVENTS, "default")
        return [e for e in map(msgspec.json.decode, items) if e["reason"] == "SuccessfulUpdatePodReCreate"]

    events = await eventually(recreate_events, lambda evs: evs, what="the Event")
    assert len(events) == 1, f"one update, one Event: {events}"


async def test_events_land_on_the_commands_workload_kind(env: tuple[SimCluster, Kube, Bus, CloneSet]) -> None:
    """A command names its workload (kind and apiVersion included): its Event is filed against that
    object, not against a CloneSet by default."""
    _, kube, bus, _ = env
    ref = WorkloadRef(api_version="apps.kruise.io/v1alpha1", kind="DaemonSet",
                      resource=Resource(group="apps.kruise.io", version="v1alpha1", plural="daemonsets"),
                      namespace="default", name="agents", uid="ds-uid")
    await bus.publish_command(Command(id="ds-event", verb="event", workload=ref, ops=[],
                                      on_success=KubeEvent(reason="Probe", message="on a daemonset")))

    async def probe_events() -> list[dict[str, Any]]:
        items, _ = await kube.list(EVENTS, "default")
        return [e for e in map(msgspec.json.decode, items) if e["reason"] == "Probe"]

    (event,) = await eventually(probe_events, lambda evs: evs, what="the Event")
    assert event["involvedObject"] == {"apiVersion": "apps.kruise.io/v1alpha1", "kind": "DaemonSet",
                                       "name": "agents", "namespace": "default", "uid": "ds-uid"}


async def test_an_expired_command_is_dropped_as_stale(env: tuple[SimCluster, Kube, Bus, CloneSet]) -> None:
    """A command queued or redelivered past `not_after` races a newer decision of the planner (which
    stopped waiting for it): it is rejected, not performed."""
    _, kube, bus, cs = env
    await bus.publish_command(command(cs, "late-h", "create", [owned_create(cs, "sample-h", cs.metadata.generation)],
                                      pod="sample-h", not_after="2026-01-01T00:00:00.000000Z"))
    rejected = await eventually(lambda: all_events(bus, f"{bus.prefix}.events.*.*.rejected"), lambda evs: evs,
                                what="the expired command to be rejected")
    assert rejected[0].reason == "stale" and "expired" in rejected[0].message and rejected[0].pod == "sample-h"
    assert await get_pod(kube, "sample-h") is None


async def test_a_second_command_for_a_change_already_made_reports_nothing(
        env: tuple[SimCluster, Kube, Bus, CloneSet]) -> None:
    """The same create decided again under a newer id (the CloneSet's resourceVersion moved) meets
    AlreadyExists: one pod, one `create` on the rollout log, one SuccessfulCreate Event."""
    _, kube, bus, cs = env
    ok = KubeEvent(reason="SuccessfulCreate", message="succeed to create pod sample-i")
    for cid in ("create-i/rv1", "create-i/rv2"):
        await bus.publish_command(command(cs, cid, "create", [owned_create(cs, "sample-i", cs.metadata.generation)],
                                          pod="sample-i", on_success=ok))
    await eventually(lambda: bus.js.consumer_info(bus.subjects.stream("CMD"), "executor"),
                     lambda info: info.ack_floor.consumer_seq >= 2, what="both commands to be handled")

    async def create_events() -> list[dict[str, Any]]:
        items, _ = await kube.list(EVENTS, "default")
        return [e for e in map(msgspec.json.decode, items) if e["message"] == ok.message]

    assert len(await eventually(create_events, lambda evs: evs, what="the Event")) == 1
    log = [e for e in await all_events(bus) if e.type == "create" and e.pod == "sample-i"]
    assert [e.command_id for e in log] == ["create-i/rv1"]


@pytest.fixture
async def real_env(real_cluster: RealCluster, nats_server: NatsServer, uid: str
                   ) -> AsyncIterator[tuple[Kube, Bus, CloneSet, str]]:
    """The executor on the real control plane (kube-apiserver 1.20), in a namespace of its own."""
    ns = f"kb-x-{uid}"
    kube = await Kube.connect(real_cluster.kubeconfig)
    await kube.create(NAMESPACES, None, {"metadata": {"name": ns}})
    bus = await Bus.connect(nats_server.url, name="test-executor", prefix=f"x{uid}")
    await bus.ensure_streams()
    cs = msgspec.json.decode(await kube.create(CLONESETS, ns, load_sample()), type=CloneSet)
    stop = asyncio.Event()
    task = asyncio.create_task(run_executor(kube, bus, stop=stop))
    try:
        yield kube, bus, cs, ns
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        await kube.delete(NAMESPACES, None, ns)
        await bus.close()
        await kube.close()


@pytest.mark.real
@pytest.mark.parametrize("concurrent", [pytest.param(False, id="re-planned-after"),
                                        pytest.param(True, id="both-queued")])
async def test_duplicate_pod_create_is_done_on_kube_apiserver(real_env: tuple[Kube, Bus, CloneSet, str],
                                                              concurrent: bool) -> None:
    """A second create of a pod that exists is a duplicate command: done at once. Kruise's pod bodies
    carry `name` and `generateName`, for which kube-apiserver answers a clash with a retryable 500
    ServerTimeout, not 409: taken for a server error, the command was retried for as long as it lived.

    The executor runs commands concurrently, so two creates queued together race to the API server and
    either may land first (the test once published both at once and expected the first to win, which
    failed whenever the second was scheduled first): re-planned after the first was done, the second is
    the duplicate; queued together, exactly one of them creates and reports it."""
    kube, bus, cs, ns = real_env
    body = pod_body(cs, "sample-dup")
    body["metadata"] = {**body["metadata"], "namespace": ns, "generateName": "sample-"}  # type: ignore[dict-item]

    async def done(n: int) -> None:
        await eventually(lambda: bus.js.consumer_info(bus.subjects.stream("CMD"), "executor"),
                         lambda info: info.ack_floor.consumer_seq >= n, timeout=15, what=f"{n} create(s) done")

    for n, cid in enumerate(("dup-1", "dup-2"), start=1):  # two ids: a re-planned create, not a redelivery
        await bus.publish_command(Command(
            id=cid, verb="create", workload=CLONESET.ref(cs.metadata),
            ops=[CreateOp(resource=PODS, namespace=ns, body=body)], pod="sample-dup"))
        if not concurrent:
            await done(n)
    await done(2)
    log = await all_events(bus)
    created = [e.command_id for e in log if e.type == "create"]
    # the other found the pod there: done, and reported by the one that made it alone
    assert created in ((["dup-1"], ["dup-2"]) if concurrent else (["dup-1"],))
    assert not [e for e in log if e.type == "rejected"]
    pod = msgspec.json.decode(await kube.get(PODS, ns, "sample-dup"), type=Pod)
    assert pod.metadata.name == "sample-dup"
